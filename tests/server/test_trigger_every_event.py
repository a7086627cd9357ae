"""`stealth trigger` / POST /partner/sandbox/events/trigger covers every webhook event type of the spec (issue 5)."""

from __future__ import annotations

from typing import Any

import pytest

from server.config import DEFAULT_SPEC_DIR
from server.services.simulation import CLINICAL_ONLY_EVENTS, PRESCRIBER_ONLY_EVENTS
from server.spec import load_spec

EVENT_TYPES = sorted(load_spec(DEFAULT_SPEC_DIR).get("webhooks") or {})


def _tier(event_type: str) -> str:
    if event_type in PRESCRIBER_ONLY_EVENTS:
        return "prescriber"
    if event_type in CLINICAL_ONLY_EVENTS or event_type == "appointment.prescription_signed":
        return "clinical"
    return "referral"


def test_the_spec_has_every_tier_s_events() -> None:
    assert len(EVENT_TYPES) == 28
    assert {_tier(e) for e in EVENT_TYPES} == {"referral", "clinical", "prescriber"}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_can_be_triggered(sandbox: Any, schemas: Any, event_type: str) -> None:
    creds = sandbox.partner(_tier(event_type))
    headers = {"X-Access-Tier": "clinical"} if creds.tier == "clinical" else {}
    r = sandbox.call(
        "POST", "/partner/sandbox/events/trigger", creds, json={"event_type": event_type}, headers=headers
    )
    assert r.status_code == 200, r.text
    out = r.json()
    schemas.component("TriggerEventResponse", out)
    assert out["events"][-1]["event_type"] == event_type
    stored = sandbox.call("GET", f"/partner/events/{out['event_id']}", creds, headers=headers)
    assert stored.status_code == 200, stored.text
    schemas.component("WebhookEventDetail", stored.json())
    assert stored.json()["event_type"] == event_type
