"""No PHI in logs, proven: a clinical flow and the pharmacy API with body logging on at DEBUG, every record
of every logger captured and scanned for every PHI value the run created (and the redacted lines still
carry their non-PHI fields, so the scan can fail)."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conformance.phi_scan import PhiValues, scan, spec_constants
from server.pharmacy import service as pharmacy_service
from server.pharmacy import simulation
from server.pharmacy.delivery import PharmacyDispatcher
from server.redaction import MASK, PhiMap
from tests.server.clinical.helpers import CLINICAL, page_path
from tests.server.phi_logging import CaptureHandler, Recorder, capture_all_logs
from tests.server.webhooks.helpers import drain

DEAD_HOOK = "http://127.0.0.1:9/hooks"  # discard port: refused at once; the payload is logged before sending


def _token() -> str:
    return uuid.uuid4().hex[:8]


class People:
    """Unique PHI values for one run (each holds a random token, so a hit is never a coincidence)."""

    def __init__(self) -> None:
        t = _token()
        digits = f"{random.randint(200, 999)}{random.randint(1000, 9999)}"
        self.first, self.last = f"Zelda{t}", f"Quill{t}"
        self.email = f"zelda.{t}@example.com"
        self.phone_in, self.phone = f"(555) {digits[:3]}-{digits[3:]}", f"+1555{digits}"
        self.dob = f"195{random.randint(0, 9)}-0{random.randint(1, 9)}-1{random.randint(0, 9)}"
        self.answer = f"Answer {t} about my symptoms"
        self.refund_reason = f"Refund because of {t}"
        self.rx_first, self.rx_last = f"Doctor{t}", f"Strange{t}"
        self.rx_email = f"dr.{t}@clinic.example.com"
        self.license = f"TX-MD-{t}"
        self.inline_first, self.inline_last = f"Inline{t}", f"Person{t}"
        self.inline_email = f"inline.{t}@example.com"
        self.inline_street = f"{random.randint(10, 999)} {t} Street"
        self.notes = f"Clinical note {t}"
        self.bad_email = f"not-an-email-{t}"
        self.pharmacy_street = f"{random.randint(10, 999)} Pharmacy {t} Road"

    def literals(self) -> list[str]:
        return [v for k, v in vars(self).items() if k != "phone_in"] + [self.phone_in]


def _enroll(rec: Recorder, sandbox: Any, p: Any, who: People) -> dict[str, Any]:
    created = rec.call(
        "POST",
        "/partner/referrals",
        p,
        json={"partner_reference": f"cust_{_token()}", "product_category": "trt-cream"},
    ).json()
    page = sandbox.client.get(page_path(created["enrollment_url"]))
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    answers = {f"q_{q}": f"{who.answer} {q}" for q in re.findall(r'name="q_([a-z_]+)"', page.text)}
    assert answers
    form = {
        "csrf_token": csrf,
        "first_name": who.first,
        "last_name": who.last,
        "email": who.email,
        "phone": who.phone_in,
        "date_of_birth": who.dob,
        "sex": "female",
        "state": "TX",
        "card_number": "4242 4242 4242 4242",
        "card_expiry": "01/31",
        "card_cvc": "999",
        **answers,
    }
    r = sandbox.client.post(page_path(created["enrollment_url"]), data=form)
    assert r.status_code == 200, r.text
    got = rec.call("GET", f"/partner/referrals/{created['referral_id']}", p, headers=CLINICAL)
    assert got.status_code == 200
    return got.json()


def _clinical_flow(rec: Recorder, sandbox: Any, who: People) -> dict[str, Any]:
    p = sandbox.partner("clinical", webhook_url=DEAD_HOOK)
    ref = _enroll(rec, sandbox, p, who)
    pid, aid = ref["patient_id"], ref["appointment_id"]

    def get(url: str, **params: Any) -> Any:
        r = rec.call("GET", url, p, headers=CLINICAL, params=params or None)
        assert r.status_code == 200, (url, r.text)
        return r.json()

    assert get(f"/partner/patients/{pid}")["first_name"] == who.first
    assert get("/partner/patients", search=who.last[:-2], limit=5)["patients"]
    get("/partner/patients", search=who.email)
    get(f"/partner/patients/{pid}/intake", appointment_id=aid)
    get(f"/partner/patients/{pid}/appointments")
    get(f"/partner/appointments/{aid}")
    txns = get(f"/partner/patients/{pid}/transactions")["transactions"]
    get(f"/partner/transactions/{txns[0]['transaction_id']}")
    r = rec.call(
        "POST",
        f"/partner/sandbox/transactions/{txns[0]['transaction_id']}/refund",
        p,
        headers=CLINICAL,
        json={"amount_cents": 100, "reason": who.refund_reason},
    )
    assert r.status_code == 200, r.text
    r = rec.call(
        "POST",
        f"/partner/sandbox/referrals/{ref['referral_id']}/advance",
        p,
        json={"target_status": "delivered"},
    )
    assert r.status_code == 200, r.text
    get(f"/partner/patients/{pid}/messages")
    get("/partner/events", appointment_id=aid, limit=50)

    # Prescriber registry and a partner-submitted prescription for an inline patient.
    r = rec.call(
        "POST",
        "/partner/prescribers",
        p,
        headers=CLINICAL,
        json={
            "first_name": who.rx_first,
            "last_name": who.rx_last,
            "email": who.rx_email,
            "dea_number": "AB1234567",
            "licenses": [
                {
                    "country": "US",
                    "jurisdiction": "TX",
                    "license_number": who.license,
                    "expires_at": (datetime.now(UTC) + timedelta(days=400)).date().isoformat(),
                }
            ],
        },
    )
    assert r.status_code == 201, r.text
    prescriber_id = r.json()["prescriber_id"]
    get(f"/partner/prescribers/{prescriber_id}")
    get("/partner/prescribers")
    inline = {
        "first_name": who.inline_first,
        "last_name": who.inline_last,
        "email": who.inline_email,
        "phone": "+15125550199",
        "dob": "1990-05-10",
        "gender": "male",
        "address": {
            "street": who.inline_street,
            "city": "Austin",
            "jurisdiction": "TX",
            "postal_code": "73301",
            "country": "US",
        },
    }
    body = {
        "prescriber_id": prescriber_id,
        "partner_reference": f"PRX-{_token()}",
        "notes": who.notes,
        "medications": [
            {"code": "MED-TRT-CREAM", "quantity": 30, "dosage_instructions": "Apply 1g daily", "repeats": 5}
        ],
        "inline_patient": inline,
    }
    r = rec.call("POST", "/partner/prescriptions", p, headers=CLINICAL, json=body)
    assert r.status_code == 201, r.text
    assert rec.call("POST", "/partner/prescriptions", p, headers=CLINICAL, json=body).status_code == 200
    # Errors that quote the caller's PHI back (validation messages) are logged without it.
    bad = {
        **body,
        "partner_reference": f"PRX-{_token()}",
        "inline_patient": {**inline, "email": who.bad_email},
    }
    r = rec.call("POST", "/partner/prescriptions", p, headers=CLINICAL, json=bad)
    assert r.status_code in (400, 422) and who.bad_email in r.text, r.text
    r = rec.call("GET", "/partner/patients", p, headers=CLINICAL, params={"search": who.last * 8})
    assert r.status_code == 400 and who.last in r.text, r.text
    r = rec.call("GET", f"/partner/patients/ptn_{who.first}x/nowhere", p, headers=CLINICAL)
    assert r.status_code == 404
    assert drain(sandbox, p.partner_id) > 0
    return {"partner": p, "patient_id": pid, "prescriber_id": prescriber_id}


def _pharmacy_flow(sandbox: Any, who: People) -> str:
    from server.pharmacy.clinics import create_clinic

    db = sandbox.state.db
    creds = create_clinic(db, sandbox.state.box)
    pharmacy_service.register_webhook(db, creds.clinic_id, creds.clinic_id, DEAD_HOOK, "sandbox")
    location = {
        "address_line1": who.pharmacy_street,
        "city": "Austin",
        "state": "TX",
        "postal_code": "73301",
        "country": "US",
    }
    ref = simulation.create_medication_order(
        db,
        creds.clinic_id,
        medication_name=f"Medication {who.notes}",
        delivery_location=location,
        refills_allowed=2,
    )
    for _ in range(8):  # validated ... delivered: refills open
        try:
            simulation.advance_order(db, ref.medication_order_id)
        except simulation.PharmacyError:  # delivered: nothing further
            break
    PharmacyDispatcher(db, sandbox.state.box, "sandbox").drain(clinic_id=creds.clinic_id)
    r = sandbox.client.post(
        "/api/external/refill-request",
        headers={"X-API-Key": creds.api_key},
        json={"medication_request_id": ref.medication_request_id},
    )
    assert r.status_code == 201, r.text
    return creds.clinic_id


@pytest.fixture
def logged_sandbox(sandbox_factory: Any) -> Any:
    return sandbox_factory(log_bodies=True)


def test_no_phi_in_any_log_record(logged_sandbox: Any, spec_document: dict[str, Any]) -> None:
    sandbox = logged_sandbox
    who = People()
    rec = Recorder(sandbox)
    with capture_all_logs() as capture:
        ids = _clinical_flow(rec, sandbox, who)
        _pharmacy_flow(sandbox, who)

    phi = PhiValues(PhiMap(spec_document), spec_constants(spec_document))
    phi.add_literal(*who.literals())
    rec.collect(phi, capture)
    values = phi.values()
    assert set(who.literals()) - {who.phone_in} <= values | {v for v in who.literals() if len(v) < 6}
    assert ids["patient_id"] in values  # PHI ids are found by the spec-derived collector
    texts = capture.texts()
    assert len(texts) > 300, len(texts)
    assert scan("\n".join(texts), values) == [], _where(capture, values)
    _assert_lines_are_useful(capture, ids, who)


def _where(capture: CaptureHandler, values: set[str]) -> list[str]:
    """Which logger wrote each PHI value found, and around what (the value itself masked)."""
    out = []
    for record, text in zip(capture.records, capture.texts()[::3], strict=True):
        for v in scan(text, values):
            i = text.find(v)
            out.append(
                f"{record.name}: ...{text[max(0, i - 120) : i]}<PHI>{text[i + len(v) : i + len(v) + 60]}..."
            )
    return out[:10]


def _line(capture: CaptureHandler, operation_id: str, status: int = 200) -> dict[str, Any]:
    found = [x for x in capture.access_lines() if x["operation_id"] == operation_id and x["status"] == status]
    assert found, (operation_id, status)
    return found[0]


def _assert_lines_are_useful(capture: CaptureHandler, ids: dict[str, Any], who: People) -> None:
    partner_id = ids["partner"].partner_id
    line = _line(capture, "getPatient")
    assert line["partner_id"] == partner_id and line["method"] == "GET"
    assert line["path"] == "/partner/patients/{patient_id}" and line["request_id"].startswith("req_")
    assert isinstance(line["latency_ms"], float)
    body = line["response_body"]
    assert body["first_name"] == MASK and body["email"] == MASK and body["patient_id"] == MASK
    assert body["partner_reference"].startswith("cust_") and body["created_at"]  # non-PHI kept

    listing = _line(capture, "listPatients")
    assert listing["query"] == {"search": MASK, "limit": "5"}
    assert listing["response_body"]["patients"][0]["first_name"] == MASK

    created = _line(capture, "createPrescriber", 201)
    assert created["request_body"]["first_name"] == MASK and created["request_body"]["dea_number"] == MASK
    assert created["response_body"]["prescriber_id"] == ids["prescriber_id"]

    rx = _line(capture, "createPrescription", 201)
    assert rx["request_body"]["prescriber_id"] == ids["prescriber_id"]
    assert rx["request_body"]["partner_reference"].startswith("PRX-")
    assert (
        rx["request_body"]["inline_patient"] == MASK or rx["request_body"]["inline_patient"]["email"] == MASK
    )

    bad = next(
        x for x in capture.access_lines() if x["operation_id"] == "createPrescription" and x["status"] >= 400
    )
    assert bad["response_body"]["error"]["code"]  # the envelope is logged, its quoted PHI masked
    assert MASK in str(bad["response_body"])

    unknown = next(x for x in capture.access_lines() if x["status"] == 404 and x["operation_id"] is None)
    assert unknown["path"] == "/partner/patients/ptn_.../nowhere"

    payloads = capture.payload_lines()
    created_events = [x for x in payloads if x["event_type"] == "patient.created"]
    assert created_events, sorted({x["event_type"] for x in payloads})
    assert MASK in str(created_events[0]["payload"]["data"])
    assert created_events[0]["payload"]["event_id"] == created_events[0]["event_id"].replace("[redacted]", "")
    enrolled = next(x for x in payloads if x["event_type"] == "referral.enrolled")["payload"]
    assert enrolled["data"]["patient"] == MASK and enrolled["data"]["status"] == "enrolled"
    assert enrolled["patient_id"] == MASK and enrolled["referral_id"].startswith("ref_")
    assert any(x["api"] == "pharmacy" for x in payloads)

    refill = _line(capture, "createRefillRequest", 201)
    assert refill["path"] == "/refill-request" and refill["response_body"]["success"] is True
