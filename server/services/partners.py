"""Provisioning partners and rotating their keys (used by the CLI and by tests)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server import clock, ids
from server.auth import ROTATION_OVERLAP
from server.crypto import SecretBox, sha256_hex
from server.db.engine import Database
from server.db.models import ApiKey, Partner, Product
from server.repositories import partners as partners_repo
from server.services.catalog import default_products
from server.webhooks.url_safety import check_webhook_url

TIERS = ("referral", "clinical", "prescriber")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{3,8}$")


@dataclass(frozen=True)
class Credentials:
    partner_id: str
    api_key: str
    webhook_secret: str
    tier: str
    environment: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {
            "partner_id": self.partner_id,
            "api_key": self.api_key,
            "webhook_secret": self.webhook_secret,
            "tier": self.tier,
            "environment": self.environment,
            "name": self.name,
        }


def slugify(name: str) -> str:
    slug = _SLUG_RE.sub("_", name.lower()).strip("_")[:40]
    return slug or "partner"


def create_partner(
    db: Database,
    box: SecretBox,
    *,
    tier: str,
    environment: str,
    name: str | None = None,
    webhook_url: str | None = None,
    slug: str | None = None,
    rate_limit_per_minute: int | None = None,
    allowed_ips: list[str] | None = None,
    compliance_review_due_at: datetime | None = None,
    brand_primary_color: str | None = None,
    brand_accent_color: str | None = None,
) -> Credentials:
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}")
    for colour in (brand_primary_color, brand_accent_color):
        if colour is not None and not _COLOUR_RE.match(colour):
            raise ValueError(f"brand colours must be #rgb / #rrggbb hex values, got {colour!r}")
    if webhook_url is not None:
        check_webhook_url(webhook_url, environment)
    name = name or f"Demo {tier.capitalize()} Partner {secrets.token_hex(2)}"
    api_key = ids.api_key(environment)
    secret = ids.webhook_secret()
    now = clock.real_now()
    with db.session() as session:
        base = slugify(slug or name)
        candidate = base
        while partners_repo.slug_taken(session, candidate):
            candidate = f"{base}_{secrets.token_hex(3)}"
        partner = Partner(
            id=ids.partner_id(candidate),
            slug=candidate,
            name=name,
            tier=tier,
            environment=environment,
            active=True,
            created_at=now,
            rate_limit_per_minute=rate_limit_per_minute,
            webhook_url=webhook_url,
            webhook_secret_encrypted=box.encrypt(secret),
            allowed_ips=allowed_ips,
            compliance_review_due_at=compliance_review_due_at,
            brand_primary_color=brand_primary_color or "#1f4e79",
            brand_accent_color=brand_accent_color or "#f2a900",
            clock_offset_seconds=0.0,
        )
        session.add(partner)
        session.flush()
        session.add(
            ApiKey(
                partner_id=partner.id, key_hash=sha256_hex(api_key), key_prefix=api_key[:12], created_at=now
            )
        )
        for product in default_products(tier):
            session.add(Product(partner_id=partner.id, **product))
        return Credentials(partner.id, api_key, secret, tier, environment, name)


def rotate_key(db: Database, partner_id: str, overlap_seconds: float | None = None) -> dict[str, Any]:
    """Issue a new key; the current one stays valid until previous_key_expires_at."""
    now = clock.real_now()
    overlap = ROTATION_OVERLAP if overlap_seconds is None else timedelta(seconds=overlap_seconds)
    with db.session() as session:
        record = partners_repo.get_with_key(session, partner_id)
        if record is None:
            raise LookupError(f"unknown partner {partner_id}")
        partner, key = record
        api_key = ids.api_key(partner.environment)
        key.previous_key_hash = key.key_hash
        key.previous_key_expires_at = now + overlap
        key.key_hash = sha256_hex(api_key)
        key.key_prefix = api_key[:12]
        key.rotated_at = now
        return {
            "partner_id": partner.id,
            "api_key": api_key,
            "previous_key_expires_at": clock.iso(key.previous_key_expires_at),
        }


def set_webhook_url(db: Database, partner_id: str, webhook_url: str | None) -> dict[str, Any]:
    """Change (or, with None, remove) where a partner's webhooks go; the URL is checked for the environment."""
    with db.session() as session:
        partner = partners_repo.get(session, partner_id)
        if partner is None:
            raise LookupError(f"unknown partner {partner_id}")
        if webhook_url is not None:
            check_webhook_url(webhook_url, partner.environment)
        partner.webhook_url = webhook_url
        return {"partner_id": partner.id, "webhook_url": webhook_url}


def webhook_secret(db: Database, box: SecretBox, partner_id: str) -> str:
    with db.session() as session:
        partner = partners_repo.get(session, partner_id)
        if partner is None:
            raise LookupError(partner_id)
        return box.decrypt(partner.webhook_secret_encrypted)
