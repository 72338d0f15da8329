"""Python's cyclic garbage collector in Spool's long-running processes (web and worker): what
start-up made is frozen, out of every later scan.

With nothing frozen, a web process holding 300 waiting long-polls spent 21-32% of its CPU in the
collector (docs/PERFORMANCE.md, "Issue 29 (5)"). A Django or DRF request leaves its objects in
reference cycles (the view and its request, the request and its `auser`), so only the collector
frees them, and a long-poll's live long enough to reach the oldest generation. Its full
collections, one every second or two at that load, each scanned every object the process had
made at start-up (Django, the apps, the libraries: ~190,000) along with them.

The thresholds stay Python's. Collecting the young generation every 10,000 allocations instead
of 700 cut another 5-10% of a long-poll's CPU, but held each request's garbage longer (+130 MB
at 1,000 long-polls), and the full collection that comes at last scans all of it at once, on the
event loop every stream shares."""

from __future__ import annotations

import gc


def freeze_startup(enabled: bool) -> None:
    """Move every object that exists now out of the collector's scans. Call once the process
    has loaded what it serves with."""
    if not enabled:
        return
    gc.collect()  # start-up's own garbage is freed, not kept for the process's life
    gc.freeze()
