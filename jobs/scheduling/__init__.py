"""The queue side of Spool: jobs wait for their engine's capacity, in priority order, fairly
between owners (docs/SCHEDULING.md). `placement` is what a request asks for; `admission` keeps
each limited engine's waiting jobs and leases in Redis; `leases` renews a worker's own."""
