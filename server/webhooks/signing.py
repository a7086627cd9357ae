"""Webhook signatures (D-011, D-028, R-015).

* ``X-Stealth-Signature: sha256=<hex>``: HMAC-SHA256 over the exact body bytes, keyed with the whole
  ``whsec_...`` string as UTF-8 (exactly the verifier of seed 000 §7.4).
* Standard Webhooks: ``webhook-id`` (the event id), ``webhook-timestamp`` (Unix seconds, real time so
  off-the-shelf verifiers' tolerance checks work whatever the partner's sandbox clock says) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed with the base64-decoded
  part after ``whsec_``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

SECRET_PREFIX = "whsec_"
USER_AGENT = "StealthHealth-Webhooks/1.0"


def serialize(payload: dict[str, Any]) -> bytes:
    """The one serialization of an event body; stored and sent byte-for-byte on every attempt."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stealth_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks key: the base64 part after ``whsec_`` decoded (raw UTF-8 if it is not base64)."""
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode("utf-8")


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: str, event_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Every header of one delivery attempt (a fresh timestamp per attempt)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Stealth-Signature": stealth_signature(secret, body),
        "X-Stealth-Event-Id": event_id,
        "webhook-id": event_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": standard_signature(secret, event_id, ts, body),
    }
