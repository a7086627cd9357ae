"""A referral-tier partner never receives a PHI field, in any response or webhook, through the whole lifecycle."""

from __future__ import annotations

from typing import Any

from tests.server.clinical.helpers import enroll
from tests.server.conftest import advance, events_of

PHI_KEYS = {
    "patient_id",
    "appointment_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "dob",
    "gender",
    "address",
    "tracking_number",
    "card_last4",
    "last4",
    "payment_method",
    "patient",
    "prescription",
    "medications",
    "intake_summary",
    "transaction",
}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_referral_tier_sees_no_phi(sandbox):
    p = sandbox.partner()
    ref = enroll(sandbox, p)
    advance(
        sandbox, p, ref["referral_id"], "approved", "awaiting_shipment", "shipped", "in_transit", "delivered"
    )
    denied = enroll(sandbox, p)
    advance(sandbox, p, denied["referral_id"], "denied")
    responses = []
    for url in (
        f"/partner/referrals/{ref['referral_id']}",
        "/partner/referrals",
        "/partner/referrals/summary",
        "/partner/events",
    ):
        r = sandbox.call("GET", url, p)
        assert r.status_code == 200, (url, r.text)
        responses.append(r.json())
    for body in responses:
        assert not _keys(body) & PHI_KEYS, _keys(body) & PHI_KEYS
    for referral_id in (ref["referral_id"], denied["referral_id"]):
        events = events_of(sandbox, referral_id)
        assert events
        for e in events:
            assert not e.event_type.startswith(("patient.", "appointment.", "transaction.", "prescription."))
            assert not _keys(e.payload) & PHI_KEYS, (e.event_type, _keys(e.payload) & PHI_KEYS)
