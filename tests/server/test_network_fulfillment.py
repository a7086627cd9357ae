"""Stealth-fulfilled referrals move a medication order in the simulated pharmacy (server.services.network_fulfillment)."""

from __future__ import annotations

from typing import Any

from server.db.models import Fulfillment
from server.db.models_pharmacy import Clinic, MedicationOrder, ShipmentGroup
from server.pharmacy import simulation as pharmacy
from server.pharmacy.clinics import NETWORK_CLINIC_NAME


def _advance(sandbox: Any, creds: Any, referral_id: str, target: str) -> None:
    r = sandbox.call(
        "POST", f"/partner/sandbox/referrals/{referral_id}/advance", creds, json={"target_status": target}
    )
    assert r.status_code == 200, r.text


def _order(sandbox: Any, referral_id: str) -> tuple[Any, Any, Any]:
    with sandbox.state.db.session() as session:
        order = pharmacy.order_for_source(session, "referral", referral_id)
        group = session.get(ShipmentGroup, order.shipment_group_id) if order else None
        clinic = session.get(Clinic, order.clinic_id) if order else None
        session.expunge_all()
        return order, group, clinic


def test_referral_fulfillment_follows_the_pharmacy_order(sandbox: Any) -> None:
    creds = sandbox.partner("referral")
    referral_id = sandbox.create_referral(creds)["referral_id"]
    _advance(sandbox, creds, referral_id, "pending_review")
    assert _order(sandbox, referral_id)[0] is None  # nothing is sent to the pharmacy before approval
    _advance(sandbox, creds, referral_id, "approved")
    order, _group, clinic = _order(sandbox, referral_id)
    assert order.status == "validated"
    assert clinic.name == NETWORK_CLINIC_NAME and not clinic.active  # no one can log in as it
    _advance(sandbox, creds, referral_id, "awaiting_shipment")
    order, group, _ = _order(sandbox, referral_id)
    assert order.status == "filled" and group.tracking_number  # the shipment exists, with its tracking number
    _advance(sandbox, creds, referral_id, "shipped")
    with sandbox.state.db.session() as session:
        fulfillment = session.get(Fulfillment, referral_id)
        assert fulfillment.tracking_number == group.tracking_number
        assert fulfillment.carrier == group.shipping_partner == "USPS"
    _advance(sandbox, creds, referral_id, "delivered")
    order, _group, _ = _order(sandbox, referral_id)
    assert order.status == "delivered"
    got = sandbox.call("GET", f"/partner/referrals/{referral_id}", creds).json()
    assert got["status"] == "delivered" and got["fulfillment"]["carrier"] == "USPS"


def test_the_pharmacy_ticker_leaves_partner_driven_orders_alone(sandbox: Any) -> None:
    creds = sandbox.partner("referral")
    referral_id = sandbox.create_referral(creds)["referral_id"]
    _advance(sandbox, creds, referral_id, "approved")
    order, _, _ = _order(sandbox, referral_id)
    from datetime import timedelta

    from server import clock

    pharmacy.tick(sandbox.state.db, now=clock.real_now() + timedelta(hours=1), step_seconds=1)
    with sandbox.state.db.session() as session:
        assert session.get(MedicationOrder, order.id).status == "validated"
