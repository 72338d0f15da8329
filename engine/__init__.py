"""Plain-Python model engines: request and chunk types, engines, the tool-call parser, the registry."""
