"""GET /partner/events (filters, cursor), GET /partner/events/{event_id}, redeliver: answers valid
against the spec, tenant isolation, tier visibility."""

from __future__ import annotations

from typing import Any

from tests.server.webhooks.helpers import drain, trigger


def test_list_filters_and_cursor(sandbox: Any, schemas: Any) -> None:
    creds = sandbox.partner()
    first = trigger(sandbox, creds, "referral.approved")
    second = trigger(sandbox, creds, "referral.denied")
    drain(sandbox, creds.partner_id)  # no endpoint: every first attempt fails (no_endpoint)
    all_ids = [e["event_id"] for e in first["events"] + second["events"]]
    response = sandbox.call("GET", "/partner/events?limit=200", creds)
    assert response.status_code == 200, response.text
    body = response.json()
    schemas.component("WebhookEventList", body)
    listed = [e["event_id"] for e in body["events"]]
    assert listed == list(reversed(all_ids))  # newest first
    assert body["pagination"] == {"has_more": False, "next_cursor": None}

    pages: list[str] = []
    cursor = None
    for _ in range(20):
        url = "/partner/events?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = sandbox.call("GET", url, creds).json()
        pages += [e["event_id"] for e in page["events"]]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            break
    assert pages == listed

    by_type = sandbox.call("GET", "/partner/events?event_type=referral.denied", creds).json()["events"]
    assert [e["event_id"] for e in by_type] == [second["event_id"]]
    by_ref = sandbox.call(
        "GET", f"/partner/events?referral_id={first['objects']['referral_id']}", creds
    ).json()["events"]
    assert {e["event_id"] for e in by_ref} == {e["event_id"] for e in first["events"]}
    failed = sandbox.call("GET", "/partner/events?delivery_status=failed", creds).json()["events"]
    assert len(failed) == len(all_ids)
    assert sandbox.call("GET", "/partner/events?delivery_status=delivered", creds).json()["events"] == []
    retrying = sandbox.call("GET", "/partner/events?delivery_status=pending_retry", creds).json()["events"]
    assert all(e["next_attempt_at"] for e in retrying)
    newest = body["events"][0]["created_at"]
    later = sandbox.call("GET", f"/partner/events?created_after={newest}", creds).json()["events"]
    assert later == []
    bad = sandbox.call("GET", "/partner/events?cursor=garbage", creds)
    assert bad.status_code == 400
    other_filters = sandbox.call(
        "GET", f"/partner/events?event_type=referral.denied&cursor={cursor or 'x.y'}", creds
    )
    assert other_filters.status_code == 400


def test_get_event_detail_and_isolation(sandbox: Any, schemas: Any) -> None:
    a, b = sandbox.partner(), sandbox.partner()
    answer = trigger(sandbox, a, "referral.enrolled")
    event_id = answer["event_id"]
    detail = sandbox.call("GET", f"/partner/events/{event_id}", a)
    assert detail.status_code == 200
    schemas.component("WebhookEventDetail", detail.json())
    assert detail.json()["delivery_status"] == "pending"
    assert detail.json()["attempts"] == []
    assert detail.json()["next_attempt_at"] is None
    drain(sandbox, a.partner_id)
    detail = sandbox.call("GET", f"/partner/events/{event_id}", a).json()
    schemas.component("WebhookEventDetail", detail)
    assert detail["attempts"][0]["outcome"] == "no_endpoint"
    for method, url in (
        ("GET", f"/partner/events/{event_id}"),
        ("POST", f"/partner/events/{event_id}/redeliver"),
    ):
        response = sandbox.call(method, url, b)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "EVENT_NOT_FOUND"
    assert sandbox.call("GET", "/partner/events", b).json()["events"] == []
    unknown = sandbox.call("GET", "/partner/events/evt_000000000000000000000000", a)
    assert unknown.status_code == 404
    redeliver = sandbox.call("POST", f"/partner/events/{event_id}/redeliver", a)
    assert redeliver.status_code == 202
    schemas.component("RedeliverResponse", redeliver.json())
    assert redeliver.json()["attempt_number"] == 2
