"""Plain-Python model engines: request and chunk types, engines, the tool-call text parser and the registry."""
