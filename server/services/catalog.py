"""The default product catalog seeded for every new partner (sandbox data, seed 000 §6.5)."""

from __future__ import annotations

from typing import Any

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

# Prescriber partners additionally see the structured-intake requirements of each condition (seed 003 §10).
PRESCRIBER_INTAKE_QUESTIONS: dict[str, list[str]] = {
    "trt-cream": ["current_medications", "allergies", "medical_history", "current_symptoms"],
    "peptides": ["current_medications", "allergies", "medical_history", "current_symptoms"],
}


PRESCRIBER_NAMES = {"trt-cream": "TRT Cream", "peptides": "BPC-157 Peptides"}


def default_products(tier: str) -> list[dict[str, Any]]:
    products = []
    for i, product in enumerate(REFERRAL_PRODUCTS):
        item = dict(product, position=i)
        if tier == "prescriber":
            item["extra"] = {
                "name": PRESCRIBER_NAMES[product["category"]],
                "supported_states": ["FL", "TX", "CA", "NY"],
                "review_fee_cents": 4500,
                "intake_schema_version": "1.0",
                "required_intake_questions": PRESCRIBER_INTAKE_QUESTIONS[product["category"]],
            }
        products.append(item)
    return products
