"""The referral tier: create (idempotent on partner_reference), read, list, summarize, track, cancel, expire."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import clock, faults, ids
from server.auth import AuthenticatedPartner
from server.crypto import sha256_hex
from server.cursor import CursorCodec, filter_digest
from server.db.models import Fulfillment, Payment, Referral, ReferralStatusHistory, TrackingToken
from server.errors import ApiError, not_found
from server.idempotency import duplicate_reference, fingerprint
from server.repositories import partners as partners_repo
from server.repositories import referral_reads
from server.repositories import referrals as referrals_repo
from server.repositories.referrals import ListFilters
from server.services.transitions import (
    ConcurrentChange,
    close_payment,
    set_committed,
    transition_referral,
)
from server.state import AppState

ENROLLMENT_TTL = timedelta(days=7)
TRACKING_LINK_TTL = timedelta(hours=24)
CANCELLABLE = ("created", "enrolled", "pending_review")
TRACKABLE = ("shipped", "in_transit", "out_for_delivery", "delivered", "delivery_exception")
SUMMARY_STATUSES = (
    "created",
    "enrolled",
    "pending_review",
    "approved",
    "denied",
    "expired",
    "cancelled",
    "shipped",
    "delivered",
)
CATEGORY_STATUSES = (
    "created",
    "enrolled",
    "pending_review",
    "approved",
    "denied",
    "expired",
    "shipped",
    "delivered",
    "cancelled",
)
SANDBOX_SCENARIO_KEY = "sandbox_scenario"
T = TypeVar("T")


def referral_not_found(referral_id: str) -> ApiError:
    code = "NOT_FOUND" if faults.active("wrong_error_code") else "REFERRAL_NOT_FOUND"
    return not_found(code, "Referral", "referral_id", referral_id)


@dataclass(frozen=True)
class CreateResult:
    referral: Referral
    replayed: bool


class ReferralService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.cursors = CursorCodec(state.box.subkey("cursor"))

    @property
    def base_url(self) -> str:
        return self.state.settings.base_url

    # ------------------------------------------------------------------ create

    def _check_scenario_known(self, body: dict[str, Any]) -> None:
        """Sandbox: the reserved metadata key must name a documented scenario (400 INVALID_BODY)."""
        metadata = body.get("metadata") or {}
        if SANDBOX_SCENARIO_KEY not in metadata or self.state.settings.environment != "sandbox":
            return
        op = self.state.spec.operations.get("createReferral")
        scenarios = (op.raw.get("x-sandbox-scenarios") if op else None) or []
        allowed = {
            str(s.get("value")) for s in scenarios if str(s.get("field", "")).endswith(SANDBOX_SCENARIO_KEY)
        }
        if allowed and metadata[SANDBOX_SCENARIO_KEY] not in allowed:
            raise ApiError(
                "INVALID_BODY",
                "metadata.sandbox_scenario does not name a documented sandbox scenario.",
                {
                    "errors": [
                        {"path": "/metadata/sandbox_scenario", "message": f"must be one of {sorted(allowed)}"}
                    ]
                },
            )

    def _check_scenario_allowed(self, body: dict[str, Any]) -> None:
        if (
            SANDBOX_SCENARIO_KEY in (body.get("metadata") or {})
            and self.state.settings.environment != "sandbox"
        ):
            raise ApiError(
                "SANDBOX_SCENARIO_NOT_ALLOWED",
                "metadata.sandbox_scenario is a sandbox test value and is refused in production.",
                {"field": "/metadata/sandbox_scenario"},
            )

    def create(self, partner: AuthenticatedPartner, body: dict[str, Any]) -> CreateResult:
        """Checks run in the operation's x-validation-order: INVALID_BODY, DUPLICATE_REFERENCE,
        SANDBOX_SCENARIO_NOT_ALLOWED, INVALID_PRODUCT_CATEGORY."""
        self._check_scenario_known(body)
        digest = fingerprint(body)
        reference = body["partner_reference"]
        with self.state.db.session() as session:
            existing = referrals_repo.by_reference(session, partner.id, reference)
            if existing is not None:
                return self._replay(existing, digest)
            self._check_scenario_allowed(body)
            product = partners_repo.product(session, partner.id, body["product_category"])
            if product is None:
                raise ApiError(
                    "INVALID_PRODUCT_CATEGORY",
                    f"Product category {body['product_category']} is not available to this partner.",
                    {"product_category": body["product_category"]},
                )
        now = clock.partner_now(partner.clock_offset_seconds)
        try:
            with self.state.db.session() as session:
                referral = Referral(
                    id=ids.referral_id(),
                    partner_id=partner.id,
                    partner_reference=reference,
                    product_category=body["product_category"],
                    status=self.state.lifecycles.referral.initial,
                    metadata_=dict(body.get("metadata") or {}),
                    request_fingerprint=digest,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + ENROLLMENT_TTL,
                )
                session.add(referral)
                session.flush()
                session.add(ReferralStatusHistory.entry(referral, referral.status, now))
                session.add(
                    Payment(
                        referral_id=referral.id,
                        partner_id=partner.id,
                        status=self.state.lifecycles.payment.initial,
                        amount_cents=None,
                        currency=product.currency,
                    )
                )
                session.add(Fulfillment(referral_id=referral.id))
            return CreateResult(referral, replayed=False)
        except IntegrityError:
            # A concurrent create with the same partner_reference won the unique constraint.
            with self.state.db.session() as session:
                existing = referrals_repo.by_reference(session, partner.id, reference)
                if existing is None:
                    raise
                return self._replay(existing, digest)

    @staticmethod
    def _replay(existing: Referral, digest: str) -> CreateResult:
        if existing.request_fingerprint != digest or faults.active("no_idempotency"):
            raise duplicate_reference(existing.partner_reference, "referral", "referral_id", existing.id)
        return CreateResult(existing, replayed=True)

    # ------------------------------------------------------------------ expiry

    def expire_due(self, partner: AuthenticatedPartner, referral_id: str) -> int:
        """Expire the referral if it is still `created` past expires_at on the partner's clock."""
        return self._expire(partner, [referral_id], clock.partner_now(partner.clock_offset_seconds))

    def _sweep(self, partner: AuthenticatedPartner, now: datetime) -> None:
        """Expire the partner's referrals still `created` past expires_at at ``now`` (the sweep on access)."""
        with self.state.db.session() as session:
            due = referrals_repo.due_for_expiry(session, partner.id, now)
        self._expire(partner, due, now)

    def _read_swept(self, partner: AuthenticatedPartner, read: Callable[[Session], T]) -> T:
        """``read`` (reads only) after the sweep on access. The usual case, nothing due, is one connection
        checkout (the check, an index range on ix_referrals_partner_status_expires, and the read); otherwise
        the due referrals are expired first."""
        now = clock.partner_now(partner.clock_offset_seconds)
        with self.state.db.reading() as session:
            due = referrals_repo.due_for_expiry(session, partner.id, now)
            if not due:
                return read(session)
        self._expire(partner, due, now)
        with self.state.db.reading() as session:
            return read(session)

    def _expire(self, partner: AuthenticatedPartner, candidates: Sequence[str], now: datetime) -> int:
        count = 0
        for rid in candidates:
            try:
                with self.state.db.session() as session:
                    referral = referrals_repo.get(session, partner.id, rid)
                    if referral is None or referral.status != "created" or referral.expires_at > now:
                        continue
                    at = referral.expires_at
                    transition_referral(
                        session, self.state.lifecycles, referral, "expired", at, partner_tier=partner.tier
                    )
                    close_payment(session, self.state.lifecycles, referral, at, partner_tier=partner.tier)
                    count += 1
            except ConcurrentChange:
                continue
        return count

    # ------------------------------------------------------------------ reads

    def get(self, partner: AuthenticatedPartner, referral_id: str) -> Referral:
        for _ in range(2):
            with self.state.db.session() as session:
                referral = referrals_repo.get(session, partner.id, referral_id)
                if referral is None and faults.active("cross_partner_read"):
                    referral = referrals_repo.get_any(session, referral_id)
            if referral is None:
                raise referral_not_found(referral_id)
            if referral.status != "created" or referral.expires_at > clock.partner_now(
                partner.clock_offset_seconds
            ):
                return referral
            self.expire_due(partner, referral_id)  # due on the partner's clock: expire, then read again
        return referral

    def read(self, partner: AuthenticatedPartner, referral_id: str) -> referral_reads.ReferralView:
        """What GET /partner/referrals/{id} shows: as :meth:`get`, read with Core (no ORM objects)."""
        for _ in range(2):
            with self.state.db.reading() as session:
                view = referral_reads.read(session, partner.id, referral_id)
                if view is None and faults.active("cross_partner_read"):
                    view = referral_reads.read(session, None, referral_id)
            if view is None:
                raise referral_not_found(referral_id)
            if view.status != "created" or view.expires_at > clock.partner_now(partner.clock_offset_seconds):
                return view
            self.expire_due(partner, referral_id)  # due on the partner's clock: expire, then read again
        return view

    def list(
        self, partner: AuthenticatedPartner, filters: ListFilters, limit: int, cursor: str | None
    ) -> tuple[list[referral_reads.ReferralView], str | None]:
        digest = filter_digest("referrals:" + partner.id, filters.as_dict())
        now = clock.partner_now(partner.clock_offset_seconds)
        try:
            after = self.cursors.decode(cursor, digest) if cursor else None
        except ApiError:
            self._sweep(partner, now)  # every list call sweeps, one refused for its cursor too
            raise
        # The page's statement also says whether anything is due (the sweep must come first): if so, the
        # page is read again after it.
        with self.state.db.reading() as session:  # one statement: no transaction needed around it
            found = referral_reads.page(session, partner.id, filters, limit, after, due_at=now)
        if found.expiry_due:
            self._sweep(partner, now)
            with self.state.db.reading() as session:
                found = referral_reads.page(session, partner.id, filters, limit, after)
        rows = found.views
        has_more = len(rows) > limit
        rows = rows[:limit]
        last = (
            rows[-2] if faults.active("pagination_repeats") and len(rows) > 1 else rows[-1] if rows else None
        )
        next_cursor = self.cursors.encode(last.created_at, last.id, digest) if has_more and last else None
        return rows, next_cursor

    # ------------------------------------------------------------------ summary

    def summary(self, partner: AuthenticatedPartner, period: str, day: date | None) -> dict[str, Any]:
        """Counts of referrals that entered each status in the window, per category, and net revenue."""

        def read(session: Session) -> tuple[datetime | None, datetime, Any, Any, Any]:
            now = clock.partner_now(partner.clock_offset_seconds)
            start, end, until = period_window(period, day or now.date(), now)
            return (
                start,
                end,
                referrals_repo.status_counts(session, partner.id, start, until),
                referrals_repo.revenue(session, partner.id, start, until),
                partners_repo.products(session, partner.id),
            )

        start, end, counts, revenue, products = self._read_swept(partner, read)
        totals = dict.fromkeys(SUMMARY_STATUSES, 0)
        by_category: dict[str, dict[str, int]] = {}
        for status, cat, n in counts:
            if status in totals:
                totals[status] += n
            bucket = by_category.setdefault(cat, {"created": 0, "approved": 0, "denied": 0})
            if status in CATEGORY_STATUSES:
                bucket[status] = bucket.get(status, 0) + n
        currency = products[0].currency if products else "USD"
        total_cents = 0
        for cur, cents in revenue:
            currency = cur
            total_cents += cents
        return {
            "period": period,
            "start": clock.iso(start),
            "end": clock.iso(end),
            "totals": totals,
            "by_category": by_category,
            "revenue": {"total_cents": total_cents, "currency": currency},
        }

    # ------------------------------------------------------------------ tracking link

    def tracking_link(self, partner: AuthenticatedPartner, referral_id: str) -> dict[str, Any]:
        referral = self.get(partner, referral_id)
        fulfillment = referral.fulfillment
        if fulfillment is None or fulfillment.status not in TRACKABLE:
            raise ApiError(
                "TRACKING_NOT_AVAILABLE",
                f"Referral {referral_id} has no shipment to track yet.",
                {
                    "referral_id": referral_id,
                    "fulfillment_status": fulfillment.status if fulfillment else None,
                },
            )
        token = ids.tracking_token()
        now = clock.partner_now(partner.clock_offset_seconds)
        expires = now + TRACKING_LINK_TTL
        with self.state.db.session() as session:
            session.add(
                TrackingToken(
                    token_hash=sha256_hex(token),
                    referral_id=referral.id,
                    partner_id=partner.id,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return {
            "referral_id": referral.id,
            "tracking_url": f"{self.base_url}/track/{token}",
            "expires_at": clock.iso(expires),
        }

    # ------------------------------------------------------------------ cancel

    def cancel(
        self, partner: AuthenticatedPartner, referral_id: str, reason: str | None
    ) -> tuple[Referral, bool]:
        """Cancel before approval; repeating it on a cancelled referral replays the first answer."""
        self.expire_due(partner, referral_id)
        for _attempt in range(3):
            try:
                with self.state.db.session() as session:
                    referral = referrals_repo.get(session, partner.id, referral_id)
                    if referral is None:
                        raise referral_not_found(referral_id)
                    if referral.status == "cancelled":
                        return referral, True
                    if referral.status == "expired":
                        raise ApiError(
                            "REFERRAL_EXPIRED",
                            f"Referral {referral_id} expired before enrollment was completed.",
                            {"referral_id": referral_id, "current_status": referral.status},
                        )
                    if faults.active("cancel_after_approval") and referral.status == "approved":
                        now = clock.partner_now(partner.clock_offset_seconds)
                        return self._cancel_anyway(session, referral, now), False
                    if referral.status not in CANCELLABLE or not self.state.lifecycles.referral.is_legal(
                        referral.status, "cancelled"
                    ):
                        raise ApiError(
                            "REFERRAL_NOT_CANCELLABLE",
                            f"Referral {referral_id} cannot be cancelled because it is {referral.status}.",
                            {"referral_id": referral_id, "current_status": referral.status},
                        )
                    now = clock.partner_now(partner.clock_offset_seconds)
                    transition_referral(
                        session,
                        self.state.lifecycles,
                        referral,
                        "cancelled",
                        now,
                        partner_tier=partner.tier,
                        values={"cancelled_at": now, "cancelled_by": "partner", "cancel_reason": reason},
                    )
                    close_payment(session, self.state.lifecycles, referral, now, partner_tier=partner.tier)
                    return referral, False
            except ConcurrentChange:
                continue
        raise ApiError(
            "SERVICE_UNAVAILABLE",
            "The referral is changing concurrently; retry shortly.",
            headers={"Retry-After": "1"},
        )

    @staticmethod
    def _cancel_anyway(session: Any, referral: Referral, now: datetime) -> Referral:
        """The cancel_after_approval test fault: the status is overwritten, bypassing the lifecycle."""
        values = {"status": "cancelled", "cancelled_at": now, "cancelled_by": "partner", "updated_at": now}
        referrals_repo.compare_and_set_status(session, referral.id, referral.status, values)
        session.add(ReferralStatusHistory.entry(referral, "cancelled", now))
        for key, value in values.items():
            set_committed(referral, key, value)
        return referral


def period_window(period: str, day: date, now: datetime) -> tuple[datetime | None, datetime, datetime]:
    """UTC calendar window containing ``day``: (start, last second shown as ``end``, exclusive query bound).

    ``all_time`` has no start and ends now.
    """
    if period == "all_time":
        return None, now.astimezone(UTC).replace(microsecond=0), now + timedelta(microseconds=1)
    if period == "day":
        first = day
        last = day
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
    else:  # month
        first = day.replace(day=1)
        next_month = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        last = next_month - timedelta(days=1)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(last, time(23, 59, 59), tzinfo=UTC)
    return start, end, end + timedelta(seconds=1)
