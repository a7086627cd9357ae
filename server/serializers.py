"""Database rows -> response bodies shaped exactly as the spec's schemas."""

from __future__ import annotations

from typing import Any

from server import faults
from server.auth import AuthenticatedPartner
from server.clock import iso
from server.db.models import Fulfillment, Payment, Product, Referral
from server.repositories.referral_reads import FulfillmentView, PaymentView, ReferralView

# ORM rows (writes, the sandbox's own pages) and Core views (the API's hot reads) serialize alike.
AnyReferral = Referral | ReferralView


def enrollment_url(base_url: str, partner_slug: str, referral: AnyReferral) -> str:
    return f"{base_url}/enroll/{partner_slug}/{referral.product_category}?ref={referral.id}"


def fulfillment(f: Fulfillment | FulfillmentView | None) -> dict[str, Any]:
    if f is None or f.status is None:
        return {"status": None, "carrier": None, "estimated_delivery": None, "updated_at": None}
    out: dict[str, Any] = {
        "status": f.status,
        "carrier": f.carrier,
        "estimated_delivery": f.estimated_delivery.isoformat() if f.estimated_delivery else None,
        "updated_at": iso(f.updated_at),
    }
    if f.shipped_at:
        out["shipped_at"] = iso(f.shipped_at)
    if f.delivered_at:
        out["delivered_at"] = iso(f.delivered_at)
    if f.exception_type and f.status == "delivery_exception":
        out["exception_type"] = f.exception_type
    return out


def payment(p: Payment | PaymentView | None) -> dict[str, Any]:
    if p is None:
        return {"status": "not_due", "amount_cents": None, "currency": "USD", "paid_at": None}
    out: dict[str, Any] = {
        "status": p.status,
        "amount_cents": p.amount_cents,
        "currency": p.currency,
        "paid_at": iso(p.paid_at),
    }
    if p.refunded_at:
        out["refunded_at"] = iso(p.refunded_at)
    return out


def referral(r: AnyReferral, partner: AuthenticatedPartner, base_url: str) -> dict[str, Any]:
    # Keys are set one by one, in the schema's order (a list page builds 50 of these: no temporary dicts).
    rid, category, status = r.id, r.product_category, r.status
    out: dict[str, Any] = {"referral_id": rid, "partner_reference": r.partner_reference}
    if partner.tier == "clinical":
        if r.patient_id:
            out["patient_id"] = r.patient_id
        if r.appointment_id:
            out["appointment_id"] = r.appointment_id
    elif faults.active("phi_leak"):
        out["patient_id"] = r.patient_id or "ptn_" + rid.removeprefix("ref_")
    out["product_category"] = category
    out["enrollment_url"] = f"{base_url}/enroll/{partner.slug}/{category}?ref={rid}"
    out["status"] = status
    out["status_history"] = [{"status": h.status, "at": iso(h.at)} for h in r.history]
    if status == "denied" and r.denial_category:
        out["denial_category"] = r.denial_category
    elif status == "cancelled" and r.cancelled_by:
        out["cancelled_by"] = r.cancelled_by
    out["fulfillment"] = fulfillment(r.fulfillment)
    out["payment"] = payment(r.payment)
    out["metadata"] = dict(r.metadata_ or {})
    out["created_at"] = iso(r.created_at)
    out["expires_at"] = iso(r.expires_at)
    return out


def created_referral(r: Referral, partner: AuthenticatedPartner, base_url: str) -> dict[str, Any]:
    return {
        "referral_id": r.id,
        "partner_reference": r.partner_reference,
        "product_category": r.product_category,
        "enrollment_url": enrollment_url(base_url, partner.slug, r),
        "status": r.status,
        "created_at": iso(r.created_at),
        "expires_at": iso(r.expires_at),
    }


def product(p: Product, partner: AuthenticatedPartner, base_url: str) -> dict[str, Any]:
    if partner.tier == "prescriber":
        extra = p.extra or {}
        return {
            "category_id": p.category,
            "name": extra.get("name", p.display_name),
            "description": p.description,
            "supported_countries": list(p.jurisdictions),
            "supported_states": list(extra.get("supported_states", [])),
            "review_fee_cents": int(extra.get("review_fee_cents", 0)),
            "intake_schema_version": str(extra.get("intake_schema_version", "1.0")),
            "required_intake_questions": list(extra.get("required_intake_questions", [])),
        }
    return {
        "category": p.category,
        "display_name": p.display_name,
        "description": p.description,
        "jurisdictions": list(p.jurisdictions),
        "enrollment_url_template": f"{base_url}/enroll/{partner.slug}/{p.category}?ref={{referral_id}}",
        "requires_payment_at_enrollment": p.requires_payment_at_enrollment,
        "price_range": {
            "min_cents": p.price_min_cents,
            "max_cents": p.price_max_cents,
            "currency": p.currency,
        },
    }
