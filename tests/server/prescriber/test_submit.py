"""POST /partner/appointments (seed 003 §6.1, §10, §12): creation, billing, idempotency, the validation order."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from server.db.models import Event
from server.db.models_prescriber import PrescriberAppointment
from server.services import prescriber_catalog as catalog
from tests.server.prescriber.helpers import code, events_for, submission, submit


def _count(sandbox: Any, creds: Any) -> int:
    with sandbox.state.db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(PrescriberAppointment)
                .where(PrescriberAppointment.partner_id == creds.partner_id)
            )
            or 0
        )


def _post(sandbox: Any, creds: Any, body: dict[str, Any]) -> Any:
    return sandbox.call("POST", "/partner/appointments", creds, json=body)


def test_products_are_seed_003_conditions(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner("prescriber")
    r = sandbox.call("GET", "/partner/products", creds)
    assert r.status_code == 200
    products = {p["category_id"]: p for p in r.json()["products"]}
    assert set(products) == {"trt-cream", "bpc-157"}
    assert products["trt-cream"]["required_intake_questions"] == [
        "current_medications",
        "allergies",
        "medical_history",
        "current_symptoms",
        "prior_treatments",
        "recent_labs",
    ]
    assert products["bpc-157"]["supported_states"] == ["FL", "TX", "CA"]
    for p in products.values():
        schemas.component("PrescriberProduct", p)


def test_submit_creates_pending_appointment_bills_and_emits(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner("prescriber")
    created = submit(sandbox, creds)
    schemas.component("SubmitAppointmentResponse", created)
    assert created["status"] == "pending"
    assert created["patient_id"].startswith("ptn_")
    fee = created["review_fee"]
    assert fee["status"] == "simulated" and fee["amount_cents"] == 4500
    assert fee["invoice_id"].startswith("in_")
    events = events_for(sandbox, creds, created["appointment_id"])
    assert [e["event_type"] for e in events] == ["appointment.submitted", "review.billed"]
    for e in events:
        schemas.webhook(e["event_type"], e)
    billed = events[1]["data"]
    assert billed["invoice_id"] == fee["invoice_id"] and billed["fee_status"] == "simulated"
    assert events[0]["metadata"] == {"internal_case_id": "4821"}


def test_same_email_reuses_the_patient(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    first = submission()
    a = submit(sandbox, creds, first)
    second = submission(patient={**first["patient"], "phone": "+15559876543"})
    b = submit(sandbox, creds, second)
    assert a["patient_id"] == b["patient_id"] and a["appointment_id"] != b["appointment_id"]


def test_replay_and_duplicate_reference(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    body = submission()
    first = _post(sandbox, creds, body)
    assert first.status_code == 201
    again = _post(sandbox, creds, body)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["appointment_id"] == first.json()["appointment_id"]
    assert len(events_for(sandbox, creds, first.json()["appointment_id"])) == 2  # no second charge or event
    changed = dict(body, condition="bpc-157", intake_answers=submission("bpc-157")["intake_answers"])
    conflict = _post(sandbox, creds, changed)
    assert conflict.status_code == 409 and code(conflict) == "DUPLICATE_REFERENCE"
    assert conflict.json()["error"]["details"]["appointment_id"] == first.json()["appointment_id"]
    assert _count(sandbox, creds) == 1


def test_payment_failure_creates_nothing_and_frees_the_reference(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    body = submission(metadata={"sandbox_scenario": "payment_failed"})
    r = _post(sandbox, creds, body)
    assert r.status_code == 402 and code(r) == "PAYMENT_REQUIRED"
    assert r.json()["error"]["details"]["review_fee"]["status"] == "failed"
    assert _count(sandbox, creds) == 0
    with sandbox.state.db.session() as session:
        assert not session.scalar(
            select(func.count()).select_from(Event).where(Event.partner_id == creds.partner_id)
        )
    retry = dict(body, metadata={})
    assert _post(sandbox, creds, retry).status_code == 201


@pytest.mark.parametrize("condition", sorted(catalog.CONDITIONS))
def test_intake_matrix(sandbox: Any, condition: str) -> None:
    """Every required question of every condition is enforced; custom_ and the condition's optional ids pass."""
    creds = sandbox.partner("prescriber")
    c = catalog.CONDITIONS[condition]
    for missing in c.current.required:
        body = submission(condition)
        body["intake_answers"] = [a for a in body["intake_answers"] if a["question_id"] != missing]
        r = _post(sandbox, creds, body)
        assert r.status_code == 400 and code(r) == "INVALID_INTAKE", r.text
        details = r.json()["error"]["details"]
        assert details["missing_question_ids"] == [missing]
        assert details["condition"] == condition and details["intake_schema_version"] == c.current_version
    extra = [
        {"question_id": q, "question_text": "Optional?", "answer": "Yes"}
        for q in (*c.current.optional, "custom_exercise_routine")
    ]
    body = submission(condition)
    body["intake_answers"] += extra
    assert _post(sandbox, creds, body).status_code == 201
    assert _count(sandbox, creds) == 1


def test_intake_invalid_duplicate_and_blank_answers(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    body = submission("bpc-157")
    body["intake_answers"] += [
        {
            "question_id": "recent_labs",
            "question_text": "Labs?",
            "answer": "n/a",
        },  # trt-cream's, not bpc-157's
        {"question_id": "allergies", "question_text": "Allergies?", "answer": "None"},
    ]
    body["intake_answers"][0]["answer"] = "   "
    r = _post(sandbox, creds, body)
    assert r.status_code == 400 and code(r) == "INVALID_INTAKE"
    details = r.json()["error"]["details"]
    assert details["invalid_question_ids"] == ["current_medications", "recent_labs"]
    assert details["duplicate_question_ids"] == ["allergies"]


def test_intake_schema_versions(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    deprecated = submission("trt-cream", intake_schema_version="0.9")
    deprecated["intake_answers"] = [
        a for a in deprecated["intake_answers"] if a["question_id"] != "prior_treatments"
    ]
    assert _post(sandbox, creds, deprecated).status_code == 201
    closed = submission("trt-cream", intake_schema_version="0.8")
    r = _post(sandbox, creds, closed)
    assert r.status_code == 400 and code(r) == "INVALID_INTAKE"
    assert "no longer accepted" in r.json()["error"]["message"]
    unknown = _post(sandbox, creds, submission("trt-cream", intake_schema_version="7.7"))
    assert unknown.status_code == 400 and code(unknown) == "INVALID_INTAKE"
    assert unknown.json()["error"]["details"]["current_intake_schema_version"] == "1.0"


def test_jurisdiction_category_and_pharmacy_errors(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    body = submission("bpc-157")
    body["patient"]["address"]["state"] = "NY"  # trt-cream ships to NY, bpc-157 does not
    r = _post(sandbox, creds, body)
    assert r.status_code == 400 and code(r) == "UNSUPPORTED_JURISDICTION"
    assert r.json()["error"]["details"]["field"] == "patient.address.state"
    body = submission()
    body["patient"]["address"].update(country="CA", state="ON", zip="M5V 2T6")
    r = _post(sandbox, creds, body)
    assert code(r) == "UNSUPPORTED_JURISDICTION"
    assert r.json()["error"]["details"]["field"] == "patient.address.country"
    r = _post(sandbox, creds, dict(submission(), condition="hair-loss"))
    assert r.status_code == 422 and code(r) == "INVALID_PRODUCT_CATEGORY"
    r = _post(sandbox, creds, submission(pharmacy_preference="stealth", preferred_pharmacy_id="pharm_zzz999"))
    assert r.status_code == 404 and code(r) == "PHARMACY_NOT_FOUND"
    r = _post(sandbox, creds, submission(pharmacy_preference="partner", preferred_pharmacy_id="pharm_abc123"))
    assert r.status_code == 400 and code(r) == "INVALID_BODY"
    r = _post(sandbox, creds, submission(metadata={"sandbox_scenario": "approve_twice"}))
    assert r.status_code == 400 and code(r) == "INVALID_BODY"
    future = submission()
    future["patient"]["date_of_birth"] = "2999-01-01"
    assert code(_post(sandbox, creds, future)) == "INVALID_BODY"
    assert _count(sandbox, creds) == 0


def test_validation_order_first_broken_rule_wins(sandbox: Any) -> None:
    """x-validation-order: a request that breaks several rules gets the earliest one's code."""
    creds = sandbox.partner("prescriber")
    taken = submit(sandbox, creds)
    body = submission(condition="bpc-157", partner_reference=taken["partner_reference"])
    body["patient"]["address"]["state"] = "NY"
    body["intake_answers"] = body["intake_answers"][:1]
    body.update(pharmacy_preference="stealth", preferred_pharmacy_id="pharm_zzz999")
    steps = [
        ("INVALID_PRODUCT_CATEGORY", lambda b: b.update(condition="hair-loss")),
        ("UNSUPPORTED_JURISDICTION", lambda b: b.update(condition="bpc-157")),
        ("INVALID_INTAKE", lambda b: b["patient"]["address"].update(state="FL")),
        ("PHARMACY_NOT_FOUND", lambda b: b.update(intake_answers=submission("bpc-157")["intake_answers"])),
        ("DUPLICATE_REFERENCE", lambda b: b.update(preferred_pharmacy_id="pharm_abc123")),
    ]
    for expected, fix_previous in steps:
        fix_previous(body)
        assert code(_post(sandbox, creds, body)) == expected


def test_production_refuses_sandbox_scenarios(sandbox_factory: Any) -> None:
    production = sandbox_factory(environment="production")
    creds = production.partner("prescriber")
    r = production.call(
        "POST",
        "/partner/appointments",
        creds,
        json=submission(metadata={"sandbox_scenario": "deny_age_restriction"}),
    )
    assert r.status_code == 422 and code(r) == "SANDBOX_SCENARIO_NOT_ALLOWED"
    ok = production.call("POST", "/partner/appointments", creds, json=submission())
    assert ok.status_code == 201 and ok.json()["review_fee"]["status"] == "charged"
