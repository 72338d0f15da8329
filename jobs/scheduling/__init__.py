"""The queue side of Spool: jobs wait for their engine's capacity, in priority order, fairly
between owners (docs/SCHEDULING.md). What a request asks for is jobs.placement, below every
face and protocol; `admission` keeps each limited engine's waiting jobs and leases in Redis;
`leases` renews a worker's own."""
