"""Every patch of a library's internals, each where a public API does not serve, each guarded by
tests/test_compat.py (which fails when an upgrade changes the code it relies on) and bounded in
pyproject.toml below the library's next minor release:

- asgi_handler: Django's ASGIHandler.handle, copied with its response.close() hop made optional;
- onloop: Django's stock middleware (and WhiteNoise) called on the event loop;
- asgiref_threads: reads asgiref's map of the threads it gave each request;
- adrf_view: adrf's async dispatch with DRF's authentication awaited on the loop;
- redis: hiredis packing for redis-py's asyncio connections; a cluster pipeline recast;
- httpx_transport: httpx's transport with a network backend (the webhooks' checked addresses).

engine/compat.py holds the engine layer's one (aiohttp), since that layer knows no Django.
"""
