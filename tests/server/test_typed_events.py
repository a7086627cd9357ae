"""Outbox payloads go through the generated models: every event type has one, and a bad payload is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from server.services.events import add_event
from stealth_spec.events import event_model


def test_every_webhook_of_the_spec_has_a_generated_model(spec_document):
    for event_type in spec_document["webhooks"]:
        model = event_model(event_type)
        assert model.model_fields["event_type"], event_type


def _payload(**changes):
    payload = {
        "event_id": "evt_5f2c9a7e1b3d4c6a8e0f2a4b",
        "event_type": "referral.approved",
        "referral_id": "ref_abc123xyz",
        "partner_reference": "cust_12345",
        "data": {
            "status": "approved",
            "product_category": "trt-cream",
            "occurred_at": "2026-03-03T09:30:00Z",
        },
        "metadata": {},
        "created_at": "2026-03-03T09:30:01Z",
    }
    payload.update(changes)
    return payload


class _Session:
    def __init__(self) -> None:
        self.added: list[object] = []
        self.info: dict[str, object] = {}  # where add_event marks the transaction to wake the workers

    def add(self, obj: object) -> None:
        self.added.append(obj)


@pytest.mark.parametrize(
    "changes",
    [
        {"surprise": "field"},  # not in the spec: additionalProperties false
        {"event_id": "evt_1a2b3c4d"},  # not 24 hex
        {"event_type": "referral.denied"},  # the wrong type for this model
        {"data": {"status": "approved", "product_category": "trt-cream"}},  # occurred_at missing
    ],
)
def test_a_payload_off_the_contract_is_refused_before_it_is_stored(changes):
    session = _Session()
    at = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    with pytest.raises(ValidationError):
        add_event(
            session, partner_id="ptr_a", event_type="referral.approved", payload=_payload(**changes), at=at
        )
    assert session.added == []
    assert session.info == {}  # nothing stored: no wake-up either
    add_event(session, partner_id="ptr_a", event_type="referral.approved", payload=_payload(), at=at)
    assert len(session.added) == 1
    assert session.info  # the commit will notify idle workers (PostgreSQL)
