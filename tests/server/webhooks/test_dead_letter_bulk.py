"""A receiver down for all six attempts: every event is dead-lettered (the partner's sandbox clock moves
through the whole retry schedule); once it recovers, POST /partner/events/{event_id}/redeliver gets every
one of them received. Quick variant in `make test`, 500 events in `make soak`."""

from __future__ import annotations

import collections
import json
import time
from typing import Any

import pytest

from tests.server.reliability.procs import record
from tests.server.webhooks.conftest import Receiver
from tests.server.webhooks.helpers import drain, trigger


def _all_events(sandbox: Any, creds: Any, status: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"delivery_status": status, "limit": 200}
    while True:
        r = sandbox.call("GET", "/partner/events", creds, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["events"]
        cursor = (page.get("pagination") or {}).get("next_cursor")
        if not cursor:
            return out
        params = {"delivery_status": status, "limit": 200, "cursor": cursor}


@pytest.mark.parametrize(
    "referrals", [pytest.param(4, id="quick"), pytest.param(50, marks=pytest.mark.soak, id="soak")]
)
def test_receiver_down_for_all_attempts_then_redelivered(
    sandbox: Any, receiver: Receiver, referrals: int
) -> None:
    receiver.status = 503
    creds = sandbox.partner(webhook_url=receiver.url)
    emitted: list[str] = []
    for _ in range(referrals):  # each walks a referral to shipped: seven events
        emitted += [e["event_id"] for e in trigger(sandbox, creds, "referral.shipped")["events"]]
    drain(sandbox, creds.partner_id)
    started = time.monotonic()
    # 12 h and a bit of sandbox time: attempts 2-6 of every event run at their own due times
    r = sandbox.call("POST", "/partner/sandbox/clock/advance", creds, json={"seconds": 43_300})
    assert r.status_code == 200, r.text
    dead = _all_events(sandbox, creds, "dead_lettered")
    assert sorted(e["event_id"] for e in dead) == sorted(emitted)
    assert all(e["attempt_count"] == 6 for e in dead)
    attempts_down = collections.Counter(json.loads(x.body)["event_id"] for x in receiver.received)
    assert all(attempts_down[e] == 6 for e in emitted)

    receiver.status = 200  # the receiver recovers
    for event_id in emitted:
        r = sandbox.call("POST", f"/partner/events/{event_id}/redeliver", creds)
        assert r.status_code == 202, r.text
        assert r.json()["attempt_number"] == 7
    drain(sandbox, creds.partner_id, rounds=len(emitted) // 100 + 50)
    received = collections.Counter(json.loads(x.body)["event_id"] for x in receiver.received)
    # (the clock's 12 h also moved the referrals on: later events of theirs are not part of this count)
    assert all(received[e] == 7 for e in emitted)
    delivered = {e["event_id"]: e for e in _all_events(sandbox, creds, "delivered")}
    assert set(emitted) <= set(delivered)
    assert all(delivered[e]["attempt_count"] == 7 for e in emitted)
    assert not set(emitted) & {e["event_id"] for e in _all_events(sandbox, creds, "dead_lettered")}
    record(
        f"dead letter and redelivery ({len(emitted)} events)",
        backend=sandbox.state.db.backend,
        events=len(emitted),
        dead_lettered=len(dead),
        attempts_while_down=sum(attempts_down[e] for e in emitted),
        redelivered_and_received=sum(1 for e in emitted if received[e] == 7),
        lost=len(set(emitted) - set(received)),
        attempts_while_down_per_event=6,
        elapsed_s=round(time.monotonic() - started, 1),
    )
