"""Spool's settings as a process started with some variables would read them (config/spool.py)."""

from __future__ import annotations

import os
from typing import Any

from config.spool import Spool


def spool_read(**variables: Any) -> Spool:
    """Spool's settings as a process started with these variables beside the test run's would
    read them: spool_read(SPOOL_LEASE_SECONDS=0.3, SPOOL_WEBHOOK_ALLOWED_NETWORKS=["10.0.0.0/8"])."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, list | tuple):
            return ",".join(map(str, value))
        return str(value)

    return Spool.read({**os.environ, **{name: text(value) for name, value in variables.items()}})
