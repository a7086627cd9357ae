"""Stealth-fulfilled referrals go through the simulated pharmacy (issue 7's wiring, P-015).

When the physician approves a referral (or a partner-submitted prescription creates its approved referral), a
medication order is created in the simulated pharmacy for the network clinic; as the referral's fulfillment moves,
the order moves with it in the same transaction (awaiting_shipment: submitted and filled, which creates the
shipment and its tracking number; shipped: shipped; delivered: delivered), and the partner-facing fulfillment takes
its carrier and tracking number from the pharmacy's shipment. The pharmacy emits its own medication:updated and
shipment:created events to any clinic webhooks, so both APIs tell the same story.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from server.db.models import Partner, Patient, Referral
from server.db.models_clinical import PatientAddress
from server.pharmacy import clinics
from server.pharmacy import simulation as pharmacy

SOURCE = "referral"
CARRIER = "USPS"
# referral status -> the pharmacy order status it implies
ORDER_STATUS = {
    "approved": "validated",
    "awaiting_shipment": "filled",
    "shipped": "shipped",
    "delivered": "delivered",
}
MEDICATION = {"trt-cream": "Testosterone Cream 200mg/mL", "peptides": "BPC-157 5mg/vial"}


def _delivery_location(session: Session, referral: Referral) -> dict[str, str] | None:
    patient = session.get(Patient, referral.patient_id) if referral.patient_id else None
    address = session.get(PatientAddress, patient.id) if patient is not None else None
    if address is None:
        return None
    return {
        "address": address.line1,
        "city": address.city,
        "state": address.state,
        "postal_code": address.postal_code,
    }


def on_referral_status(session: Session, referral: Referral, to_status: str, at: datetime) -> None:
    """Keep the referral's pharmacy order in step; called by transition_referral before the event is written."""
    target = ORDER_STATUS.get(to_status)
    if target is None:
        return
    order = pharmacy.order_for_source(session, SOURCE, referral.id)
    if order is None:
        partner = session.get(Partner, referral.partner_id)
        clinic_id = clinics.network_clinic_id(session, partner.environment if partner else "sandbox")
        created = pharmacy.create_order_in(
            session,
            clinic_id,
            medication_name=MEDICATION.get(referral.product_category, referral.product_category),
            delivery_location=_delivery_location(session, referral),
            prescription_id=None,
            source=SOURCE,
            source_ref=referral.id,
            now=at,
            shipping_partner=CARRIER,
        )
        order_id = created.medication_order_id
    else:
        order_id = order.id
    pharmacy.advance_order_to(session, order_id, target, at)
    group = pharmacy.shipment_of(session, order_id)
    fulfillment = referral.fulfillment
    if fulfillment is not None and group is not None and group.tracking_number and to_status != "approved":
        fulfillment.carrier = group.shipping_partner
        fulfillment.tracking_number = group.tracking_number
