"""POST /partner/prescriptions (seed 002 §11.1.5, §11.2): modes, validation order, catalog, idempotency, events."""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta

from sqlalchemy import select

from server.db.models import Event
from tests.server.clinical.helpers import CLINICAL, code, enroll, get

FUTURE = (date.today() + timedelta(days=400)).isoformat()
PAST = (date.today() - timedelta(days=1)).isoformat()


def lic(country, jurisdiction, expires_at=FUTURE):
    return {
        "country": country,
        "jurisdiction": jurisdiction,
        "license_number": f"{jurisdiction}-MD-1",
        "expires_at": expires_at,
    }


def prescriber(sandbox, p, *, dea=True, licenses=None):
    body = {
        "first_name": "Alice",
        "last_name": "Doctor",
        "email": "alice@example.com",
        "licenses": licenses or [lic("US", "TX"), lic("US", "FL"), lic("CA", "ON")],
    }
    if dea:
        body["dea_number"] = "AB1234567"
    r = sandbox.call("POST", "/partner/prescribers", p, headers=CLINICAL, json=body)
    assert r.status_code == 201, r.text
    return r.json()["prescriber_id"]


def inline(country="US", jurisdiction="TX", postal="73301", email=None):
    return {
        "first_name": "Pat",
        "last_name": "Inline",
        "email": email or f"pat.{uuid.uuid4().hex[:6]}@example.com",
        "phone": "+15125550199",
        "dob": "1990-05-10",
        "gender": "male",
        "address": {
            "street": "1 Main St",
            "city": "Austin" if country == "US" else "Toronto",
            "jurisdiction": jurisdiction,
            "postal_code": postal,
            "country": country,
        },
    }


def rx(prescriber_id, codes=("MED-TRT-CREAM",), **patient):
    return {
        "prescriber_id": prescriber_id,
        "medications": [
            {"code": c, "quantity": 30, "dosage_instructions": "Apply 1g daily", "repeats": 5} for c in codes
        ],
        **patient,
    }


def submit(sandbox, p, body):
    return sandbox.call("POST", "/partner/prescriptions", p, headers=CLINICAL, json=body)


def _events(sandbox, partner_id, event_type):
    with sandbox.state.db.session() as session:
        rows = session.scalars(
            select(Event)
            .where(Event.partner_id == partner_id, Event.event_type == event_type)
            .order_by(Event.seq)
        ).all()
        return [r.payload for r in rows]


def test_inline_patient_end_to_end(sandbox, schemas):
    p = sandbox.partner("clinical")
    pres = prescriber(sandbox, p)
    body = rx(pres, partner_reference="PRX-12345", notes="note", inline_patient=inline())
    r = submit(sandbox, p, {**body, "metadata": {"order": "A-77"}})
    assert r.status_code == 201, r.text
    out = r.json()
    schemas.component("PartnerPrescription", out)
    assert out["appointment_id"].startswith("appt_partner_") and out["rx_id"].startswith("PRX-")
    assert out["fulfillment"] == {"status": "queued"} and out["partner_reference"] == "PRX-12345"
    assert out["medications"][0] == {
        "code": "MED-TRT-CREAM",
        "product_name": "TRT Cream 200mg/mL",
        "quantity": 30,
        "dosage_instructions": "Apply 1g daily",
        "repeats": 5,
        "schedule": None,
        "pharmacy_location_id": "trt-pharmacy-us",
    }
    appt = get(sandbox, p, f"/partner/appointments/{out['appointment_id']}")
    assert appt.status_code == 200, appt.text
    appt = appt.json()
    schemas.component("ClinicalAppointment", appt)
    assert appt["status"] == "doctor_reviewed" and appt["intake_summary"] is None
    assert appt["prescription_summary"]["prescription_id"] == out["prescription_id"]
    assert appt["patient_snapshot"]["address"]["state"] == "TX"
    patient = get(sandbox, p, f"/partner/patients/{out['patient_id']}").json()
    schemas.component("Patient", patient)
    assert patient["latest_appointment_status"] == "doctor_reviewed"
    r = get(sandbox, p, f"/partner/patients/{out['patient_id']}/intake")
    assert r.status_code == 404 and code(r) == "INTAKE_NOT_AVAILABLE"
    referral = sandbox.call("GET", f"/partner/referrals/{out['referral_id']}", p).json()
    assert referral["metadata"] == {"source": "partner_prescriber_inline"}
    (received,) = _events(sandbox, p.partner_id, "prescription.received")
    schemas.webhook("prescription.received", received)
    assert received["data"]["prescription_id"] == out["prescription_id"]
    assert received["metadata"] == {"order": "A-77"}  # the prescription's own metadata (C-022)
    (created,) = _events(sandbox, p.partner_id, "patient.created")
    schemas.webhook("patient.created", created)

    # replay: same body -> 200 + original; other body -> 409; replay still works after deactivation
    body = rx(pres, partner_reference="PRX-12345", notes="note", inline_patient=inline())
    r = submit(sandbox, p, body)
    assert r.status_code == 409 and code(r) == "DUPLICATE_REFERENCE"  # a new inline email is a different body


def test_idempotent_replay_and_reused_inline_patient(sandbox, schemas):
    p = sandbox.partner("clinical")
    pres = prescriber(sandbox, p)
    patient = inline(email="same.person@example.com")
    body = rx(pres, partner_reference="REF-1", inline_patient=patient)
    first = submit(sandbox, p, body)
    assert first.status_code == 201
    sandbox.call("POST", f"/partner/prescribers/{pres}/deactivate", p, headers=CLINICAL)
    replay = submit(sandbox, p, copy.deepcopy(body))
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert len(_events(sandbox, p.partner_id, "prescription.received")) == 1
    # a second prescription for the same email reuses the patient and reports what changed
    pres2 = prescriber(sandbox, p)
    moved = copy.deepcopy(patient)
    moved["last_name"] = "Renamed"
    second = submit(sandbox, p, rx(pres2, inline_patient=moved))
    assert second.status_code == 201, second.text
    assert second.json()["patient_id"] == first.json()["patient_id"]
    (updated,) = _events(sandbox, p.partner_id, "patient.updated")
    schemas.webhook("patient.updated", updated)
    assert updated["data"]["changed_fields"] == ["last_name"]
    assert (
        get(sandbox, p, f"/partner/patients/{second.json()['patient_id']}").json()["total_appointments"] == 2
    )


def test_existing_patient_and_referral_modes(sandbox, schemas):
    p = sandbox.partner("clinical")
    pres = prescriber(sandbox, p)
    ref = enroll(sandbox, p)  # an FL patient
    by_patient = submit(sandbox, p, rx(pres, patient_id=ref["patient_id"]))
    assert by_patient.status_code == 201, by_patient.text
    assert by_patient.json()["patient_id"] == ref["patient_id"]
    assert by_patient.json()["referral_id"] == ref["referral_id"]
    by_referral = submit(sandbox, p, rx(pres, referral_id=ref["referral_id"]))
    assert by_referral.status_code == 201 and by_referral.json()["patient_id"] == ref["patient_id"]
    listed = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/appointments").json()
    schemas.component("ClinicalAppointmentList", listed)
    assert len(listed["appointments"]) == 3
    # the enrollment intake is still the one served by default? no: the latest appointment has none
    r = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/intake", appointment_id=ref["appointment_id"])
    assert r.status_code == 200
    # messages only cover the Stealth-reviewed appointment
    assert get(sandbox, p, f"/partner/patients/{ref['patient_id']}/messages").json()["total_threads"] == 1
    # a referral whose customer has not enrolled has no patient
    fresh = sandbox.create_referral(p)
    r = submit(sandbox, p, rx(pres, referral_id=fresh["referral_id"]))
    assert r.status_code == 404 and code(r) == "PATIENT_NOT_FOUND"


def test_controlled_and_jurisdiction_rules(sandbox):
    p = sandbox.partner("clinical")
    with_dea, without_dea = prescriber(sandbox, p), prescriber(sandbox, p, dea=False)
    us, ca = inline(), inline("CA", "ON", "M5H 3T4")
    cases = [
        (rx(without_dea, ("MED-SANDBOX-CIII",), inline_patient=us), 422, "CONTROLLED_SUBSTANCE_REQUIRES_DEA"),
        (rx(with_dea, ("MED-SANDBOX-CIII",), inline_patient=inline()), 201, None),
        (rx(without_dea, ("MED-SANDBOX-CIII",), inline_patient=ca), 201, None),  # Canada: no DEA needed
        (
            rx(with_dea, ("MED-SANDBOX-US-ONLY",), inline_patient=inline("CA", "ON", "M5H 3T4")),
            422,
            "MEDICATION_NOT_AVAILABLE_IN_JURISDICTION",
        ),
        (rx(with_dea, ("MED-SANDBOX-US-ONLY",), inline_patient=inline()), 201, None),
        (rx(with_dea, ("MED-SANDBOX-INACTIVE",), inline_patient=inline()), 422, "MEDICATION_NOT_FOUND"),
        (rx(with_dea, ("MED-UNKNOWN",), inline_patient=inline()), 422, "MEDICATION_NOT_FOUND"),
        (rx(with_dea, inline_patient=inline("US", "NY", "10001")), 422, "PRESCRIBER_LICENSE_MISMATCH"),
        # order: MEDICATION_NOT_FOUND (any position) before NOT_AVAILABLE, before the DEA rule
        (
            rx(without_dea, ("MED-SANDBOX-CIII", "MED-NOPE"), inline_patient=inline()),
            422,
            "MEDICATION_NOT_FOUND",
        ),
        (
            rx(
                with_dea,
                ("MED-SANDBOX-CIII", "MED-SANDBOX-US-ONLY"),
                inline_patient=inline("CA", "ON", "M5H 3T4"),
            ),
            422,
            "MEDICATION_NOT_AVAILABLE_IN_JURISDICTION",
        ),
        # license mismatch comes before the catalog
        (
            rx(with_dea, ("MED-NOPE",), inline_patient=inline("US", "NY", "10001")),
            422,
            "PRESCRIBER_LICENSE_MISMATCH",
        ),
    ]
    for body, status, expected in cases:
        r = submit(sandbox, p, body)
        assert r.status_code == status, (body["medications"], r.text)
        if expected:
            assert code(r) == expected, (body["medications"], r.json())
    ok = submit(sandbox, p, rx(with_dea, ("MED-SANDBOX-CIII",), inline_patient=ca)).json()
    assert (
        ok["medications"][0]["schedule"] == "III"
        and ok["medications"][0]["pharmacy_location_id"] == "trt-pharmacy-ca"
    )


def test_expired_license_is_a_mismatch(sandbox):
    p = sandbox.partner("clinical")
    pres = prescriber(sandbox, p, licenses=[lic("US", "TX")])
    from server.db.models_clinical import Prescriber

    with sandbox.state.db.session() as session:  # the license expired after registration
        row = session.get(Prescriber, pres)
        row.licenses = [lic("US", "TX", PAST)]
    r = submit(sandbox, p, rx(pres, inline_patient=inline()))
    assert r.status_code == 422 and code(r) == "PRESCRIBER_LICENSE_MISMATCH"


def test_validation_order(sandbox):
    p, other = sandbox.partner("clinical"), sandbox.partner("clinical")
    pres = prescriber(sandbox, p)
    inactive = prescriber(sandbox, p)
    sandbox.call("POST", f"/partner/prescribers/{inactive}/deactivate", p, headers=CLINICAL)
    foreign = prescriber(sandbox, other)
    ref = enroll(sandbox, other)
    bad_inline = inline()
    bad_inline["dob"] = "2999-01-01"
    cases = [
        ({"medications": []}, 400, "MISSING_PRESCRIBER_ID"),
        (rx(pres) | {"medications": []}, 400, "MEDICATIONS_REQUIRED"),
        (rx(pres) | {"medications": [{"code": "MED-TRT-CREAM"}]}, 400, "MEDICATION_INVALID"),
        (rx(pres), 400, "PATIENT_REFERRAL_REQUIRED"),
        (rx(pres, patient_id="ptn_abcdef123", referral_id="ref_abcdef123"), 400, "PATIENT_REFERRAL_REQUIRED"),
        (rx(foreign, patient_id="ptn_abcdef123"), 404, "PRESCRIBER_NOT_FOUND"),
        (rx("pres_doesnotexist", inline_patient=inline()), 404, "PRESCRIBER_NOT_FOUND"),
        (rx(inactive, patient_id=ref["patient_id"]), 422, "PRESCRIBER_INACTIVE"),
        (rx(pres, patient_id=ref["patient_id"]), 404, "PATIENT_NOT_FOUND"),
        (rx(pres, referral_id=ref["referral_id"]), 404, "REFERRAL_NOT_FOUND"),
        (rx(pres, ("MED-NOPE",), inline_patient=bad_inline), 400, "INLINE_PATIENT_INVALID"),
        # two broken rules: the earlier code wins
        (rx(pres) | {"medications": [], "partner_reference": " bad"}, 400, "MEDICATIONS_REQUIRED"),
        (rx(foreign, ("MED-NOPE",), patient_id=ref["patient_id"]), 404, "PRESCRIBER_NOT_FOUND"),
        (rx(inactive, ("MED-NOPE",), referral_id="ref_doesnotexist1"), 422, "PRESCRIBER_INACTIVE"),
    ]
    for body, status, expected in cases:
        r = submit(sandbox, p, body)
        assert (r.status_code, code(r)) == (status, expected), (body, r.text)


def test_inline_shape_is_judged_after_the_prescriber(sandbox):
    """x-error-deferred: INLINE_PATIENT_INVALID ranks after the prescriber checks (x-validation-order)."""
    p = sandbox.partner("clinical")
    bad = inline()
    bad["email"] = "not-an-email"
    r = submit(sandbox, p, rx("pres_doesnotexist", inline_patient=bad))
    assert code(r) == "PRESCRIBER_NOT_FOUND"
    pres = prescriber(sandbox, p)
    r = submit(sandbox, p, rx(pres, inline_patient=bad))
    assert r.status_code == 400 and code(r) == "INLINE_PATIENT_INVALID"
    assert r.json()["error"]["details"]["errors"][0]["path"] == "/inline_patient/email"
    # an error outside the deferred property is still judged in the schema step
    r = submit(sandbox, p, {**rx("pres_doesnotexist", inline_patient=bad), "notes": 7})
    assert code(r) == "INVALID_BODY"


def test_production_refuses_sandbox_codes(sandbox_factory):
    prod = sandbox_factory(environment="production")
    p = prod.partner("clinical", environment="production")
    pres = prescriber(prod, p)
    r = submit(prod, p, rx(pres, ("MED-SANDBOX-CIII",), inline_patient=inline()))
    assert r.status_code == 422 and code(r) == "SANDBOX_SCENARIO_NOT_ALLOWED"


def test_fulfillment_of_an_inline_prescription_moves_with_its_referral(sandbox, schemas):
    p = sandbox.partner("clinical")
    pres = prescriber(sandbox, p)
    body = rx(pres, partner_reference="MOVE-1", inline_patient=inline())
    out = submit(sandbox, p, body).json()
    r = sandbox.call(
        "POST",
        f"/partner/sandbox/referrals/{out['referral_id']}/advance",
        p,
        json={"target_status": "delivered"},
    )
    assert r.status_code == 200, r.text
    appt = get(sandbox, p, f"/partner/appointments/{out['appointment_id']}").json()
    schemas.component("ClinicalAppointment", appt)
    assert appt["status"] == "completed" and appt["fulfillment"]["status"] == "delivered"
    replay = submit(sandbox, p, body)
    assert replay.status_code == 200 and replay.json()["fulfillment"] == {"status": "delivered"}
    with sandbox.state.db.session() as session:
        rows = session.scalars(
            select(Event).where(Event.referral_id == out["referral_id"]).order_by(Event.seq)
        ).all()
        types = [e.event_type for e in rows]
        for e in rows:
            schemas.webhook(e.event_type, e.payload)
    assert "referral.shipped" in types and types[-1] == "referral.delivered"


def test_default_intake_skips_a_newer_appointment_without_one(sandbox):
    """C-021: GET .../intake without appointment_id is the most recent appointment *with* a submitted intake."""
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p, state="TX")
    patient_id = ref["patient_id"]
    pres = prescriber(sandbox, p)
    r = submit(sandbox, p, rx(pres, patient_id=patient_id))
    assert r.status_code == 201, r.text
    intake = get(sandbox, p, f"/partner/patients/{patient_id}/intake")
    assert intake.status_code == 200, intake.text
    assert intake.json()["appointment_id"] == ref["appointment_id"]


def test_a_prescription_for_an_enrolled_patient_ships_with_the_patient_s_referral(sandbox):
    """C-035: patient_id mode too, not only inline patients."""
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p, state="TX")
    pres = prescriber(sandbox, p)
    r = submit(sandbox, p, rx(pres, patient_id=ref["patient_id"]))
    assert r.status_code == 201, r.text
    rx_id = r.json()["prescription_id"]
    moved = sandbox.call(
        "POST",
        f"/partner/sandbox/referrals/{ref['referral_id']}/advance",
        p,
        json={"target_status": "shipped"},
    )
    assert moved.status_code == 200, moved.text
    from server.db.models_clinical import PartnerPrescription

    with sandbox.state.db.session() as session:
        assert session.get(PartnerPrescription, rx_id).fulfillment_status == "shipped"
