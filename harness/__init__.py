"""What the tests and the benchmarks share to run Spool for real: child processes on loopback
ports, and a webhook receiver. Neither imports the other; both import this."""
