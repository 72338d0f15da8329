"""Python client for Spool's native jobs API (/v1/jobs); depends only on httpx."""

from spool_client.client import Spool, __version__
from spool_client.engine import ModelEngine
from spool_client.errors import SpoolError
from spool_client.events import (
    ContentDelta,
    Done,
    Error,
    Event,
    Finish,
    Result,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from spool_client.sse import ServerSentEvent
from spool_client.stream import JobStream

__all__ = [
    "ContentDelta",
    "Done",
    "Error",
    "Event",
    "Finish",
    "JobStream",
    "ModelEngine",
    "Result",
    "ServerSentEvent",
    "Spool",
    "SpoolError",
    "ThinkingDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "__version__",
]
