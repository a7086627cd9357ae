"""The referral state machine comes from the spec's x-lifecycle; illegal moves are never stored."""

from __future__ import annotations

import pytest

from server.lifecycle import IllegalTransition
from server.repositories import referrals as referrals_repo
from server.services.transitions import transition_referral
from tests.server.conftest import advance, events_of


def test_lifecycle_is_read_from_the_spec(sandbox):
    lc = sandbox.state.lifecycles.referral
    ext = sandbox.state.spec.document["components"]["schemas"]["Referral"]["x-lifecycle"]
    assert lc.initial == (ext["initial"][0] if isinstance(ext["initial"], list) else ext["initial"])
    assert lc.terminal == {"delivered", "denied", "cancelled", "expired"}
    assert len(lc.transitions) == len(ext["transitions"])
    assert lc.transition("pending_review", "approved").event == "referral.approved"
    assert lc.path("created", "delivered") is not None
    assert sandbox.state.lifecycles.payment.initial == "not_due"


def test_illegal_transition_is_refused_and_nothing_is_stored(sandbox):
    p = sandbox.partner()
    rid = sandbox.create_referral(p)["referral_id"]
    with pytest.raises(IllegalTransition), sandbox.state.db.session() as session:
        referral = referrals_repo.get(session, p.partner_id, rid)
        transition_referral(
            session,
            sandbox.state.lifecycles,
            referral,
            "approved",
            referral.created_at,
            partner_tier="referral",
        )
    got = sandbox.call("GET", f"/partner/referrals/{rid}", p).json()
    assert got["status"] == "created" and len(got["status_history"]) == 1
    assert events_of(sandbox, rid) == []


def test_every_referral_event_matches_its_webhook_schema(sandbox, schemas):
    p = sandbox.partner()
    happy = sandbox.create_referral(p, metadata={"campaign": "spring"})["referral_id"]
    advance(
        sandbox,
        p,
        happy,
        "enrolled",
        "payment:due",
        "payment:paid",
        "pending_review",
        "approved",
        "awaiting_shipment",
        "shipped",
        "in_transit",
        "out_for_delivery",
        "delivery_exception",
        "out_for_delivery",
        "delivered",
    )
    denied = sandbox.create_referral(p)["referral_id"]
    advance(
        sandbox, p, denied, "enrolled", "pending_review", "denied", denial_category="medical_contraindication"
    )
    cancelled = sandbox.create_referral(p)["referral_id"]
    sandbox.call("POST", f"/partner/referrals/{cancelled}/cancel", p)
    seen = set()
    for rid in (happy, denied, cancelled):
        for event in events_of(sandbox, rid):
            schemas.webhook(event.event_type, event.payload)
            assert event.payload["event_id"] == event.id and event.delivery_status == "pending"
            seen.add(event.event_type)
    ev = events_of(sandbox, happy)
    assert ev[0].payload["metadata"] == {"campaign": "spring"}
    expected = {name for name in sandbox.state.spec.document["webhooks"] if name.startswith("referral.")}
    assert seen == expected - {"referral.expired"}  # expiry is covered in test_referrals
    final = sandbox.call("GET", f"/partner/referrals/{happy}", p).json()
    schemas.component("Referral", final)
    assert final["status"] == "delivered" and final["fulfillment"]["status"] == "delivered"
    assert final["fulfillment"]["delivered_at"] and final["fulfillment"]["carrier"] == "USPS"
    denied_body = sandbox.call("GET", f"/partner/referrals/{denied}", p).json()
    assert denied_body["denial_category"] == "medical_contraindication"
