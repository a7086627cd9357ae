"""POST /partner/sandbox/events/trigger for the clinical event types (clinical-tier keys; seed 002 §12.2).

Every event comes from the real state change that sends it, written through the outbox:

* enrollment (EnrollmentService, the enrollment page's own submission, with a synthetic patient and the test card):
  referral.enrolled, [referral.payment_due, referral.payment_complete,] referral.pending_review, patient.created,
  appointment.intake_completed[, transaction.succeeded] — one change, so these share its sandbox time;
* then, 1 second of sandbox time later, one more change for the other types: the patient moves house
  (patient.updated), the enrollment payment is refunded like POST /partner/sandbox/transactions/{id}/refund
  (transaction.refunded), or the physician approves through the referral planner (referral.approved,
  appointment.prescription_signed);
* prescription.*: a synthetic prescriber is registered (POST /partner/prescribers) and signs a prescription for an
  inline synthetic patient (POST /partner/prescriptions: patient.created, prescription.received); for
  prescription.rejected the prescriber is then deactivated and the prescription's asynchronous re-validation
  (server.services.clinical_revalidation) rejects it 1 second later with PRESCRIBER_INACTIVE.

The answer lists the events the run emitted in the order they were written, up to the requested one (events the
same change wrote after it, such as transaction.succeeded after patient.created, are delivered but not listed, like
the referral trigger's attached steps), with the ids of the objects created.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server import audit, clock
from server.auth import AuthenticatedPartner
from server.db.models import Event, Patient, Product, Referral
from server.db.models_clinical import ClinicalTransaction, PartnerPrescription, PatientAddress
from server.errors import ApiError
from server.lifecycle import IllegalTransition
from server.repositories import partners as partners_repo
from server.services import clinical
from server.services.clinical_catalog import CATALOG, Medication
from server.services.clinical_prescribers import PrescriberService
from server.services.clinical_prescriptions import PrescriptionService
from server.services.clinical_revalidation import revalidate
from server.services.enrollment import TEST_CARD_OK, EnrollmentError, EnrollmentService
from server.services.simulation import STEP_SPACING, Simulation, invalid_transition, is_consult_only
from server.services.transitions import ConcurrentChange
from server.state import AppState
from server.web.questionnaires import questions_for

ENROLLMENT_EVENTS = frozenset(
    {
        "patient.created",
        "appointment.intake_completed",
        "transaction.succeeded",
        "transaction.refunded",
        "patient.updated",
        "appointment.prescription_signed",
    }
)
PRESCRIPTION_EVENTS = frozenset({"prescription.received", "prescription.rejected"})
CLINICAL_TRIGGERABLE = ENROLLMENT_EVENTS | PRESCRIPTION_EVENTS
PAID_EVENTS = frozenset({"transaction.succeeded", "transaction.refunded"})

# synthetic people and places (sandbox data, never real PHI)
PATIENT = {
    "first_name": "Sandy",
    "last_name": "Trigger",
    "phone": "(555) 201-0142",
    "date_of_birth": "1984-06-15",
    "sex": "male",
    "state": "FL",
    "address_line1": "100 Sandbox Way",
    "city": "Orlando",
    "postal_code": "32801",
}
MOVED_TO = {
    "line1": "200 Trigger Lane",
    "line2": "Unit 4",
    "city": "Tampa",
    "state": "FL",
    "postal_code": "33602",
    "country": "US",
}
PRESCRIBER_JURISDICTION = ("US", "FL")
REFUND_REASON = "Sandbox trigger refund"


def trigger_clinical(state: AppState, partner: AuthenticatedPartner, body: dict[str, Any]) -> dict[str, Any]:
    """Make a clinical event type fire for a clinical-tier partner; the TriggerEventResponse."""
    event_type = body["event_type"]
    if event_type not in CLINICAL_TRIGGERABLE:  # pragma: no cover - the caller dispatches only these
        raise ValueError(event_type)
    since = _last_seq(state)
    if event_type in PRESCRIPTION_EVENTS:
        objects = _prescription_run(state, partner, body, event_type)
    else:
        objects = _enrollment_run(state, partner, body, event_type)
    events = _events_since(state, partner.id, objects["referral_id"], since)
    wanted = [i for i, e in enumerate(events) if e.event_type == event_type]
    if not wanted:  # pragma: no cover - every run above ends with the change that writes the event
        raise RuntimeError(f"{event_type} was not emitted")
    listed = events[: wanted[0] + 1]
    Simulation(state)._bump_clock(partner.id, max(e.created_at for e in events))
    return {
        "event_type": event_type,
        "event_id": listed[-1].id,
        "events": [
            {"event_id": e.id, "event_type": e.event_type, "occurred_at": clock.iso(e.created_at)}
            for e in listed
        ],
        "objects": objects,
    }


# ----------------------------------------------------------------------------- events of the run


def _last_seq(state: AppState) -> int:
    with state.db.session() as session:
        return int(session.scalar(select(func.max(Event.seq))) or 0)


def _events_since(state: AppState, partner_id: str, referral_id: str, since: int) -> list[Event]:
    """The run's events in the order they were written (the outbox sequence)."""
    with state.db.session() as session:
        rows = list(
            session.scalars(
                select(Event)
                .where(Event.partner_id == partner_id, Event.referral_id == referral_id, Event.seq > since)
                .order_by(Event.seq)
            )
        )
        session.expunge_all()
    return rows


# ----------------------------------------------------------------------------- enrollment and after


def _category(
    state: AppState, partner: AuthenticatedPartner, body: dict[str, Any], event_type: str
) -> Product:
    """The product category to enroll in: the one asked for, else the partner's first (first paying one for
    transaction.*); transaction.* need a category that takes payment at enrollment."""
    with state.db.session() as session:
        products = list(partners_repo.products(session, partner.id))
        session.expunge_all()
    by_category = {p.category: p for p in products}
    paying = [p.category for p in products if p.requires_payment_at_enrollment]
    asked = body.get("product_category")
    if asked is not None and asked not in by_category:
        raise ApiError(
            "INVALID_PRODUCT_CATEGORY",
            f"Product category {asked} is not available to this partner.",
            {"product_category": asked, "available_categories": sorted(by_category)},
        )
    if event_type in PAID_EVENTS:
        if asked is None and paying:
            asked = paying[0]
        if asked is None or not by_category[asked].requires_payment_at_enrollment:
            raise ApiError(
                "INVALID_PRODUCT_CATEGORY",
                f"{event_type} needs a product category paid at enrollment"
                + (f"; {asked} is paid after approval." if asked else "; this partner has none."),
                {"product_category": asked, "available_categories": paying},
            )
    if asked is None:
        if not products:
            raise ApiError(
                "INVALID_PRODUCT_CATEGORY",
                "This partner has no product category to create a referral in.",
                {"product_category": None},
            )
        asked = products[0].category
    return by_category[asked]


def _enrollment_form(category: str) -> dict[str, str]:
    form = {
        **PATIENT,
        "email": f"sandy.trigger.{uuid.uuid4().hex[:10]}@example.com",
        "card_number": TEST_CARD_OK,
        "card_expiry": "12/34",
        "card_cvc": "123",
    }
    for q in questions_for(category):
        if q.kind == "yesno":
            form["q_" + q.id] = "No"
        elif q.kind == "select" and q.options:
            form["q_" + q.id] = q.options[0]
        else:
            form["q_" + q.id] = "Synthetic answer from the sandbox event trigger."
    return form


def _enroll(state: AppState, partner: AuthenticatedPartner, referral_id: str, category: str) -> Referral:
    service = EnrollmentService(state)
    try:
        view = service.load(partner.slug, category, referral_id)
        submission, answers = service.parse(view, _enrollment_form(category))
        if submission.errors:  # pragma: no cover - the synthetic form answers every question
            raise RuntimeError("; ".join(submission.errors))
        return service.submit(view, submission, answers)
    except EnrollmentError as error:
        # a partner_reference that names an existing referral past `created` (replayed by the create)
        with state.db.session() as session:
            referral = session.get(Referral, referral_id)
            status = referral.status if referral is not None else error.kind
        raise invalid_transition(referral_id, status, "enrolled") from None


def _enrollment_run(
    state: AppState, partner: AuthenticatedPartner, body: dict[str, Any], event_type: str
) -> dict[str, Any]:
    product = _category(state, partner, body, event_type)
    simulation = Simulation(state)
    referral_id = simulation._create_for_trigger(partner, {**body, "product_category": product.category})
    referral = _enroll(state, partner, referral_id, product.category)
    assert referral.patient_id is not None and referral.appointment_id is not None
    objects: dict[str, Any] = {
        "referral_id": referral_id,
        "patient_id": referral.patient_id,
        "appointment_id": referral.appointment_id,
    }
    txn_id = _enrollment_transaction(state, referral.appointment_id)
    if txn_id is not None and event_type in PAID_EVENTS:
        objects["transaction_id"] = txn_id
    at = referral.updated_at + STEP_SPACING
    if event_type == "patient.updated":
        _move_patient(state, partner, referral.patient_id, at)
    elif event_type == "transaction.refunded":
        assert txn_id is not None
        _refund(state, partner, txn_id, at)
    elif event_type == "appointment.prescription_signed":
        _approve(simulation, partner, referral_id, at)
        objects["prescription_id"] = "rx_" + referral.appointment_id.removeprefix("appt_")
    return objects


def _enrollment_transaction(state: AppState, appointment_id: str) -> str | None:
    with state.db.session() as session:
        return session.scalar(
            select(ClinicalTransaction.id).where(
                ClinicalTransaction.appointment_id == appointment_id,
                ClinicalTransaction.type == "enrollment_payment",
            )
        )


def _move_patient(state: AppState, partner: AuthenticatedPartner, patient_id: str, at: datetime) -> None:
    """The patient's postal address changes: the profile row, its audit record and patient.updated."""
    with state.db.session() as session:
        patient = session.get(Patient, patient_id, with_for_update=True)
        assert patient is not None
        row = session.get(PatientAddress, patient_id)
        if row is None:
            session.add(PatientAddress(patient_id=patient_id, **MOVED_TO))
        else:
            for key, value in MOVED_TO.items():
                setattr(row, key, value)
        patient.state, patient.country = MOVED_TO["state"], MOVED_TO["country"]
        patient.updated_at = at
        session.flush()
        audit.patient_profile(
            session,
            created=False,
            patient_id=patient.id,
            partner_id=partner.id,
            actor=audit.Actor(uid=patient.id, role="patient"),
            fields=("address",),
            phi_fields=clinical.PATIENT_FIELDS,
            source="simulation",
            source_name="triggerSandboxEvent",
            summary="Patient changed their postal address",
            at=at,
        )
        referral = session.get(Referral, patient.referral_id) if patient.referral_id else None
        full = clinical.ClinicalView(session).patient(patient, at)
        clinical.emit(
            session,
            partner.id,
            "patient.updated",
            at,
            referral,
            {"patient_id": patient.id, "referral_id": patient.referral_id},
            {
                "changed_fields": ["address"],
                "patient": {
                    "patient_id": patient.id,
                    "address": full["address"],
                    "updated_at": full["updated_at"],
                },
                "occurred_at": clock.iso(at),
            },
        )


def _refund(state: AppState, partner: AuthenticatedPartner, transaction_id: str, at: datetime) -> None:
    """Refund the whole enrollment payment (what POST /partner/sandbox/transactions/{id}/refund does)."""
    with state.db.session() as session:
        txn = session.get(ClinicalTransaction, transaction_id, with_for_update=True)
        assert txn is not None
        clinical.refund_transaction(
            session,
            state,
            partner,
            txn,
            None,
            REFUND_REASON,
            at,
            audit.Actor(uid=partner.id, role="partner"),
            "triggerSandboxEvent",
        )


def _approve(simulation: Simulation, partner: AuthenticatedPartner, referral_id: str, at: datetime) -> None:
    """The physician approves the case: the planner's step to `approved` (appointment.prescription_signed)."""
    with simulation.state.db.session() as session:
        referral, product = simulation._load(session, partner.id, referral_id)
        status = referral.status
        payment = referral.payment.status if referral.payment else "not_applicable"
        steps = simulation.planner.plan(
            status, payment, "approved", consult_only=is_consult_only(referral, product)
        )
    if not steps:
        raise invalid_transition(referral_id, status, "approved")
    try:
        simulation.execute(partner.id, partner.tier, referral_id, steps, at)
    except (ConcurrentChange, IllegalTransition):
        raise invalid_transition(referral_id, status, "approved") from None


# ----------------------------------------------------------------------------- partner-submitted prescriptions


def _medication(state: AppState, partner: AuthenticatedPartner, body: dict[str, Any]) -> Medication:
    """A catalog medication of the category asked for (else of the partner's first category that has one),
    dispensable in the synthetic patient's jurisdiction without a DEA number."""
    country, jurisdiction = PRESCRIBER_JURISDICTION
    usable: dict[str, Medication] = {}
    for med in CATALOG.values():
        if (
            med.active
            and not med.sandbox_only
            and med.schedule is None
            and med.available_in(country, jurisdiction)
        ):
            usable.setdefault(med.product_category, med)
    with state.db.session() as session:
        categories = [p.category for p in partners_repo.products(session, partner.id)]
    asked = body.get("product_category")
    if asked is None:
        asked = next((c for c in categories if c in usable), None)
    if asked is None or asked not in categories or asked not in usable:
        raise ApiError(
            "INVALID_PRODUCT_CATEGORY",
            f"Product category {asked} has no medication a synthetic prescription can be signed for."
            if asked
            else "This partner has no product category with a catalog medication.",
            {"product_category": asked, "available_categories": [c for c in categories if c in usable]},
        )
    return usable[asked]


def _prescription_run(
    state: AppState, partner: AuthenticatedPartner, body: dict[str, Any], event_type: str
) -> dict[str, Any]:
    med = _medication(state, partner, body)
    country, jurisdiction = PRESCRIBER_JURISDICTION
    today = clock.partner_now(partner.clock_offset_seconds).date()
    prescriber = (
        PrescriberService(state)
        .create(
            partner,
            {
                "first_name": "Sam",
                "last_name": "Sandbox",
                "email": f"sam.sandbox.{uuid.uuid4().hex[:10]}@example.com",
                "npi": "1679576722",
                "licenses": [
                    {
                        "country": country,
                        "jurisdiction": jurisdiction,
                        "license_number": f"{jurisdiction}-MD-SANDBOX",
                        "expires_at": (today + timedelta(days=730)).isoformat(),
                    }
                ],
            },
        )
        .prescriber
    )
    submitted = (
        PrescriptionService(state)
        .submit(
            partner,
            {
                "prescriber_id": prescriber["prescriber_id"],
                "inline_patient": {
                    "first_name": "Riley",
                    "last_name": "Trigger",
                    "email": f"riley.trigger.{uuid.uuid4().hex[:10]}@example.com",
                    "phone": "+15555550142",
                    "dob": date(1988, 3, 21).isoformat(),
                    "gender": "female",
                    "address": {
                        "street": "300 Synthetic St",
                        "city": "Miami",
                        "jurisdiction": jurisdiction,
                        "postal_code": "33101",
                        "country": country,
                    },
                },
                "medications": [
                    {
                        "code": med.code,
                        "quantity": 1,
                        "dosage_instructions": "As directed (sandbox trigger)",
                        "repeats": 0,
                    }
                ],
            },
        )
        .prescription
    )
    objects: dict[str, Any] = {
        "referral_id": submitted["referral_id"],
        "patient_id": submitted["patient_id"],
        "appointment_id": submitted["appointment_id"],
        "prescriber_id": prescriber["prescriber_id"],
        "prescription_id": submitted["prescription_id"],
    }
    if event_type == "prescription.rejected":
        PrescriberService(state).deactivate(partner, prescriber["prescriber_id"])
        at = clock.parse_iso(submitted["created_at"]) + STEP_SPACING
        with state.db.session() as session:
            rx = session.get(PartnerPrescription, submitted["prescription_id"], with_for_update=True)
            assert rx is not None
            rejection = revalidate(session, PrescriptionService(state), partner, rx, at)
            assert rejection is not None  # the prescriber is inactive now
    return objects
