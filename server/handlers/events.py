"""GET /partner/events, GET /partner/events/{event_id}, POST /partner/events/{event_id}/redeliver
(D-015, D-027, R-011, R-012)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, false, or_, select, true
from sqlalchemy.orm import Session

from server import clock, context
from server.cursor import CursorCodec, filter_digest
from server.db.engine import wake_outbox
from server.db.models import Event, EventAttempt, Referral
from server.errors import ApiError
from server.state import AppState

JSON = tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]
RETENTION = timedelta(days=30)
PAYLOAD_IDS = (
    "referral_id",
    "partner_reference",
    "patient_id",
    "appointment_id",
    "prescription_id",
    "transaction_id",
)


def _partner() -> Any:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


def event_not_found(event_id: str) -> ApiError:
    return ApiError("EVENT_NOT_FOUND", f"Event {event_id} was not found.", {"event_id": event_id})


def stored_payload(event: Event) -> dict[str, Any]:
    """The payload exactly as it is (or was) posted: the serialized body once it exists."""
    if event.body is not None:
        loaded: dict[str, Any] = json.loads(event.body)
        return loaded
    return dict(event.payload)


def shown_next_attempt_at(event: Event) -> str | None:
    if event.delivery_status not in ("pending", "pending_retry"):
        return None
    if event.delivery_status == "pending" and (event.auto_attempt_count or 0) == 0:
        return None  # the first attempt is due now
    return clock.iso(event.next_attempt_at)


def summary(event: Event) -> dict[str, Any]:
    payload = stored_payload(event)
    out: dict[str, Any] = {"event_id": event.id, "event_type": event.event_type}
    for key in PAYLOAD_IDS:
        if payload.get(key) is not None:
            out[key] = payload[key]
    out.update(
        {
            "delivery_status": event.delivery_status,
            "attempt_count": event.attempt_count,
            "last_attempt_at": clock.iso(event.last_attempt_at),
            "next_attempt_at": shown_next_attempt_at(event),
        }
    )
    if event.delivered_at is not None:
        out["delivered_at"] = clock.iso(event.delivered_at)
    out["created_at"] = clock.iso(event.created_at)
    out["payload"] = payload
    return out


def attempt_view(attempt: EventAttempt) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attempt_number": attempt.attempt_no,
        "attempted_at": clock.iso(attempt.attempted_at),
        "url": attempt.url,
        "outcome": attempt.outcome or ("succeeded" if attempt.error is None else "http_error"),
        "response_status": attempt.status_code,
        "duration_ms": attempt.latency_ms,
    }
    if attempt.error:
        out["error"] = attempt.error[:500]
    out["redelivery"] = bool(attempt.redelivery)
    return out


def visible_types_clause(tier: str) -> Any:
    """Referral-tier partners see only referral.* events (WebhookEventType); other tiers see all of theirs."""
    return Event.event_type.like("referral.%") if tier == "referral" else true()


class EventHandlers:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.cursors = CursorCodec(state.box.subkey("cursor"))

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "listEvents": self.list_events,
            "getEvent": self.get_event,
            "redeliverEvent": self.redeliver_event,
        }

    def _now(self, partner: Any) -> datetime:
        return clock.partner_now(partner.clock_offset_seconds)

    def _find(self, session: Session, partner: Any, event_id: str) -> Event:
        event = session.scalar(
            select(Event).where(
                Event.id == event_id,
                Event.partner_id == partner.id,
                visible_types_clause(partner.tier),
                Event.created_at >= self._now(partner) - RETENTION,
            )
        )
        if event is None:
            raise event_not_found(event_id)
        return event

    def list_events(self, limit: int = 50, cursor: str | None = None, **query: Any) -> JSON:
        partner = _partner()
        try:
            after_t = clock.parse_iso(query["created_after"]) if query.get("created_after") else None
            before_t = clock.parse_iso(query["created_before"]) if query.get("created_before") else None
        except ValueError:
            raise ApiError(
                "VALIDATION_ERROR",
                "created_after / created_before must be ISO 8601 date-times.",
                {"parameter": "created_after", "in": "query", "reason": "not a date-time"},
            ) from None
        filters = {
            "event_type": query.get("event_type"),
            "delivery_status": query.get("delivery_status"),
            "referral_id": query.get("referral_id"),
            "appointment_id": query.get("appointment_id"),
            "created_after": after_t.isoformat() if after_t else None,
            "created_before": before_t.isoformat() if before_t else None,
        }
        digest = filter_digest("events:" + partner.id, filters)
        position = self.cursors.decode(cursor, digest) if cursor else None
        conds: list[Any] = [
            Event.partner_id == partner.id,
            visible_types_clause(partner.tier),
            Event.created_at >= self._now(partner) - RETENTION,
        ]
        if filters["event_type"]:
            conds.append(Event.event_type == filters["event_type"])
        status = filters["delivery_status"]
        if status == "failed":
            conds.append(Event.has_failed.is_(True))
        elif status:
            conds.append(Event.delivery_status == status)
        if filters["referral_id"]:
            conds.append(Event.referral_id == filters["referral_id"])
        if filters["appointment_id"]:
            linked = select(Referral.id).where(
                Referral.partner_id == partner.id, Referral.appointment_id == filters["appointment_id"]
            )
            conds.append(Event.referral_id.in_(linked) if partner.tier != "referral" else false())
        if after_t:
            conds.append(Event.created_at > after_t)
        if before_t:
            conds.append(Event.created_at < before_t)
        if position is not None:
            t, seq = position
            try:
                seq = int(seq)
            except (TypeError, ValueError):
                raise ApiError(
                    "INVALID_CURSOR",
                    "The cursor is malformed or was issued for a different list.",
                    {"parameter": "cursor"},
                ) from None
            conds.append(or_(Event.created_at < t, and_(Event.created_at == t, Event.seq < seq)))
        limit = int(limit)
        with self.state.db.session() as session:
            rows = list(
                session.scalars(
                    select(Event)
                    .where(*conds)
                    .order_by(Event.created_at.desc(), Event.seq.desc())
                    .limit(limit + 1)
                )
            )
            has_more = len(rows) > limit
            rows = rows[:limit]
            body = {
                "events": [summary(e) for e in rows],
                "pagination": {
                    "has_more": has_more,
                    "next_cursor": self.cursors.encode(rows[-1].created_at, rows[-1].seq, digest)
                    if has_more and rows
                    else None,
                },
            }
        return body, 200

    def get_event(self, event_id: str) -> JSON:
        partner = _partner()
        with self.state.db.session() as session:
            event = self._find(session, partner, event_id)
            attempts = session.scalars(
                select(EventAttempt)
                .where(EventAttempt.event_seq == event.seq)
                .order_by(EventAttempt.attempt_no)
            ).all()
            out = summary(event)
            out["attempts"] = [attempt_view(a) for a in attempts]
        return out, 200

    def redeliver_event(self, event_id: str) -> JSON:
        partner = _partner()
        now = self._now(partner)
        with self.state.db.session() as session:
            event = self._find(session, partner, event_id)
            never_attempted = event.delivery_status == "pending" and (event.auto_attempt_count or 0) == 0
            if not never_attempted:
                event.redelivery_requested_at = now
                event.delivery_status = "pending"
                wake_outbox(session)
            attempt_number = event.attempt_count + 1
        return (
            {
                "event_id": event_id,
                "delivery_status": "pending",
                "requested_at": clock.iso(now),
                "attempt_number": attempt_number,
            },
            202,
        )
