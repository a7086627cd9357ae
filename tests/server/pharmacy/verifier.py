"""An X-Pharmacy-Signature verifier written independently of server.webhooks.signing (tests only)."""

from __future__ import annotations

import hashlib
import hmac


def verify_pharmacy_signature(raw_body: bytes, header: str, signing_secret: str) -> bool:
    """spec/pharmacy-api PharmacySignature: ``sha256=`` + hex HMAC-SHA256(raw body, key = the whsec_ string)."""
    if not header.startswith("sha256="):
        return False
    mac = hmac.new(bytes(signing_secret, "utf-8"), msg=raw_body, digestmod=hashlib.sha256)
    return hmac.compare_digest(header[len("sha256=") :], mac.hexdigest())
