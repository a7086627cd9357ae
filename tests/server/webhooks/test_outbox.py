"""server.webhooks.outbox: the attempt bookkeeping both outboxes share, and the concurrent sender."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.webhooks.dispatcher import Dispatcher, order_key
from server.webhooks.outbox import MAX_AUTOMATIC_ATTEMPTS, Progress, Send, Sender, settle
from tests.server.webhooks.conftest import Received, Receiver
from tests.server.webhooks.helpers import trigger

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _new() -> Progress:
    return Progress("pending", 0, 0, None, T0, None)


# ---------------------------------------------------------------------------------------- settle


def test_a_first_success_is_delivered() -> None:
    after = settle(_new(), True, T0)
    assert (after.status, after.attempt_count, after.auto_attempt_count) == ("delivered", 1, 1)
    assert after.first_attempt_at == after.delivered_at == after.last_attempt_at == T0
    assert after.next_attempt_at is None


def test_failures_follow_the_schedule_then_dead_letter() -> None:
    state, due = _new(), []
    for n in range(MAX_AUTOMATIC_ATTEMPTS):
        at = T0 if n == 0 else state.next_attempt_at
        assert at is not None
        state = settle(state, False, at)
        assert state.attempt_count == state.auto_attempt_count == n + 1
        due.append(state.next_attempt_at)
    offsets = [(d - T0).total_seconds() for d in due[:-1] if d is not None]
    assert offsets == [30, 300, 1800, 7200, 43200]
    assert state.status == "dead_lettered" and state.next_attempt_at is None


def test_a_redelivery_does_not_count_towards_the_six() -> None:
    dead = Progress("dead_lettered", 6, 6, T0, None, None)
    failed = settle(dead, False, T0 + timedelta(days=1), redelivery=True)
    assert (failed.status, failed.attempt_count, failed.auto_attempt_count) == ("dead_lettered", 7, 6)
    ok = settle(dead, True, T0 + timedelta(days=1), redelivery=True)
    assert (ok.status, ok.attempt_count, ok.first_attempt_at) == ("delivered", 7, T0)
    scheduled = Progress("pending_retry", 2, 2, T0, T0 + timedelta(seconds=300), None)
    retry_kept = settle(scheduled, False, T0 + timedelta(seconds=60), redelivery=True)
    assert retry_kept.status == "pending_retry" and retry_kept.next_attempt_at == scheduled.next_attempt_at


def test_a_cancelled_row_records_the_attempt_and_stays_cancelled() -> None:
    after = settle(Progress("cancelled", 1, 1, T0, None, None), True, T0 + timedelta(seconds=30))
    assert (after.status, after.attempt_count, after.delivered_at) == ("cancelled", 2, None)


def test_order_key_is_the_most_specific_object() -> None:
    assert order_key({"referral_id": "ref_1", "patient_id": "pat_1"}) == "ref_1"
    assert order_key({"appointment_id": "apt_1", "patient_id": "pat_1"}) == "apt_1"
    assert order_key({"patient_id": "pat_1"}) == "pat_1"
    assert order_key({"event_id": "evt_1"}) is None


# ---------------------------------------------------------------------------------------- sender


def _body(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["n"] for r in receiver.received]


def test_sends_of_one_key_keep_their_order_and_keys_go_concurrently(receiver: Receiver) -> None:
    def slow(_rec: Received) -> int:
        time.sleep(0.2)
        return 200

    receiver.responder = slow
    sends = [
        Send(receiver.url, json.dumps({"n": f"{key}{i}"}).encode(), {"Content-Type": "application/json"}, key)
        for i in range(3)
        for key in ("a", "b", "c")
    ]
    sender = Sender()
    try:
        started = time.monotonic()
        results = sender.send_all(sends)
        elapsed = time.monotonic() - started
    finally:
        sender.close()
    assert [r.outcome for r in results] == ["succeeded"] * 9
    arrived = _body(receiver)
    for key in ("a", "b", "c"):
        assert [n for n in arrived if n[0] == key] == [f"{key}0", f"{key}1", f"{key}2"]
    assert elapsed < 9 * 0.2  # three chains side by side, not nine sends in a row


def test_at_most_per_endpoint_sends_in_flight(receiver: Receiver) -> None:
    lock = threading.Lock()
    now = {"in_flight": 0, "peak": 0}

    def track(_rec: Received) -> int:
        with lock:
            now["in_flight"] += 1
            now["peak"] = max(now["peak"], now["in_flight"])
        time.sleep(0.1)
        with lock:
            now["in_flight"] -= 1
        return 202

    receiver.responder = track
    sender = Sender(per_endpoint=3)
    try:
        results = sender.send_all([Send(receiver.url, b'{"n":"x"}', {}) for _ in range(12)])
    finally:
        sender.close()
    assert all(r.outcome == "succeeded" and r.status_code == 202 for r in results)
    assert 2 <= now["peak"] <= 3


def test_the_production_resolver_refuses_a_name_for_a_private_address(receiver: Receiver) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")  # a name: resolved at connection time
    sender = Sender(checked_resolver=True)
    try:
        (result,) = sender.send_all([Send(url, b"{}", {})])
    finally:
        sender.close()
    assert result.outcome == "connection_error" and "forbidden address" in (result.error or "")
    assert receiver.received == []


def test_failures_are_attempt_results_not_exceptions(receiver: Receiver) -> None:
    receiver.status = 500
    sender = Sender(timeout_seconds=0.5)
    try:
        down, error, none, bad = sender.send_all(
            [
                Send("http://127.0.0.1:9/nothing-listens", b"{}", {}),
                Send(receiver.url, b"{}", {}),
                Send(None, b"{}", {}),
                Send("http://[::1", b"{}", {}),
            ]
        )
    finally:
        sender.close()
    assert down.outcome == "connection_error"
    assert (error.outcome, error.status_code) == ("http_error", 500)
    assert none.outcome == "no_endpoint"
    assert bad.outcome == "connection_error"


# ---------------------------------------------------------------------------------------- leases


def test_a_batch_slower_than_its_lease_keeps_its_claims(sandbox: Any, receiver: Receiver) -> None:
    """Seven events of one referral go one after the other (0.8 s each): 5.6 s, with a 3 s lease. The
    heartbeat renews the claims, so a second dispatcher polling all along never sends them again."""

    def slow(_rec: Received) -> int:
        time.sleep(0.8)
        return 200

    receiver.responder = slow
    creds = sandbox.partner(webhook_url=receiver.url)
    emitted = [e["event_id"] for e in trigger(sandbox, creds, "referral.shipped")["events"]]
    state = sandbox.state
    first = Dispatcher(state.db, state.box, "sandbox", lease_seconds=3.0)
    rival = Dispatcher(state.db, state.box, "sandbox", lease_seconds=3.0)
    made: list[Any] = []
    worker = threading.Thread(target=lambda: made.extend(first.run_once(partner_id=creds.partner_id)))
    try:
        worker.start()
        receiver.wait_for(1)  # the first dispatcher holds the batch now
        stolen = []
        while worker.is_alive():
            stolen += rival.run_once(partner_id=creds.partner_id)
            time.sleep(0.1)
        worker.join()
    finally:
        first.close()
        rival.close()
    assert stolen == []
    assert [m.event_id for m in made] == emitted
    received = [json.loads(r.body)["event_id"] for r in receiver.received]
    assert received == emitted  # each once, in order


@pytest.mark.parametrize("lease", [1.0])
def test_a_lapsed_lease_is_not_sent(sandbox: Any, receiver: Receiver, lease: float) -> None:
    """A claim whose lease ran out before its batch was loaded is not sent by its old holder."""
    creds = sandbox.partner(webhook_url=receiver.url)
    trigger(sandbox, creds, "referral.enrolled")
    state = sandbox.state
    old = Dispatcher(state.db, state.box, "sandbox", lease_seconds=lease)
    try:
        claimed = old.claim(partner_id=creds.partner_id)
        assert claimed
        time.sleep(lease + 0.2)
        assert old.deliver_batch(claimed) == []
    finally:
        old.close()
    assert receiver.received == []
