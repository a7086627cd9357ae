"""End to end: every referral event type is delivered to a real loopback receiver, signed (checked by
verifiers independent of the signer) and valid against the spec's `webhooks` schema; the retry
schedule and dead letter on the partner's clock; redelivery; no endpoint."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import jsonschema
import pytest

from server.spec import SpecIndex
from tests.server.webhooks.conftest import Receiver
from tests.server.webhooks.helpers import drain, get_event, runtime, trigger
from tests.server.webhooks.verifiers import verify_signature, verify_standard_webhooks

REFERRAL_EVENTS = [
    "referral.enrolled",
    "referral.pending_review",
    "referral.approved",
    "referral.denied",
    "referral.payment_due",
    "referral.payment_complete",
    "referral.awaiting_shipment",
    "referral.shipped",
    "referral.in_transit",
    "referral.out_for_delivery",
    "referral.delivered",
    "referral.delivery_exception",
    "referral.cancelled",
    "referral.expired",
]


@pytest.fixture(scope="module")
def webhook_schemas(spec_document: dict[str, Any]) -> dict[str, Any]:
    index = SpecIndex(spec_document)
    return {t: index.webhook_body_schema(t) for t in REFERRAL_EVENTS}


def validate(schema: dict[str, Any], payload: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def test_every_referral_event_type_arrives_signed_and_valid(
    sandbox: Any, receiver: Receiver, webhook_schemas: dict[str, Any]
) -> None:
    creds = sandbox.partner(webhook_url=receiver.url)
    emitted: list[str] = []
    for event_type in REFERRAL_EVENTS:
        extra: dict[str, Any] = {"metadata": {"campaign": "e2e"}}
        if event_type == "referral.denied":
            extra["denial_category"] = "age_restriction"
        if event_type == "referral.cancelled":
            extra["cancelled_by"] = "patient"
        answer = trigger(sandbox, creds, event_type, **extra)
        assert answer["events"][-1]["event_type"] == event_type
        emitted += [e["event_id"] for e in answer["events"]]
    drain(sandbox, creds.partner_id)
    got = receiver.wait_for(len(emitted))
    assert len(got) == len(emitted)
    # each once, and each referral's events in order of occurrence (referrals are sent concurrently)
    arrived = [json.loads(r.body) for r in got]
    assert sorted(p["event_id"] for p in arrived) == sorted(emitted)
    position = {event_id: i for i, event_id in enumerate(emitted)}
    by_referral: dict[str, list[int]] = {}
    for payload in arrived:
        by_referral.setdefault(payload["referral_id"], []).append(position[payload["event_id"]])
    assert len(by_referral) == len(REFERRAL_EVENTS)
    assert all(order == sorted(order) for order in by_referral.values())
    seen_types = set()
    for rec in got:
        assert verify_signature(rec.body, rec.headers["x-stealth-signature"], creds.webhook_secret)
        assert verify_standard_webhooks(creds.webhook_secret, rec.headers, rec.body, int(time.time()))
        assert not verify_signature(rec.body + b" ", rec.headers["x-stealth-signature"], creds.webhook_secret)
        payload = json.loads(rec.body)
        assert rec.headers["webhook-id"] == payload["event_id"]
        errors = validate(webhook_schemas[payload["event_type"]], payload)
        assert not errors, (payload["event_type"], errors)
        assert payload["metadata"] == {"campaign": "e2e"}
        seen_types.add(payload["event_type"])
    assert seen_types == set(REFERRAL_EVENTS)
    denied = next(json.loads(r.body) for r in got if json.loads(r.body)["event_type"] == "referral.denied")
    assert denied["data"]["denial_category"] == "age_restriction"
    for event_id in emitted[:3]:
        detail = get_event(sandbox, creds, event_id)
        assert detail["delivery_status"] == "delivered"
        assert detail["attempts"][0]["outcome"] == "succeeded"
        assert detail["attempts"][0]["response_status"] == 200


def _offsets(detail: dict[str, Any]) -> list[float]:
    times = [datetime.fromisoformat(a["attempted_at"].replace("Z", "+00:00")) for a in detail["attempts"]]
    return [(t - times[0]).total_seconds() for t in times[1:]]


def test_retry_schedule_dead_letter_and_redeliver_on_the_partner_clock(
    sandbox: Any, receiver: Receiver
) -> None:
    receiver.status = 503
    creds = sandbox.partner(webhook_url=receiver.url)
    answer = trigger(sandbox, creds, "referral.enrolled")
    event_id = answer["event_id"]
    drain(sandbox, creds.partner_id)
    detail = get_event(sandbox, creds, event_id)
    assert detail["delivery_status"] == "pending_retry"
    assert detail["attempt_count"] == 1
    assert detail["attempts"][0]["outcome"] == "http_error"
    assert detail["attempts"][0]["response_status"] == 503

    # 12 h and a bit of sandbox time in one call: attempts 2-6 run at their own due times
    response = sandbox.call("POST", "/partner/sandbox/clock/advance", creds, json={"seconds": 43_300})
    assert response.status_code == 200, response.text
    assert response.json()["jobs_run"] >= 5
    detail = get_event(sandbox, creds, event_id)
    assert detail["attempt_count"] == 6
    assert detail["delivery_status"] == "dead_lettered"
    assert detail["next_attempt_at"] is None
    assert _offsets(detail) == [30, 300, 1800, 7200, 43200]
    assert all(a["outcome"] == "http_error" and not a["redelivery"] for a in detail["attempts"])
    listed = sandbox.call("GET", "/partner/events?delivery_status=dead_lettered", creds).json()["events"]
    assert event_id in [e["event_id"] for e in listed]
    failed = sandbox.call("GET", "/partner/events?delivery_status=failed", creds).json()["events"]
    assert event_id in [e["event_id"] for e in failed]

    # the receiver recovers: redeliver
    receiver.status = 200
    response = sandbox.call("POST", f"/partner/events/{event_id}/redeliver", creds)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "event_id": event_id,
        "delivery_status": "pending",
        "requested_at": response.json()["requested_at"],
        "attempt_number": 7,
    }
    drain(sandbox, creds.partner_id)
    detail = get_event(sandbox, creds, event_id)
    assert detail["delivery_status"] == "delivered"
    assert detail["attempt_count"] == 7
    assert detail["attempts"][-1]["redelivery"] is True
    assert detail["attempts"][-1]["outcome"] == "succeeded"
    bodies = {r.body for r in receiver.received if json.loads(r.body)["event_id"] == event_id}
    assert len(bodies) == 1  # byte-identical on all 7 attempts
    assert len([r for r in receiver.received if json.loads(r.body)["event_id"] == event_id]) == 7
    assert json.loads(next(iter(bodies))) == detail["payload"]


def test_redelivery_failure_returns_to_pending_retry_when_a_retry_is_scheduled(
    sandbox: Any, receiver: Receiver
) -> None:
    receiver.status = 500
    creds = sandbox.partner(webhook_url=receiver.url)
    event_id = trigger(sandbox, creds, "referral.enrolled")["event_id"]
    drain(sandbox, creds.partner_id)
    assert sandbox.call("POST", f"/partner/events/{event_id}/redeliver", creds).status_code == 202
    assert get_event(sandbox, creds, event_id)["delivery_status"] == "pending"
    drain(sandbox, creds.partner_id)
    detail = get_event(sandbox, creds, event_id)
    assert detail["delivery_status"] == "pending_retry"
    assert detail["attempt_count"] == 2
    assert detail["next_attempt_at"] is not None
    assert [a["redelivery"] for a in detail["attempts"]] == [False, True]


def test_connection_refused_and_no_endpoint_are_failed_attempts(sandbox: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creds = sandbox.partner(webhook_url=f"http://127.0.0.1:{port}/nothing-here")
    event_id = trigger(sandbox, creds, "referral.enrolled")["event_id"]
    drain(sandbox, creds.partner_id)
    attempt = get_event(sandbox, creds, event_id)["attempts"][0]
    assert attempt["outcome"] == "connection_error"
    assert attempt["response_status"] is None

    silent = sandbox.partner()
    event_id = trigger(sandbox, silent, "referral.enrolled")["event_id"]
    drain(sandbox, silent.partner_id)
    detail = get_event(sandbox, silent, event_id)
    assert detail["attempts"][0]["outcome"] == "no_endpoint"
    assert detail["attempts"][0]["url"] is None
    assert detail["delivery_status"] == "pending_retry"


def test_redirects_are_not_followed(sandbox: Any, receiver: Receiver) -> None:
    receiver.status = 302
    creds = sandbox.partner(webhook_url=receiver.url)
    event_id = trigger(sandbox, creds, "referral.enrolled")["event_id"]
    drain(sandbox, creds.partner_id)
    attempt = get_event(sandbox, creds, event_id)["attempts"][0]
    assert attempt["outcome"] == "http_error" and attempt["response_status"] == 302


def test_timeout_is_a_failed_attempt(sandbox: Any, receiver: Receiver) -> None:
    from server.webhooks.dispatcher import Dispatcher

    def slow(_rec: Any) -> int:
        time.sleep(1.0)
        return 200

    receiver.responder = slow
    creds = sandbox.partner(webhook_url=receiver.url)
    event_id = trigger(sandbox, creds, "referral.enrolled")["event_id"]
    state = sandbox.state
    quick = Dispatcher(state.db, state.box, "sandbox", timeout_seconds=0.2)
    try:
        made = quick.run_once(partner_id=creds.partner_id)
    finally:
        quick.close()
    assert [m.result.outcome for m in made] == ["timeout"]
    assert get_event(sandbox, creds, event_id)["attempts"][0]["outcome"] == "timeout"
    assert runtime(sandbox) is runtime(sandbox)
