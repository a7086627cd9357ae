"""Sandbox simulation (D-030, R-007, R-014): scenario paths, auto-advance, moving a referral to a
target status, and triggering a named event.

Every change goes through the transition service (server.services.transitions), so each one is
checked against the spec's ``x-lifecycle`` and written with its outbox event in one transaction.
Plans are computed first and checked against the lifecycles, then executed; a target that cannot be
reached changes nothing (409 INVALID_TRANSITION).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from server import clock
from server.auth import AuthenticatedPartner
from server.db.models import Event, Partner, Product, Referral, SandboxReferralProgress
from server.errors import ApiError
from server.lifecycle import IllegalTransition, Lifecycles
from server.repositories import partners as partners_repo
from server.repositories import referrals as referrals_repo
from server.services.referrals import ReferralService, referral_not_found
from server.services.transitions import ConcurrentChange, transition_payment, transition_referral
from server.state import AppState

MAIN_LINE = (
    "created",
    "enrolled",
    "pending_review",
    "approved",
    "awaiting_shipment",
    "shipped",
    "in_transit",
    "out_for_delivery",
    "delivered",
)
TERMINAL = ("delivered", "denied", "cancelled", "expired")
CANCELLABLE = ("created", "enrolled", "pending_review")
IN_SHIPMENT = ("shipped", "in_transit", "out_for_delivery")
DEFAULT_CARRIER = "USPS"
STEP_SPACING = timedelta(seconds=1)

# event types by the tiers that receive them (WebhookEventType)
CLINICAL_ONLY_EVENTS = frozenset(
    {
        "patient.created",
        "patient.updated",
        "appointment.intake_completed",
        "transaction.succeeded",
        "transaction.refunded",
        "prescription.received",
        "prescription.rejected",
    }
)
PRESCRIBER_ONLY_EVENTS = frozenset(
    {
        "appointment.submitted",
        "appointment.in_review",
        "appointment.denied",
        "prescription.routed",
        "prescription.filled",
        "review.billed",
    }
)
CLINICAL_AND_PRESCRIBER_EVENTS = frozenset({"appointment.prescription_signed"})
TRIGGER_TARGETS = {
    "referral.enrolled": "enrolled",
    "referral.pending_review": "pending_review",
    "referral.approved": "approved",
    "referral.awaiting_shipment": "awaiting_shipment",
    "referral.shipped": "shipped",
    "referral.in_transit": "in_transit",
    "referral.out_for_delivery": "out_for_delivery",
    "referral.delivered": "delivered",
    "referral.payment_due": "awaiting_shipment",
    "referral.payment_complete": "awaiting_shipment",
    "referral.denied": "denied",
    "referral.cancelled": "cancelled",
    "referral.expired": "expired",
    "referral.delivery_exception": "delivery_exception",
}


def event_types_for_tier(tier: str) -> frozenset[str] | None:
    """Event types a tier receives; None = every type (clinical and prescriber see referral.* too)."""
    if tier == "clinical":
        return None
    if tier == "prescriber":
        return None
    return frozenset(TRIGGER_TARGETS)


def tier_error(tier: str, event_type: str) -> ApiError | None:
    """403 for an event type the partner's tier does not receive (SandboxTriggerForbidden)."""
    clinical_ok = event_type not in PRESCRIBER_ONLY_EVENTS
    prescriber_ok = event_type not in CLINICAL_ONLY_EVENTS
    if event_type.startswith("referral."):
        return None
    if tier == "clinical" and clinical_ok:
        return None
    if tier == "prescriber" and prescriber_ok:
        return None
    if tier == "clinical" or (tier == "referral" and event_type in PRESCRIBER_ONLY_EVENTS):
        code, required = "PRESCRIBER_ACCESS_REQUIRED", "prescriber"
    else:
        code, required = "CLINICAL_ACCESS_REQUIRED", "clinical"
    return ApiError(
        code,
        f"Event type {event_type} is only sent to {required}-tier partners.",
        {"event_type": event_type, "required_tier": required},
    )


@dataclass(frozen=True)
class Step:
    """One planned transition: ``lifecycle`` referral or payment; ``attached`` steps run in the same tick."""

    lifecycle: str
    to: str
    values: dict[str, Any] = field(default_factory=dict)
    attached: bool = False


@dataclass(frozen=True)
class Made:
    """One transition made, with the event it emitted (SandboxReferralTransition)."""

    lifecycle: str
    from_state: str
    to_state: str
    event_type: str | None
    event_id: str | None
    occurred_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "lifecycle": self.lifecycle,
            "from": self.from_state,
            "to": self.to_state,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "occurred_at": clock.iso(self.occurred_at),
        }


@dataclass
class _Cursor:
    status: str
    payment: str
    steps: list[Step] = field(default_factory=list)


def scenario_of(referral: Referral) -> str:
    value = (referral.metadata_ or {}).get("sandbox_scenario")
    return str(value) if value else "approve"


def is_consult_only(referral: Referral, product: Product | None) -> bool:
    if scenario_of(referral) == "consult_only":
        return True
    return product is not None and not product.requires_payment_at_enrollment


class Planner:
    """Plans along the lifecycles; every plan is checked transition by transition before it runs."""

    def __init__(self, lifecycles: Lifecycles) -> None:
        self.lifecycles = lifecycles

    # ---------------------------------------------------------------- building blocks

    @staticmethod
    def _pay(cur: _Cursor) -> None:
        if cur.payment == "not_due":
            cur.steps += [Step("payment", "due"), Step("payment", "paid")]
        elif cur.payment in ("due", "failed"):
            cur.steps.append(Step("payment", "paid"))
        else:
            return
        cur.payment = "paid"

    @staticmethod
    def _close_payment(cur: _Cursor) -> None:
        if cur.payment in ("not_due", "due", "failed"):
            cur.steps.append(Step("payment", "not_applicable", attached=True))
            cur.payment = "not_applicable"
        elif cur.payment == "paid":
            cur.steps.append(Step("payment", "refunded", attached=True))
            cur.payment = "refunded"

    def _walk_main(self, cur: _Cursor, target: str, consult_only: bool) -> bool:
        if cur.status not in MAIN_LINE or target not in MAIN_LINE:
            return False
        i, j = MAIN_LINE.index(cur.status), MAIN_LINE.index(target)
        if i > j:
            return False
        for nxt in MAIN_LINE[i + 1 : j + 1]:
            if nxt == "pending_review" and not consult_only:
                self._pay(cur)
            if nxt == "awaiting_shipment" and consult_only:
                self._pay(cur)
            cur.steps.append(Step("referral", nxt))
            cur.status = nxt
        return True

    # ---------------------------------------------------------------- plans

    def plan(
        self,
        status: str,
        payment: str,
        target: str,
        *,
        consult_only: bool,
        denial_category: str = "not_a_candidate",
        cancelled_by: str = "partner",
        exception_type: str = "failed_attempt",
    ) -> list[Step] | None:
        """Steps from (status, payment) to ``target`` along the main line and its side branches, or None."""
        cur = _Cursor(status, payment)
        if status == target:
            return []
        if target in MAIN_LINE:
            if status == "delivery_exception" and target in ("in_transit", "out_for_delivery", "delivered"):
                cur.steps.append(Step("referral", target))
            elif not self._walk_main(cur, target, consult_only) or not cur.steps:
                return None
        elif target == "denied":
            if status not in CANCELLABLE or not self._walk_main(cur, "pending_review", consult_only):
                return None
            cur.steps.append(Step("referral", "denied", {"denial_category": denial_category}))
            self._close_payment(cur)
        elif target == "cancelled":
            if status not in CANCELLABLE:
                return None
            cur.steps.append(Step("referral", "cancelled", {"cancelled_by": cancelled_by}))
            self._close_payment(cur)
        elif target == "expired":
            if status != "created":
                return None
            cur.steps.append(Step("referral", "expired"))
            self._close_payment(cur)
        elif target == "delivery_exception":
            if status in MAIN_LINE and MAIN_LINE.index(status) < MAIN_LINE.index("shipped"):
                self._walk_main(cur, "in_transit", consult_only)
            elif status not in IN_SHIPMENT:
                return None
            cur.steps.append(Step("referral", "delivery_exception", {"exception_type": exception_type}))
        else:
            return None
        return cur.steps if self.legal(status, payment, cur.steps) else None

    def legal(self, status: str, payment: str, steps: list[Step]) -> bool:
        for step in steps:
            lc = self.lifecycles.referral if step.lifecycle == "referral" else self.lifecycles.payment
            current = status if step.lifecycle == "referral" else payment
            if not lc.is_legal(current, step.to):
                return False
            if step.lifecycle == "referral":
                status = step.to
            else:
                payment = step.to
        return True

    def events_of(self, status: str, payment: str, steps: list[Step]) -> list[str | None]:
        out: list[str | None] = []
        for step in steps:
            if step.lifecycle == "referral":
                out.append(self.lifecycles.referral.transition(status, step.to).event)
                status = step.to
            else:
                out.append(self.lifecycles.payment.transition(payment, step.to).event)
                payment = step.to
        return out

    def scenario_tick(self, referral: Referral, product: Product | None) -> list[Step]:
        """The next auto-advance tick of a referral along its scenario: one step (+ attached closers)."""
        status = referral.status
        payment = referral.payment.status if referral.payment else "not_applicable"
        consult = is_consult_only(referral, product)
        scenario = scenario_of(referral)
        steps: list[Step] | None
        if status in TERMINAL or scenario == "expire":
            return []
        if scenario.startswith("deny_"):
            steps = self.plan(status, payment, "denied", consult_only=consult, denial_category=scenario[5:])
        elif scenario == "cancel_by_patient":
            if status == "pending_review":
                steps = self.plan(status, payment, "cancelled", consult_only=consult, cancelled_by="patient")
            else:
                steps = self.plan(status, payment, "pending_review", consult_only=consult)
        elif scenario == "delivery_exception":
            had_exception = bool(referral.fulfillment and referral.fulfillment.exception_type)
            if status == "delivery_exception":
                steps = [Step("referral", "out_for_delivery")]
            elif status == "out_for_delivery" and not had_exception:
                steps = [Step("referral", "delivery_exception", {"exception_type": "failed_attempt"})]
            elif had_exception:
                steps = self.plan(status, payment, "delivered", consult_only=consult)
            else:
                steps = self.plan(status, payment, "out_for_delivery", consult_only=consult)
        elif scenario == "payment_failed":
            steps = self._payment_failed_tick(status, payment, consult)
        else:  # approve, consult_only
            steps = self.plan(status, payment, "delivered", consult_only=consult)
        if not steps:
            return []
        tick = [steps[0]] + [s for s in steps[1:2] if s.attached]
        return tick if self.legal(status, payment, tick) else []

    def _payment_failed_tick(self, status: str, payment: str, consult: bool) -> list[Step] | None:
        if payment in ("failed", "paid", "refunded", "not_applicable"):
            return None
        paying_point = "approved" if consult else "enrolled"
        if status == paying_point:
            return [Step("payment", "due")] if payment == "not_due" else [Step("payment", "failed")]
        return self.plan(status, payment, paying_point, consult_only=consult)


class Simulation:
    """Runs plans on stored referrals, auto-advance ticks and expiry jobs."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.planner = Planner(state.lifecycles)
        self.referrals = ReferralService(state)

    @property
    def interval(self) -> int:
        return int(self.state.settings.auto_advance_seconds)

    # ---------------------------------------------------------------- executing

    def _load(self, session: Session, partner_id: str, referral_id: str) -> tuple[Referral, Product | None]:
        referral = referrals_repo.get(session, partner_id, referral_id)
        if referral is None:
            raise referral_not_found(referral_id)
        product = partners_repo.product(session, partner_id, referral.product_category)
        return referral, product

    def _apply(
        self,
        session: Session,
        referral: Referral,
        product: Product | None,
        step: Step,
        at: datetime,
        tier: str,
    ) -> Made:
        lifecycles = self.state.lifecycles
        if step.lifecycle == "payment":
            payment = referral.payment
            before = payment.status if payment else "not_applicable"
            values: dict[str, Any] = {}
            if step.to == "due":
                values = {
                    "amount_cents": product.price_cents if product else 0,
                    "currency": product.currency if product else "USD",
                }
            elif step.to == "paid":
                values = {"paid_at": at}
            elif step.to == "refunded":
                values = {"refunded_at": at}
            event = transition_payment(
                session, lifecycles, referral, step.to, at, partner_tier=tier, values=values
            )
            return Made(
                "payment",
                before,
                step.to,
                event.event_type if event else None,
                event.id if event else None,
                at,
            )
        before = referral.status
        values = dict(step.values)
        fulfillment = referral.fulfillment
        if step.to == "shipped" and fulfillment is not None:
            fulfillment.carrier = fulfillment.carrier or DEFAULT_CARRIER
            fulfillment.estimated_delivery = (at + timedelta(days=3)).date()
        if step.to == "delivery_exception" and fulfillment is not None:
            fulfillment.exception_type = values.pop("exception_type", "failed_attempt")
        values.pop("exception_type", None)
        if step.to == "cancelled":
            values = {"cancelled_at": at, "cancelled_by": values.get("cancelled_by", "partner")}
        if step.to == "expired":
            values = {"expires_at": min(referral.expires_at, at)}
        event = transition_referral(
            session, lifecycles, referral, step.to, at, partner_tier=tier, values=values or None
        )
        return Made(
            "referral", before, step.to, event.event_type if event else None, event.id if event else None, at
        )

    def execute(
        self,
        partner_id: str,
        tier: str,
        referral_id: str,
        steps: list[Step],
        start: datetime,
        spacing: timedelta = STEP_SPACING,
    ) -> list[Made]:
        """Apply ``steps`` (non-attached ones ``spacing`` apart from ``start``) in one transaction."""
        made: list[Made] = []
        with self.state.db.session() as session:
            referral, product = self._load(session, partner_id, referral_id)
            at = start
            for index, step in enumerate(steps):
                if index and not step.attached:
                    at = at + spacing
                made.append(self._apply(session, referral, product, step, at, tier))
            if made:
                session.merge(
                    SandboxReferralProgress(referral_id=referral_id, partner_id=partner_id, last_step_at=at)
                )
        return made

    def _bump_clock(self, partner_id: str, at: datetime) -> None:
        bump_clock(self.state, partner_id, at)

    # ---------------------------------------------------------------- advance a referral

    def advance_referral(
        self, partner: AuthenticatedPartner, referral_id: str, body: dict[str, Any]
    ) -> tuple[Referral, list[Made]]:
        target = body["target_status"]
        for _try in range(3):
            with self.state.db.session() as session:
                referral, product = self._load(session, partner.id, referral_id)
                payment = referral.payment.status if referral.payment else "not_applicable"
                scenario = scenario_of(referral)
                default_denial = scenario[5:] if scenario.startswith("deny_") else "not_a_candidate"
                steps = self.planner.plan(
                    referral.status,
                    payment,
                    target,
                    consult_only=is_consult_only(referral, product),
                    denial_category=body.get("denial_category") or default_denial,
                    cancelled_by=body.get("cancelled_by") or "partner",
                    exception_type=body.get("exception_type") or "failed_attempt",
                )
                status = referral.status
            if steps is None:
                raise invalid_transition(referral_id, status, target)
            if not steps:
                return self.referrals.get(partner, referral_id), []
            now = self.partner_now(partner.id)
            try:
                made = self.execute(partner.id, partner.tier, referral_id, steps, now)
            except ConcurrentChange:
                continue
            except IllegalTransition:
                raise invalid_transition(referral_id, status, target) from None
            self._bump_clock(partner.id, made[-1].occurred_at)
            return self.referrals.get(partner, referral_id), made
        raise ApiError(
            "SERVICE_UNAVAILABLE",
            "The referral changed concurrently; retry.",
            None,
            headers={"Retry-After": "1"},
        )

    # ---------------------------------------------------------------- trigger

    def trigger(self, partner: AuthenticatedPartner, body: dict[str, Any]) -> dict[str, Any]:
        event_type = body["event_type"]
        error = tier_error(partner.tier, event_type)
        if error is not None:
            raise error
        if partner.tier == "clinical" and not event_type.startswith("referral."):
            from server.services.clinical_trigger import trigger_clinical  # imports this module

            return trigger_clinical(self.state, partner, body)
        if not event_type.startswith("referral."):  # prescriber tier (tier_error let nothing else through)
            from server.services.prescriber_simulation import PrescriberSimulation  # imports this module

            return PrescriberSimulation(self.state).trigger(partner, event_type)
        referral_id = body.get("referral_id")
        if referral_id is None:
            referral_id = self._create_for_trigger(partner, body)
        target = TRIGGER_TARGETS[event_type]
        with self.state.db.session() as session:
            referral, product = self._load(session, partner.id, referral_id)
            status = referral.status
            payment = referral.payment.status if referral.payment else "not_applicable"
            steps = self.planner.plan(
                status,
                payment,
                target,
                consult_only=is_consult_only(referral, product),
                denial_category=body.get("denial_category") or "not_a_candidate",
                cancelled_by=body.get("cancelled_by") or "partner",
                exception_type=body.get("exception_type") or "failed_attempt",
            )
        cut: list[Step] | None = None
        if steps:
            events = self.planner.events_of(status, payment, steps)
            if event_type in events:
                end = events.index(event_type) + 1
                while end < len(steps) and steps[end].attached:
                    end += 1
                cut = steps[:end]
        if not cut:
            raise invalid_transition(referral_id, status, event_type)
        try:
            made = self.execute(partner.id, partner.tier, referral_id, cut, self.partner_now(partner.id))
        except (ConcurrentChange, IllegalTransition):
            raise invalid_transition(referral_id, status, event_type) from None
        self._bump_clock(partner.id, made[-1].occurred_at)
        emitted = [m for m in made if m.event_id is not None]
        requested = [m for m in emitted if m.event_type == event_type][-1]
        last = emitted.index(requested)
        return {
            "event_type": event_type,
            "event_id": requested.event_id,
            "events": [
                {"event_id": m.event_id, "event_type": m.event_type, "occurred_at": clock.iso(m.occurred_at)}
                for m in emitted[: last + 1]
            ],
            "objects": {"referral_id": referral_id},
        }

    def _create_for_trigger(self, partner: AuthenticatedPartner, body: dict[str, Any]) -> str:
        category = body.get("product_category")
        if category is None:
            with self.state.db.session() as session:
                products = list(partners_repo.products(session, partner.id))
            if not products:
                raise ApiError(
                    "INVALID_PRODUCT_CATEGORY",
                    "This partner has no product category to create a referral in.",
                    {"product_category": None},
                )
            category = products[0].category
        create: dict[str, Any] = {
            "partner_reference": body.get("partner_reference") or f"sandbox-trigger-{uuid.uuid4().hex[:12]}",
            "product_category": category,
        }
        if body.get("metadata"):
            metadata = dict(body["metadata"])
            if "sandbox_scenario" in metadata:
                raise ApiError(
                    "INVALID_BODY",
                    "metadata.sandbox_scenario is not allowed on a trigger.",
                    {"errors": [{"path": "/metadata/sandbox_scenario", "message": "not allowed here"}]},
                )
            create["metadata"] = metadata
        return self.referrals.create(partner, create).referral.id

    # ---------------------------------------------------------------- jobs on the partner's clock

    def partner_now(self, partner_id: str) -> datetime:
        with self.state.db.session() as session:
            partner = session.get(Partner, partner_id)
            offset = partner.clock_offset_seconds if partner else 0.0
        now = clock.partner_now(offset or 0.0)
        # whole milliseconds, the precision timestamps are shown with (so created_after filters are exact)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def referral_jobs(self, partner_id: str) -> list[tuple[datetime, str, str]]:
        """Every scheduled referral job of a partner: (due, kind expire|step, referral_id), soonest first."""
        jobs: list[tuple[datetime, str, str]] = []
        with self.state.db.session() as session:
            referrals = session.scalars(
                select(Referral)
                .where(Referral.partner_id == partner_id, Referral.status.not_in(TERMINAL))
                .options(selectinload(Referral.payment), selectinload(Referral.fulfillment))
            ).all()
            if not referrals:
                return []
            products = {p.category: p for p in partners_repo.products(session, partner_id)}
            progress = dict(
                session.execute(
                    select(SandboxReferralProgress.referral_id, SandboxReferralProgress.last_step_at).where(
                        SandboxReferralProgress.partner_id == partner_id
                    )
                ).all()
            )
            for r in referrals:
                if r.status == "created":
                    jobs.append((r.expires_at, "expire", r.id))
                if self.interval > 0 and self.planner.scenario_tick(r, products.get(r.product_category)):
                    last = max(r.updated_at, progress.get(r.id) or r.updated_at)
                    jobs.append((last + timedelta(seconds=self.interval), "step", r.id))
        jobs.sort(key=lambda j: (j[0], j[1] != "expire", j[2]))
        return jobs

    def run_referral_job(
        self, partner_id: str, tier: str, kind: str, referral_id: str, at: datetime
    ) -> int | None:
        """Run one job at sandbox time ``at``: the number of events it created, None if nothing changed."""
        try:
            with self.state.db.session() as session:
                referral, product = self._load(session, partner_id, referral_id)
                if kind == "expire":
                    if referral.status != "created" or referral.expires_at > at:
                        return None
                    payment = referral.payment.status if referral.payment else "not_applicable"
                    steps = self.planner.plan(referral.status, payment, "expired", consult_only=False) or []
                    at = referral.expires_at
                else:
                    steps = self.planner.scenario_tick(referral, product)
            if not steps:
                return None
            made = self.execute(partner_id, tier, referral_id, steps, at)
        except (ConcurrentChange, IllegalTransition, ApiError):
            return None
        return sum(1 for m in made if m.event_id is not None)

    def run_due(self, partner_id: str, until: datetime) -> tuple[int, int]:
        """Run every referral job due by ``until`` at its own due time (real-time background use)."""
        jobs_run = events = 0
        with self.state.db.session() as session:
            partner = session.get(Partner, partner_id)
            tier = partner.tier if partner else "referral"
        skip: set[tuple[datetime, str, str]] = set()
        for _guard in range(10_000):
            jobs = [j for j in self.referral_jobs(partner_id) if j[0] <= until and j not in skip]
            if not jobs:
                break
            made = self.run_referral_job(partner_id, tier, jobs[0][1], jobs[0][2], jobs[0][0])
            if made is None:
                skip.add(jobs[0])
                continue
            events += made
            jobs_run += 1
        return jobs_run, events


def bump_clock(state: AppState, partner_id: str, at: datetime) -> None:
    """Keep sandbox time at or after the last transition written (the offset only grows)."""
    with state.db.session() as session:
        partner = session.get(Partner, partner_id)
        if partner is None:
            return
        needed = (at - clock.real_now()).total_seconds()
        if needed > (partner.clock_offset_seconds or 0.0):
            partner.clock_offset_seconds = float(int(needed) + 1)


def invalid_transition(referral_id: str, current: str, target: str) -> ApiError:
    return ApiError(
        "INVALID_TRANSITION",
        f"Referral {referral_id} cannot move from {current} to {target}.",
        {"referral_id": referral_id, "current_status": current, "target": target},
    )


def count_events(session: Session, partner_id: str) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Event).where(Event.partner_id == partner_id)) or 0
    )
