"""POST /partner/prescriptions: pre-signed prescriptions from a clinical partner's own prescribers (seed 002 §11.1.5).

The request validator has already applied the schema steps of x-validation-order (MISSING_PRESCRIBER_ID,
MEDICATIONS_REQUIRED, MEDICATION_INVALID, INVALID_PARTNER_REFERENCE, INVALID_BODY). This service runs the rest, in
order, each step short-circuiting: PATIENT_REFERRAL_REQUIRED (exactly one patient mode), SANDBOX_SCENARIO_NOT_ALLOWED
(production), DUPLICATE_REFERENCE / replay, PRESCRIBER_NOT_FOUND, PRESCRIBER_INACTIVE, PATIENT_NOT_FOUND,
REFERRAL_NOT_FOUND, INLINE_PATIENT_INVALID, PRESCRIBER_LICENSE_MISMATCH, MEDICATION_NOT_FOUND,
MEDICATION_NOT_AVAILABLE_IN_JURISDICTION, CONTROLLED_SUBSTANCE_REQUIRES_DEA. Then, in one transaction: the patient
(inline mode), the synthetic referral (inline mode), the appointment in doctor_reviewed, the prescription, the
audit records and the outbox events (prescription.received; patient.created / patient.updated for inline patients).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import audit, clock, context, ids
from server.auth import AuthenticatedPartner
from server.clock import iso
from server.db.models import Patient, Referral, ReferralStatusHistory
from server.db.models_clinical import ClinicalAppointment, PartnerPrescription, PatientAddress, Prescriber
from server.errors import ApiError
from server.idempotency import fingerprint, replay_of
from server.services import clinical
from server.services.clinical_catalog import CATALOG, Medication, lookup
from server.services.clinical_prescribers import prescriber_not_found
from server.state import AppState

MODES = ("patient_id", "referral_id", "inline_patient")
INLINE_SOURCE = "partner_prescriber_inline"


@dataclass
class SubmitResult:
    prescription: dict[str, Any]
    replayed: bool


def serialize(rx: PartnerPrescription) -> dict[str, Any]:
    out: dict[str, Any] = {
        "appointment_id": rx.appointment_id,
        "prescription_id": rx.id,
        "rx_id": rx.rx_id,
        "referral_id": rx.referral_id,
        "patient_id": rx.patient_id,
        "prescriber_id": rx.prescriber_id,
    }
    if rx.partner_reference is not None:
        out["partner_reference"] = rx.partner_reference
    out["fulfillment"] = {"status": rx.fulfillment_status}
    out["medications"] = [dict(m) for m in rx.medications]
    out["created_at"] = iso(rx.created_at)
    return out


def _reject(error_code: str, message: str, /, **details: Any) -> ApiError:
    return ApiError(error_code, message, details or None)


@dataclass
class _Patient:
    """The resolved patient: an existing row, or the inline block to create / reuse."""

    row: Patient | None
    country: str
    jurisdiction: str
    inline: dict[str, Any] | None = None


class PrescriptionService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    def submit(self, partner: AuthenticatedPartner, body: dict[str, Any]) -> SubmitResult:
        modes = [m for m in MODES if body.get(m) is not None]
        if len(modes) != 1:
            raise _reject(
                "PATIENT_REFERRAL_REQUIRED",
                "Send exactly one of patient_id, referral_id or inline_patient.",
                field="/" + (modes[1] if len(modes) > 1 else "patient_id"),
                modes_sent=modes,
            )
        if self.state.settings.environment == "production":
            for i, med in enumerate(body["medications"]):
                entry = CATALOG.get(med["code"])
                if entry is not None and entry.sandbox_only:
                    raise _reject(
                        "SANDBOX_SCENARIO_NOT_ALLOWED",
                        f"{med['code']} is a sandbox test code.",
                        field=f"/medications/{i}/code",
                    )
        digest = fingerprint(body)
        reference = body.get("partner_reference")
        if reference is not None:
            replay = self._replay(partner, reference, digest)
            if replay is not None:
                return replay
        try:
            with self.state.db.session() as session:
                out = self._create(session, partner, body, modes[0], digest)
        except IntegrityError:
            if reference is None:
                raise
            replay = self._replay(partner, reference, digest)
            if replay is None:
                raise
            return replay
        return SubmitResult(out, replayed=False)

    def _replay(self, partner: AuthenticatedPartner, reference: str, digest: str) -> SubmitResult | None:
        with self.state.db.session() as session:
            rx = replay_of(
                session,
                PartnerPrescription,
                partner.id,
                reference,
                digest,
                noun="prescription",
                id_key="prescription_id",
            )
            return SubmitResult(serialize(rx), replayed=True) if rx is not None else None

    # ------------------------------------------------------------------ validation steps 3-7

    def _prescriber(self, session: Session, partner: AuthenticatedPartner, prescriber_id: str) -> Prescriber:
        prescriber = session.get(Prescriber, prescriber_id)
        if prescriber is None or prescriber.partner_id != partner.id:
            raise prescriber_not_found()
        if prescriber.status != "active":
            raise _reject(
                "PRESCRIBER_INACTIVE",
                f"Prescriber {prescriber_id} is inactive.",
                field="/prescriber_id",
                prescriber_id=prescriber_id,
            )
        return prescriber

    @staticmethod
    def _location(session: Session, patient: Patient) -> tuple[str, str]:
        addr = session.get(PatientAddress, patient.id)
        if addr is not None:
            return addr.country, addr.state
        return patient.country or "US", patient.state or ""

    def _patient(
        self, session: Session, partner: AuthenticatedPartner, body: dict[str, Any], mode: str
    ) -> _Patient:
        if mode == "patient_id":
            patient = session.get(Patient, body["patient_id"])
            if patient is None or patient.partner_id != partner.id:
                raise clinical.not_found("patient")
            return _Patient(patient, *self._location(session, patient))
        if mode == "referral_id":
            referral = session.get(Referral, body["referral_id"])
            if referral is None or referral.partner_id != partner.id:
                raise _reject("REFERRAL_NOT_FOUND", "The referral was not found.", parameter="referral_id")
            patient = session.get(Patient, referral.patient_id) if referral.patient_id else None
            if patient is None:
                raise _reject(
                    "PATIENT_NOT_FOUND",
                    "No patient has enrolled through this referral yet.",
                    field="/referral_id",
                )
            return _Patient(patient, *self._location(session, patient))
        context.raise_deferred()  # INLINE_PATIENT_INVALID from the schema step, judged here (x-error-deferred)
        inline = body["inline_patient"]
        self._check_inline(inline)
        return _Patient(None, inline["address"]["country"], inline["address"]["jurisdiction"], inline)

    @staticmethod
    def _check_inline(inline: dict[str, Any]) -> None:
        """What the schema cannot say: a date of birth in the past (after 1900)."""
        dob = date.fromisoformat(inline["dob"])
        if dob >= date.today() or dob.year < 1900:
            raise _reject(
                "INLINE_PATIENT_INVALID",
                "inline_patient.dob must be a past date.",
                field="/inline_patient/dob",
            )

    @staticmethod
    def _license(prescriber: Prescriber, country: str, jurisdiction: str, today: date) -> dict[str, Any]:
        for lic in prescriber.licenses:
            if (
                country in ("US", "CA")
                and lic["country"] == country
                and lic["jurisdiction"] == jurisdiction
                and date.fromisoformat(lic["expires_at"]) > today
            ):
                return lic
        raise _reject(
            "PRESCRIBER_LICENSE_MISMATCH",
            f"Prescriber {prescriber.id} holds no unexpired license for {country}-{jurisdiction}.",
            field="/prescriber_id",
            country=country,
            jurisdiction=jurisdiction,
        )

    @staticmethod
    def _medications(
        body: dict[str, Any], country: str, jurisdiction: str, prescriber: Prescriber
    ) -> list[Medication]:
        meds: list[Medication] = []
        for i, item in enumerate(body["medications"]):
            med = lookup(item["code"])
            if med is None:
                raise _reject(
                    "MEDICATION_NOT_FOUND",
                    f"{item['code']} is not in the medication catalog.",
                    field=f"/medications/{i}/code",
                    code=item["code"],
                )
            meds.append(med)
        for i, med in enumerate(meds):
            if not med.available_in(country, jurisdiction):
                raise _reject(
                    "MEDICATION_NOT_AVAILABLE_IN_JURISDICTION",
                    f"{med.code} is not available in {country}-{jurisdiction}.",
                    field=f"/medications/{i}/code",
                    code=med.code,
                    country=country,
                    jurisdiction=jurisdiction,
                )
        for i, med in enumerate(meds):
            if med.schedule and country == "US" and not prescriber.dea_number:
                raise _reject(
                    "CONTROLLED_SUBSTANCE_REQUIRES_DEA",
                    f"{med.code} is Schedule {med.schedule}; prescriber {prescriber.id} has no dea_number.",
                    field=f"/medications/{i}/code",
                    code=med.code,
                    schedule=med.schedule,
                )
        return meds

    # ------------------------------------------------------------------ create

    def _create(
        self, session: Session, partner: AuthenticatedPartner, body: dict[str, Any], mode: str, digest: str
    ) -> dict[str, Any]:
        prescriber = self._prescriber(session, partner, body["prescriber_id"])
        resolved = self._patient(session, partner, body, mode)
        now = clock.partner_now(partner.clock_offset_seconds)
        license_ = self._license(prescriber, resolved.country, resolved.jurisdiction, now.date())
        meds = self._medications(body, resolved.country, resolved.jurisdiction, prescriber)

        stamp = int(now.timestamp() * 1000)
        prescription_id = f"partner_{stamp}_{secrets.token_hex(4)}"
        appointment_id = f"appt_partner_{stamp}_{secrets.token_hex(4)}"
        events: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        actor = audit.Actor(uid=partner.id, role="partner")

        if resolved.row is None:
            patient, referral, created, changed = self._inline(
                session, partner, resolved.inline or {}, now, meds
            )
            if created or changed:
                audit.patient_profile(
                    session,
                    created=created,
                    patient_id=patient.id,
                    partner_id=partner.id,
                    actor=actor,
                    fields=clinical.PATIENT_FIELDS if created else changed,
                    phi_fields=clinical.PATIENT_FIELDS,
                    source_name="createPrescription",
                    summary="Patient created from inline_patient"
                    if created
                    else "Patient updated from inline_patient",
                    at=now,
                )
        else:
            patient = resolved.row
            referral_id = body.get("referral_id") or patient.referral_id
            referral = session.get(Referral, referral_id) if referral_id else None
            if referral is None:  # pragma: no cover - every patient came from a referral
                raise clinical.not_found("patient")
            created, changed = False, []

        if created:
            referral.appointment_id = appointment_id  # the synthetic referral exists for this appointment
        session.add(
            ClinicalAppointment(
                id=appointment_id,
                partner_id=partner.id,
                patient_id=patient.id,
                referral_id=referral.id,
                intake_submission_id=None,
                prescription_id=prescription_id,
                product_category=meds[0].product_category,
                condition=clinical.CONDITIONS.get(meds[0].product_category, meds[0].product_name)[:200],
                form_title="Partner-submitted prescription",
                submitted_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        medications = [
            {
                "code": med.code,
                "product_name": med.product_name,
                "quantity": item["quantity"],
                "dosage_instructions": item["dosage_instructions"],
                "repeats": item.get("repeats", 0),
                "schedule": med.schedule,
                "pharmacy_location_id": med.pharmacy_for(resolved.country),
            }
            for med, item in zip(meds, body["medications"], strict=True)
        ]
        rx = PartnerPrescription(
            id=prescription_id,
            partner_id=partner.id,
            partner_reference=body.get("partner_reference"),
            request_fingerprint=digest,
            appointment_id=appointment_id,
            rx_id="PRX-" + secrets.token_hex(6).upper(),
            referral_id=referral.id,
            patient_id=patient.id,
            prescriber_id=prescriber.id,
            medications=medications,
            notes=body.get("notes"),
            metadata_=dict(body.get("metadata") or {}),
            fulfillment_status="queued",
            created_at=now,
            updated_at=now,
        )
        rx_license = license_["license_number"]
        session.add(rx)
        session.flush()
        audit.record(
            session,
            action="prescription.received",
            category="prescription",
            entity_type="prescription",
            entity_id=rx.id,
            parent_entity_id=appointment_id,
            patient_id=patient.id,
            partner_id=partner.id,
            actor=actor,
            source_name="createPrescription",
            summary=f"Partner-signed prescription received (prescriber {prescriber.id}, license {rx_license})",
            at=now,
        )
        view = clinical.ClinicalView(session)
        reference = rx.partner_reference or referral.partner_reference
        if created:
            events.append(
                (
                    "patient.created",
                    {"patient_id": patient.id, "referral_id": referral.id},
                    {"patient": view.patient(patient, now), "occurred_at": iso(now)},
                )
            )
        elif changed:
            full = view.patient(patient, now)
            changes = {
                "patient_id": patient.id,
                **{f: full[f] for f in changed},
                "updated_at": full["updated_at"],
            }
            events.append(
                (
                    "patient.updated",
                    {"patient_id": patient.id, "referral_id": referral.id},
                    {"changed_fields": changed, "patient": changes, "occurred_at": iso(now)},
                )
            )
        events.append(
            (
                "prescription.received",
                {"appointment_id": appointment_id, "patient_id": patient.id, "referral_id": referral.id},
                {
                    "appointment_id": appointment_id,
                    "prescription_id": rx.id,
                    "rx_id": rx.rx_id,
                    "prescriber_id": prescriber.id,
                    "medications": medications,
                    "occurred_at": iso(now),
                },
            )
        )
        for event_type, top, data in events:
            clinical.emit(
                session,
                partner.id,
                event_type,
                now,
                referral,
                top,
                data,
                partner_reference=reference,
                # prescription.* echo the prescription's metadata (C-022); patient.* the referral's
                metadata=rx.metadata_ if event_type.startswith("prescription.") else None,
            )
        return serialize(rx)

    def _inline(
        self,
        session: Session,
        partner: AuthenticatedPartner,
        inline: dict[str, Any],
        now: datetime,
        meds: list[Medication],
    ) -> tuple[Patient, Referral, bool, list[str]]:
        """Reuse the partner's patient with this email (updating changed details), or create one + its referral."""
        addr = inline["address"]
        address = {
            "line1": addr["street"],
            "line2": addr.get("street2"),
            "city": addr["city"],
            "state": addr["jurisdiction"],
            "postal_code": addr["postal_code"],
            "country": addr["country"],
        }
        wanted = {
            "first_name": inline["first_name"],
            "last_name": inline["last_name"],
            "phone": inline.get("phone"),
            "date_of_birth": date.fromisoformat(inline["dob"]),
            "sex": inline["gender"],
        }
        existing = session.scalar(
            select(Patient)
            .where(Patient.partner_id == partner.id, func.lower(Patient.email) == inline["email"].lower())
            .order_by(Patient.created_at.desc())
            .limit(1)
        )
        if existing is not None and existing.referral_id:
            referral = session.get(Referral, existing.referral_id)
            if referral is not None:
                changed = [k for k, v in wanted.items() if getattr(existing, k) != v]
                for k in changed:
                    setattr(existing, k, wanted[k])
                row = session.get(PatientAddress, existing.id)
                current = clinical.ClinicalView(session).address(existing)
                if current != address:
                    if row is None:
                        session.add(PatientAddress(patient_id=existing.id, **address))
                    else:
                        for k, v in address.items():
                            setattr(row, k, v)
                    changed.append("address")
                    existing.state, existing.country = address["state"], address["country"]
                if changed:
                    existing.updated_at = now
                names = ["gender" if c == "sex" else c for c in changed]
                session.flush()
                return existing, referral, False, names
        referral = Referral(
            id=ids.referral_id(),
            partner_id=partner.id,
            partner_reference=f"rx-inline-{secrets.token_hex(6)}",
            product_category=meds[0].product_category,
            status="approved",
            metadata_={"source": INLINE_SOURCE},
            request_fingerprint="0" * 64,
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(days=7),
        )
        session.add(referral)
        session.flush()
        session.add(ReferralStatusHistory.entry(referral, "approved", now))
        patient = Patient(
            id=ids.patient_id(),
            partner_id=partner.id,
            referral_id=referral.id,
            email=inline["email"],
            state=address["state"],
            country=address["country"],
            created_at=now,
            updated_at=now,
            **wanted,
        )
        session.add(patient)
        session.flush()
        session.add(PatientAddress(patient_id=patient.id, **address))
        referral.patient_id = patient.id
        session.flush()
        return patient, referral, True, []
