"""The outbox dispatcher: claims due deliveries, posts them signed, records every attempt.

Claims: a due event is claimed by a compare-and-set UPDATE that stamps ``claimed_by`` (a token unique
to one claim) and ``claimed_until`` (a lease, real time). On PostgreSQL the candidates are selected
``FOR UPDATE SKIP LOCKED`` so workers skip each other's rows instead of waiting; on SQLite one
in-process dispatcher runs (the compare-and-set still keeps the API's clock stepping and the
background thread apart). Before each send the claim is renewed with the same compare-and-set, so a
worker whose lease expired (killed, or stalled) never sends: another worker has the event by then.
A killed worker loses nothing: its claims simply expire.

Schedule (D-029): attempt 1 when the event is created, attempts 2-6 at 30 s, 5 min, 30 min, 2 h and
12 h after the first attempt, on the partner's sandbox clock; dead letter after the 6th failure.
A requested redelivery is one extra attempt that does not count towards the six (R-011).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from server import clock, faults, ids, phi_log
from server.crypto import SecretBox
from server.db.engine import Database
from server.db.models import Event, EventAttempt, Partner
from server.webhooks import signing
from server.webhooks.url_safety import UnsafeWebhookUrl, check_webhook_url

log = logging.getLogger("stealth.webhooks")

RETRY_OFFSETS_SECONDS: tuple[int, ...] = (30, 300, 1800, 7200, 43200)
MAX_AUTOMATIC_ATTEMPTS = 1 + len(RETRY_OFFSETS_SECONDS)
TIMEOUT_SECONDS = 10.0
ACTIVE_STATES = ("pending", "pending_retry")


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # succeeded | http_error | timeout | connection_error | no_endpoint
    status_code: int | None
    latency_ms: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"


@dataclass(frozen=True)
class Delivered:
    """One attempt made (returned for logging and tests)."""

    event_id: str
    event_type: str
    attempt_number: int
    attempted_at: datetime
    redelivery: bool
    result: AttemptResult


def next_retry_at(first_attempt_at: datetime, automatic_attempts_made: int) -> datetime | None:
    """When automatic attempt ``automatic_attempts_made + 1`` is due (None after the sixth)."""
    if automatic_attempts_made >= MAX_AUTOMATIC_ATTEMPTS:
        return None
    if automatic_attempts_made == 1 and faults.active("retry_too_early"):
        return first_attempt_at + timedelta(seconds=10)
    return first_attempt_at + timedelta(seconds=RETRY_OFFSETS_SECONDS[automatic_attempts_made - 1])


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
    started = time.perf_counter()
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException:
        ms = int((time.perf_counter() - started) * 1000)
        return AttemptResult("timeout", None, ms, f"no answer within {TIMEOUT_SECONDS:g} seconds")
    except httpx.HTTPError as exc:
        ms = int((time.perf_counter() - started) * 1000)
        return AttemptResult("connection_error", None, ms, f"{type(exc).__name__}: {exc}"[:500])
    ms = int((time.perf_counter() - started) * 1000)
    if 200 <= response.status_code < 300:
        return AttemptResult("succeeded", response.status_code, ms, None)
    return AttemptResult("http_error", response.status_code, ms, f"endpoint answered {response.status_code}")


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
        self.client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

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

    def _partners_with_work(self, session: Session) -> list[tuple[str, float]]:
        active = (
            select(Event.partner_id)
            .where(or_(Event.delivery_status.in_(ACTIVE_STATES), Event.redelivery_requested_at.is_not(None)))
            .distinct()
        )
        rows = session.execute(
            select(Partner.id, Partner.clock_offset_seconds).where(Partner.id.in_(active))
        ).all()
        return [(pid, float(offset or 0.0)) for pid, offset in rows]

    def claim(self, limit: int = 20, partner_id: str | None = None) -> list[tuple[int, str]]:
        """Claim up to ``limit`` due deliveries: [(event seq, claim token)], oldest first."""
        claimed: list[tuple[int, str]] = []
        with self.db.session() as session:
            partners = self._partners_with_work(session)
        for pid, offset in partners:
            if partner_id is not None and pid != partner_id:
                continue
            if len(claimed) >= limit:
                break
            real = clock.real_now()
            partner_now = real + timedelta(seconds=offset)
            token = self._token()
            with self.db.session() as session:
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
                    select(Event.seq)
                    .where(Event.seq.in_(seqs), Event.claimed_by == token)
                    .order_by(Event.seq)
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
        """Claim and deliver what is due now; returns the attempts made."""
        made: list[Delivered] = []
        for seq, token in self.claim(limit, partner_id):
            done = self.deliver(seq, token)
            if done is not None:
                made.append(done)
        return made

    def deliver(self, seq: int, token: str, at: datetime | None = None) -> Delivered | None:
        """Make one attempt of a claimed event; ``at`` is the sandbox time to record (clock stepping)."""
        real = clock.real_now()
        with self.db.session() as session:
            renewed = session.execute(
                update(Event)
                .where(Event.seq == seq, Event.claimed_by == token)
                .values(claimed_until=real + self.lease)
                .execution_options(synchronize_session=False)
            )
            if renewed.rowcount != 1:  # type: ignore[attr-defined]
                return None  # our lease ran out and someone else has it now
            event = session.get(Event, seq)
            partner = session.get(Partner, event.partner_id) if event else None
            if event is None or partner is None:
                return None
            partner_now = clock.partner_now(partner.clock_offset_seconds or 0.0)
            redelivery = event.redelivery_requested_at is not None
            due = event.delivery_status in ACTIVE_STATES and (
                event.next_attempt_at is not None and event.next_attempt_at <= (at or partner_now)
            )
            if not redelivery and not due:
                session.execute(
                    update(Event)
                    .where(Event.seq == seq, Event.claimed_by == token)
                    .values(claimed_by=None, claimed_until=None)
                    .execution_options(synchronize_session=False)
                )
                return None
            if event.body is None:
                event.body = signing.serialize(event.payload).decode("utf-8")
            body = event.body.encode("utf-8")
            url = partner.webhook_url
            secret = self.box.decrypt(partner.webhook_secret_encrypted)
            event_id, event_type = event.id, event.event_type
            if event.attempt_count and faults.active("event_id_per_attempt"):
                event_id = ids.event_id()
                body = signing.serialize({**event.payload, "event_id": event_id})
        attempted_at = at or partner_now
        phi_log.log_webhook_payload("partner", event_type, event_id, body)  # DEBUG, x-phi redacted
        result = self._send(url, secret, event_id, body)
        return self._record(seq, token, attempted_at, url, redelivery, result, event_id, event_type)

    def _send(self, url: str | None, secret: str, event_id: str, body: bytes) -> AttemptResult:
        if not url:
            return AttemptResult("no_endpoint", None, None, "no webhook URL is configured")
        try:
            check_webhook_url(url, self.environment)
        except UnsafeWebhookUrl as exc:
            return AttemptResult("connection_error", None, None, f"refused: {exc}"[:500])
        if faults.active("bad_signature"):
            secret = "whsec_" + "wrong" * 8
        return post(self.client, url, body, signing.sign_headers(secret, event_id, body))

    def _record(
        self,
        seq: int,
        token: str,
        at: datetime,
        url: str | None,
        redelivery: bool,
        result: AttemptResult,
        event_id: str,
        event_type: str,
    ) -> Delivered:
        with self.db.session() as session:
            event = session.get(Event, seq, with_for_update=self.db.backend == "postgresql")
            assert event is not None
            number = event.attempt_count + 1
            session.add(
                EventAttempt(
                    event_seq=seq,
                    attempt_no=number,
                    attempted_at=at,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    url=url,
                    outcome=result.outcome,
                    redelivery=redelivery,
                )
            )
            event.attempt_count = number
            event.last_attempt_at = at
            if not redelivery:
                event.auto_attempt_count = (event.auto_attempt_count or 0) + 1
                if event.first_attempt_at is None:
                    event.first_attempt_at = at
            else:
                event.redelivery_requested_at = None
            if result.ok:
                event.delivery_status = "delivered"
                event.delivered_at = event.delivered_at or at
                event.next_attempt_at = None
            else:
                event.has_failed = True
                if redelivery:
                    scheduled = event.next_attempt_at is not None and 0 < event.auto_attempt_count < (
                        MAX_AUTOMATIC_ATTEMPTS
                    )
                    event.delivery_status = "pending_retry" if scheduled else "dead_lettered"
                    if not scheduled:
                        event.next_attempt_at = None
                else:
                    assert event.first_attempt_at is not None
                    nxt = next_retry_at(event.first_attempt_at, event.auto_attempt_count)
                    event.next_attempt_at = nxt
                    event.delivery_status = "pending_retry" if nxt is not None else "dead_lettered"
            if event.claimed_by == token:
                event.claimed_by = None
                event.claimed_until = None
        log.info(
            "webhook %s %s attempt %d: %s %s %sms",
            event_type,
            event_id,
            number,
            result.outcome,
            result.status_code,
            result.latency_ms,
        )
        return Delivered(event_id, event_type, number, at, redelivery, result)
