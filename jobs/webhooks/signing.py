"""Standard Webhooks signatures, as OpenAI signs its webhooks and its SDK's `webhooks.unwrap`
checks them: `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`."""

from __future__ import annotations

import base64
import hashlib
import hmac

from jobs.webhooks.secrets import key_bytes


def signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secrets: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt. Several secrets (one being rotated out) give several
    signatures, space-separated; a receiver accepts the message when any one matches."""
    signatures = [signature(secret=s, message_id=message_id, timestamp=timestamp, body=body) for s in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
