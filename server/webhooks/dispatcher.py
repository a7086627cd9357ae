"""The outbox dispatcher: claims due deliveries, posts them signed, records every attempt.

Claims: a due event is claimed by a compare-and-set UPDATE that stamps ``claimed_by`` (a token unique
to one claim) and ``claimed_until`` (a lease, real time). On PostgreSQL the candidates are selected
``FOR UPDATE SKIP LOCKED`` so workers skip each other's rows instead of waiting; on SQLite one
in-process dispatcher runs (the compare-and-set still keeps the API's clock stepping and the
background thread apart). A claimed batch is loaded only while its lease holds, so a worker whose
lease expired (killed, or stalled) never sends: another worker has the event by then. A killed worker
loses nothing: its claims simply expire.

Batches: one transaction claims up to ``limit`` due events, one loads them with their partners' URLs
and secrets (each secret decrypted once per batch), the attempts go out concurrently
(:class:`server.webhooks.outbox.Sender`), and one transaction records every attempt and its event's new
state (:func:`server.webhooks.outbox.settle`). Each event is still its own delivery: its own signature,
attempt number, schedule and outcome.

Schedule (D-029): attempt 1 when the event is created, attempts 2-6 at 30 s, 5 min, 30 min, 2 h and
12 h after the first attempt, on the partner's sandbox clock; dead letter after the 6th failure.
A requested redelivery is one extra attempt that does not count towards the six (R-011).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from server import clock, faults, ids, phi_log
from server.crypto import SecretBox
from server.db.engine import Database
from server.db.models import Event, EventAttempt, Partner
from server.webhooks import signing
from server.webhooks.outbox import (
    ACTIVE_STATES,
    MAX_AUTOMATIC_ATTEMPTS,
    RETRY_OFFSETS_SECONDS,
    TIMEOUT_SECONDS,
    AttemptResult,
    Progress,
    Send,
    Sender,
    next_retry_at,
    record_batch,
    renew_claims,
    settle,
)
from server.webhooks.url_safety import UnsafeWebhookUrl, check_webhook_url

log = logging.getLogger("stealth.webhooks")

__all__ = [
    "ACTIVE_STATES",
    "MAX_AUTOMATIC_ATTEMPTS",
    "RETRY_OFFSETS_SECONDS",
    "TIMEOUT_SECONDS",
    "AttemptResult",
    "Delivered",
    "Dispatcher",
    "next_retry_at",
]


@dataclass(frozen=True)
class Delivered:
    """One attempt made (returned for logging and tests)."""

    event_id: str
    event_type: str
    attempt_number: int
    attempted_at: datetime
    redelivery: bool
    result: AttemptResult


# The object an event is about, most specific first: its events are first sent in order (README).
ORDER_KEYS = ("referral_id", "appointment_id", "prescription_id", "patient_id")


def order_key(payload: dict[str, Any]) -> str | None:
    for key in ORDER_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True)
class _Ready:
    """A claimed event that is due, with everything its attempt needs."""

    seq: int
    token: str
    event_id: str
    event_type: str
    at: datetime
    redelivery: bool
    send: Send
    refused: AttemptResult | None  # the URL may not be used here: recorded without a send


class Dispatcher:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        environment: str,
        *,
        lease_seconds: float = 30.0,
        timeout_seconds: float = TIMEOUT_SECONDS,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.environment = environment
        self.lease = timedelta(seconds=lease_seconds)
        self.name = name or f"dispatcher-{uuid.uuid4().hex[:8]}"
        self.sender = Sender(timeout_seconds, checked_resolver=environment == "production")

    def close(self) -> None:
        self.sender.close()

    # ------------------------------------------------------------------ claiming

    def _token(self) -> str:
        return f"{self.name}:{uuid.uuid4().hex[:12]}"[:64]

    @staticmethod
    def _due_clause(partner_now: datetime) -> Any:
        return or_(
            and_(Event.delivery_status.in_(ACTIVE_STATES), Event.next_attempt_at <= partner_now),
            Event.redelivery_requested_at.is_not(None),
        )

    @staticmethod
    def _unclaimed(real: datetime) -> Any:
        return or_(Event.claimed_until.is_(None), Event.claimed_until < real)

    def _partners_with_work(self, session: Session, partner_id: str | None) -> list[tuple[str, float]]:
        active = select(Event.partner_id).where(
            or_(Event.delivery_status.in_(ACTIVE_STATES), Event.redelivery_requested_at.is_not(None))
        )
        if partner_id is not None:
            active = active.where(Event.partner_id == partner_id)
        rows = session.execute(
            select(Partner.id, Partner.clock_offset_seconds).where(Partner.id.in_(active.distinct()))
        ).all()
        return [(pid, float(offset or 0.0)) for pid, offset in rows]

    def claim(self, limit: int = 20, partner_id: str | None = None) -> list[tuple[int, str]]:
        """Claim up to ``limit`` due deliveries: [(event seq, claim token)], oldest first."""
        with self.db.session() as session:
            return self._claim_in(session, limit, partner_id)

    def _claim_in(self, session: Session, limit: int, partner_id: str | None) -> list[tuple[int, str]]:
        claimed: list[tuple[int, str]] = []
        for pid, offset in self._partners_with_work(session, partner_id):
            if len(claimed) >= limit:
                break
            real = clock.real_now()
            partner_now = real + timedelta(seconds=offset)
            token = self._token()
            stmt = (
                select(Event.seq)
                .where(Event.partner_id == pid, self._due_clause(partner_now), self._unclaimed(real))
                .order_by(Event.seq)
                .limit(limit - len(claimed))
            )
            if self.db.backend == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            seqs = list(session.scalars(stmt))
            if not seqs:
                continue
            session.execute(
                update(Event)
                .where(Event.seq.in_(seqs), self._unclaimed(real))
                .values(claimed_by=token, claimed_until=real + self.lease)
                .execution_options(synchronize_session=False)
            )
            mine = session.scalars(
                select(Event.seq).where(Event.seq.in_(seqs), Event.claimed_by == token).order_by(Event.seq)
            ).all()
            claimed.extend((seq, token) for seq in mine)
        return claimed

    def claim_event(self, seq: int) -> str | None:
        """Claim one given event (the clock's stepping delivers retries at their own due times)."""
        token = self._token()
        real = clock.real_now()
        with self.db.session() as session:
            result = session.execute(
                update(Event)
                .where(Event.seq == seq, self._unclaimed(real))
                .values(claimed_by=token, claimed_until=real + self.lease)
                .execution_options(synchronize_session=False)
            )
            return token if result.rowcount == 1 else None  # type: ignore[attr-defined]

    def release(self, seq: int, token: str) -> None:
        with self.db.session() as session:
            session.execute(
                update(Event)
                .where(Event.seq == seq, Event.claimed_by == token)
                .values(claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    # ------------------------------------------------------------------ delivering

    def run_once(self, limit: int = 20, partner_id: str | None = None) -> list[Delivered]:
        """Claim and deliver what is due now (claimed and loaded in one transaction); the attempts made."""
        with self.db.session() as session:
            claimed = self._claim_in(session, limit, partner_id)
            ready = self._load_in(session, dict(claimed), None) if claimed else []
        return self._send_and_record(ready)

    def deliver(self, seq: int, token: str, at: datetime | None = None) -> Delivered | None:
        """Make one attempt of a claimed event; ``at`` is the sandbox time to record (clock stepping)."""
        made = self.deliver_batch([(seq, token)], at=at)
        return made[0] if made else None

    def deliver_batch(
        self, claimed: Sequence[tuple[int, str]], at: datetime | None = None
    ) -> list[Delivered]:
        """One attempt of each claimed event that is still ours and due; the attempts made, in seq order."""
        with self.db.session() as session:
            ready = self._load_in(session, dict(claimed), at)
        return self._send_and_record(ready)

    def _send_and_record(self, ready: list[_Ready]) -> list[Delivered]:
        if not ready:
            return []
        to_send = [r for r in ready if r.refused is None]
        sent = iter(
            self.sender.send_all(
                [r.send for r in to_send],
                heartbeat=lambda: renew_claims(
                    self.db, Event.__table__, [(r.seq, r.token) for r in to_send], self.lease
                ),
                every=self.lease.total_seconds() / 3,
            )
        )
        results = [r.refused if r.refused is not None else next(sent) for r in ready]
        return self._record(ready, results)

    def _load_in(self, session: Session, tokens: dict[int, str], at: datetime | None) -> list[_Ready]:
        """Read the claimed events (while the lease holds) and their partners; release the ones not due."""
        real = clock.real_now()
        ready: list[_Ready] = []
        release: list[dict[str, Any]] = []
        bodies: list[dict[str, Any]] = []
        secrets: dict[str, str] = {}
        rows = session.execute(
            select(
                Event.seq,
                Event.id,
                Event.event_type,
                Event.payload,
                Event.body,
                Event.delivery_status,
                Event.next_attempt_at,
                Event.redelivery_requested_at,
                Event.attempt_count,
                Event.claimed_by,
                Partner.webhook_url,
                Partner.webhook_secret_encrypted,
                Partner.clock_offset_seconds,
            )
            .join(Partner, Partner.id == Event.partner_id)
            .where(Event.seq.in_(list(tokens)), Event.claimed_until > real)
            .order_by(Event.seq)
        ).all()
        for row in rows:
            token = tokens[row.seq]
            if row.claimed_by != token:
                continue  # our lease ran out and someone else has it now
            when = at or clock.partner_now(row.clock_offset_seconds or 0.0)
            redelivery = row.redelivery_requested_at is not None
            due = row.delivery_status in ACTIVE_STATES and (
                row.next_attempt_at is not None and row.next_attempt_at <= when
            )
            if not redelivery and not due:
                release.append({"b_seq": row.seq, "b_token": token})
                continue
            body = row.body.encode("utf-8") if row.body is not None else signing.serialize(row.payload)
            if row.body is None:
                bodies.append({"b_seq": row.seq, "body": body.decode("utf-8")})
            event_id = row.id
            if row.attempt_count and faults.active("event_id_per_attempt"):
                event_id = ids.event_id()
                body = signing.serialize({**row.payload, "event_id": event_id})
            encrypted = row.webhook_secret_encrypted
            if encrypted not in secrets:
                secrets[encrypted] = self.box.decrypt(encrypted)
            phi_log.log_webhook_payload("partner", row.event_type, event_id, body)  # DEBUG, redacted
            send, refused = self._prepare(
                row.webhook_url, secrets[encrypted], event_id, body, order_key(row.payload)
            )
            ready.append(_Ready(row.seq, token, event_id, row.event_type, when, redelivery, send, refused))
        table = Event.__table__
        if release:
            session.execute(
                update(table)
                .where(table.c.seq == bindparam("b_seq"), table.c.claimed_by == bindparam("b_token"))
                .values(claimed_by=None, claimed_until=None),
                release,
            )
        if bodies:
            session.execute(update(table).where(table.c.seq == bindparam("b_seq")), bodies)
        return ready

    def _prepare(
        self, url: str | None, secret: str, event_id: str, body: bytes, key: str | None
    ) -> tuple[Send, AttemptResult | None]:
        if url:
            try:
                check_webhook_url(url, self.environment)
            except UnsafeWebhookUrl as exc:
                return Send(url, body, {}, key), AttemptResult(
                    "connection_error", None, None, f"refused: {exc}"[:500]
                )
        if faults.active("bad_signature"):
            secret = "whsec_" + "wrong" * 8
        return Send(url, body, signing.sign_headers(secret, event_id, body), key), None

    def _record(self, ready: list[_Ready], results: list[AttemptResult]) -> list[Delivered]:
        """Every attempt of the batch and its event's new state, in one transaction."""
        attempts: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        made: list[Delivered] = []
        with self.db.session() as session:
            stmt = (
                select(
                    Event.seq,
                    Event.delivery_status,
                    Event.attempt_count,
                    Event.auto_attempt_count,
                    Event.first_attempt_at,
                    Event.next_attempt_at,
                    Event.delivered_at,
                    Event.has_failed,
                    Event.redelivery_requested_at,
                    Event.claimed_by,
                    Event.claimed_until,
                )
                .where(Event.seq.in_([r.seq for r in ready]))
                .order_by(Event.seq)
            )
            if self.db.backend == "postgresql":
                stmt = stmt.with_for_update()
            now = {row.seq: row for row in session.execute(stmt)}
            for item, result in zip(ready, results, strict=True):
                row = now.get(item.seq)
                if row is None:  # the partner (and its events) deleted meanwhile
                    continue
                before = Progress(
                    row.delivery_status,
                    row.attempt_count,
                    row.auto_attempt_count or 0,
                    row.first_attempt_at,
                    row.next_attempt_at,
                    row.delivered_at,
                )
                after = settle(before, result.ok, item.at, redelivery=item.redelivery)
                ours = row.claimed_by == item.token
                attempts.append(
                    {
                        "event_seq": item.seq,
                        "attempt_no": after.attempt_count,
                        "attempted_at": item.at,
                        "status_code": result.status_code,
                        "latency_ms": result.latency_ms,
                        "error": result.error,
                        "url": item.send.url,
                        "outcome": result.outcome,
                        "redelivery": item.redelivery,
                    }
                )
                changes.append(
                    {
                        "b_seq": item.seq,
                        "delivery_status": after.status,
                        "attempt_count": after.attempt_count,
                        "auto_attempt_count": after.auto_attempt_count,
                        "first_attempt_at": after.first_attempt_at,
                        "next_attempt_at": after.next_attempt_at,
                        "delivered_at": after.delivered_at,
                        "last_attempt_at": after.last_attempt_at,
                        "has_failed": bool(row.has_failed) or not result.ok,
                        "redelivery_requested_at": None if item.redelivery else row.redelivery_requested_at,
                        "claimed_by": None if ours else row.claimed_by,
                        "claimed_until": None if ours else row.claimed_until,
                    }
                )
                made.append(
                    Delivered(
                        item.event_id, item.event_type, after.attempt_count, item.at, item.redelivery, result
                    )
                )
            record_batch(session, EventAttempt, Event.__table__, attempts, changes)
        for d in made:
            log.info(
                "webhook %s %s attempt %d: %s %s %sms",
                d.event_type,
                d.event_id,
                d.attempt_number,
                d.result.outcome,
                d.result.status_code,
                d.result.latency_ms,
            )
        return made
