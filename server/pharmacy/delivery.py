"""Pharmacy webhook delivery: the partner dispatcher's pattern on the pharmacy outbox.

The partner outbox (server.webhooks.dispatcher) delivers one event to one partner URL and keys its
schedule to the partner's sandbox clock; pharmacy events fan out to every webhook of a clinic, so they
have their own outbox rows (``pharmacy_deliveries``, one per event and webhook) and this small
dispatcher. It reuses the partner code where it is shape-independent: the retry schedule
(``RETRY_OFFSETS_SECONDS``/``next_retry_at``, D-029), the HTTP attempt (``post``: 2xx within 10 s, no
redirects), the signature recipe and the URL safety check. Claims are the same compare-and-set lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL); after the sixth failed attempt a delivery is dead-lettered.

Headers of every attempt (PH-004, PH-005): ``X-API-Key`` (the clinic's key, as seed 001 says),
``X-Pharmacy-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed with the clinic's whsec_ secret>``
and ``X-Pharmacy-Event-Id`` (stable across retries).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update

from server import clock, phi_log
from server.crypto import SecretBox
from server.db.engine import Database
from server.db.models_pharmacy import Clinic, PharmacyDelivery, PharmacyDeliveryAttempt
from server.webhooks import signing
from server.webhooks.dispatcher import TIMEOUT_SECONDS, AttemptResult, next_retry_at, post
from server.webhooks.url_safety import UnsafeWebhookUrl, check_webhook_url

log = logging.getLogger("stealth.pharmacy.webhooks")

ACTIVE_STATES = ("pending", "pending_retry")
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
        self.client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

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
        made = []
        for seq, token in self.claim(at, limit, clinic_id):
            done = self.deliver(seq, token, at)
            if done is not None:
                made.append(done)
        return made

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

    def deliver(self, seq: int, token: str, at: datetime) -> PharmacyAttempt | None:
        with self.db.session() as session:
            delivery = session.get(PharmacyDelivery, seq)
            if delivery is None or delivery.claimed_by != token:
                return None
            clinic = session.get(Clinic, delivery.clinic_id)
            if clinic is None:
                return None
            url, body, event_id, name = (
                delivery.url,
                delivery.body.encode(),
                delivery.event_id,
                delivery.event_name,
            )
            api_key = self.box.decrypt(clinic.api_key_encrypted)
            secret = self.box.decrypt(clinic.signing_secret_encrypted)
        phi_log.log_webhook_payload("pharmacy", name, event_id, body)  # DEBUG, x-phi redacted
        try:
            check_webhook_url(url, self.environment)
            result = post(self.client, url, body, delivery_headers(api_key, secret, event_id, body))
        except UnsafeWebhookUrl as exc:
            result = AttemptResult("connection_error", None, None, f"refused: {exc}"[:500])
        with self.db.session() as session:
            delivery = session.get(PharmacyDelivery, seq, with_for_update=self.db.backend == "postgresql")
            assert delivery is not None
            number = delivery.attempt_count + 1
            session.add(
                PharmacyDeliveryAttempt(
                    delivery_seq=seq,
                    attempt_no=number,
                    attempted_at=at,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    outcome=result.outcome,
                    error=result.error,
                )
            )
            delivery.attempt_count = number
            delivery.last_attempt_at = at
            if delivery.first_attempt_at is None:
                delivery.first_attempt_at = at
            if delivery.delivery_status == "cancelled":  # webhook deleted while in flight
                pass
            elif result.ok:
                delivery.delivery_status = "delivered"
                delivery.delivered_at = at
                delivery.next_attempt_at = None
            else:
                nxt = next_retry_at(delivery.first_attempt_at, number)
                delivery.next_attempt_at = nxt
                delivery.delivery_status = "pending_retry" if nxt is not None else "dead_lettered"
            delivery.claimed_by = None
            delivery.claimed_until = None
            status = delivery.delivery_status
        log.info(
            "pharmacy webhook %s %s attempt %d: %s %s",
            name,
            event_id,
            number,
            result.outcome,
            result.status_code,
        )
        return PharmacyAttempt(seq, event_id, name, url, number, status, result)
