"""The default product catalog seeded for every new partner (sandbox data, seed 000 §6.5)."""

from __future__ import annotations

from typing import Any

from server.services import prescriber_catalog

# Referral/clinical partners: the two categories of the referral guide.
REFERRAL_PRODUCTS: list[dict[str, Any]] = [
    {
        "category": "trt-cream",
        "display_name": "Testosterone Replacement Therapy (Cream)",
        "description": "Compounded testosterone cream for hormone optimization",
        "jurisdictions": ["US"],
        "requires_payment_at_enrollment": True,
        "price_cents": 14900,
        "price_min_cents": 9900,
        "price_max_cents": 19900,
        "currency": "USD",
    },
    {
        "category": "peptides",
        "display_name": "BPC-157 Peptide Therapy",
        "description": "BPC-157 peptide for tissue repair and recovery support",
        "jurisdictions": ["US"],
        "requires_payment_at_enrollment": True,
        "price_cents": 19900,
        "price_min_cents": 14900,
        "price_max_cents": 24900,
        "currency": "USD",
    },
]


def default_products(tier: str) -> list[dict[str, Any]]:
    """Referral and clinical partners get the referral guide's categories; prescriber partners the conditions of
    seed 003 §9.3 with their intake requirements (server.services.prescriber_catalog)."""
    if tier == "prescriber":
        return prescriber_catalog.product_rows()
    return [dict(product, position=i) for i, product in enumerate(REFERRAL_PRODUCTS)]
