"""The Django app: jobs, rooms, engines and keys; the chunk log; the API faces."""
