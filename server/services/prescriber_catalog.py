"""Sandbox data of the prescriber tier (seed 003): conditions with their intake schemas, the pharmacy network,
the sandbox physician and what the physician prescribes per condition.

The conditions and their required questions are those of seed 003 §9.3 (GET /partner/products); the accepted
optional ids are the condition-specific questions of §10.2. Intake schema versions (§10.4): the current version,
one deprecated version still inside its deprecation window, and one whose window has closed (refused), so each
path can be exercised in the sandbox. Windows are compared with the partner's sandbox clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

COMMON_QUESTIONS = (
    "current_medications",
    "allergies",
    "medical_history",
    "current_symptoms",
    "prior_treatments",
)


@dataclass(frozen=True)
class IntakeVersion:
    version: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    accepted_until: date | None = None  # None: current, no end of acceptance announced


@dataclass(frozen=True)
class Condition:
    category: str
    name: str
    description: str
    supported_countries: tuple[str, ...]
    supported_states: tuple[str, ...]
    review_fee_cents: int
    current_version: str
    versions: dict[str, IntakeVersion] = field(default_factory=dict)

    def version(self, requested: str | None) -> IntakeVersion | None:
        return self.versions.get(requested or self.current_version)

    @property
    def current(self) -> IntakeVersion:
        return self.versions[self.current_version]


def _versions(specific: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, IntakeVersion]:
    return {
        # 1.0: seed 003 §9.3's required_intake_questions
        "1.0": IntakeVersion("1.0", COMMON_QUESTIONS + specific, optional),
        # 0.9: before prior_treatments was required; deprecated, accepted until mid-2027
        "0.9": IntakeVersion(
            "0.9",
            tuple(q for q in COMMON_QUESTIONS if q != "prior_treatments") + specific,
            (*optional, "prior_treatments"),
            accepted_until=date(2027, 6, 30),
        ),
        # 0.8: its deprecation window closed at the end of 2025
        "0.8": IntakeVersion("0.8", COMMON_QUESTIONS[:3], (), accepted_until=date(2025, 12, 31)),
    }


CONDITIONS: dict[str, Condition] = {
    c.category: c
    for c in (
        Condition(
            "trt-cream",
            "TRT Cream",
            "Testosterone Replacement Therapy — topical cream",
            ("US",),
            ("FL", "TX", "CA", "NY"),
            4500,
            "1.0",
            _versions(("recent_labs",), ("testosterone_symptoms",)),
        ),
        Condition(
            "bpc-157",
            "BPC-157 Peptide",
            "Body Protection Compound peptide therapy",
            ("US",),
            ("FL", "TX", "CA"),
            4500,
            "1.0",
            _versions((), ("injury_description", "treatment_goals")),
        ),
    )
}

# What the sandbox physician prescribes per condition (seed 003 §8.1's example for trt-cream).
PRESCRIBED: dict[str, dict[str, object]] = {
    "trt-cream": {
        "name": "Testosterone Cypionate Cream 200mg/mL",
        "ndc": "12345-6789-01",
        "dosage_instructions": "Apply 1mL topically once daily",
        "quantity": 1,
        "quantity_unit": "tube",
        "refills": 2,
        "days_supply": 30,
    },
    "bpc-157": {
        "name": "BPC-157 5mg/vial",
        "ndc": None,
        "dosage_instructions": "Inject 250mcg subcutaneously once daily",
        "quantity": 2,
        "quantity_unit": "vial",
        "refills": 2,
        "days_supply": 30,
    },
}
DIAGNOSIS_CODES = {"trt-cream": ["E29.1"], "bpc-157": ["M79.1"]}
APPROVAL_NOTES = {
    "trt-cream": "Patient is a good candidate for TRT based on symptoms and lab values.",
    "bpc-157": "Reasonable candidate for peptide therapy; follow up in 30 days.",
}
DENIAL_REASONS = {
    "medical_contraindication": "Patient's current medications present a contraindication for the requested therapy.",
    "incomplete_information": "The intake does not give enough information to make a clinical decision.",
    "not_a_candidate": "Patient does not meet the clinical criteria for the requested therapy.",
    "age_restriction": "Patient does not meet the age requirements for the requested therapy.",
    "jurisdiction_restriction": "We cannot prescribe this therapy in the patient's state or country.",
}
PHYSICIAN = {"name": "Dr. Sarah Johnson", "npi": "1234567890", "dea_number": "FJ1234567"}
ESTIMATED_REVIEW_HOURS = 24
# Sandbox timing on the partner's clock (seed 003 §15.2 "auto-review after ~2 minutes").
REVIEW_DELAY = timedelta(minutes=2)
SLOW_REVIEW_DELAY = timedelta(hours=24)
FILL_DELAY = timedelta(minutes=2)
STEP = timedelta(seconds=1)
PRESCRIPTION_VALID_DAYS = 365


@dataclass(frozen=True)
class NetworkPharmacy:
    pharmacy_id: str
    name: str
    npi: str
    city: str
    state: str
    serves: tuple[str, ...]  # the states it ships to

    def as_dict(self) -> dict[str, str]:
        return {
            "pharmacy_id": self.pharmacy_id,
            "name": self.name,
            "npi": self.npi,
            "city": self.city,
            "state": self.state,
        }


# The sandbox pharmacy network (seed 003 §9.1's CDRX Pharmacy is pharm_abc123); the first that serves a state is
# the default pharmacy for patients there.
PHARMACIES: dict[str, NetworkPharmacy] = {
    p.pharmacy_id: p
    for p in (
        NetworkPharmacy("pharm_abc123", "CDRX Pharmacy", "9876543210", "Tampa", "FL", ("FL", "GA", "AL")),
        NetworkPharmacy("pharm_tx0001", "Lone Star Compounding", "1518273645", "Austin", "TX", ("TX", "OK")),
        NetworkPharmacy("pharm_ca0001", "Pacific Apothecary", "1932847561", "San Diego", "CA", ("CA", "NV")),
        NetworkPharmacy("pharm_ny0001", "Empire Rx", "1457382910", "Albany", "NY", ("NY", "NJ", "CT")),
        NetworkPharmacy(
            "pharm_us0001", "Stealth Mail Pharmacy", "1083746529", "Orlando", "FL", ("FL", "TX", "CA", "NY")
        ),
    )
}


def default_pharmacy(state: str) -> NetworkPharmacy:
    for pharmacy in PHARMACIES.values():
        if state in pharmacy.serves:
            return pharmacy
    return PHARMACIES["pharm_us0001"]


def product_rows() -> list[dict[str, object]]:
    """The product rows seeded for a new prescriber partner (server.services.catalog)."""
    rows: list[dict[str, object]] = []
    for i, c in enumerate(CONDITIONS.values()):
        rows.append(
            {
                "category": c.category,
                "display_name": c.name,
                "description": c.description,
                "jurisdictions": list(c.supported_countries),
                "requires_payment_at_enrollment": False,
                "price_cents": c.review_fee_cents,
                "price_min_cents": c.review_fee_cents,
                "price_max_cents": c.review_fee_cents,
                "currency": "USD",
                "position": i,
                "extra": {
                    "name": c.name,
                    "supported_states": list(c.supported_states),
                    "review_fee_cents": c.review_fee_cents,
                    "intake_schema_version": c.current_version,
                    "required_intake_questions": list(c.current.required),
                },
            }
        )
    return rows
