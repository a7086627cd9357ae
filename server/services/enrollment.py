"""The enrollment page's submission: intake + patient profile + payment, in one transaction.

created -> enrolled -> (payment not_due -> due -> paid) -> pending_review, each with its outbox event.
A declined card changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from server import clock, ids
from server.db.models import IntakeSubmission, Partner, Patient, Product, Referral
from server.lifecycle import IllegalTransition
from server.repositories import partners as partners_repo
from server.repositories import referrals as referrals_repo
from server.services import clinical
from server.services.transitions import ConcurrentChange, transition_payment, transition_referral
from server.state import AppState
from server.web.questionnaires import questions_for

TEST_CARD_OK = "4242424242424242"
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STATE_RE = re.compile(r"^[A-Za-z]{2}$")
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{3,8}$")


class EnrollmentError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # not_found | expired | closed | invalid | declined
        self.message = message


@dataclass
class EnrollmentView:
    partner: Partner
    referral: Referral
    product: Product


@dataclass
class Submission:
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)


def safe_color(value: str | None, default: str) -> str:
    return value if value and _COLOR_RE.match(value) else default


class EnrollmentService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self._key = state.box.subkey("enrollment-form")

    def csrf_token(self, referral_id: str) -> str:
        return hmac.new(self._key, referral_id.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, referral_id: str, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(referral_id), token or "")

    def load(self, partner_slug: str, category: str, referral_id: str) -> EnrollmentView:
        """The referral behind an enrollment link; expires it first when its time has come."""
        with self.state.db.session() as session:
            partner = partners_repo.get_by_slug(session, partner_slug)
            referral = referrals_repo.get_any(session, referral_id) if referral_id else None
            if (
                partner is None
                or referral is None
                or referral.partner_id != partner.id
                or referral.product_category != category
            ):
                raise EnrollmentError("not_found", "This enrollment link is not valid.")
            product = partners_repo.product(session, partner.id, category)
            if product is None:
                raise EnrollmentError("not_found", "This product is not offered through this link.")
            now = clock.partner_now(partner.clock_offset_seconds)
            if referral.status == "created" and referral.expires_at <= now:
                transition_referral(
                    session,
                    self.state.lifecycles,
                    referral,
                    "expired",
                    referral.expires_at,
                    partner_tier=partner.tier,
                )
                from server.services.transitions import close_payment

                close_payment(
                    session, self.state.lifecycles, referral, referral.expires_at, partner_tier=partner.tier
                )
            session.expunge_all()
        if referral.status == "expired":
            raise EnrollmentError(
                "expired", "This enrollment link has expired. Ask for a new link to enroll."
            )
        view = EnrollmentView(partner, referral, product)
        if referral.status != "created":
            raise EnrollmentError(
                "closed", f"This enrollment was already completed (status: {referral.status})."
            )
        return view

    def parse(self, view: EnrollmentView, form: dict[str, str]) -> tuple[Submission, list[dict[str, Any]]]:
        values = {k: (v or "").strip() for k, v in form.items() if isinstance(v, str)}
        sub = Submission(values=values)
        for name, label in (
            ("first_name", "First name"),
            ("last_name", "Last name"),
            ("email", "Email"),
            ("date_of_birth", "Date of birth"),
            ("sex", "Sex"),
            ("state", "State"),
        ):
            if not values.get(name):
                sub.errors.append(f"{label} is required.")
        if values.get("email") and not _EMAIL_RE.match(values["email"]):
            sub.errors.append("Email is not a valid address.")
        if values.get("state") and not _STATE_RE.match(values["state"]):
            sub.errors.append("State must be a two-letter code.")
        if values.get("sex") and values["sex"] not in ("male", "female", "other"):
            sub.errors.append("Sex must be one of the options.")
        if values.get("date_of_birth"):
            try:
                dob = date.fromisoformat(values["date_of_birth"])
                if dob >= date.today() or dob.year < 1900:
                    raise ValueError
            except ValueError:
                sub.errors.append("Date of birth is not a valid date.")
        answers = []
        for q in questions_for(view.product.category):
            answer = values.get("q_" + q.id, "")
            if q.required and not answer:
                sub.errors.append(f"Please answer: {q.text}")
            answers.append(
                {
                    "question_id": q.id,
                    "question_text": q.text,
                    "category": q.category,
                    "answer": answer[:2000],
                }
            )
        if view.product.requires_payment_at_enrollment:
            for name, label in (
                ("card_number", "Card number"),
                ("card_expiry", "Card expiry"),
                ("card_cvc", "CVC"),
            ):
                if not values.get(name):
                    sub.errors.append(f"{label} is required.")
        return sub, answers

    def submit(self, view: EnrollmentView, sub: Submission, answers: list[dict[str, Any]]) -> Referral:
        """Charge (sandbox rules) and record everything, or raise EnrollmentError and change nothing."""
        card = re.sub(r"[\s-]", "", sub.values.get("card_number", ""))
        paying = view.product.requires_payment_at_enrollment
        if paying and card != TEST_CARD_OK:
            raise EnrollmentError(
                "declined",
                "Your card was declined. No charge was made. (Sandbox: use test card 4242 4242 4242 4242.)",
            )
        try:
            return self._record(view, sub, answers, card)
        except (ConcurrentChange, IllegalTransition):
            # The referral moved meanwhile (expired, cancelled, enrolled in another tab): nothing was stored.
            raise EnrollmentError("closed", "This enrollment can no longer be completed.") from None

    def _record(
        self, view: EnrollmentView, sub: Submission, answers: list[dict[str, Any]], card: str
    ) -> Referral:
        paying = view.product.requires_payment_at_enrollment
        partner = view.partner
        tier = partner.tier
        lifecycles = self.state.lifecycles
        with self.state.db.session() as session:
            referral = referrals_repo.get(session, partner.id, view.referral.id)
            if referral is None or referral.status != "created":
                raise EnrollmentError("closed", "This enrollment was already completed.")
            now = clock.partner_now(partner.clock_offset_seconds)
            if referral.expires_at <= now:
                raise EnrollmentError("expired", "This enrollment link has expired.")
            values = sub.values
            patient = Patient(
                id=ids.patient_id(),
                partner_id=partner.id,
                referral_id=referral.id,
                first_name=values["first_name"][:100],
                last_name=values["last_name"][:100],
                email=values["email"][:254],
                phone=values.get("phone", "")[:32] or None,
                date_of_birth=date.fromisoformat(values["date_of_birth"]),
                sex=values.get("sex") or None,
                state=values["state"].upper(),
                country="US",
                created_at=now,
                updated_at=now,
            )
            session.add(patient)
            session.flush()
            intake = IntakeSubmission(
                referral_id=referral.id,
                patient_id=patient.id,
                product_category=referral.product_category,
                answers=answers,
                submitted_at=now,
            )
            session.add(intake)
            transition_referral(
                session,
                lifecycles,
                referral,
                "enrolled",
                now,
                partner_tier=tier,
                values={"patient_id": patient.id},
            )
            if paying:
                transition_payment(
                    session,
                    lifecycles,
                    referral,
                    "due",
                    now,
                    partner_tier=tier,
                    values={"amount_cents": view.product.price_cents, "currency": view.product.currency},
                )
                transition_payment(
                    session,
                    lifecycles,
                    referral,
                    "paid",
                    now,
                    partner_tier=tier,
                    values={"paid_at": now, "card_last4": card[-4:]},
                )
            transition_referral(session, lifecycles, referral, "pending_review", now, partner_tier=tier)
            session.flush()
            clinical.record_enrollment(
                session,
                partner_id=partner.id,
                partner_tier=tier,
                referral=referral,
                patient=patient,
                intake=intake,
                product=view.product,
                values=values,
                card=card,
                paid=paying,
                now=now,
            )
            session.flush()
            session.expunge_all()
            return referral
