"""Identifiers with their glossary prefixes."""

from __future__ import annotations

import secrets
import string

_ALNUM = string.ascii_lowercase + string.digits


def _alnum(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def referral_id() -> str:
    return "ref_" + _alnum(16)


def partner_id(slug: str) -> str:
    return "ptr_" + slug


def patient_id() -> str:
    return "ptn_" + _alnum(16)


def event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def tracking_token() -> str:
    return "tkn_" + secrets.token_hex(24)


def api_key(environment: str) -> str:
    prefix = "sk_live_" if environment == "production" else "sk_test_"
    return prefix + secrets.token_hex(32)


def webhook_secret() -> str:
    # Standard Webhooks style: the bytes after the prefix are base64 (see the webhook-signature header).
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
