"""API keys: generation, SHA-256 storage, constant-time checks, rotation window, tier rules."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.crypto import sha256_hex
from server.db.models import ApiKey, Partner
from server.errors import ApiError
from server.repositories.credentials import KeyRecord, PartnerRecord
from server.spec import OperationInfo

ROTATION_OVERLAP = timedelta(days=7)  # glossary: previous_key_expires_at, default 7 days
KEY_PREFIX = {"sandbox": "sk_test_", "production": "sk_live_"}


@dataclass(frozen=True)
class AuthenticatedPartner:
    """What handlers know about the caller (no secrets)."""

    id: str
    slug: str
    name: str
    tier: str
    environment: str
    clock_offset_seconds: float
    rate_limit_per_minute: int | None


def invalid() -> ApiError:
    return ApiError("INVALID_CREDENTIALS", "The partner id and API key do not match an active partner.")


def key_matches(presented: str, key: ApiKey | KeyRecord, now: datetime) -> bool:
    digest = sha256_hex(presented)
    current = hmac.compare_digest(digest, key.key_hash)
    previous = False
    if key.previous_key_hash and key.previous_key_expires_at and key.previous_key_expires_at > now:
        previous = hmac.compare_digest(digest, key.previous_key_hash)
    return current or previous


def check_credentials(
    partner_id: str | None,
    api_key: str | None,
    record: tuple[Partner | PartnerRecord, ApiKey | KeyRecord] | None,
    environment: str,
    now: datetime,
) -> AuthenticatedPartner:
    missing = [name for name, value in (("X-Partner-ID", partner_id), ("X-Api-Key", api_key)) if not value]
    if missing:
        raise ApiError(
            "MISSING_CREDENTIALS",
            "The X-Partner-ID and X-Api-Key headers are required.",
            {"missing_headers": missing},
        )
    assert api_key is not None
    if not api_key.startswith(KEY_PREFIX[environment]) or record is None:
        # Still hash, so timing does not tell an unknown partner from a wrong key.
        sha256_hex(api_key)
        raise invalid()
    partner, key = record
    if not partner.active or partner.environment != environment or not key_matches(api_key, key, now):
        raise invalid()
    return AuthenticatedPartner(
        id=partner.id,
        slug=partner.slug,
        name=partner.name,
        tier=partner.tier,
        environment=partner.environment,
        clock_offset_seconds=partner.clock_offset_seconds or 0.0,
        rate_limit_per_minute=partner.rate_limit_per_minute,
    )


def check_ip(partner: Partner | PartnerRecord, client_ip: str) -> None:
    if not partner.allowed_ips:
        return
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        raise ApiError(
            "IP_NOT_ALLOWED", "Requests from this address are not allowed for this partner."
        ) from None
    for entry in partner.allowed_ips:
        try:
            if addr in ipaddress.ip_network(str(entry), strict=False):
                return
        except ValueError:
            continue
    raise ApiError("IP_NOT_ALLOWED", "Requests from this address are not allowed for this partner.")


def check_compliance(partner: Partner | PartnerRecord, now: datetime) -> None:
    due = partner.compliance_review_due_at
    if due is not None and due <= now:
        raise ApiError(
            "COMPLIANCE_REVIEW_PENDING",
            "The annual compliance review is overdue; API access is suspended.",
            {"review_due_at": due.strftime("%Y-%m-%dT%H:%M:%SZ")},
        )


def check_operation(
    partner: AuthenticatedPartner, op: OperationInfo, environment: str, access_tier_header: str | None
) -> None:
    """Sandbox-only operations and tier enforcement, before any handler runs."""
    if op.sandbox_only and environment != "sandbox":
        raise ApiError("SANDBOX_ONLY_OPERATION", "This operation is only available in the sandbox.")
    tiers = op.access_tiers
    if "referral" in tiers:
        return
    if partner.tier == "clinical" and "clinical" in tiers:
        if (access_tier_header or "").strip().lower() != "clinical":
            raise _clinical_required()
        return
    if partner.tier == "prescriber" and "prescriber" in tiers:
        return
    if "clinical" in tiers:
        raise _clinical_required()
    raise ApiError(
        "PRESCRIBER_ACCESS_REQUIRED",
        "This endpoint requires a prescriber-tier key.",
        {"required_tier": "prescriber"},
    )


def _clinical_required() -> ApiError:
    return ApiError(
        "CLINICAL_ACCESS_REQUIRED",
        "This endpoint requires a clinical-tier key and the header X-Access-Tier: clinical.",
        {"required_tier": "clinical"},
    )
