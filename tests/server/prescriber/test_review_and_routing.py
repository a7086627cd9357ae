"""Reads, the simulated review on the partner's clock, routing through the simulated pharmacy, the advance control
and the trigger (seed 003 §7-§9, §11, §15.2; P-001..P-012)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.db.models_clinical import AuditLog
from server.db.models_pharmacy import MedicationOrder, MedicationRequest, ShipmentGroup
from server.db.models_prescriber import PrescriberAppointment
from server.services import prescriber_catalog as catalog
from server.services.prescriber_simulation import TRIGGERABLE
from tests.server.prescriber.helpers import advance, code, events_for, submission, submit

DENIALS = sorted(catalog.DENIAL_REASONS)


def _clock(sandbox: Any, creds: Any, seconds: int) -> dict[str, Any]:
    r = sandbox.call("POST", "/partner/sandbox/clock/advance", creds, json={"seconds": seconds})
    assert r.status_code == 200, r.text
    return r.json()


def _get(sandbox: Any, creds: Any, appointment_id: str, suffix: str = "") -> Any:
    return sandbox.call("GET", f"/partner/appointments/{appointment_id}{suffix}", creds)


def _types(sandbox: Any, creds: Any, appointment_id: str, schemas: Any) -> list[str]:
    events = events_for(sandbox, creds, appointment_id)
    for e in events:
        schemas.webhook(e["event_type"], e)
    return [e["event_type"] for e in events]


def test_auto_review_after_two_minutes_of_partner_clock(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner("prescriber")
    other = sandbox.partner("prescriber")
    mine = submit(sandbox, creds)["appointment_id"]
    theirs = submit(sandbox, other)["appointment_id"]
    _clock(sandbox, creds, 60)
    assert _get(sandbox, creds, mine).json()["status"] == "pending"
    _clock(sandbox, creds, 61)
    detail = _get(sandbox, creds, mine).json()
    schemas.component("PrescriberAppointment", detail)
    assert detail["status"] == "doctor_reviewed" and detail["has_prescription"]
    assert detail["prescription"]["prescriber"]["license_state"] == "FL"
    assert _types(sandbox, creds, mine, schemas) == [
        "appointment.submitted",
        "review.billed",
        "appointment.in_review",
        "appointment.prescription_signed",
    ]
    # another partner's clock did not move
    assert _get(sandbox, other, theirs).json()["status"] == "pending"


@pytest.mark.parametrize("category", DENIALS)
def test_each_denial_scenario(sandbox: Any, schemas: Any, category: str) -> None:
    creds = sandbox.partner("prescriber")
    aid = submit(sandbox, creds, metadata={"sandbox_scenario": f"deny_{category}"})["appointment_id"]
    _clock(sandbox, creds, 125)
    detail = _get(sandbox, creds, aid).json()
    assert detail["status"] == "rejected"
    assert detail["denial_details"]["category"] == category
    assert detail["prescription"] is None
    assert _types(sandbox, creds, aid, schemas)[-1] == "appointment.denied"
    assert events_for(sandbox, creds, aid)[-1]["data"]["denial_category"] == category
    r = _get(sandbox, creds, aid, "/prescription")
    assert r.status_code == 404 and code(r) == "PRESCRIPTION_NOT_AVAILABLE"
    r = sandbox.call("POST", f"/partner/appointments/{aid}/route-pharmacy", creds, json={})
    assert r.status_code == 400 and code(r) == "PRESCRIPTION_NOT_SIGNED"


def test_slow_review_waits_a_day(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    aid = submit(sandbox, creds, metadata={"sandbox_scenario": "slow_review"})["appointment_id"]
    _clock(sandbox, creds, 3600)
    assert _get(sandbox, creds, aid).json()["status"] == "pending"
    _clock(sandbox, creds, 24 * 3600)
    assert _get(sandbox, creds, aid).json()["status"] == "doctor_reviewed"


def test_stealth_routing_fills_through_the_simulated_pharmacy(sandbox: Any, schemas: Any) -> None:
    """pharmacy_preference stealth: routed on signing to the preferred pharmacy, filled ~2 minutes later; the
    tracking the partner sees is the pharmacy shipment's own (one source of truth)."""
    creds = sandbox.partner("prescriber")
    body = submission(pharmacy_preference="stealth", preferred_pharmacy_id="pharm_ca0001")
    aid = submit(sandbox, creds, body)["appointment_id"]
    _clock(sandbox, creds, 125)
    routing = _get(sandbox, creds, aid, "/routing-status").json()
    assert routing["routing_status"] == "submitted" and routing["pharmacy"]["pharmacy_id"] == "pharm_ca0001"
    assert routing["tracking"] is None
    _clock(sandbox, creds, 125)
    routing = _get(sandbox, creds, aid, "/routing-status")
    assert routing.status_code == 200
    schemas.component("PharmacyRouting", routing.json())
    routing = routing.json()
    assert routing["routing_status"] == "filled" and routing["filled_at"]
    assert _get(sandbox, creds, aid).json()["status"] == "completed"
    with sandbox.state.db.session() as session:
        appt = session.get(PrescriberAppointment, aid)
        order = session.get(MedicationOrder, appt.medication_order_id)
        request = session.get(MedicationRequest, order.medication_request_id)
        group = session.get(ShipmentGroup, order.shipment_group_id)
        assert order.status == "shipped"
        assert request.source == "prescriber" and request.source_ref == aid
        assert request.prescription_id == appt.prescription["prescription_id"]
        assert routing["tracking"]["tracking_number"] == group.tracking_number == order.tracking_number
    assert _types(sandbox, creds, aid, schemas)[-2:] == ["prescription.routed", "prescription.filled"]


def test_partner_routing_default_pharmacy_and_errors(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner("prescriber")
    body = submission()
    body["patient"]["address"].update(state="TX", city="Austin", zip="78702")
    aid = submit(sandbox, creds, body)["appointment_id"]
    route = f"/partner/appointments/{aid}/route-pharmacy"
    r = sandbox.call("POST", route, creds, json={})
    assert r.status_code == 400 and code(r) == "PRESCRIPTION_NOT_SIGNED"
    r = _get(sandbox, creds, aid, "/routing-status")
    assert r.status_code == 404 and code(r) == "ROUTING_NOT_AVAILABLE"
    advance(sandbox, creds, aid, "doctor_reviewed")
    rx = _get(sandbox, creds, aid, "/prescription")
    assert rx.status_code == 200
    schemas.component("Prescription", rx.json())
    assert rx.json()["appointment_id"] == aid and rx.json()["patient"]["last_name"] == "Doe"
    r = sandbox.call("POST", route, creds, json={"pharmacy_id": "pharm_zzz999"})
    assert r.status_code == 404 and code(r) == "PHARMACY_NOT_FOUND"
    r = sandbox.call("POST", route, creds, json={})
    assert r.status_code == 200, r.text
    schemas.component("RoutePharmacyResponse", r.json())
    assert r.json()["pharmacy"]["pharmacy_id"] == "pharm_tx0001"  # the default for Texas
    again = sandbox.call("POST", route, creds, json={"pharmacy_id": "pharm_abc123"})
    assert again.status_code == 400 and code(again) == "ALREADY_ROUTED"
    assert again.json()["error"]["details"]["pharmacy_id"] == "pharm_tx0001"
    # the partner routes itself: nothing automatic happened to the appointment before
    assert _types(sandbox, creds, aid, schemas)[-1] == "prescription.routed"


def test_advance_control(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner("prescriber")
    aid = submit(sandbox, creds)["appointment_id"]
    out = advance(sandbox, creds, aid, "in_review")
    schemas.component("AdvanceSandboxAppointmentResponse", out)
    assert [t["to"] for t in out["transitions"]] == ["in_review"]
    assert advance(sandbox, creds, aid, "in_review")["transitions"] == []
    out = advance(
        sandbox, creds, aid, "rejected", denial_category="age_restriction", denial_reason="Under 21."
    )
    assert out["appointment"]["denial_details"]["reason"] == "Under 21."
    r = sandbox.call(
        "POST",
        f"/partner/sandbox/appointments/{aid}/advance",
        creds,
        json={"target_status": "doctor_reviewed"},
    )
    assert r.status_code == 409 and code(r) == "INVALID_TRANSITION"
    r = sandbox.call(
        "POST", f"/partner/sandbox/appointments/{aid}/advance", creds, json={"target_status": "rejected"}
    )
    assert r.status_code == 400  # denial_category is required for rejected
    times = [
        t["occurred_at"]
        for t in advance(sandbox, creds, submit(sandbox, creds)["appointment_id"], "completed")["transitions"]
    ]
    assert times == sorted(times)


def test_reads_list_filters_pagination_and_isolation(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner("prescriber")
    other = sandbox.partner("prescriber")
    clinical = sandbox.partner("clinical")
    email = submission()["patient"]["email"]
    ids = []
    for i in range(5):
        body = submission("bpc-157" if i % 2 else "trt-cream")
        if i == 0:
            body["patient"]["email"] = email.upper()
        ids.append(submit(sandbox, creds, body)["appointment_id"])
    advance(sandbox, creds, ids[1], "doctor_reviewed")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = sandbox.call("GET", "/partner/appointments", creds, params=params)
        assert page.status_code == 200
        schemas.component("PrescriberAppointmentList", page.json())
        seen += [a["appointment_id"] for a in page.json()["appointments"]]
        cursor = page.json()["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    only = sandbox.call("GET", "/partner/appointments", creds, params={"status": "doctor_reviewed"}).json()
    assert [a["appointment_id"] for a in only["appointments"]] == [ids[1]]
    bpc = sandbox.call("GET", "/partner/appointments", creds, params={"condition": "bpc-157"}).json()
    assert {a["appointment_id"] for a in bpc["appointments"]} == {ids[1], ids[3]}
    by_email = sandbox.call("GET", "/partner/appointments", creds, params={"patient_email": email}).json()
    assert [a["appointment_id"] for a in by_email["appointments"]] == [ids[0]]
    assert sandbox.call("GET", "/partner/appointments", other).json()["appointments"] == []
    for suffix in ("", "/prescription", "/routing-status"):
        r = _get(sandbox, other, ids[1], suffix)
        assert r.status_code == 404 and code(r) == "APPOINTMENT_NOT_FOUND", suffix
    r = sandbox.call(
        "GET", f"/partner/appointments/{ids[1]}", clinical, headers={"X-Access-Tier": "clinical"}
    )
    assert r.status_code == 404 and code(r) == "APPOINTMENT_NOT_FOUND"
    r = sandbox.call("POST", f"/partner/appointments/{ids[1]}/route-pharmacy", other, json={})
    assert code(r) == "APPOINTMENT_NOT_FOUND"


def test_phi_reads_are_audited_and_not_cached(sandbox: Any) -> None:
    creds = sandbox.partner("prescriber")
    aid = submit(sandbox, creds)["appointment_id"]
    r = _get(sandbox, creds, aid)
    assert r.headers["Cache-Control"] == "no-store"
    with sandbox.state.db.session() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.entity_id == aid)).all()
        actions = [(row.action, row.source_name) for row in rows]
    assert ("appointment.submitted", "submitAppointment") in actions
    assert ("phi.viewed", "getAppointment") in actions


@pytest.mark.parametrize("tier", ["referral", "clinical"])
def test_other_tiers_get_prescriber_access_required(sandbox: Any, tier: str) -> None:
    creds = sandbox.partner(tier)
    headers = {"X-Access-Tier": "clinical"} if tier == "clinical" else {}
    calls = [
        ("POST", "/partner/appointments", submission()),
        ("GET", "/partner/appointments", None),
        ("GET", "/partner/appointments/appt_f7c2e1a4b8d3/prescription", None),
        ("POST", "/partner/appointments/appt_f7c2e1a4b8d3/route-pharmacy", {}),
        ("GET", "/partner/appointments/appt_f7c2e1a4b8d3/routing-status", None),
        ("POST", "/partner/sandbox/appointments/appt_f7c2e1a4b8d3/advance", {"target_status": "in_review"}),
    ]
    for method, url, body in calls:
        r = sandbox.call(method, url, creds, json=body, headers=headers)
        assert r.status_code == 403 and code(r) == "PRESCRIBER_ACCESS_REQUIRED", (url, r.text)


@pytest.mark.parametrize("event_type", sorted(TRIGGERABLE))
def test_trigger_every_prescriber_event(sandbox: Any, schemas: Any, event_type: str) -> None:
    creds = sandbox.partner("prescriber")
    r = sandbox.call("POST", "/partner/sandbox/events/trigger", creds, json={"event_type": event_type})
    assert r.status_code == 200, r.text
    out = r.json()
    schemas.component("TriggerEventResponse", out)
    assert out["events"][-1]["event_type"] == event_type and out["event_id"] == out["events"][-1]["event_id"]
    stored = {e["event_id"]: e for e in events_for(sandbox, creds, out["objects"]["appointment_id"])}
    assert [e["event_id"] for e in out["events"]] == list(stored)[: len(out["events"])]
    for e in stored.values():
        schemas.webhook(e["event_type"], e)
