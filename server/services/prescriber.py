"""Prescriber tier (seed 003): appointments a partner submits for physician review, their prescriptions and
pharmacy routing through the simulated pharmacy.

Every status change goes through the spec's x-lifecycle definitions (prescriber_appointment, pharmacy_routing) and
writes its webhook in the same transaction (outbox). Reads of PHI write audit records, as in the clinical tier.
Routing creates a medication order in the simulated pharmacy (server.pharmacy) for the network clinic; the fill
that the partner sees (prescription.filled, tracking) is read from that order and its shipment.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import audit, clock, ids
from server.auth import AuthenticatedPartner
from server.clock import iso
from server.cursor import CursorCodec, filter_digest, newest_first_page
from server.db.models import Event, Patient
from server.db.models_clinical import PatientAddress
from server.db.models_prescriber import PrescriberAppointment
from server.errors import ApiError
from server.idempotency import fingerprint, replay_of
from server.pharmacy import clinics as pharmacy_clinics
from server.pharmacy import simulation as pharmacy
from server.repositories import partners as partners_repo
from server.services import clinical
from server.services import prescriber_catalog as catalog
from server.services.simulation import Made
from server.state import AppState

SCENARIO_KEY = "sandbox_scenario"
PHI_PATIENT_FIELDS = ("email", "first_name", "last_name", "date_of_birth", "gender", "phone", "address")


def not_found(appointment_id: str) -> ApiError:
    return ApiError(
        "APPOINTMENT_NOT_FOUND",
        f"Appointment {appointment_id} was not found.",
        {"appointment_id": appointment_id},
    )


def _invalid_body(path: str, message: str) -> ApiError:
    return ApiError(
        "INVALID_BODY",
        f"{path.strip('/').replace('/', '.')} {message}.",
        {"field": path.strip("/").replace("/", "."), "errors": [{"path": path, "message": message}]},
    )


def network_pharmacy(pharmacy_id: str) -> catalog.NetworkPharmacy:
    found = catalog.PHARMACIES.get(pharmacy_id)
    if found is None:
        raise ApiError(
            "PHARMACY_NOT_FOUND",
            f"Pharmacy {pharmacy_id} was not found in the network.",
            {"pharmacy_id": pharmacy_id},
        )
    return found


def appointment_id() -> str:
    return "appt_" + secrets.token_hex(8)


def prescription_id() -> str:
    return "rx_" + secrets.token_hex(8)


def invoice_id() -> str:
    return "in_sandbox" + secrets.token_hex(8)


# ----------------------------------------------------------------------------- shaping


def prescription_view(appt: PrescriberAppointment, now: datetime, *, full: bool) -> dict[str, Any]:
    rx = dict(appt.prescription or {})
    valid_until = clock.parse_iso(rx["valid_until"])
    rx["status"] = "expired" if now >= valid_until else "signed"
    if full:
        patient = appt.patient
        rx = {
            "prescription_id": rx["prescription_id"],
            "appointment_id": appt.id,
            **{k: v for k, v in rx.items() if k != "prescription_id"},
        }
        rx["patient"] = {
            "first_name": patient["first_name"],
            "last_name": patient["last_name"],
            "date_of_birth": patient["date_of_birth"],
        }
    return rx


def routing_view(appt: PrescriberAppointment) -> dict[str, Any] | None:
    return dict(appt.routing) if appt.routing else None


def list_item(appt: PrescriberAppointment) -> dict[str, Any]:
    return {
        "appointment_id": appt.id,
        "patient_id": appt.patient_id,
        "partner_reference": appt.partner_reference,
        "condition": appt.condition,
        "status": appt.status,
        "has_prescription": appt.prescription is not None,
        "pharmacy_preference": appt.pharmacy_preference,
        "created_at": iso(appt.created_at),
        "reviewed_at": iso(appt.reviewed_at),
    }


def detail(appt: PrescriberAppointment, now: datetime) -> dict[str, Any]:
    """GET /partner/appointments/{appointment_id}: the list item and everything else (seed 003 §7.2)."""
    out = list_item(appt)
    out.update(
        preferred_pharmacy_id=appt.preferred_pharmacy_id,
        patient=dict(appt.patient),
        prescription=prescription_view(appt, now, full=False) if appt.prescription else None,
        pharmacy_routing=routing_view(appt),
        review_fee=dict(appt.review_fee),
        denial_details=dict(appt.denial) if appt.denial else None,
        metadata=dict(appt.metadata_ or {}),
        updated_at=iso(appt.updated_at),
    )
    return out


def submit_response(appt: PrescriberAppointment) -> dict[str, Any]:
    return {
        "appointment_id": appt.id,
        "patient_id": appt.patient_id,
        "partner_reference": appt.partner_reference,
        "status": appt.status,
        "condition": appt.condition,
        "estimated_review_hours": catalog.ESTIMATED_REVIEW_HOURS,
        "review_fee": dict(appt.review_fee),
        "created_at": iso(appt.created_at),
    }


# ----------------------------------------------------------------------------- transitions and events


def emit(
    session: Session, appt: PrescriberAppointment, event_type: str, at: datetime, data: dict[str, Any]
) -> Event:
    return clinical.emit(
        session,
        appt.partner_id,
        event_type,
        at,
        None,
        {"appointment_id": appt.id, "patient_id": appt.patient_id},
        {**data, "occurred_at": iso(at)},
        partner_reference=appt.partner_reference,
        metadata=dict(appt.metadata_ or {}),
    )


class Transitions:
    """Status changes of one appointment, each checked against the spec's lifecycles, each with its event."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.appointments = state.lifecycles["prescriber_appointment"]
        self.routings = state.lifecycles["pharmacy_routing"]

    def move(
        self, session: Session, appt: PrescriberAppointment, to: str, at: datetime, data: dict[str, Any]
    ) -> Made:
        transition = self.appointments.transition(appt.status, to)  # IllegalTransition: never stored
        before = appt.status
        appt.status = to
        appt.updated_at = at
        event = emit(session, appt, transition.event, at, {"status": to, **data})
        return Made("prescriber_appointment", before, to, event.event_type, event.id, at)

    def start_review(self, session: Session, appt: PrescriberAppointment, at: datetime) -> Made:
        return self.move(session, appt, "in_review", at, {"condition": appt.condition})

    def sign(self, session: Session, appt: PrescriberAppointment, at: datetime) -> Made:
        patient_state = appt.patient["address"]["state"]
        med = dict(catalog.PRESCRIBED[appt.condition])
        appt.prescription = {
            "prescription_id": prescription_id(),
            "status": "signed",
            "prescriber": {**catalog.PHYSICIAN, "license_state": patient_state},
            "medications": [med],
            "diagnosis_codes": list(catalog.DIAGNOSIS_CODES.get(appt.condition, [])),
            "notes": catalog.APPROVAL_NOTES.get(appt.condition),
            "signed_at": iso(at),
            "valid_until": iso(at + timedelta(days=catalog.PRESCRIPTION_VALID_DAYS)),
        }
        appt.reviewed_at = at
        data = {"condition": appt.condition, "prescription": prescription_view(appt, at, full=False)}
        return self.move(session, appt, "doctor_reviewed", at, data)

    def deny(
        self, session: Session, appt: PrescriberAppointment, at: datetime, category: str, reason: str | None
    ) -> Made:
        reason = reason or catalog.DENIAL_REASONS[category]
        appt.denial = {"category": category, "reason": reason, "denied_at": iso(at)}
        appt.reviewed_at = at
        return self.move(
            session, appt, "rejected", at, {"denial_category": category, "denial_reason": reason}
        )

    def route(
        self, session: Session, appt: PrescriberAppointment, pharmacy_: catalog.NetworkPharmacy, at: datetime
    ) -> Made:
        """Send the signed prescription to a network pharmacy: a medication order in the simulated pharmacy."""
        initial = self.routings.initial
        rx = appt.prescription or {}
        med = rx["medications"][0]
        address = appt.patient["address"]
        clinic_id = pharmacy_clinics.network_clinic_id(session, self.state.settings.environment)
        order = pharmacy.create_order_in(
            session,
            clinic_id,
            medication_name=med["name"],
            delivery_location={
                "address": address["line1"],
                "city": address["city"],
                "state": address["state"],
                "postal_code": address["zip"],
            },
            prescription_id=rx["prescription_id"],
            refills_allowed=int(med.get("refills", 0)),
            prescription_expires_at=clock.parse_iso(rx["valid_until"]),
            source="prescriber",
            source_ref=appt.id,
            now=at,
            shipping_partner="USPS",
        )
        estimated = (at + catalog.FILL_DELAY).date() + timedelta(days=1)
        appt.medication_order_id = order.medication_order_id
        appt.routing = {
            "routing_status": initial,
            "pharmacy": pharmacy_.as_dict(),
            "estimated_fill_date": estimated.isoformat(),
            "routed_at": iso(at),
            "filled_at": None,
            "tracking": None,
        }
        appt.updated_at = at
        event = emit(
            session,
            appt,
            "prescription.routed",
            at,
            {
                "prescription_id": rx["prescription_id"],
                "routing_status": initial,
                "pharmacy_id": pharmacy_.pharmacy_id,
                "pharmacy_name": pharmacy_.name,
                "pharmacy_npi": pharmacy_.npi,
                "estimated_fill_date": estimated.isoformat(),
            },
        )
        return Made("pharmacy_routing", None, initial, event.event_type, event.id, at)

    def fill(self, session: Session, appt: PrescriberAppointment, at: datetime) -> list[Made]:
        """The network pharmacy fills and ships the order (advancing the simulated pharmacy's own order); the
        routing takes its fill time and the shipment's tracking, and the appointment completes."""
        assert appt.routing is not None and appt.medication_order_id is not None
        self.routings.transition(appt.routing["routing_status"], "filled")
        self.appointments.transition(appt.status, "completed")
        filled_at = shipped_at = at
        step = at
        for _ in range(4):
            status = pharmacy.advance_order_in(session, appt.medication_order_id, step)
            if status == "filled":
                filled_at = step
            if status == "shipped":
                shipped_at = step
                break
            step = step + timedelta(seconds=1)
        group = pharmacy.shipment_of(session, appt.medication_order_id)
        assert group is not None and group.tracking_number is not None
        tracking = {
            "carrier": group.shipping_partner,
            "tracking_number": group.tracking_number,
            "tracking_url": None,
            "shipped_at": iso(shipped_at),
        }
        routing = dict(appt.routing)
        routing.update(routing_status="filled", filled_at=iso(filled_at), tracking=tracking)
        appt.routing = routing
        rx = appt.prescription or {}
        made = self.move(
            session,
            appt,
            "completed",
            shipped_at,
            {
                "prescription_id": rx["prescription_id"],
                "routing_status": "filled",
                "pharmacy_name": routing["pharmacy"]["name"],
                "pharmacy_npi": routing["pharmacy"]["npi"],
                "filled_at": iso(filled_at),
                "tracking": tracking,
            },
        )
        return [
            Made("pharmacy_routing", "submitted", "filled", made.event_type, made.event_id, shipped_at),
            made,
        ]


# ----------------------------------------------------------------------------- the service


@dataclass
class SubmitResult:
    appointment: dict[str, Any]
    replayed: bool


@dataclass
class ListFilters:
    status: str | None = None
    condition: str | None = None
    patient_email: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "condition": self.condition,
            "patient_email": (self.patient_email or "").lower() or None,
            "created_after": iso(self.created_after),
            "created_before": iso(self.created_before),
        }


class PrescriberService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.transitions = Transitions(state)
        self.cursors = CursorCodec(state.box.subkey("cursor"))

    @staticmethod
    def _now(partner: AuthenticatedPartner) -> datetime:
        now = clock.partner_now(partner.clock_offset_seconds)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    @staticmethod
    def _actor(partner: AuthenticatedPartner) -> audit.Actor:
        return audit.Actor(uid=partner.id, role="partner")

    def _viewed(
        self,
        session: Session,
        partner: AuthenticatedPartner,
        operation: str,
        appt: PrescriberAppointment,
        what: str,
    ) -> None:
        audit.record(
            session,
            action="phi.viewed",
            category="phi_view",
            entity_type="appointment",
            entity_id=appt.id,
            patient_id=appt.patient_id,
            partner_id=partner.id,
            actor=self._actor(partner),
            source_name=operation,
            summary=what,
        )

    def load(
        self, session: Session, partner: AuthenticatedPartner, appointment_id_: str
    ) -> PrescriberAppointment:
        appt = session.get(PrescriberAppointment, appointment_id_)
        if appt is None or appt.partner_id != partner.id:
            raise not_found(appointment_id_)
        return appt

    # ------------------------------------------------------------------ submit (seed 003 §6.1)

    def _scenario(self, body: dict[str, Any]) -> str:
        metadata = body.get("metadata") or {}
        if SCENARIO_KEY not in metadata:
            return "approve"
        if self.state.settings.environment != "sandbox":
            raise ApiError(
                "SANDBOX_SCENARIO_NOT_ALLOWED",
                "metadata.sandbox_scenario is only accepted in the sandbox.",
                {"field": "/metadata/sandbox_scenario", "value": metadata[SCENARIO_KEY]},
            )
        op = self.state.spec.operations.get("submitAppointment")
        scenarios = (op.raw.get("x-sandbox-scenarios") if op else None) or []
        allowed = sorted(str(s["value"]) for s in scenarios if str(s.get("field", "")).endswith(SCENARIO_KEY))
        if metadata[SCENARIO_KEY] not in allowed:
            raise _invalid_body("/metadata/sandbox_scenario", f"must be one of {allowed}")
        return str(metadata[SCENARIO_KEY])

    def _condition(
        self, session: Session, partner: AuthenticatedPartner, condition: str
    ) -> catalog.Condition:
        enabled = [
            p.category
            for p in partners_repo.products(session, partner.id)
            if p.category in catalog.CONDITIONS
        ]
        if condition not in enabled:
            raise ApiError(
                "INVALID_PRODUCT_CATEGORY",
                f"Condition {condition} is not available to this partner.",
                {"field": "condition", "condition": condition, "available": enabled},
            )
        return catalog.CONDITIONS[condition]

    @staticmethod
    def _jurisdiction(condition: catalog.Condition, address: dict[str, Any]) -> None:
        country, state = address["country"], address["state"]
        if country not in condition.supported_countries or state not in condition.supported_states:
            field = (
                "patient.address.country"
                if country not in condition.supported_countries
                else "patient.address.state"
            )
            raise ApiError(
                "UNSUPPORTED_JURISDICTION",
                f"{condition.category} is not available for patients in {state}, {country}.",
                {
                    "condition": condition.category,
                    "field": field,
                    "state": state,
                    "country": country,
                    "supported_states": list(condition.supported_states),
                    "supported_countries": list(condition.supported_countries),
                },
            )

    @staticmethod
    def _intake(condition: catalog.Condition, body: dict[str, Any], today: date) -> str:
        requested = body.get("intake_schema_version")
        version = condition.version(requested)
        shown = requested or condition.current_version
        base = {
            "condition": condition.category,
            "intake_schema_version": shown,
            "missing_question_ids": [],
            "invalid_question_ids": [],
            "duplicate_question_ids": [],
        }
        if version is None:
            raise ApiError(
                "INVALID_INTAKE",
                f"Intake schema version {shown} is not known for {condition.category}; the current version is "
                f"{condition.current_version}.",
                {**base, "current_intake_schema_version": condition.current_version},
            )
        if version.accepted_until is not None and today > version.accepted_until:
            raise ApiError(
                "INVALID_INTAKE",
                f"Intake schema version {shown} is no longer accepted (deprecated until "
                f"{version.accepted_until.isoformat()}); use {condition.current_version}.",
                {**base, "current_intake_schema_version": condition.current_version},
            )
        seen: set[str] = set()
        duplicate: list[str] = []
        invalid: list[str] = []
        known = set(version.required) | set(version.optional)
        for answer in body["intake_answers"]:
            qid = answer["question_id"]
            if qid in seen and qid not in duplicate:
                duplicate.append(qid)
            seen.add(qid)
            unknown = qid not in known and not qid.startswith("custom_")
            if (unknown or not answer["answer"].strip()) and qid not in invalid:
                invalid.append(qid)
        missing = [q for q in version.required if q not in seen]
        if missing or invalid or duplicate:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if invalid:
                parts.append("invalid " + ", ".join(invalid))
            if duplicate:
                parts.append("duplicated " + ", ".join(duplicate))
            raise ApiError(
                "INVALID_INTAKE",
                f"The intake for {condition.category} (version {shown}) is not complete: {'; '.join(parts)}.",
                {
                    **base,
                    "missing_question_ids": missing,
                    "invalid_question_ids": invalid,
                    "duplicate_question_ids": duplicate,
                },
            )
        return version.version

    @staticmethod
    def _pharmacy(body: dict[str, Any]) -> catalog.NetworkPharmacy | None:
        wanted = body.get("preferred_pharmacy_id")
        return network_pharmacy(wanted) if wanted is not None else None

    def _replay(self, partner: AuthenticatedPartner, reference: str, digest: str) -> SubmitResult | None:
        with self.state.db.session() as session:
            appt = replay_of(
                session,
                PrescriberAppointment,
                partner.id,
                reference,
                digest,
                noun="appointment",
                id_key="appointment_id",
            )
            return SubmitResult(submit_response(appt), replayed=True) if appt is not None else None

    def submit(self, partner: AuthenticatedPartner, body: dict[str, Any]) -> SubmitResult:
        """The checks of x-validation-order after the schema's, in order, each short-circuiting."""
        patient_in = body["patient"]
        dob = date.fromisoformat(patient_in["date_of_birth"])
        now = self._now(partner)
        if dob >= now.date() or dob.year < 1900:
            raise _invalid_body("/patient/date_of_birth", "must be a past date after 1900-01-01")
        scenario = self._scenario(body)
        with self.state.db.session() as session:
            condition = self._condition(session, partner, body["condition"])
        self._jurisdiction(condition, patient_in["address"])
        version = self._intake(condition, body, now.date())
        self._pharmacy(body)
        digest = fingerprint(body)
        replay = self._replay(partner, body["partner_reference"], digest)
        if replay is not None:
            return replay
        fee = {"amount_cents": condition.review_fee_cents, "currency": "USD"}
        if scenario == "payment_failed":
            raise ApiError(
                "PAYMENT_REQUIRED",
                f"The review fee of {condition.review_fee_cents} USD could not be charged to your billing account.",
                {
                    "review_fee": {**fee, "status": "failed", "charged_at": None, "invoice_id": None},
                    "decline_reason": "card_declined",
                },
            )
        try:
            with self.state.db.session() as session:
                appt = self._create(session, partner, body, condition, version, scenario, digest, fee, now)
                return SubmitResult(submit_response(appt), replayed=False)
        except IntegrityError:
            replay = self._replay(partner, body["partner_reference"], digest)
            if replay is None:
                raise
            return replay

    def _patient(
        self, session: Session, partner: AuthenticatedPartner, data: dict[str, Any], now: datetime
    ) -> Patient:
        """The partner's patient with this email (details brought up to date), or a new profile."""
        address = data["address"]
        wanted = {
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "phone": data["phone"],
            "date_of_birth": date.fromisoformat(data["date_of_birth"]),
            "sex": data["gender"],
            "state": address["state"],
            "country": address["country"],
        }
        columns = {
            "line1": address["line1"],
            "line2": address.get("line2"),
            "city": address["city"],
            "state": address["state"],
            "postal_code": address["zip"],
            "country": address["country"],
        }
        patient = session.scalar(
            select(Patient)
            .where(Patient.partner_id == partner.id, func.lower(Patient.email) == data["email"].lower())
            .order_by(Patient.created_at, Patient.id)
            .limit(1)
        )
        if patient is None:
            patient = Patient(
                id=ids.patient_id(),
                partner_id=partner.id,
                referral_id=None,
                email=data["email"],
                created_at=now,
                updated_at=now,
                **wanted,
            )
            session.add(patient)
            session.flush()
            session.add(PatientAddress(patient_id=patient.id, **columns))
            audit.patient_profile(
                session,
                created=True,
                patient_id=patient.id,
                partner_id=partner.id,
                actor=self._actor(partner),
                fields=PHI_PATIENT_FIELDS,
                phi_fields=PHI_PATIENT_FIELDS,
                source_name="submitAppointment",
                summary="Patient created from a submitted appointment",
                at=now,
            )
            return patient
        changed = [k for k, v in wanted.items() if getattr(patient, k) != v]
        for k in changed:
            setattr(patient, k, wanted[k])
        row = session.get(PatientAddress, patient.id)
        if row is None:
            session.add(PatientAddress(patient_id=patient.id, **columns))
            changed.append("address")
        elif any(getattr(row, k) != v for k, v in columns.items()):
            for k, v in columns.items():
                setattr(row, k, v)
            changed.append("address")
        if changed:
            patient.updated_at = now
            audit.patient_profile(
                session,
                created=False,
                patient_id=patient.id,
                partner_id=partner.id,
                actor=self._actor(partner),
                fields=changed,
                phi_fields=(*PHI_PATIENT_FIELDS, "sex", "state", "country"),
                source_name="submitAppointment",
                summary="Patient details updated from a submitted appointment",
                at=now,
            )
        return patient

    def _create(
        self,
        session: Session,
        partner: AuthenticatedPartner,
        body: dict[str, Any],
        condition: catalog.Condition,
        version: str,
        scenario: str,
        digest: str,
        fee: dict[str, Any],
        now: datetime,
    ) -> PrescriberAppointment:
        patient = self._patient(session, partner, body["patient"], now)
        patient_in = body["patient"]
        address = patient_in["address"]
        sandbox = self.state.settings.environment == "sandbox"
        review_fee = {
            **fee,
            "status": "simulated" if sandbox else "charged",
            "charged_at": iso(now),
            "invoice_id": invoice_id(),
        }
        appt = PrescriberAppointment(
            id=appointment_id(),
            partner_id=partner.id,
            patient_id=patient.id,
            partner_reference=body["partner_reference"],
            request_fingerprint=digest,
            condition=condition.category,
            status=self.transitions.appointments.initial,
            scenario=scenario,
            pharmacy_preference=body.get("pharmacy_preference") or "partner",
            preferred_pharmacy_id=body.get("preferred_pharmacy_id"),
            patient_email=patient_in["email"].lower(),
            patient={
                "first_name": patient_in["first_name"],
                "last_name": patient_in["last_name"],
                "email": patient_in["email"],
                "date_of_birth": patient_in["date_of_birth"],
                "gender": patient_in["gender"],
                "phone": patient_in["phone"],
                "address": {
                    "line1": address["line1"],
                    "line2": address.get("line2"),
                    "city": address["city"],
                    "state": address["state"],
                    "zip": address["zip"],
                    "country": address["country"],
                },
            },
            intake_schema_version=version,
            intake_answers=[dict(a) for a in body["intake_answers"]],
            metadata_=dict(body.get("metadata") or {}),
            review_fee=review_fee,
            created_at=now,
            updated_at=now,
            reviewed_at=None,
        )
        session.add(appt)
        session.flush()
        audit.record(
            session,
            action="appointment.submitted",
            category="appointment",
            entity_type="appointment",
            entity_id=appt.id,
            patient_id=patient.id,
            partner_id=partner.id,
            actor=self._actor(partner),
            source_name="submitAppointment",
            summary=f"Appointment submitted for review ({condition.category}, intake v{version})",
            at=now,
        )
        emit(
            session,
            appt,
            "appointment.submitted",
            now,
            {
                "status": appt.status,
                "condition": appt.condition,
                "estimated_review_hours": catalog.ESTIMATED_REVIEW_HOURS,
            },
        )
        emit(
            session,
            appt,
            "review.billed",
            now,
            {
                "amount_cents": review_fee["amount_cents"],
                "currency": review_fee["currency"],
                "fee_status": review_fee["status"],
                "invoice_id": review_fee["invoice_id"],
                "charged_at": review_fee["charged_at"],
            },
        )
        return appt

    # ------------------------------------------------------------------ reads (seed 003 §7-§9)

    def list(
        self, partner: AuthenticatedPartner, filters: ListFilters, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        digest = filter_digest("prescriber_appointments:" + partner.id, filters.as_dict())
        after = self.cursors.decode(cursor, digest) if cursor else None
        conds: list[Any] = [PrescriberAppointment.partner_id == partner.id]
        if filters.status:
            conds.append(PrescriberAppointment.status == filters.status)
        if filters.condition:
            conds.append(PrescriberAppointment.condition == filters.condition)
        if filters.patient_email:
            conds.append(PrescriberAppointment.patient_email == filters.patient_email.lower())
        if filters.created_after:
            conds.append(PrescriberAppointment.created_at > filters.created_after)
        if filters.created_before:
            conds.append(PrescriberAppointment.created_at < filters.created_before)
        with self.state.db.session() as session:
            rows, has_more = newest_first_page(session, PrescriberAppointment, conds, limit, after)
            for appt in rows:
                self._viewed(session, partner, "listAppointments", appt, "Appointment listed")
            items = [list_item(a) for a in rows]
        next_cursor = (
            self.cursors.encode(rows[-1].created_at, rows[-1].id, digest) if has_more and rows else None
        )
        return items, next_cursor

    def get(self, partner: AuthenticatedPartner, appointment_id_: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            appt = self.load(session, partner, appointment_id_)
            self._viewed(session, partner, "getAppointment", appt, "Appointment viewed")
            return detail(appt, self._now(partner))

    def prescription(self, partner: AuthenticatedPartner, appointment_id_: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            appt = self.load(session, partner, appointment_id_)
            if appt.prescription is None:
                raise ApiError(
                    "PRESCRIPTION_NOT_AVAILABLE",
                    f"Appointment {appt.id} has no signed prescription (status {appt.status}).",
                    {"appointment_id": appt.id, "status": appt.status},
                )
            audit.record(
                session,
                action="phi.viewed",
                category="prescription",
                entity_type="prescription",
                entity_id=appt.prescription["prescription_id"],
                parent_entity_id=appt.id,
                patient_id=appt.patient_id,
                partner_id=partner.id,
                actor=self._actor(partner),
                source_name="getAppointmentPrescription",
                summary="Prescription viewed",
            )
            return prescription_view(appt, self._now(partner), full=True)

    def routing_status(self, partner: AuthenticatedPartner, appointment_id_: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            appt = self.load(session, partner, appointment_id_)
            routing = routing_view(appt)
            if routing is None:
                raise ApiError(
                    "ROUTING_NOT_AVAILABLE",
                    f"The prescription of appointment {appt.id} has not been routed to a network pharmacy.",
                    {
                        "appointment_id": appt.id,
                        "status": appt.status,
                        "pharmacy_preference": appt.pharmacy_preference,
                    },
                )
            self._viewed(session, partner, "getAppointmentRoutingStatus", appt, "Routing status viewed")
            return routing

    # ------------------------------------------------------------------ route (seed 003 §9.1)

    def check_routable(self, appt: PrescriberAppointment, now: datetime) -> None:
        expired = appt.prescription is not None and now >= clock.parse_iso(appt.prescription["valid_until"])
        if appt.status not in ("doctor_reviewed", "completed") or appt.prescription is None or expired:
            status = "expired prescription" if expired else f"status {appt.status}"
            raise ApiError(
                "PRESCRIPTION_NOT_SIGNED",
                f"Appointment {appt.id} has no signed prescription to route ({status}).",
                {"appointment_id": appt.id, "status": appt.status},
            )
        if appt.routing is not None:
            raise ApiError(
                "ALREADY_ROUTED",
                f"The prescription of appointment {appt.id} was already routed to {appt.routing['pharmacy']['name']}.",
                {
                    "appointment_id": appt.id,
                    "routing_status": appt.routing["routing_status"],
                    "pharmacy_id": appt.routing["pharmacy"]["pharmacy_id"],
                    "routed_at": appt.routing["routed_at"],
                },
            )

    @staticmethod
    def pick_pharmacy(appt: PrescriberAppointment, pharmacy_id: str | None) -> catalog.NetworkPharmacy:
        wanted = pharmacy_id or appt.preferred_pharmacy_id
        if wanted is not None:
            return network_pharmacy(wanted)
        return catalog.default_pharmacy(appt.patient["address"]["state"])

    def route(
        self, partner: AuthenticatedPartner, appointment_id_: str, pharmacy_id: str | None
    ) -> dict[str, Any]:
        now = self._now(partner)
        with self.state.db.session() as session:
            appt = self.load(session, partner, appointment_id_)
            session.refresh(appt, with_for_update=True)
            self.check_routable(appt, now)
            chosen = self.pick_pharmacy(appt, pharmacy_id)
            self.transitions.route(session, appt, chosen, now)
            audit.record(
                session,
                action="prescription.routed",
                category="prescription",
                entity_type="prescription",
                entity_id=(appt.prescription or {})["prescription_id"],
                parent_entity_id=appt.id,
                patient_id=appt.patient_id,
                partner_id=partner.id,
                actor=self._actor(partner),
                source_name="routeAppointmentPharmacy",
                summary=f"Prescription routed to {chosen.name} ({chosen.pharmacy_id})",
                at=now,
            )
            routing = appt.routing or {}
            return {
                "routing_status": routing["routing_status"],
                "pharmacy": routing["pharmacy"],
                "estimated_fill_date": routing["estimated_fill_date"],
                "routed_at": routing["routed_at"],
            }
