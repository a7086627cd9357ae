"""Clinical tier (seed 002): records created by enrollment, and the PHI reads of clinical-tier partners.

Enrollment writes the patient's address, the appointment (``appt_...``) and the enrollment transaction
(``txn_...``) in the enrollment's own database transaction, with the outbox events patient.created,
appointment.intake_completed and transaction.succeeded for clinical partners.

The appointment's status, review time, prescription, fulfillment, payment and message thread are read live
from the referral it belongs to (the referral lifecycle is the single source of truth the simulation moves),
so the referral tier and the clinical tier never disagree. Every PHI read writes an audit record.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from server import audit, clock, faults, ids
from server.auth import AuthenticatedPartner
from server.clock import iso
from server.cursor import CursorCodec, filter_digest, newest_first_page
from server.db.models import Event, IntakeSubmission, Patient, Product, Referral, ReferralStatusHistory
from server.db.models_clinical import (
    ClinicalAppointment,
    ClinicalTransaction,
    PartnerPrescription,
    PatientAddress,
    Prescriber,
)
from server.errors import ApiError
from server.services.events import add_event
from server.state import AppState

# ----------------------------------------------------------------------------- sandbox data

CONDITIONS = {
    "trt-cream": "Testosterone Replacement Therapy",
    "peptides": "Tissue Repair and Recovery (BPC-157)",
}
FORM_TITLES = {
    "trt-cream": "TRT Intake Questionnaire",
    "peptides": "BPC-157 Peptide Therapy Intake Questionnaire",
}
# What the sandbox physician prescribes on approval, per product category (sandbox data).
PRESCRIBED = {
    "trt-cream": {
        "name": "Testosterone Cream 200mg/mL",
        "generic_name": "Testosterone Cypionate",
        "dosage": "1mL applied topically daily",
        "quantity": 1,
        "quantity_unit": "tube (30mL)",
        "repeats": 3,
        "notes": None,
    },
    "peptides": {
        "name": "BPC-157 5mg/vial",
        "generic_name": "BPC-157",
        "dosage": "250mcg injected subcutaneously daily",
        "quantity": 2,
        "quantity_unit": "vial (5mg)",
        "repeats": 2,
        "notes": None,
    },
}
SANDBOX_PHYSICIAN = "Dr. Morgan Hale"
CARE_TEAM = "Stealth Health Care Team"

# Referral status -> clinical appointment status (seed 002 §7.1; glossary "Appointment status").
_APPOINTMENT_STATUS = {
    "enrolled": "pending_review",
    "pending_review": "pending_review",
    "approved": "approved",
    "awaiting_shipment": "approved",
    "shipped": "approved",
    "in_transit": "approved",
    "out_for_delivery": "approved",
    "delivery_exception": "approved",
    "delivered": "completed",
    "denied": "denied",
    "cancelled": "denied",
}
_REVIEWED = ("approved", "denied")
PATIENT_FIELDS = ("first_name", "last_name", "email", "phone", "date_of_birth", "sex", "address")
# partner-prescription fulfillment -> AppointmentFulfillment status
_RX_FULFILLMENT = {
    "queued": "queued",
    "dispatched": "awaiting_shipment",
    "shipped": "shipped",
    "delivered": "delivered",
}
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")

NOT_FOUND = {
    "patient": ("PATIENT_NOT_FOUND", "The patient was not found.", "patient_id"),
    "appointment": ("APPOINTMENT_NOT_FOUND", "The appointment was not found.", "appointment_id"),
    "transaction": ("TRANSACTION_NOT_FOUND", "The transaction was not found.", "transaction_id"),
}


def not_found(kind: str) -> ApiError:
    code, message, parameter = NOT_FOUND[kind]
    return ApiError(code, message, {"parameter": parameter})


def e164(phone: str | None) -> str | None:
    """The enrollment form's free-text phone as E.164, or None when it cannot be one (US/CA numbers)."""
    if not phone:
        return None
    raw = phone.strip()
    digits = re.sub(r"\D", "", raw)
    if raw.startswith("+") and _E164.match("+" + digits):
        return "+" + digits
    if len(digits) == 10 and digits[0] not in "01":
        return "+1" + digits
    if len(digits) == 11 and digits[0] == "1":
        return "+" + digits
    return None


def age_on(dob: date | None, today: date) -> int:
    if dob is None:
        return 0
    return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))


def _digits(seed: str, n: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:n].rjust(n, "0")


# ----------------------------------------------------------------------------- enrollment hook


def address_from_form(values: dict[str, str], state: str) -> dict[str, Any]:
    """The address fields of the enrollment form; the sandbox page asks for the state only so far, so missing
    street fields are stored as an explicit "not collected" placeholder (sandbox data, never real PHI)."""
    postal = (values.get("postal_code") or "").strip()
    return {
        "line1": (values.get("address_line1") or "").strip()[:200] or "Not collected (sandbox)",
        "line2": (values.get("address_line2") or "").strip()[:200] or None,
        "city": (values.get("city") or "").strip()[:100] or "Not collected",
        "state": state,
        "postal_code": postal if _ZIP.match(postal) else "00000",
        "country": "US",
    }


def record_enrollment(
    session: Session,
    *,
    partner_id: str,
    partner_tier: str,
    referral: Referral,
    patient: Patient,
    intake: IntakeSubmission,
    product: Product,
    values: dict[str, str],
    card: str,
    paid: bool,
    now: datetime,
) -> ClinicalAppointment:
    """Write the clinical records of a completed enrollment (inside the enrollment's transaction)."""
    session.add(PatientAddress(patient_id=patient.id, **address_from_form(values, patient.state or "")))
    category = referral.product_category
    appointment = ClinicalAppointment(
        id="appt_" + secrets.token_hex(8),
        partner_id=partner_id,
        patient_id=patient.id,
        referral_id=referral.id,
        intake_submission_id=intake.id,
        product_category=category,
        condition=CONDITIONS.get(category, product.display_name)[:200],
        form_title=FORM_TITLES.get(category, f"{product.display_name} Intake Questionnaire")[:200],
        submitted_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(appointment)
    referral.appointment_id = appointment.id
    txn: ClinicalTransaction | None = None
    if paid:
        txn = ClinicalTransaction(
            id="txn_" + secrets.token_hex(10),
            partner_id=partner_id,
            patient_id=patient.id,
            appointment_id=appointment.id,
            referral_id=referral.id,
            type="enrollment_payment",
            status="succeeded",
            amount_cents=product.price_cents,
            currency=product.currency,
            description=f"{product.display_name} — enrollment"[:500],
            line_items=[
                {
                    "description": product.display_name[:200],
                    "amount_cents": product.price_cents,
                    "quantity": 1,
                }
            ],
            card_brand=card_brand(card),
            card_last4=card[-4:],
            payment_intent_id="pi_" + secrets.token_hex(12),
            created_at=now,
        )
        session.add(txn)
    session.flush()
    patient_actor = audit.Actor(uid=patient.id, role="patient")
    enrolled = ("first_name", "last_name", "email", "phone", "date_of_birth", "sex")
    audit.patient_profile(
        session,
        created=True,
        patient_id=patient.id,
        partner_id=partner_id,
        actor=patient_actor,
        fields=enrolled,
        phi_fields=enrolled,
        source="enrollment_page",
        source_name="EnrollmentService.submit",
        summary="Patient profile and intake created by enrollment",
        at=now,
    )
    audit.record(
        session,
        action="appointment.created",
        category="appointment",
        entity_type="appointment",
        entity_id=appointment.id,
        parent_entity_id=patient.id,
        patient_id=patient.id,
        partner_id=partner_id,
        actor=patient_actor,
        source="enrollment_page",
        source_name="EnrollmentService.submit",
        summary="Appointment submitted for physician review",
        at=now,
    )
    if txn is not None:
        audit.record(
            session,
            action="payment.succeeded",
            category="payment",
            entity_type="transaction",
            entity_id=txn.id,
            parent_entity_id=appointment.id,
            patient_id=patient.id,
            partner_id=partner_id,
            actor=patient_actor,
            source="enrollment_page",
            source_name="EnrollmentService.submit",
            summary="Enrollment payment captured",
            at=now,
        )
    if partner_tier == "clinical":
        view = ClinicalView(session)
        emit(
            session,
            partner_id,
            "patient.created",
            now,
            referral,
            {"patient_id": patient.id, "referral_id": referral.id},
            {"patient": view.patient(patient, now), "occurred_at": iso(now)},
        )
        emit(
            session,
            partner_id,
            "appointment.intake_completed",
            now,
            referral,
            {"appointment_id": appointment.id, "patient_id": patient.id, "referral_id": referral.id},
            {
                "appointment_id": appointment.id,
                "status": "pending_review",
                "product_category": category,
                "intake_summary": intake_summary(intake.answers),
                "occurred_at": iso(now),
            },
        )
        if txn is not None:
            emit(
                session,
                partner_id,
                "transaction.succeeded",
                now,
                referral,
                {
                    "transaction_id": txn.id,
                    "patient_id": patient.id,
                    "appointment_id": appointment.id,
                    "referral_id": referral.id,
                },
                {"transaction": view.transaction(txn), "occurred_at": iso(now)},
            )
    return appointment


def card_brand(card: str) -> str:
    if card.startswith("4"):
        return "visa"
    if card[:2] in ("51", "52", "53", "54", "55") or card[:2] == "22":
        return "mastercard"
    if card[:2] in ("34", "37"):
        return "amex"
    return "card"


def emit(
    session: Session,
    partner_id: str,
    event_type: str,
    at: datetime,
    referral: Referral | None,
    top: dict[str, Any],
    data: dict[str, Any],
    *,
    partner_reference: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Event:
    event_id = ids.event_id()
    payload: dict[str, Any] = {"event_id": event_id, "event_type": event_type, **top}
    payload["partner_reference"] = partner_reference or (
        referral.partner_reference if referral is not None else None
    )
    payload["data"] = data
    if metadata is not None:  # the object's own metadata (a prescription's, C-022), else the referral's
        payload["metadata"] = dict(metadata)
    else:
        payload["metadata"] = dict(referral.metadata_ or {}) if referral is not None else {}
    payload["created_at"] = iso(at)
    return add_event(
        session,
        partner_id=partner_id,
        event_type=event_type,
        payload=payload,
        at=at,
        referral_id=referral.id if referral is not None else None,
    )


# ----------------------------------------------------------------------------- shaping


def intake_summary(answers: list[dict[str, Any]]) -> dict[str, Any]:
    goals = [a["answer"] for a in answers if a.get("category") == "goals" and a.get("answer")]
    return {
        "total_questions": len(answers),
        "completed_questions": sum(1 for a in answers if a.get("answer")),
        "severity_score": None,
        "goals": "; ".join(goals)[:2000] or None,
    }


def _history_at(referral: Referral, statuses: Sequence[str]) -> datetime | None:
    for h in referral.history:
        if h.status in statuses:
            return h.at
    return None


class ClinicalView:
    """Shapes rows into the spec's clinical schemas (PHI: callers audit what they return)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- lookups
    def referral(self, referral_id: str | None) -> Referral | None:
        if referral_id is None:
            return None
        return self.session.scalar(
            select(Referral)
            .where(Referral.id == referral_id)
            .options(
                selectinload(Referral.history),
                selectinload(Referral.fulfillment),
                selectinload(Referral.payment),
            )
        )

    def appointments_of(self, patient_id: str) -> list[ClinicalAppointment]:
        return list(
            self.session.scalars(
                select(ClinicalAppointment)
                .where(ClinicalAppointment.patient_id == patient_id)
                .order_by(ClinicalAppointment.created_at.desc(), ClinicalAppointment.id.desc())
            )
        )

    def address(self, patient: Patient) -> dict[str, Any]:
        row = self.session.get(PatientAddress, patient.id)
        if row is None:
            return address_from_form({}, patient.state or "")
        return {
            "line1": row.line1,
            "line2": row.line2,
            "city": row.city,
            "state": row.state,
            "postal_code": row.postal_code,
            "country": row.country,
        }

    # --- patients
    def patient_summary(self, patient: Patient) -> dict[str, Any]:
        referral = self.referral(patient.referral_id)
        categories: list[str] = []
        for appt in sorted(self.appointments_of(patient.id), key=lambda a: (a.created_at, a.id)):
            if appt.product_category not in categories:
                categories.append(appt.product_category)
        return {
            "patient_id": patient.id,
            "partner_reference": referral.partner_reference if referral else patient.id,
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "email": patient.email,
            "phone": e164(patient.phone),
            "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
            "gender": patient.sex or "other",
            "address": self.address(patient),
            "product_categories": categories,
            "status": "active",
            "created_at": iso(patient.created_at),
        }

    def patient(self, patient: Patient, now: datetime) -> dict[str, Any]:
        out = self.patient_summary(patient)
        appts = self.appointments_of(patient.id)
        latest = appts[0] if appts else None
        created_at = out.pop("created_at")
        out.update(
            {
                "age": age_on(patient.date_of_birth, now.date()),
                "latest_appointment_id": latest.id if latest else None,
                "latest_appointment_status": self.appointment_status(latest) if latest else None,
                "total_appointments": len(appts),
                "created_at": created_at,
                "updated_at": iso(max([patient.updated_at, *[a.updated_at for a in appts]])),
            }
        )
        return out

    # --- appointments
    def prescription(self, appt: ClinicalAppointment) -> PartnerPrescription | None:
        return self.session.get(PartnerPrescription, appt.prescription_id) if appt.prescription_id else None

    def appointment_status(self, appt: ClinicalAppointment) -> str:
        rx = self.prescription(appt)
        if rx is not None:
            return "completed" if rx.fulfillment_status == "delivered" else "doctor_reviewed"
        referral = self.referral(appt.referral_id)
        return _APPOINTMENT_STATUS.get(referral.status if referral else "", "pending_review")

    def _prescription(
        self, appt: ClinicalAppointment, referral: Referral | None, status: str, full: bool
    ) -> dict[str, Any]:
        reviewed = _history_at(referral, _REVIEWED) if referral else None
        if status in ("approved", "completed") and reviewed is not None:
            med = dict(PRESCRIBED.get(appt.product_category, PRESCRIBED["trt-cream"]))
            if not full:
                med.pop("generic_name", None)
                med.pop("notes", None)
            out: dict[str, Any] = {"status": "signed"}
            if full:
                out["rx_id"] = f"RX-{reviewed:%Y}-{reviewed:%m%d}-{_digits(appt.id, 3)}"
            out["medications"] = [med]
            out["prescriber"] = SANDBOX_PHYSICIAN
            if full:
                patient = self.session.get(Patient, appt.patient_id)
                out["prescriber_license"] = (
                    f"{(patient.state if patient else None) or 'US'}-MD-{_digits(appt.id + 'lic', 5)}"
                )
            out["signed_at"] = iso(reviewed)
            return out
        out = {"status": "denied" if status == "denied" else "pending"}
        if full:
            out["rx_id"] = None
        out.update({"medications": [], "prescriber": None})
        if full:
            out["prescriber_license"] = None
        out["signed_at"] = None
        return out

    @staticmethod
    def _fulfillment(referral: Referral | None, full: bool) -> dict[str, Any]:
        f = referral.fulfillment if referral else None
        out: dict[str, Any] = {
            "status": f.status if f else None,
            "carrier": f.carrier if f else None,
            "tracking_number": f.tracking_number if f else None,
        }
        if full:
            out["label_url"] = None
        out["estimated_delivery"] = f.estimated_delivery.isoformat() if f and f.estimated_delivery else None
        out["shipped_at"] = iso(f.shipped_at) if f else None
        if full:
            out["delivered_at"] = iso(f.delivered_at) if f else None
        return out

    def _payment(self, appt: ClinicalAppointment, referral: Referral | None, full: bool) -> dict[str, Any]:
        p = referral.payment if referral else None
        txn = self.session.scalar(
            select(ClinicalTransaction)
            .where(
                ClinicalTransaction.appointment_id == appt.id,
                ClinicalTransaction.type == "enrollment_payment",
            )
            .limit(1)
        )
        status = p.status if p else "not_applicable"
        if txn is not None and txn.status == "refunded":
            status = "refunded"
        out: dict[str, Any] = {
            "status": status,
            "amount_cents": p.amount_cents if p else None,
            "currency": p.currency if p else "USD",
        }
        if full:
            out["method"] = "card" if txn is not None else None
        out["paid_at"] = iso(p.paid_at) if p else None
        if full:
            out["stripe_payment_intent_id"] = txn.payment_intent_id if txn is not None else None
        return out

    def appointment(self, appt: ClinicalAppointment, *, full: bool) -> dict[str, Any]:
        rx = self.prescription(appt)
        if rx is not None:
            return self._partner_appointment(appt, rx, full=full)
        referral = self.referral(appt.referral_id)
        status = _APPOINTMENT_STATUS.get(referral.status if referral else "", "pending_review")
        reviewed = _history_at(referral, (*_REVIEWED, "cancelled")) if referral else None
        out: dict[str, Any] = {
            "appointment_id": appt.id,
            "patient_id": appt.patient_id,
            "referral_id": appt.referral_id,
        }
        if full:
            out["partner_reference"] = referral.partner_reference if referral else appt.id
        out.update(
            {
                "product_category": appt.product_category,
                "condition": appt.condition,
                "status": status,
                "submitted_at": iso(appt.submitted_at),
                "reviewed_at": iso(reviewed),
            }
        )
        if full:
            patient = self.session.get(Patient, appt.patient_id)
            assert patient is not None
            out["patient_snapshot"] = {
                "first_name": patient.first_name,
                "last_name": patient.last_name,
                "email": patient.email,
                "phone": e164(patient.phone),
                "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
                "gender": patient.sex or "other",
                "address": self.address(patient),
            }
            intake = self.intake_of(appt)
            out["intake_summary"] = intake_summary(intake.answers) if intake is not None else None
        out["prescription_summary"] = self._prescription(appt, referral, status, full)
        out["fulfillment"] = self._fulfillment(referral, full)
        out["payment"] = self._payment(appt, referral, full)
        if full:
            times = [appt.updated_at]
            if referral is not None:
                times += [h.at for h in referral.history]
                if referral.fulfillment is not None and referral.fulfillment.updated_at:
                    times.append(referral.fulfillment.updated_at)
            out["created_at"] = iso(appt.created_at)
            out["updated_at"] = iso(max(times))
        return out

    def _snapshot(self, patient: Patient) -> dict[str, Any]:
        return {
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "email": patient.email,
            "phone": e164(patient.phone),
            "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
            "gender": patient.sex or "other",
            "address": self.address(patient),
        }

    def _partner_appointment(
        self, appt: ClinicalAppointment, rx: PartnerPrescription, *, full: bool
    ) -> dict[str, Any]:
        """An appt_partner_... appointment: signed by the partner's prescriber, no intake, no payment here."""
        status = "completed" if rx.fulfillment_status == "delivered" else "doctor_reviewed"
        prescriber = self.session.get(Prescriber, rx.prescriber_id)
        out: dict[str, Any] = {
            "appointment_id": appt.id,
            "patient_id": appt.patient_id,
            "referral_id": appt.referral_id,
        }
        referral = self.referral(appt.referral_id)
        if full:
            out["partner_reference"] = rx.partner_reference or (
                referral.partner_reference if referral else appt.id
            )
        out.update(
            {
                "product_category": appt.product_category,
                "condition": appt.condition,
                "status": status,
                "submitted_at": iso(appt.submitted_at),
                "reviewed_at": iso(rx.created_at),
            }
        )
        if full:
            patient = self.session.get(Patient, appt.patient_id)
            assert patient is not None
            out["patient_snapshot"] = self._snapshot(patient)
            out["intake_summary"] = None
        meds = []
        for m in rx.medications:
            med: dict[str, Any] = {
                "name": m["product_name"],
                "dosage": m["dosage_instructions"],
                "quantity": m["quantity"],
                "quantity_unit": "unit",
                "repeats": m["repeats"],
            }
            if full:
                med = {
                    "name": med["name"],
                    "generic_name": None,
                    **{k: med[k] for k in list(med)[1:]},
                    "notes": None,
                }
            meds.append(med)
        summary: dict[str, Any] = {"status": "signed"}
        if full:
            summary.update({"rx_id": rx.rx_id, "prescription_id": rx.id})
        summary["medications"] = meds
        summary["prescriber"] = (
            f"Dr. {prescriber.first_name} {prescriber.last_name}"[:200] if prescriber else None
        )
        if full:
            summary["prescriber_id"] = rx.prescriber_id
        summary["signed_at"] = iso(rx.created_at)
        out["prescription_summary"] = summary
        linked = referral.fulfillment if referral is not None and referral.appointment_id == appt.id else None
        fulfillment: dict[str, Any] = {
            "status": (linked.status if linked is not None and linked.status else None)
            or _RX_FULFILLMENT.get(rx.fulfillment_status, "queued"),
            "carrier": linked.carrier if linked is not None else None,
            "tracking_number": linked.tracking_number if linked is not None else None,
        }
        if full:
            fulfillment["label_url"] = None
        fulfillment.update(
            {
                "estimated_delivery": linked.estimated_delivery.isoformat()
                if linked is not None and linked.estimated_delivery
                else None,
                "shipped_at": iso(linked.shipped_at) if linked is not None else None,
            }
        )
        if full:
            fulfillment["delivered_at"] = iso(linked.delivered_at) if linked is not None else None
        out["fulfillment"] = fulfillment
        payment: dict[str, Any] = {"status": "not_applicable", "amount_cents": None, "currency": "USD"}
        if full:
            payment["method"] = None
        payment["paid_at"] = None
        if full:
            payment["stripe_payment_intent_id"] = None
        out["payment"] = payment
        if full:
            out["created_at"] = iso(appt.created_at)
            out["updated_at"] = iso(max(appt.updated_at, rx.updated_at))
        return out

    def intake_of(self, appt: ClinicalAppointment) -> IntakeSubmission | None:
        if appt.intake_submission_id is None:
            return None
        return self.session.get(IntakeSubmission, appt.intake_submission_id)

    # --- messages (derived from the review outcome: the doctor's note is part of the review)
    def thread(self, appt: ClinicalAppointment) -> dict[str, Any]:
        referral = self.referral(appt.referral_id)
        status = _APPOINTMENT_STATUS.get(referral.status if referral else "", "pending_review")
        reviewed = _history_at(referral, _REVIEWED) if referral else None
        patient = self.session.get(Patient, appt.patient_id)
        patient_name = f"{patient.first_name} {patient.last_name}" if patient else "Patient"
        messages = [
            _message(
                appt.id,
                0,
                "system",
                CARE_TEAM,
                "Care Team",
                f"We received your {appt.condition} intake. A licensed physician will review it shortly.",
                appt.submitted_at,
            )
        ]
        participants = [
            {"type": "patient", "name": patient_name[:200], "role": "Patient"},
            {"type": "system", "name": CARE_TEAM, "role": "Care Team"},
        ]
        thread_status = "awaiting_clinician"
        if reviewed is not None and status in ("approved", "completed", "denied"):
            participants.insert(0, {"type": "doctor", "name": SANDBOX_PHYSICIAN, "role": "Physician"})
            if status == "denied":
                body = (
                    "After reviewing your intake, I am not able to prescribe this treatment for you. "
                    "Please see the details in your account and reach out with any questions."
                )
            else:
                med = PRESCRIBED.get(appt.product_category, PRESCRIBED["trt-cream"])
                body = (
                    f"I reviewed your intake and approved your treatment. I prescribed {med['name']}, "
                    f"{med['dosage']}. Your pharmacy will ship it shortly."
                )
            messages.append(_message(appt.id, 1, "doctor", SANDBOX_PHYSICIAN, "Physician", body, reviewed))
            thread_status = "doctor_reviewed"
        last = messages[-1]
        preview = last["body"] if len(last["body"]) <= 100 else last["body"][:100] + "..."
        return {
            "thread_id": "thr_" + appt.id.removeprefix("appt_"),
            "appointment_id": appt.id,
            "subject": f"{appt.condition} consultation"[:200],
            "status": thread_status,
            "participants": participants,
            "last_message_at": last["created_at"],
            "last_message_preview": preview,
            "created_at": iso(appt.submitted_at),
            "message_count": len(messages),
            "messages": messages,
        }

    # --- transactions
    @staticmethod
    def transaction(txn: ClinicalTransaction, partner_reference: str | None = None) -> dict[str, Any]:
        return {
            "transaction_id": txn.id,
            "patient_id": txn.patient_id,
            "partner_reference": partner_reference or txn.patient_id,
            "appointment_id": txn.appointment_id,
            "referral_id": txn.referral_id,
            "type": txn.type,
            "status": txn.status,
            "amount_cents": txn.amount_cents,
            "currency": txn.currency,
            "description": txn.description,
            "line_items": list(txn.line_items),
            "payment_method": (
                {"type": "card", "brand": txn.card_brand, "last4": txn.card_last4} if txn.card_last4 else None
            ),
            "stripe_payment_intent_id": txn.payment_intent_id,
            "refund": (
                {
                    "amount_cents": txn.refund_amount_cents,
                    "reason": txn.refund_reason or "requested_by_customer",
                    "refunded_at": iso(txn.refunded_at),
                }
                if txn.refund_amount_cents
                else None
            ),
            "created_at": iso(txn.created_at),
        }


def _message(
    appt_id: str, n: int, sender_type: str, name: str, role: str, body: str, at: datetime
) -> dict[str, Any]:
    return {
        "message_id": f"msg_{appt_id.removeprefix('appt_')}{n:02d}",
        "sender_type": sender_type,
        "sender_name": name,
        "sender_role": role,
        "channel": "portal",
        "body": body,
        "attachments": [],
        "status": "delivered",
        "read_at": None,
        "created_at": iso(at),
    }


# ----------------------------------------------------------------------------- service


@dataclass(frozen=True)
class PatientFilters:
    status: str | None = None
    product_category: str | None = None
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


class ClinicalService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.cursors = CursorCodec(state.box.subkey("cursor"))

    # --- helpers
    @staticmethod
    def _actor(partner: AuthenticatedPartner) -> audit.Actor:
        return audit.Actor(uid=partner.id, role="partner", email=None)

    def _viewed(
        self,
        session: Session,
        partner: AuthenticatedPartner,
        operation: str,
        entity_type: str,
        entity_id: str,
        patient_id: str,
        summary: str,
        parent: str | None = None,
        category: str = "phi_view",
    ) -> None:
        audit.record(
            session,
            action="phi.viewed",
            category=category,
            entity_type=entity_type,
            entity_id=entity_id,
            parent_entity_id=parent,
            patient_id=patient_id,
            partner_id=partner.id,
            actor=self._actor(partner),
            source_name=operation,
            summary=summary,
        )

    @staticmethod
    def _patient(session: Session, partner: AuthenticatedPartner, patient_id: str) -> Patient:
        patient = session.get(Patient, patient_id)
        if patient is None or (
            patient.partner_id != partner.id and not faults.active("cross_partner_patient_read")
        ):
            raise not_found("patient")
        return patient

    @staticmethod
    def _now(partner: AuthenticatedPartner) -> datetime:
        return clock.partner_now(partner.clock_offset_seconds)

    # --- patients
    def list_patients(
        self, partner: AuthenticatedPartner, filters: PatientFilters, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        digest = filter_digest("patients:" + partner.id, filters.as_dict())
        after = self.cursors.decode(cursor, digest) if cursor else None
        conds: list[Any] = [Patient.partner_id == partner.id]
        if filters.status and filters.status != "active":
            conds.append(
                Patient.id.is_(None)
            )  # every sandbox profile is active: enrollment creates it complete
        if filters.product_category:
            conds.append(
                exists().where(
                    and_(
                        ClinicalAppointment.patient_id == Patient.id,
                        ClinicalAppointment.product_category == filters.product_category,
                    )
                )
            )
        if filters.search:
            term = filters.search.lower()
            full = func.lower(Patient.first_name + " " + Patient.last_name)
            conds.append(
                or_(
                    func.lower(Patient.first_name).contains(term, autoescape=True),
                    func.lower(Patient.last_name).contains(term, autoescape=True),
                    full.contains(term, autoescape=True),
                    func.lower(Patient.email).contains(term, autoescape=True),
                )
            )
        if filters.created_after:
            conds.append(Patient.created_at > filters.created_after)
        if filters.created_before:
            conds.append(Patient.created_at < filters.created_before)
        with self.state.db.session() as session:
            rows, has_more = newest_first_page(session, Patient, conds, limit, after)
            view = ClinicalView(session)
            items = [view.patient_summary(p) for p in rows]
            for p in rows:
                self._viewed(session, partner, "listPatients", "patient", p.id, p.id, "Patient listed")
        next_cursor = (
            self.cursors.encode(rows[-1].created_at, rows[-1].id, digest) if has_more and rows else None
        )
        return items, next_cursor

    def get_patient(self, partner: AuthenticatedPartner, patient_id: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            patient = self._patient(session, partner, patient_id)
            out = ClinicalView(session).patient(patient, self._now(partner))
            self._viewed(
                session, partner, "getPatient", "patient", patient.id, patient.id, "Patient profile viewed"
            )
        return out

    def list_appointments(
        self,
        partner: AuthenticatedPartner,
        patient_id: str,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        digest = filter_digest(f"appointments:{partner.id}:{patient_id}", {"status": status})
        after = self.cursors.decode(cursor, digest) if cursor else None
        with self.state.db.session() as session:
            patient = self._patient(session, partner, patient_id)
            view = ClinicalView(session)
            appts = view.appointments_of(patient.id)  # newest first; status is derived, so filter here
            if status:
                appts = [a for a in appts if view.appointment_status(a) == status]
            if after is not None:
                t, aid = after
                appts = [a for a in appts if a.created_at < t or (a.created_at == t and a.id < aid)]
            has_more = len(appts) > limit
            appts = appts[:limit]
            items = [view.appointment(a, full=False) for a in appts]
            for a in appts:
                self._viewed(
                    session,
                    partner,
                    "listPatientAppointments",
                    "appointment",
                    a.id,
                    patient.id,
                    "Appointment listed",
                    parent=patient.id,
                )
        next_cursor = (
            self.cursors.encode(appts[-1].created_at, appts[-1].id, digest) if has_more and appts else None
        )
        return items, next_cursor

    def get_appointment(self, partner: AuthenticatedPartner, appointment_id: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            appt = session.get(ClinicalAppointment, appointment_id)
            if appt is None or appt.partner_id != partner.id:
                raise not_found("appointment")
            out = ClinicalView(session).appointment(appt, full=True)
            self._viewed(
                session,
                partner,
                "getAppointment",
                "appointment",
                appt.id,
                appt.patient_id,
                "Appointment viewed",
                parent=appt.patient_id,
            )
        return out

    def get_intake(
        self, partner: AuthenticatedPartner, patient_id: str, appointment_id: str | None
    ) -> dict[str, Any]:
        with self.state.db.session() as session:
            patient = self._patient(session, partner, patient_id)
            view = ClinicalView(session)
            if appointment_id is not None:
                appt = session.get(ClinicalAppointment, appointment_id)
                if appt is None or appt.partner_id != partner.id or appt.patient_id != patient.id:
                    raise not_found("appointment")
            else:
                # C-021: the most recent appointment with a submitted intake (a partner-submitted
                # prescription's appointment has none and must not hide the enrollment's)
                appt = next(
                    (a for a in view.appointments_of(patient.id) if view.intake_of(a) is not None), None
                )
            intake = view.intake_of(appt) if appt is not None else None
            if appt is None or intake is None:
                raise ApiError(
                    "INTAKE_NOT_AVAILABLE",
                    "Intake responses have not been submitted for this appointment.",
                    {"parameter": "appointment_id"},
                )
            out = {
                "patient_id": patient.id,
                "appointment_id": appt.id,
                "form_title": appt.form_title,
                "submitted_at": iso(intake.submitted_at),
                "responses": [
                    {
                        "question": a.get("question_text") or a.get("question_id") or "Question",
                        "answer": a.get("answer", ""),
                        "category": a.get("category") or "other",
                    }
                    for a in intake.answers
                ],
            }
            self._viewed(
                session,
                partner,
                "getPatientIntake",
                "intake",
                appt.id,
                patient.id,
                "Intake responses viewed",
                parent=patient.id,
            )
        return out

    def list_messages(
        self, partner: AuthenticatedPartner, patient_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], int, str | None]:
        digest = filter_digest(f"threads:{partner.id}:{patient_id}", {})
        after = self.cursors.decode(cursor, digest) if cursor else None
        with self.state.db.session() as session:
            patient = self._patient(session, partner, patient_id)
            view = ClinicalView(session)
            appts = [a for a in view.appointments_of(patient.id) if a.prescription_id is None]
            total = len(appts)
            if after is not None:
                t, aid = after
                appts = [a for a in appts if a.created_at < t or (a.created_at == t and a.id < aid)]
            has_more = len(appts) > limit
            appts = appts[:limit]
            threads = [view.thread(a) for a in appts]
            for thread in threads:
                self._viewed(
                    session,
                    partner,
                    "listPatientMessages",
                    "message_thread",
                    thread["thread_id"],
                    patient.id,
                    "Message thread viewed",
                    parent=thread["appointment_id"],
                    category="message",
                )
        next_cursor = (
            self.cursors.encode(appts[-1].created_at, appts[-1].id, digest) if has_more and appts else None
        )
        return threads, total, next_cursor

    def list_transactions(
        self,
        partner: AuthenticatedPartner,
        patient_id: str,
        status: str | None,
        created_after: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
        digest = filter_digest(
            f"transactions:{partner.id}:{patient_id}",
            {"status": status, "created_after": created_after.isoformat() if created_after else None},
        )
        after = self.cursors.decode(cursor, digest) if cursor else None
        with self.state.db.session() as session:
            patient = self._patient(session, partner, patient_id)
            all_txns = list(
                session.scalars(
                    select(ClinicalTransaction).where(ClinicalTransaction.patient_id == patient.id)
                )
            )
            paid = sum(t.amount_cents for t in all_txns if t.status in ("succeeded", "refunded"))
            refunded = sum(t.refund_amount_cents or 0 for t in all_txns)
            currency = all_txns[0].currency if all_txns else "USD"
            conds: list[Any] = [ClinicalTransaction.patient_id == patient.id]
            if status:
                conds.append(ClinicalTransaction.status == status)
            if created_after:
                conds.append(ClinicalTransaction.created_at > created_after)
            rows, has_more = newest_first_page(session, ClinicalTransaction, conds, limit, after)
            reference = self._reference(session, patient)
            items = [ClinicalView.transaction(t, reference) for t in rows]
            for t in rows:
                self._viewed(
                    session,
                    partner,
                    "listPatientTransactions",
                    "transaction",
                    t.id,
                    patient.id,
                    "Transaction listed",
                    parent=t.appointment_id,
                    category="payment",
                )
        summary = {"total_paid_cents": paid, "total_refunded_cents": refunded, "currency": currency}
        next_cursor = (
            self.cursors.encode(rows[-1].created_at, rows[-1].id, digest) if has_more and rows else None
        )
        return items, summary, next_cursor

    @staticmethod
    def _reference(session: Session, patient: Patient) -> str:
        if patient.referral_id:
            referral = session.get(Referral, patient.referral_id)
            if referral is not None:
                return referral.partner_reference
        return patient.id

    def refund(
        self, partner: AuthenticatedPartner, transaction_id: str, amount_cents: int | None, reason: str | None
    ) -> dict[str, Any]:
        with self.state.db.session() as session:
            txn = session.get(ClinicalTransaction, transaction_id, with_for_update=True)
            if txn is None or txn.partner_id != partner.id:
                raise not_found("transaction")
            return refund_transaction(
                session,
                self.state,
                partner,
                txn,
                amount_cents,
                reason,
                self._now(partner),
                self._actor(partner),
                "refundSandboxTransaction",
            )

    def get_transaction(self, partner: AuthenticatedPartner, transaction_id: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            txn = session.get(ClinicalTransaction, transaction_id)
            if txn is None or txn.partner_id != partner.id:
                raise not_found("transaction")
            patient = session.get(Patient, txn.patient_id)
            assert patient is not None
            out = ClinicalView.transaction(txn, self._reference(session, patient))
            self._viewed(
                session,
                partner,
                "getTransaction",
                "transaction",
                txn.id,
                txn.patient_id,
                "Transaction viewed",
                parent=txn.appointment_id,
                category="payment",
            )
        return out


DEFAULT_REFUND_REASON = "Sandbox refund"


def refund_transaction(
    session: Session,
    state: AppState | None,
    partner: Any,
    txn: ClinicalTransaction,
    amount_cents: int | None,
    reason: str | None,
    now: datetime,
    actor: audit.Actor,
    source_name: str,
) -> dict[str, Any]:
    """Refund (part of) a succeeded payment; emits transaction.refunded; syncs the referral's payment when whole."""
    remaining = txn.amount_cents - (txn.refund_amount_cents or 0)
    if txn.status != "succeeded" or txn.type in ("refund",) or remaining <= 0:
        raise ApiError(
            "REFUND_NOT_ALLOWED",
            f"Transaction {txn.id} is {txn.status}; only a succeeded payment can be refunded.",
            {"transaction_id": txn.id, "status": txn.status},
        )
    amount = remaining if amount_cents is None else amount_cents
    if amount > remaining:
        raise ApiError(
            "REFUND_NOT_ALLOWED",
            f"amount_cents {amount} is more than the {remaining} cents that remain refundable.",
            {"transaction_id": txn.id, "remaining_cents": remaining, "field": "/amount_cents"},
        )
    before = txn.status
    reason = reason or DEFAULT_REFUND_REASON
    txn.refund_amount_cents = (txn.refund_amount_cents or 0) + amount
    txn.refund_reason = reason
    txn.refunded_at = now
    if txn.refund_amount_cents >= txn.amount_cents:
        txn.status = "refunded"
    referral = ClinicalView(session).referral(txn.referral_id)
    if (
        state is not None
        and txn.status == "refunded"
        and referral is not None
        and referral.payment is not None
    ):
        from server.services.transitions import transition_payment

        if state.lifecycles.payment.is_legal(referral.payment.status, "refunded"):
            transition_payment(
                session,
                state.lifecycles,
                referral,
                "refunded",
                now,
                partner_tier=partner.tier,
                values={"refunded_at": now},
            )
    session.flush()
    audit.record(
        session,
        action="payment.refunded",
        category="payment",
        entity_type="transaction",
        entity_id=txn.id,
        parent_entity_id=txn.appointment_id,
        patient_id=txn.patient_id,
        partner_id=txn.partner_id,
        actor=actor,
        source_name=source_name,
        summary=f"Refunded {amount} {txn.currency} cents",
        diff=[
            {"field": "status", "before": before, "after": txn.status},
            {
                "field": "refund.amount_cents",
                "before": txn.refund_amount_cents - amount,
                "after": txn.refund_amount_cents,
            },
        ],
        phi_redacted=False,
        at=now,
    )
    patient = session.get(Patient, txn.patient_id)
    reference = ClinicalService._reference(session, patient) if patient is not None else txn.patient_id
    body = ClinicalView.transaction(txn, reference)
    if partner.tier == "clinical":
        emit(
            session,
            txn.partner_id,
            "transaction.refunded",
            now,
            referral,
            {
                "transaction_id": txn.id,
                "patient_id": txn.patient_id,
                "appointment_id": txn.appointment_id,
                "referral_id": txn.referral_id,
            },
            {
                "transaction": body,
                "refund_amount_cents": amount,
                "currency": txn.currency,
                "reason": reason,
                "occurred_at": iso(now),
            },
            partner_reference=reference,
        )
    return body


SANDBOX_PHYSICIAN_NPI = "1679576722"
# the synthetic referral of a partner prescription carries its order: referral status -> prescription fulfillment
_RX_PROGRESS = {
    "awaiting_shipment": "dispatched",
    "shipped": "shipped",
    "in_transit": "shipped",
    "out_for_delivery": "shipped",
    "delivered": "delivered",
}
DIAGNOSIS_CODES = {"trt-cream": ["E29.1"], "peptides": ["M79.1"]}


def on_referral_transition(
    session: Session, referral: Referral, to_status: str, at: datetime, partner_tier: str
) -> None:
    """Hook of transition_referral: clinical partners get appointment.prescription_signed when the physician
    approves (the prescription the appointment then shows, seed 002 §12.2)."""
    if to_status in _RX_PROGRESS:
        # every partner-submitted prescription of this referral ships with it (one pharmacy order, P-015),
        # whichever patient mode named the referral (C-035)
        for rx in session.scalars(
            select(PartnerPrescription).where(PartnerPrescription.referral_id == referral.id)
        ):
            if rx.fulfillment_status != _RX_PROGRESS[to_status]:
                rx.fulfillment_status = _RX_PROGRESS[to_status]
                rx.updated_at = at
        appt_rx = (
            session.get(ClinicalAppointment, referral.appointment_id) if referral.appointment_id else None
        )
        if appt_rx is not None and appt_rx.prescription_id:
            return
    if to_status != "approved" or partner_tier != "clinical" or not referral.appointment_id:
        return
    appt = session.get(ClinicalAppointment, referral.appointment_id)
    patient = session.get(Patient, appt.patient_id) if appt is not None else None
    if appt is None or patient is None or appt.prescription_id is not None:
        return
    med = PRESCRIBED.get(appt.product_category, PRESCRIBED["trt-cream"])
    state_code = (patient.state or "FL").upper()
    data = {
        "status": "approved",
        "condition": appt.condition,
        "prescription": {
            "prescription_id": "rx_" + appt.id.removeprefix("appt_"),
            "appointment_id": appt.id,
            "status": "signed",
            "prescriber": {
                "name": SANDBOX_PHYSICIAN,
                "npi": SANDBOX_PHYSICIAN_NPI,
                "license_state": state_code,
                "dea_number": None,
            },
            "patient": {
                "first_name": patient.first_name,
                "last_name": patient.last_name,
                "date_of_birth": patient.date_of_birth.isoformat() if patient.date_of_birth else "1900-01-01",
            },
            "medications": [
                {
                    "name": med["name"],
                    "ndc": None,
                    "dosage_instructions": med["dosage"],
                    "quantity": med["quantity"],
                    "quantity_unit": med["quantity_unit"][:50],
                    "refills": med["repeats"],
                    "days_supply": 30,
                }
            ],
            "diagnosis_codes": DIAGNOSIS_CODES.get(appt.product_category, []),
            "notes": None,
            "signed_at": iso(at),
            "valid_until": iso(at + timedelta(days=365)),
        },
        "occurred_at": iso(at),
    }
    audit.record(
        session,
        action="prescription.signed",
        category="prescription",
        entity_type="prescription",
        entity_id=data["prescription"]["prescription_id"],
        parent_entity_id=appt.id,
        patient_id=patient.id,
        partner_id=appt.partner_id,
        actor=audit.Actor(uid="sandbox-physician", role="doctor"),
        source="simulation",
        source_name="transition_referral",
        summary="Sandbox physician approved the case and signed the prescription",
        at=at,
    )
    emit(
        session,
        appt.partner_id,
        "appointment.prescription_signed",
        at,
        referral,
        {"appointment_id": appt.id, "patient_id": patient.id, "referral_id": referral.id},
        data,
    )


def on_payment_transition(
    session: Session, referral: Referral, to_status: str, at: datetime, partner_tier: str
) -> None:
    """Hook of transition_payment: when the referral's payment is refunded (a denial or cancellation after payment),
    the enrollment transaction is refunded too, with its transaction.refunded event."""
    if to_status != "refunded" or not referral.appointment_id:
        return
    txn = session.scalar(
        select(ClinicalTransaction).where(
            ClinicalTransaction.appointment_id == referral.appointment_id,
            ClinicalTransaction.type == "enrollment_payment",
            ClinicalTransaction.status == "succeeded",
        )
    )
    if txn is None:
        return
    partner = _TierOnly(partner_tier)
    reason = "Case denied by the reviewing physician" if referral.status == "denied" else "Referral cancelled"
    refund_transaction(
        session,
        None,
        partner,
        txn,
        None,
        reason,
        at,
        audit.Actor(uid="system", role="system"),
        "transition_payment",
    )


@dataclass(frozen=True)
class _TierOnly:
    tier: str


_PRESCRIPTION_EVENTS = (
    "approved",
    "awaiting_shipment",
    "shipped",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "delivery_exception",
)
_TRACKING_EVENTS = ("shipped", "in_transit", "out_for_delivery", "delivered", "delivery_exception")
_PATIENT_EVENTS = ("enrolled", "pending_review", "payment_due", "payment_complete", "denied", "cancelled")


def expanded_referral_data(
    session: Session, referral: Referral, to_status: str, at: datetime
) -> dict[str, Any]:
    """The PHI a clinical partner's referral.* events add (seed 002 §12.1): patient (name, email), the signed
    prescription once approved, and the tracking number on shipping events. ``to_status`` is the referral status,
    or payment_due / payment_complete for payment events."""
    out: dict[str, Any] = {}
    patient = session.get(Patient, referral.patient_id) if referral.patient_id else None
    if patient is None:
        return out
    if to_status in _PATIENT_EVENTS or to_status in _PRESCRIPTION_EVENTS:
        out["patient"] = {
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "email": patient.email,
        }
    if to_status in _PRESCRIPTION_EVENTS and referral.appointment_id:
        appt = session.get(ClinicalAppointment, referral.appointment_id)
        if appt is not None:
            rx = session.get(PartnerPrescription, appt.prescription_id) if appt.prescription_id else None
            if rx is not None:
                prescriber = session.get(Prescriber, rx.prescriber_id)
                out["prescription"] = {
                    "rx_id": rx.rx_id,
                    "medications": [
                        {
                            "name": m["product_name"],
                            "dosage": m["dosage_instructions"][:500],
                            "quantity": m["quantity"],
                            "repeats": m["repeats"],
                        }
                        for m in rx.medications
                    ],
                    "prescriber": f"Dr. {prescriber.first_name} {prescriber.last_name}"[:200]
                    if prescriber
                    else "Partner prescriber",
                    "signed_at": iso(rx.created_at),
                }
            else:
                signed = session.scalar(
                    select(ReferralStatusHistory.at)
                    .where(
                        ReferralStatusHistory.referral_id == referral.id,
                        ReferralStatusHistory.status == "approved",
                    )
                    .order_by(ReferralStatusHistory.id)
                    .limit(1)
                )
                signed = signed or at
                med = PRESCRIBED.get(appt.product_category, PRESCRIBED["trt-cream"])
                out["prescription"] = {
                    "rx_id": f"RX-{signed:%Y}-{signed:%m%d}-{_digits(appt.id, 3)}",
                    "medications": [
                        {
                            "name": med["name"],
                            "dosage": med["dosage"],
                            "quantity": med["quantity"],
                            "repeats": med["repeats"],
                        }
                    ],
                    "prescriber": SANDBOX_PHYSICIAN,
                    "signed_at": iso(signed),
                }
    if (
        to_status in _TRACKING_EVENTS
        and referral.fulfillment is not None
        and referral.fulfillment.tracking_number
    ):
        out["tracking_number"] = referral.fulfillment.tracking_number
    return out
