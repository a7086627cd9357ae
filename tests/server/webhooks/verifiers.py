"""Signature verifiers written independently of server.webhooks.signing (used only by the tests)."""

from __future__ import annotations

import base64
import hashlib
import hmac


# Seed 000 §7.4, verbatim.
def verify_signature(payload_body: bytes, signature_header: str, webhook_secret: str) -> bool:
    expected = "sha256=" + hmac.new(
        webhook_secret.encode(),
        payload_body,
        hashlib.sha256
    ).hexdigest()  # fmt: skip
    return hmac.compare_digest(expected, signature_header)


def verify_standard_webhooks(
    secret: str, headers: dict[str, str], body: bytes, now: int, tolerance: int = 300
) -> bool:
    """Standard Webhooks (standardwebhooks.com) verification: key = base64 after whsec_, space-separated
    list of versioned signatures, timestamp tolerance."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(now - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    to_sign = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest())
    for versioned in headers["webhook-signature"].split(" "):
        version, _, sig = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return True
    return False
