"""The sweep on access: a list page or a summary first expires the partner's referrals past expires_at on
its clock. The list asks in its page's own statement; every path must still sweep before it answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.server.conftest import events_of, set_partner

WEEK = timedelta(days=7, seconds=1).total_seconds()


def _due_partner(sandbox, count: int = 3):
    p = sandbox.partner()
    ids = [sandbox.create_referral(p)["referral_id"] for _ in range(count)]
    set_partner(sandbox, p, clock_offset_seconds=WEEK)
    return p, ids


def _statuses(sandbox, p, ids) -> list[str]:
    return [sandbox.call("GET", f"/partner/referrals/{rid}", p).json()["status"] for rid in ids]


def _expired_events(sandbox, ids) -> int:
    return sum(e.event_type == "referral.expired" for rid in ids for e in events_of(sandbox, rid))


@pytest.mark.parametrize(
    "params",
    [
        {},  # the page shows them, already expired
        {"limit": 1},  # the due referrals are not all on the page
        {"partner_reference": "nothing-matches"},  # an empty page: no row carries the answer
        {"cursor": "not-a-cursor"},  # refused for its cursor (400), after the sweep as before
    ],
)
def test_a_list_call_sweeps_first(sandbox, params):
    p, ids = _due_partner(sandbox)
    r = sandbox.call("GET", "/partner/referrals", p, params=params)
    assert r.status_code == (400 if "cursor" in params else 200), r.text
    assert _expired_events(sandbox, ids) == 3
    if not params:
        assert {x["status"] for x in r.json()["referrals"]} == {"expired"}
    assert _statuses(sandbox, p, ids) == ["expired"] * 3


def test_a_list_call_with_nothing_due_changes_nothing(sandbox):
    p = sandbox.partner()
    ids = [sandbox.create_referral(p)["referral_id"] for _ in range(2)]
    body = sandbox.call("GET", "/partner/referrals", p).json()
    assert {x["status"] for x in body["referrals"]} == {"created"}
    assert _expired_events(sandbox, ids) == 0


def test_a_summary_sweeps_first(sandbox):
    p, ids = _due_partner(sandbox)
    data = sandbox.call("GET", "/partner/referrals/summary", p, params={"period": "all_time"}).json()
    assert data["totals"]["expired"] == 3 and data["totals"]["created"] == 3
    assert _expired_events(sandbox, ids) == 3
