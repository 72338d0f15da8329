"""The one throttle of every face: requests per caller per minute, counted in Redis (jobs.limits
holds the limits and the counters); over the limit, a 429 with Retry-After. A view that reads
Redis before anything else (`counts_with_read`, the job readers) has the count sent in that
read's round trip instead of one of its own, and checked before it acts on what it read."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from jobs import limits
from jobs.access import ReadGrant
from jobs.faces.common.auth import authorization
from jobs.limits import LimitExceeded, caller_of


class RequestRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.exceeded: LimitExceeded | None = None

    # Async where DRF's is sync: FaceView.ainitial awaits it on the loop.
    async def allow_request(self, request: Request, view: object) -> bool:  # type: ignore[override]
        django_request = request._request
        header = authorization(request)
        if not header and isinstance(request.auth, ReadGrant):
            # No header: a read token's requests are counted in a bucket of the key that made it.
            header = f"read-token:{request.auth.key.key_id}"
        who = caller_of(header, django_request.COOKIES.get("sessionid"))
        if who is None:
            return True
        if getattr(view, "counts_with_read", False):
            limits.defer(limits.request_count(who))
            return True
        try:
            await limits.count_request(who)
        except LimitExceeded as exc:
            self.exceeded = exc
            return False
        return True

    def wait(self) -> float | None:
        return float(self.exceeded.retry_after) if self.exceeded is not None else None
