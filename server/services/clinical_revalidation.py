"""Asynchronous re-validation of an accepted partner-submitted prescription (seed 002 §12.2, prescription.rejected).

POST /partner/prescriptions validates synchronously, so v1 never sends prescription.rejected from that operation.
This is the reserved path: the checks of the operation's steps 3 to 7 that depend on state which can change after
acceptance (the prescriber still exists and is active, one unexpired license still matches the patient's
jurisdiction, every medication is still in the catalog, available there, and signable by that prescriber) run
again on the stored prescription. The first failing check rejects it: an audit record and the prescription.rejected
event with that check's error code and message, in the caller's transaction. The sandbox event trigger uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from server import audit
from server.auth import AuthenticatedPartner
from server.clock import iso
from server.db.models import Event, Patient, Referral
from server.db.models_clinical import PartnerPrescription
from server.errors import ApiError
from server.services import clinical
from server.services.clinical_prescriptions import PrescriptionService


@dataclass(frozen=True)
class Rejection:
    error_code: str
    error_message: str
    event: Event


def failed_check(
    service: PrescriptionService,
    session: Session,
    partner: AuthenticatedPartner,
    rx: PartnerPrescription,
    at: datetime,
) -> ApiError | None:
    """The first of steps 3-7 the stored prescription fails now, or None when it still passes them all."""
    try:
        prescriber = service._prescriber(session, partner, rx.prescriber_id)
        patient = session.get(Patient, rx.patient_id)
        if patient is None or patient.partner_id != partner.id:
            raise clinical.not_found("patient")
        country, jurisdiction = service._location(session, patient)
        service._license(prescriber, country, jurisdiction, at.date())
        service._medications({"medications": rx.medications}, country, jurisdiction, prescriber)
    except ApiError as error:
        return error
    return None


def revalidate(
    session: Session,
    service: PrescriptionService,
    partner: AuthenticatedPartner,
    rx: PartnerPrescription,
    at: datetime,
) -> Rejection | None:
    """Re-run the checks on ``rx``; when one fails, record the rejection and emit prescription.rejected."""
    error = failed_check(service, session, partner, rx, at)
    if error is None:
        return None
    referral = session.get(Referral, rx.referral_id)
    audit.record(
        session,
        action="prescription.rejected",
        category="prescription",
        entity_type="prescription",
        entity_id=rx.id,
        parent_entity_id=rx.appointment_id,
        patient_id=rx.patient_id,
        partner_id=partner.id,
        actor=audit.Actor(uid="system", role="system"),
        source="simulation",
        source_name="revalidate_prescription",
        summary=f"Partner-signed prescription rejected on re-validation ({error.code})",
        at=at,
    )
    event = clinical.emit(
        session,
        partner.id,
        "prescription.rejected",
        at,
        referral,
        {"appointment_id": rx.appointment_id, "patient_id": rx.patient_id, "referral_id": rx.referral_id},
        {
            "appointment_id": rx.appointment_id,
            "prescription_id": rx.id,
            "error_code": error.code,
            "error_message": error.message[:1000],
            "occurred_at": iso(at),
        },
        partner_reference=rx.partner_reference
        or (referral.partner_reference if referral is not None else None),
        metadata=rx.metadata_ or {},
    )
    return Rejection(error.code, error.message, event)
