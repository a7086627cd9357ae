"""Sandbox controls: the partner's test clock, moving a referral to a status, triggering events,
auto-advance by scenario on the partner's clock, per-partner clock isolation, production refusal."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.server.conftest import events_of


def _clock(sandbox: Any, creds: Any) -> dict[str, Any]:
    response = sandbox.call("GET", "/partner/sandbox/clock", creds)
    assert response.status_code == 200, response.text
    return response.json()


def _advance(sandbox: Any, creds: Any, **body: Any) -> Any:
    return sandbox.call("POST", "/partner/sandbox/clock/advance", creds, json=body)


def _move(sandbox: Any, creds: Any, referral_id: str, **body: Any) -> Any:
    return sandbox.call("POST", f"/partner/sandbox/referrals/{referral_id}/advance", creds, json=body)


def test_clock_reads_and_only_moves_forward(sandbox: Any) -> None:
    creds = sandbox.partner()
    clock = _clock(sandbox, creds)
    assert clock["offset_seconds"] == 0
    assert clock["auto_advance_interval_seconds"] == 60
    response = _advance(sandbox, creds, seconds=3600)
    assert response.status_code == 200, response.text
    assert response.json()["advanced_seconds"] == 3600
    assert response.json()["clock"]["offset_seconds"] == 3600
    past = datetime.now(UTC) - timedelta(minutes=1)
    response = _advance(sandbox, creds, to=past.isoformat().replace("+00:00", "Z"))
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_BODY"
    far = datetime.now(UTC) + timedelta(days=400)
    response = _advance(sandbox, creds, to=far.isoformat().replace("+00:00", "Z"))
    assert response.status_code == 400
    assert _advance(sandbox, creds, seconds=31_622_401).status_code == 400
    target = datetime.now(UTC) + timedelta(days=2)
    response = _advance(sandbox, creds, to=target.isoformat().replace("+00:00", "Z"))
    assert response.status_code == 200, response.text
    assert response.json()["clock"]["offset_seconds"] >= 2 * 86400 - 5


def test_one_partner_clock_does_not_move_another(sandbox: Any) -> None:
    a, b = sandbox.partner(), sandbox.partner()
    ref_b = sandbox.create_referral(b, metadata={"sandbox_scenario": "expire"})
    assert _advance(sandbox, a, seconds=8 * 86400).status_code == 200
    assert _clock(sandbox, a)["offset_seconds"] == 8 * 86400
    assert _clock(sandbox, b)["offset_seconds"] == 0
    got = sandbox.call("GET", f"/partner/referrals/{ref_b['referral_id']}", b).json()
    assert got["status"] == "created"


def test_auto_advance_walks_the_happy_path_on_the_clock(sandbox: Any) -> None:
    creds = sandbox.partner()
    ref = sandbox.create_referral(creds)
    clock = _clock(sandbox, creds)
    assert clock["pending_jobs"] >= 1
    response = _advance(sandbox, creds, seconds=60 * 12)
    assert response.status_code == 200, response.text
    body = sandbox.call("GET", f"/partner/referrals/{ref['referral_id']}", creds).json()
    assert body["status"] == "delivered"
    types = [e.event_type for e in events_of(sandbox, ref["referral_id"])]
    assert types == [
        "referral.enrolled",
        "referral.payment_due",
        "referral.payment_complete",
        "referral.pending_review",
        "referral.approved",
        "referral.awaiting_shipment",
        "referral.shipped",
        "referral.in_transit",
        "referral.out_for_delivery",
        "referral.delivered",
    ]
    times = [e.created_at for e in events_of(sandbox, ref["referral_id"])]
    assert all((b - a) == timedelta(seconds=60) for a, b in itertools.pairwise(times))
    assert response.json()["events_created"] == 10


@pytest.mark.parametrize(
    ("scenario", "status", "last_event", "extra"),
    [
        ("deny_age_restriction", "denied", "referral.denied", ("denial_category", "age_restriction")),
        ("cancel_by_patient", "cancelled", "referral.cancelled", ("cancelled_by", "patient")),
        ("delivery_exception", "delivered", "referral.delivered", None),
        ("payment_failed", "enrolled", "referral.payment_due", None),
        ("consult_only", "delivered", "referral.delivered", None),
    ],
)
def test_scenarios(sandbox: Any, scenario: str, status: str, last_event: str, extra: Any) -> None:
    creds = sandbox.partner()
    ref = sandbox.create_referral(creds, metadata={"sandbox_scenario": scenario})
    assert _advance(sandbox, creds, seconds=60 * 20).status_code == 200
    body = sandbox.call("GET", f"/partner/referrals/{ref['referral_id']}", creds).json()
    assert body["status"] == status
    events = events_of(sandbox, ref["referral_id"])
    assert events[-1].event_type == last_event
    if extra:
        assert events[-1].payload["data"][extra[0]] == extra[1]
    if scenario == "delivery_exception":
        types = [e.event_type for e in events]
        assert types[-4:] == [
            "referral.out_for_delivery",
            "referral.delivery_exception",
            "referral.out_for_delivery",
            "referral.delivered",
        ]
    if scenario == "payment_failed":
        assert body["payment"]["status"] == "failed"
    if scenario == "consult_only":
        types = [e.event_type for e in events]
        assert types.index("referral.approved") < types.index("referral.payment_due")


def test_expiry_runs_at_its_due_time(sandbox: Any) -> None:
    creds = sandbox.partner()
    ref = sandbox.create_referral(creds, metadata={"sandbox_scenario": "expire"})
    assert _advance(sandbox, creds, seconds=7 * 86400 + 60).status_code == 200
    events = events_of(sandbox, ref["referral_id"])
    assert [e.event_type for e in events] == ["referral.expired"]
    assert events[0].created_at.isoformat().startswith(ref["expires_at"][:19])


def test_advance_referral_walks_every_transition(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner()
    ref = sandbox.create_referral(creds)
    response = _move(sandbox, creds, ref["referral_id"], target_status="shipped")
    assert response.status_code == 200, response.text
    body = response.json()
    schemas.component("AdvanceSandboxReferralResponse", body)
    assert [(t["lifecycle"], t["to"]) for t in body["transitions"]] == [
        ("referral", "enrolled"),
        ("payment", "due"),
        ("payment", "paid"),
        ("referral", "pending_review"),
        ("referral", "approved"),
        ("referral", "awaiting_shipment"),
        ("referral", "shipped"),
    ]
    at = [datetime.fromisoformat(t["occurred_at"].replace("Z", "+00:00")) for t in body["transitions"]]
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(at))
    assert body["referral"]["status"] == "shipped"
    assert body["referral"]["fulfillment"]["carrier"] == "USPS"
    # already there: no transitions
    again = _move(sandbox, creds, ref["referral_id"], target_status="shipped")
    assert again.status_code == 200 and again.json()["transitions"] == []
    # unreachable
    bad = _move(sandbox, creds, ref["referral_id"], target_status="cancelled")
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "INVALID_TRANSITION"
    assert _move(sandbox, creds, ref["referral_id"], target_status="created").status_code == 409
    exc = _move(
        sandbox, creds, ref["referral_id"], target_status="delivery_exception", exception_type="damaged"
    )
    assert exc.status_code == 200, exc.text
    assert [t["to"] for t in exc.json()["transitions"]] == ["delivery_exception"]
    assert events_of(sandbox, ref["referral_id"])[-1].payload["data"]["exception_type"] == "damaged"
    done = _move(sandbox, creds, ref["referral_id"], target_status="delivered")
    assert [t["to"] for t in done.json()["transitions"]] == ["delivered"]
    assert _move(sandbox, creds, ref["referral_id"], target_status="enrolled").status_code == 409


def test_advance_referral_denied_refunds_and_cancel_by_patient(sandbox: Any) -> None:
    creds = sandbox.partner()
    ref = sandbox.create_referral(creds)
    body = _move(
        sandbox, creds, ref["referral_id"], target_status="denied", denial_category="medical_contraindication"
    ).json()
    assert body["transitions"][-1] == {**body["transitions"][-1], "lifecycle": "payment", "to": "refunded"}
    assert body["transitions"][-1]["event_type"] is None
    assert body["referral"]["status"] == "denied"
    assert body["referral"]["payment"]["status"] == "refunded"
    other = sandbox.create_referral(creds)
    body = _move(
        sandbox, creds, other["referral_id"], target_status="cancelled", cancelled_by="patient"
    ).json()
    assert [t["to"] for t in body["transitions"]] == ["cancelled", "not_applicable"]
    assert events_of(sandbox, other["referral_id"])[-1].payload["data"]["cancelled_by"] == "patient"
    expired = sandbox.create_referral(creds)
    body = _move(sandbox, creds, expired["referral_id"], target_status="expired").json()
    assert body["referral"]["status"] == "expired"


def test_advance_referral_validation_and_isolation(sandbox: Any) -> None:
    a, b = sandbox.partner(), sandbox.partner()
    ref = sandbox.create_referral(a)
    missing = _move(sandbox, b, ref["referral_id"], target_status="enrolled")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "REFERRAL_NOT_FOUND"
    wrong = _move(sandbox, a, ref["referral_id"], target_status="enrolled", denial_category="age_restriction")
    assert wrong.status_code == 400


def test_trigger_every_referral_event_and_tier_errors(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner()
    response = sandbox.call(
        "POST", "/partner/sandbox/events/trigger", creds, json={"event_type": "referral.shipped"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    schemas.component("TriggerEventResponse", body)
    assert [e["event_type"] for e in body["events"]] == [
        "referral.enrolled",
        "referral.payment_due",
        "referral.payment_complete",
        "referral.pending_review",
        "referral.approved",
        "referral.awaiting_shipment",
        "referral.shipped",
    ]
    # with an existing referral that cannot reach the event
    again = sandbox.call(
        "POST",
        "/partner/sandbox/events/trigger",
        creds,
        json={"event_type": "referral.expired", "referral_id": body["objects"]["referral_id"]},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "INVALID_TRANSITION"
    for event_type, code in (
        ("patient.created", "CLINICAL_ACCESS_REQUIRED"),
        ("review.billed", "PRESCRIBER_ACCESS_REQUIRED"),
        ("appointment.prescription_signed", "CLINICAL_ACCESS_REQUIRED"),
    ):
        denied = sandbox.call(
            "POST", "/partner/sandbox/events/trigger", creds, json={"event_type": event_type}
        )
        assert denied.status_code == 403, denied.text
        assert denied.json()["error"]["code"] == code
    clinical = sandbox.partner(tier="clinical")
    answer = sandbox.call(
        "POST",
        "/partner/sandbox/events/trigger",
        clinical,
        json={"event_type": "patient.created"},
        headers={"X-Access-Tier": "clinical"},
    )
    assert answer.status_code == 200, answer.text  # tests/server/test_clinical_trigger.py has the details
    assert answer.json()["events"][-1]["event_type"] == "patient.created"
    bad = sandbox.call(
        "POST",
        "/partner/sandbox/events/trigger",
        creds,
        json={"event_type": "referral.shipped", "metadata": {"sandbox_scenario": "approve"}},
    )
    assert bad.status_code == 400


def test_sandbox_operations_are_refused_in_production(sandbox_factory: Any) -> None:
    prod = sandbox_factory(environment="production")
    creds = prod.partner(environment="production")
    for method, url, body in (
        ("GET", "/partner/sandbox/clock", None),
        ("POST", "/partner/sandbox/clock/advance", {"seconds": 60}),
        ("POST", "/partner/sandbox/events/trigger", {"event_type": "referral.enrolled"}),
        ("POST", "/partner/sandbox/referrals/ref_abc123xyz/advance", {"target_status": "enrolled"}),
    ):
        response = prod.call(method, url, creds, json=body)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "SANDBOX_ONLY_OPERATION"
