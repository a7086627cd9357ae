"""PHI responses carry ``Cache-Control: no-store``: every operation whose response schema holds an x-phi
property (derived from the spec, not a list) is called, and its answer checked; the spec declares the header on
each such response too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.pharmacy import service as pharmacy_service
from server.pharmacy import simulation
from server.pharmacy.clinics import create_clinic
from server.pharmacy.spec import load_pharmacy_spec
from server.redaction import PhiMap
from stealth_spec.walk import deref, operations
from tests.server.clinical.helpers import CLINICAL, enroll


def phi_operations(document: dict[str, Any]) -> list[str]:
    phi = PhiMap(document)
    return sorted(op_id for op_id, op in phi.operations.items() if op.response_has_phi)


def test_the_spec_declares_no_store_on_every_phi_response(spec_document: dict[str, Any]) -> None:
    checked = 0
    for document in (spec_document, load_pharmacy_spec()):
        wanted = set(phi_operations(document))
        assert wanted
        for op in operations(document):
            if op.op.get("operationId") not in wanted:
                continue
            for code, response in op.op["responses"].items():
                if not code.startswith("2"):
                    continue
                headers = deref(document, response).get("headers") or {}
                header = deref(document, headers.get("Cache-Control") or {})
                assert header.get("required") is True, (op.op["operationId"], code)
                assert "no-store" in str(header.get("schema") or header.get("description")), op.op[
                    "operationId"
                ]
                checked += 1
    assert checked >= 25


def _calls(sandbox: Any) -> dict[str, Any]:
    """One request per PHI operation (operationId -> function returning the response)."""
    clinical = sandbox.partner("clinical")
    prescriber_key = sandbox.partner("prescriber")
    ref = enroll(sandbox, clinical)
    pid, aid = ref["patient_id"], ref["appointment_id"]

    def c(method: str, url: str, creds: Any = clinical, **kw: Any) -> Any:
        return lambda: sandbox.call(method, url, creds, headers=CLINICAL, **kw)

    txn = sandbox.call("GET", f"/partner/patients/{pid}/transactions", clinical, headers=CLINICAL).json()
    txn_id = txn["transactions"][0]["transaction_id"]
    events = sandbox.call("GET", "/partner/events", clinical, params={"limit": 1}).json()["events"]
    licence = {
        "country": "US",
        "jurisdiction": "TX",
        "license_number": "TX-MD-1",
        "expires_at": (datetime.now(UTC) + timedelta(days=400)).date().isoformat(),
    }
    made = sandbox.call(
        "POST",
        "/partner/prescribers",
        clinical,
        headers=CLINICAL,
        json={
            "first_name": "A",
            "last_name": "B",
            "email": "a@example.com",
            "licenses": [licence, {**licence, "jurisdiction": "FL", "license_number": "FL-MD-1"}],
        },
    ).json()
    rx_body = {
        "prescriber_id": made["prescriber_id"],
        "patient_id": pid,
        "medications": [
            {"code": "MED-TRT-CREAM", "quantity": 30, "dosage_instructions": "Apply", "repeats": 1}
        ],
    }
    pharmacy_db = sandbox.state.db
    clinic = create_clinic(pharmacy_db, sandbox.state.box)
    pharmacy_service.register_webhook(
        pharmacy_db, clinic.clinic_id, clinic.clinic_id, "http://127.0.0.1:9/", "sandbox"
    )
    order = simulation.create_medication_order(pharmacy_db, clinic.clinic_id, refills_allowed=2)
    for _ in range(8):
        try:
            simulation.advance_order(pharmacy_db, order.medication_order_id)
        except simulation.PharmacyError:
            break
    new_prescriber = {"first_name": "C", "last_name": "D", "email": "c@example.com", "licenses": [licence]}
    return {
        "listReferrals": c("GET", "/partner/referrals"),
        "getReferral": c("GET", f"/partner/referrals/{ref['referral_id']}"),
        "listEvents": c("GET", "/partner/events"),
        "getEvent": c("GET", f"/partner/events/{events[0]['event_id']}"),
        "listPatients": c("GET", "/partner/patients", params={"search": "Jane"}),
        "getPatient": c("GET", f"/partner/patients/{pid}"),
        "listPatientAppointments": c("GET", f"/partner/patients/{pid}/appointments"),
        "getPatientIntake": c("GET", f"/partner/patients/{pid}/intake", params={"appointment_id": aid}),
        "listPatientMessages": c("GET", f"/partner/patients/{pid}/messages"),
        "listPatientTransactions": c("GET", f"/partner/patients/{pid}/transactions"),
        "getTransaction": c("GET", f"/partner/transactions/{txn_id}"),
        "getAppointment": c("GET", f"/partner/appointments/{aid}"),
        "listPrescribers": c("GET", "/partner/prescribers"),
        "createPrescriber": c("POST", "/partner/prescribers", json=new_prescriber),
        "getPrescriber": c("GET", f"/partner/prescribers/{made['prescriber_id']}"),
        "createPrescription": c("POST", "/partner/prescriptions", json=rx_body),
        "deactivatePrescriber": c("POST", f"/partner/prescribers/{made['prescriber_id']}/deactivate"),
        "refundSandboxTransaction": c("POST", f"/partner/sandbox/transactions/{txn_id}/refund", json={}),
        "advanceSandboxReferral": c(
            "POST",
            f"/partner/sandbox/referrals/{ref['referral_id']}/advance",
            json={"target_status": "delivered"},
        ),
        "triggerSandboxEvent": c(
            "POST", "/partner/sandbox/events/trigger", json={"event_type": "referral.enrolled"}
        ),
        "listAppointments": c("GET", "/partner/appointments", prescriber_key),
        "submitAppointment": c("POST", "/partner/appointments", prescriber_key, json={}),
        "getAppointmentPrescription": c("GET", f"/partner/appointments/{aid}/prescription", prescriber_key),
        "getAppointmentRoutingStatus": c(
            "GET", f"/partner/appointments/{aid}/routing-status", prescriber_key
        ),
        "advanceSandboxAppointment": c(
            "POST", f"/partner/sandbox/appointments/{aid}/advance", prescriber_key, json={}
        ),
        "createRefillRequest": lambda: sandbox.client.post(
            "/api/external/refill-request",
            headers={"X-API-Key": clinic.api_key},
            json={"medication_request_id": order.medication_request_id},
        ),
    }


# Operations of the prescriber tier are being built; until they are served, their answer (a documented 4xx)
# is still checked for the header, and they are not required to succeed.
PRESCRIBER_TIER = {
    "listAppointments",
    "submitAppointment",
    "getAppointmentPrescription",
    "getAppointmentRoutingStatus",
    "advanceSandboxAppointment",
}


def test_every_phi_response_is_no_store(sandbox: Any, spec_document: dict[str, Any]) -> None:
    wanted = set(phi_operations(spec_document)) | set(phi_operations(load_pharmacy_spec()))
    calls = _calls(sandbox)
    assert wanted == set(calls), (
        f"add a call for: {sorted(wanted - set(calls))}; stale: {sorted(set(calls) - wanted)}"
    )
    succeeded = set()
    for op_id in sorted(wanted):
        response = calls[op_id]()
        assert response.headers.get("cache-control") == "no-store", (op_id, response.status_code)
        if 200 <= response.status_code < 300:
            succeeded.add(op_id)
        elif op_id in PRESCRIBER_TIER:
            assert response.status_code in (400, 404, 422), (op_id, response.text)
        else:
            pytest.fail(f"{op_id} answered {response.status_code}: {response.text[:300]}")
    assert wanted - PRESCRIBER_TIER <= succeeded
