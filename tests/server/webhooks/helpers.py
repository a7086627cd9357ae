"""Shared helpers: drive the dispatcher and read events back."""

from __future__ import annotations

from typing import Any

from server.webhooks.runtime import Runtime, get_runtime


def runtime(sandbox: Any) -> Runtime:
    return get_runtime(sandbox.state)


def drain(sandbox: Any, partner_id: str, rounds: int = 50) -> int:
    """Deliver everything due now for one partner (what the background dispatcher does)."""
    total = 0
    for _ in range(rounds):
        made = runtime(sandbox).dispatcher.run_once(limit=100, partner_id=partner_id)
        if not made:
            break
        total += len(made)
    return total


def trigger(sandbox: Any, creds: Any, event_type: str, **body: Any) -> dict[str, Any]:
    response = sandbox.call(
        "POST", "/partner/sandbox/events/trigger", creds, json={"event_type": event_type, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()


def get_event(sandbox: Any, creds: Any, event_id: str) -> dict[str, Any]:
    response = sandbox.call("GET", f"/partner/events/{event_id}", creds)
    assert response.status_code == 200, response.text
    return response.json()
