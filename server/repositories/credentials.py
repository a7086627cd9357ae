"""The per-request credential lookup: a partner and its key hashes, one prebuilt Core statement.

Every authenticated request runs it, so it builds no ORM objects and no statement per call: the select
below is made once (its cache key is memoized on it, so SQLAlchemy finds the compiled form at once) and
the row lands in two small frozen views with exactly the attributes :mod:`server.auth` reads. Nothing is
cached across requests: the row is read fresh each time (clock offsets, key rotation, deactivation and
compliance dates change it, possibly from another process).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from server.db.models import ApiKey, Partner


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """The partner columns the credential, IP and compliance checks read."""

    id: str
    slug: str
    name: str
    tier: str
    environment: str
    active: bool
    clock_offset_seconds: float | None
    rate_limit_per_minute: int | None
    allowed_ips: list[Any] | None
    compliance_review_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """The partner's API key hashes (never the key itself)."""

    key_hash: str
    previous_key_hash: str | None
    previous_key_expires_at: datetime | None


_p = Partner.__table__.c
_k = ApiKey.__table__.c
_PARTNER_COLUMNS = (
    _p.id,
    _p.slug,
    _p.name,
    _p.tier,
    _p.environment,
    _p.active,
    _p.clock_offset_seconds,
    _p.rate_limit_per_minute,
    _p.allowed_ips,
    _p.compliance_review_due_at,
)
_N = len(_PARTNER_COLUMNS)
LOOKUP = (
    select(*_PARTNER_COLUMNS, _k.key_hash, _k.previous_key_hash, _k.previous_key_expires_at)
    .select_from(Partner.__table__.join(ApiKey.__table__, _k.partner_id == _p.id))
    .where(_p.id == bindparam("partner_id"))
)


def lookup(conn: Connection, partner_id: str) -> tuple[PartnerRecord, KeyRecord] | None:
    """The partner ``partner_id`` with its key (None when either is missing)."""
    row = conn.execute(LOOKUP, {"partner_id": partner_id}).first()
    if row is None:
        return None
    return PartnerRecord(*row[:_N]), KeyRecord(*row[_N:])
