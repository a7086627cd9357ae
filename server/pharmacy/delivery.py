"""Pharmacy webhook delivery: the partner dispatcher's pattern on the pharmacy outbox.

The partner outbox (server.webhooks.dispatcher) delivers one event to one partner URL and keys its
schedule to the partner's sandbox clock; pharmacy events fan out to every webhook of a clinic, so they
have their own outbox rows (``pharmacy_deliveries``, one per event and webhook) and this small
dispatcher. What an attempt is comes from server.webhooks.outbox, shared with the partner dispatcher:
concurrent sends of a claimed batch (2xx within 10 s, no redirects), and the bookkeeping of an attempt
(``settle``: attempt number, the D-029 schedule, dead letter after the sixth failure). Claims are the
same compare-and-set lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a batch is loaded in one
transaction and its attempts are recorded in one.

Headers of every attempt (PH-004, PH-005): ``X-API-Key`` (the clinic's key, as seed 001 says),
``X-Pharmacy-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed with the clinic's whsec_ secret>``
and ``X-Pharmacy-Event-Id`` (stable across retries).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from server import clock, phi_log
from server.crypto import SecretBox
from server.db.engine import Database
from server.db.models_pharmacy import Clinic, PharmacyDelivery, PharmacyDeliveryAttempt
from server.webhooks import signing
from server.webhooks.outbox import (
    ACTIVE_STATES,
    TIMEOUT_SECONDS,
    AttemptResult,
    Progress,
    Send,
    Sender,
    record_batch,
    renew_claims,
    settle,
)
from server.webhooks.url_safety import UnsafeWebhookUrl, check_webhook_url

log = logging.getLogger("stealth.pharmacy.webhooks")

USER_AGENT = "StealthHealth-Pharmacy-Webhooks/1.0"


def delivery_headers(api_key: str, secret: str, event_id: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-API-Key": api_key,
        "X-Pharmacy-Signature": signing.stealth_signature(secret, body),
        "X-Pharmacy-Event-Id": event_id,
    }


@dataclass(frozen=True)
class PharmacyAttempt:
    seq: int
    event_id: str
    event_name: str
    url: str
    attempt_number: int
    status: str
    result: AttemptResult


class PharmacyDispatcher:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        environment: str,
        *,
        lease_seconds: float = 30.0,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.box = box
        self.environment = environment
        self.lease = timedelta(seconds=lease_seconds)
        self.name = f"pharmacy-{uuid.uuid4().hex[:8]}"
        self.sender = Sender(timeout_seconds, checked_resolver=environment == "production")

    def close(self) -> None:
        self.sender.close()

    def claim(self, now: datetime, limit: int = 20, clinic_id: str | None = None) -> list[tuple[int, str]]:
        real = clock.real_now()
        token = f"{self.name}:{uuid.uuid4().hex[:12]}"[:64]
        unclaimed = or_(PharmacyDelivery.claimed_until.is_(None), PharmacyDelivery.claimed_until < real)
        with self.db.session() as session:
            stmt = (
                select(PharmacyDelivery.seq)
                .where(
                    PharmacyDelivery.delivery_status.in_(ACTIVE_STATES),
                    PharmacyDelivery.next_attempt_at <= now,
                    unclaimed,
                )
                .order_by(PharmacyDelivery.seq)
                .limit(limit)
            )
            if clinic_id is not None:
                stmt = stmt.where(PharmacyDelivery.clinic_id == clinic_id)
            if self.db.backend == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            seqs = list(session.scalars(stmt))
            if not seqs:
                return []
            session.execute(
                update(PharmacyDelivery)
                .where(PharmacyDelivery.seq.in_(seqs), unclaimed)
                .values(claimed_by=token, claimed_until=real + self.lease)
                .execution_options(synchronize_session=False)
            )
            mine = session.scalars(
                select(PharmacyDelivery.seq)
                .where(PharmacyDelivery.seq.in_(seqs), PharmacyDelivery.claimed_by == token)
                .order_by(PharmacyDelivery.seq)
            ).all()
        return [(seq, token) for seq in mine]

    def run_once(
        self, now: datetime | None = None, limit: int = 20, clinic_id: str | None = None
    ) -> list[PharmacyAttempt]:
        """Deliver what is due at ``now`` (real time by default; tests pass a later time for retries)."""
        at = clock.to_millis(now) if now is not None else clock.real_now()
        claimed = self.claim(at, limit, clinic_id)
        if not claimed:
            return []
        ready = self._load(dict(claimed))
        to_send = [r for r in ready if r[2] is None]
        sent = iter(
            self.sender.send_all(
                [r[1] for r in to_send],
                heartbeat=lambda: renew_claims(
                    self.db, PharmacyDelivery.__table__, [(r[0], claimed[0][1]) for r in to_send], self.lease
                ),
                every=self.lease.total_seconds() / 3,
            )
        )
        results = [refused if refused is not None else next(sent) for _seq, _send, refused, _t, _n in ready]
        return self._record(ready, results, at)

    def drain(
        self, now: datetime | None = None, clinic_id: str | None = None, rounds: int = 50
    ) -> list[PharmacyAttempt]:
        made: list[PharmacyAttempt] = []
        for _ in range(rounds):
            batch = self.run_once(now, clinic_id=clinic_id)
            if not batch:
                break
            made.extend(batch)
        return made

    def _load(self, tokens: dict[int, str]) -> list[tuple[int, Send, AttemptResult | None, str, str]]:
        """The claimed deliveries still ours: (seq, signed send, refusal, event id, event name)."""
        keys: dict[str, tuple[str, str]] = {}
        ready = []
        with self.db.session() as session:
            rows = session.execute(
                select(
                    PharmacyDelivery.seq,
                    PharmacyDelivery.claimed_by,
                    PharmacyDelivery.url,
                    PharmacyDelivery.body,
                    PharmacyDelivery.event_id,
                    PharmacyDelivery.event_name,
                    Clinic.id,
                    Clinic.api_key_encrypted,
                    Clinic.signing_secret_encrypted,
                )
                .join(Clinic, Clinic.id == PharmacyDelivery.clinic_id)
                .where(PharmacyDelivery.seq.in_(list(tokens)))
                .order_by(PharmacyDelivery.seq)
            ).all()
        for row in rows:
            if row.claimed_by != tokens[row.seq]:
                continue
            if row.id not in keys:
                keys[row.id] = (
                    self.box.decrypt(row.api_key_encrypted),
                    self.box.decrypt(row.signing_secret_encrypted),
                )
            api_key, secret = keys[row.id]
            body = row.body.encode()
            phi_log.log_webhook_payload("pharmacy", row.event_name, row.event_id, body)  # DEBUG, redacted
            refused = None
            try:
                check_webhook_url(row.url, self.environment)
            except UnsafeWebhookUrl as exc:
                refused = AttemptResult("connection_error", None, None, f"refused: {exc}"[:500])
            # one endpoint's deliveries go one after the other, in the order the events happened
            send = Send(row.url, body, delivery_headers(api_key, secret, row.event_id, body), row.url)
            ready.append((row.seq, send, refused, row.event_id, row.event_name))
        return ready

    def _record(
        self,
        ready: list[tuple[int, Send, AttemptResult | None, str, str]],
        results: list[AttemptResult],
        at: datetime,
    ) -> list[PharmacyAttempt]:
        attempts: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        made: list[PharmacyAttempt] = []
        with self.db.session() as session:
            stmt = (
                select(
                    PharmacyDelivery.seq,
                    PharmacyDelivery.delivery_status,
                    PharmacyDelivery.attempt_count,
                    PharmacyDelivery.first_attempt_at,
                    PharmacyDelivery.next_attempt_at,
                    PharmacyDelivery.delivered_at,
                )
                .where(PharmacyDelivery.seq.in_([r[0] for r in ready]))
                .order_by(PharmacyDelivery.seq)
            )
            if self.db.backend == "postgresql":
                stmt = stmt.with_for_update()
            now = {row.seq: row for row in session.execute(stmt)}
            for (seq, send, _refused, event_id, name), result in zip(ready, results, strict=True):
                row = now.get(seq)
                if row is None:
                    continue
                before = Progress(
                    row.delivery_status,
                    row.attempt_count,
                    row.attempt_count,  # every pharmacy attempt is an automatic one
                    row.first_attempt_at,
                    row.next_attempt_at,
                    row.delivered_at,
                )
                after = settle(before, result.ok, at)
                attempts.append(
                    {
                        "delivery_seq": seq,
                        "attempt_no": after.attempt_count,
                        "attempted_at": at,
                        "status_code": result.status_code,
                        "latency_ms": result.latency_ms,
                        "outcome": result.outcome,
                        "error": result.error,
                    }
                )
                changes.append(
                    {
                        "b_seq": seq,
                        "delivery_status": after.status,
                        "attempt_count": after.attempt_count,
                        "first_attempt_at": after.first_attempt_at,
                        "next_attempt_at": after.next_attempt_at,
                        "delivered_at": after.delivered_at,
                        "last_attempt_at": at,
                        "claimed_by": None,
                        "claimed_until": None,
                    }
                )
                assert send.url is not None
                made.append(
                    PharmacyAttempt(seq, event_id, name, send.url, after.attempt_count, after.status, result)
                )
            record_batch(session, PharmacyDeliveryAttempt, PharmacyDelivery.__table__, attempts, changes)
        for a in made:
            log.info(
                "pharmacy webhook %s %s attempt %d: %s %s",
                a.event_name,
                a.event_id,
                a.attempt_number,
                a.result.outcome,
                a.result.status_code,
            )
        return made
