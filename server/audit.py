"""The PHI audit trail (seed 002 §3.2): one append-only record per PHI-bearing read or mutation.

Records carry the schema of AUDIT_LOG_SCHEMA_VERSION = 1: action, category, entity_type + entity_id,
parent_entity_id, actor (uid / email / role), source + source_name, summary, field-level diff for mutations,
phi_redacted, correlation_id (the request's X-Request-Id), ip_address and user_agent. Records never hold PHI
values: diffs name the fields that changed and mark their values redacted. The code only inserts; on
PostgreSQL a trigger (migration 0003) rejects UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import clock, context
from server.db.models_clinical import AuditLog

AUDIT_LOG_SCHEMA_VERSION = 1
CATEGORIES = (
    "appointment",
    "order",
    "prescription",
    "lab",
    "message",
    "patient_profile",
    "phi_view",
    "payment",
    "auth",
    "system",
)
REDACTED = "[redacted]"


@dataclass(frozen=True)
class Actor:
    uid: str
    role: str  # admin | doctor | prescriber | pharmacy | patient | system | partner
    email: str | None = None


def _request_meta() -> tuple[str | None, str | None, str | None]:
    """correlation id, ip address and user agent of the current API request (None outside one)."""
    ctx = context.current.get()
    if ctx is None:
        return None, None, None
    user_agent = None
    try:
        from connexion import request

        user_agent = request.headers.get("user-agent")
    except Exception:
        user_agent = None
    return ctx.request_id, ctx.client_ip, user_agent


def redacted_diff(
    changes: Iterable[tuple[str, Any, Any]], phi_fields: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Field-level before/after; values of PHI fields are replaced by a marker (phi_redacted)."""
    phi = set(phi_fields)
    out = []
    for name, before, after in changes:
        if name in phi:
            before, after = (
                (REDACTED if before is not None else None),
                (REDACTED if after is not None else None),
            )
        out.append({"field": name, "before": before, "after": after})
    return out


def record(
    session: Session,
    *,
    action: str,
    category: str,
    entity_type: str,
    entity_id: str,
    summary: str,
    actor: Actor,
    source_name: str,
    source: str = "partner_api",
    parent_entity_id: str | None = None,
    patient_id: str | None = None,
    partner_id: str | None = None,
    diff: list[dict[str, Any]] | None = None,
    phi_redacted: bool = True,
    at: datetime | None = None,
) -> AuditLog:
    if category not in CATEGORIES:
        raise ValueError(f"unknown audit category {category!r}")
    correlation_id, ip_address, user_agent = _request_meta()
    row = AuditLog(
        at=at or clock.real_now(),
        action=action,
        category=category,
        entity_type=entity_type,
        entity_id=entity_id,
        parent_entity_id=parent_entity_id,
        patient_id=patient_id,
        partner_id=partner_id,
        actor_uid=actor.uid,
        actor_email=actor.email,
        actor_role=actor.role,
        source=source,
        source_name=source_name,
        summary=summary[:500],
        diff=diff,
        phi_redacted=phi_redacted,
        correlation_id=correlation_id,
        ip_address=ip_address,
        user_agent=(user_agent or None) and user_agent[:1000],
        schema_version=AUDIT_LOG_SCHEMA_VERSION,
    )
    session.add(row)
    return row


def patient_profile(
    session: Session,
    *,
    created: bool,
    patient_id: str,
    partner_id: str | None,
    actor: Actor,
    fields: Iterable[str],
    phi_fields: Iterable[str],
    source_name: str,
    summary: str,
    at: datetime,
    source: str = "partner_api",
) -> AuditLog:
    """A patient.created / patient.updated record: the fields set or changed, their values redacted."""
    before = None if created else "set"
    return record(
        session,
        action="patient.created" if created else "patient.updated",
        category="patient_profile",
        entity_type="patient",
        entity_id=patient_id,
        patient_id=patient_id,
        partner_id=partner_id,
        actor=actor,
        source=source,
        source_name=source_name,
        summary=summary,
        diff=redacted_diff([(f, before, "set") for f in fields], phi_fields),
        at=at,
    )


def as_dict(row: AuditLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": clock.iso(row.at),
        "action": row.action,
        "category": row.category,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "parent_entity_id": row.parent_entity_id,
        "patient_id": row.patient_id,
        "partner_id": row.partner_id,
        "actor": {"uid": row.actor_uid, "email": row.actor_email, "role": row.actor_role},
        "source": row.source,
        "source_name": row.source_name,
        "summary": row.summary,
        "diff": row.diff,
        "phi_redacted": row.phi_redacted,
        "correlation_id": row.correlation_id,
        "ip_address": row.ip_address,
        "user_agent": row.user_agent,
        "schema_version": row.schema_version,
    }


def for_patient(
    session: Session,
    patient_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    category: str | None = None,
) -> Sequence[AuditLog]:
    """Every audit record about one patient in [since, until), oldest first."""
    q = select(AuditLog).where(AuditLog.patient_id == patient_id)
    if since is not None:
        q = q.where(AuditLog.at >= since)
    if until is not None:
        q = q.where(AuditLog.at < until)
    if category is not None:
        q = q.where(AuditLog.category == category)
    return session.scalars(q.order_by(AuditLog.at, AuditLog.id)).all()
