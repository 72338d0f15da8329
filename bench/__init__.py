"""Benchmarks: `python -m bench.pipeline` measures Spool against its fake upstream (docs/PERFORMANCE.md)."""
