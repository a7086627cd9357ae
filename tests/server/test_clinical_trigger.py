"""POST /partner/sandbox/events/trigger for the clinical event types: each one fires from its real state change,
the answer lists the run's events in order (the requested one last), every event is readable from
GET /partner/events, valid against the spec's webhook schema, and delivered to the partner's webhook URL."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from server import clock
from server.tooling.cli import register
from server.tooling.common import Api
from server.tooling.trigger import cmd_trigger
from tests.server.clinical.helpers import CLINICAL, get
from tests.server.webhooks.conftest import Receiver, start_receiver
from tests.server.webhooks.helpers import drain, get_event

TRIGGER = "/partner/sandbox/events/trigger"
ENROLLED = [
    "referral.enrolled",
    "referral.payment_due",
    "referral.payment_complete",
    "referral.pending_review",
    "patient.created",
    "appointment.intake_completed",
    "transaction.succeeded",
]
EXPECTED = {
    "patient.created": ENROLLED[:5],
    "appointment.intake_completed": ENROLLED[:6],
    "transaction.succeeded": ENROLLED,
    "transaction.refunded": [*ENROLLED, "transaction.refunded"],
    "patient.updated": [*ENROLLED, "patient.updated"],
    "appointment.prescription_signed": [*ENROLLED, "referral.approved", "appointment.prescription_signed"],
    "prescription.received": ["patient.created", "prescription.received"],
    "prescription.rejected": ["patient.created", "prescription.received", "prescription.rejected"],
}
OBJECTS = {
    "patient.created": {"referral_id", "patient_id", "appointment_id"},
    "appointment.intake_completed": {"referral_id", "patient_id", "appointment_id"},
    "transaction.succeeded": {"referral_id", "patient_id", "appointment_id", "transaction_id"},
    "transaction.refunded": {"referral_id", "patient_id", "appointment_id", "transaction_id"},
    "patient.updated": {"referral_id", "patient_id", "appointment_id"},
    "appointment.prescription_signed": {"referral_id", "patient_id", "appointment_id", "prescription_id"},
    "prescription.received": {
        "referral_id",
        "patient_id",
        "appointment_id",
        "prescriber_id",
        "prescription_id",
    },
    "prescription.rejected": {
        "referral_id",
        "patient_id",
        "appointment_id",
        "prescriber_id",
        "prescription_id",
    },
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _trigger(sandbox: Any, creds: Any, event_type: str, **body: Any) -> Any:
    return sandbox.call("POST", TRIGGER, creds, json={"event_type": event_type, **body})


def _all_events_of(sandbox: Any, creds: Any, schemas: Any) -> list[dict[str, Any]]:
    """Every event of the partner from GET /partner/events, oldest first."""
    r = sandbox.call("GET", "/partner/events", creds, params={"limit": 200})
    assert r.status_code == 200, r.text
    schemas.component("WebhookEventList", r.json())
    assert r.json()["pagination"]["has_more"] is False
    return list(reversed(r.json()["events"]))


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
def test_clinical_event_fires_from_its_state_change(
    sandbox: Any, schemas: Any, receiver: Receiver, event_type: str
) -> None:
    creds = sandbox.partner(tier="clinical", webhook_url=receiver.url)
    before = clock.partner_now(0)
    r = _trigger(sandbox, creds, event_type, metadata={"campaign": "trigger-test"})
    assert r.status_code == 200, r.text
    body = r.json()
    schemas.component("TriggerEventResponse", body)
    types = [e["event_type"] for e in body["events"]]
    assert types == EXPECTED[event_type]
    assert body["event_type"] == event_type and body["event_id"] == body["events"][-1]["event_id"]
    assert set(body["objects"]) == OBJECTS[event_type]
    # sandbox time: the run starts now; a change after the first one comes 1 second later
    times = [clock.parse_iso(e["occurred_at"]) for e in body["events"]]
    assert times == sorted(times) and times[0] >= before - timedelta(seconds=1)
    distinct = sorted(set(times))
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(distinct))
    if len(EXPECTED[event_type]) > len(ENROLLED) or event_type == "prescription.rejected":
        assert len(distinct) == 2
    # each listed event is stored as sent, valid against the spec's webhook schema
    for listed in body["events"]:
        stored = get_event(sandbox, creds, listed["event_id"])
        assert stored["event_type"] == listed["event_type"]
        schemas.webhook(listed["event_type"], stored["payload"])
        payload = stored["payload"]
        assert payload["referral_id"] == body["objects"]["referral_id"]
        if not event_type.startswith("prescription."):
            assert payload["metadata"] == {"campaign": "trigger-test"}
    # the run wrote only its own events, in the listed order (those the last change wrote after it follow)
    stored_ids = [e["event_id"] for e in _all_events_of(sandbox, creds, schemas)]
    listed_ids = [e["event_id"] for e in body["events"]]
    assert stored_ids[: len(listed_ids)] == listed_ids
    # and the receiver gets them, in order
    drain(sandbox, creds.partner_id)
    got = receiver.wait_for(len(stored_ids))
    assert [json.loads(rec.body)["event_id"] for rec in got] == stored_ids
    for rec in got:
        schemas.webhook(json.loads(rec.body)["event_type"], json.loads(rec.body))
    _check_state(sandbox, creds, event_type, body)


def _check_state(sandbox: Any, creds: Any, event_type: str, body: dict[str, Any]) -> None:
    """The objects the answer names exist and show the change the event reported."""
    objects = body["objects"]
    patient = get(sandbox, creds, f"/partner/patients/{objects['patient_id']}")
    assert patient.status_code == 200, patient.text
    appointment = get(sandbox, creds, f"/partner/appointments/{objects['appointment_id']}")
    assert appointment.status_code == 200, appointment.text
    appt = appointment.json()
    referral = sandbox.call("GET", f"/partner/referrals/{objects['referral_id']}", creds).json()
    payload = get_event(sandbox, creds, body["event_id"])["payload"]
    if event_type == "patient.updated":
        address = patient.json()["address"]
        assert payload["data"]["changed_fields"] == ["address"]
        assert payload["data"]["patient"]["address"] == address
        assert address["line1"] == "200 Trigger Lane"
    elif event_type in ("transaction.succeeded", "transaction.refunded"):
        txn = get(sandbox, creds, f"/partner/transactions/{objects['transaction_id']}")
        assert txn.status_code == 200, txn.text
        status = "refunded" if event_type == "transaction.refunded" else "succeeded"
        assert txn.json()["status"] == status == payload["data"]["transaction"]["status"]
        assert referral["payment"]["status"] == ("refunded" if status == "refunded" else "paid")
    elif event_type == "appointment.prescription_signed":
        assert appt["status"] == "approved" and referral["status"] == "approved"
        assert payload["data"]["prescription"]["prescription_id"] == objects["prescription_id"]
    elif event_type.startswith("prescription."):
        assert appt["status"] == "doctor_reviewed"
        assert appt["prescription_summary"]["prescription_id"] == objects["prescription_id"]
        prescriber = sandbox.call(
            "GET", f"/partner/prescribers/{objects['prescriber_id']}", creds, headers=CLINICAL
        )
        assert prescriber.status_code == 200, prescriber.text
        if event_type == "prescription.rejected":
            assert prescriber.json()["status"] == "inactive"
            assert payload["data"]["error_code"] == "PRESCRIBER_INACTIVE"
            assert payload["data"]["prescription_id"] == objects["prescription_id"]
            assert payload["appointment_id"] == objects["appointment_id"]
        else:
            assert prescriber.json()["status"] == "active"
    else:
        assert appt["status"] == "pending_review" and referral["status"] == "pending_review"


def test_referral_tier_gets_403_for_clinical_event_types(sandbox: Any) -> None:
    creds = sandbox.partner()
    for event_type in sorted(EXPECTED):
        r = _trigger(sandbox, creds, event_type)
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "CLINICAL_ACCESS_REQUIRED"
        assert error["details"] == {"event_type": event_type, "required_tier": "clinical"}
    assert sandbox.call("GET", "/partner/events", creds).json()["events"] == []


def test_clinical_trigger_options_and_errors(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner(tier="clinical")
    r = _trigger(sandbox, creds, "patient.created", product_category="peptides", partner_reference="cust_t1")
    assert r.status_code == 200, r.text
    referral_id = r.json()["objects"]["referral_id"]
    referral = sandbox.call("GET", f"/partner/referrals/{referral_id}", creds).json()
    assert referral["product_category"] == "peptides" and referral["partner_reference"] == "cust_t1"
    # the same partner_reference names that referral, already enrolled: nothing more happens
    again = _trigger(
        sandbox, creds, "patient.created", product_category="peptides", partner_reference="cust_t1"
    )
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "INVALID_TRANSITION"
    schemas.component("ErrorResponse", again.json())
    # referral_id drives referral.* events only (TriggerEventRequest's dependentSchemas)
    with_id = _trigger(sandbox, creds, "patient.updated", referral_id=referral_id)
    assert with_id.status_code == 400 and with_id.json()["error"]["code"] == "INVALID_BODY"
    for event_type in ("transaction.succeeded", "prescription.received"):
        bad = _trigger(sandbox, creds, event_type, product_category="weight-loss")
        assert bad.status_code == 422, bad.text
        assert bad.json()["error"]["code"] == "INVALID_PRODUCT_CATEGORY"
    rx = _trigger(sandbox, creds, "prescription.received", product_category="peptides")
    assert rx.status_code == 200, rx.text
    payload = get_event(sandbox, creds, rx.json()["event_id"])["payload"]
    assert payload["data"]["medications"][0]["code"] == "MED-BPC157-VIAL"
    # the sandbox clock was moved to the last event written, never backwards
    view = sandbox.call("GET", "/partner/sandbox/clock", creds).json()
    assert clock.parse_iso(view["now"]) >= clock.parse_iso(rx.json()["events"][-1]["occurred_at"])


def test_stealth_trigger_cli_for_a_clinical_event(sandbox: Any, monkeypatch: Any, capsys: Any) -> None:
    creds = sandbox.partner(tier="clinical")
    monkeypatch.setattr(
        Api, "connect", classmethod(lambda cls, c, timeout=30.0: cls(sandbox.client, c.partner_id, c.api_key))
    )
    parser = argparse.ArgumentParser(prog="stealth")
    register(parser.add_subparsers(dest="command", required=True))
    base = ["--partner-id", creds.partner_id, "--api-key", creds.api_key]
    args = parser.parse_args(["trigger", "appointment.prescription_signed", *base])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "appointment.prescription_signed" in out and "referral.approved" in out
    assert "appointment_id=appt_" in out and "patient_id=ptn_" in out
    args = parser.parse_args(["trigger", "prescription.rejected", "--json", *base])
    assert cmd_trigger(args) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [e["event_type"] for e in answer["events"]] == EXPECTED["prescription.rejected"]
    denied = sandbox.partner()
    args = parser.parse_args(
        ["trigger", "patient.created", "--partner-id", denied.partner_id, "--api-key", denied.api_key]
    )
    assert cmd_trigger(args) == 1
    assert "CLINICAL_ACCESS_REQUIRED" in capsys.readouterr().err
