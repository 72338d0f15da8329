"""What the three API faces share: DRF authentication, throttle, errors, SSE, paging, base view."""
