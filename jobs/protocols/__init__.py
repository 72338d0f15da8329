"""Protocol code: the objects of the APIs Spool speaks (OpenAI's chat completion objects and
error envelope), as pure functions over jobs and chunks. The faces render them, and the core
stores them (a stored completion keeps the object as the API returns it); so they import the
models and the engine's types, never a face, a service or the worker (checked in `make lint`).
The Responses fold (jobs/responses/) is protocol code too."""
