"""The sandbox medication catalog for partner-submitted prescriptions (seed 002 §11.1.5, §11.2).

Sandbox data: each code with its product name, controlled-substance schedule (None when not controlled),
where it may be dispensed (country -> jurisdictions, None meaning every state/province of that country),
the pharmacy location that fills it per country, and whether the entry is active. The MED-SANDBOX-* codes are the
operation's x-sandbox-scenarios; production refuses them (SANDBOX_SCENARIO_NOT_ALLOWED).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Medication:
    code: str
    product_name: str
    product_category: str
    schedule: str | None
    availability: dict[str, tuple[str, ...] | None]
    pharmacy_locations: dict[str, str] = field(default_factory=dict)
    active: bool = True
    sandbox_only: bool = False

    def available_in(self, country: str, jurisdiction: str) -> bool:
        if country not in self.availability:
            return False
        allowed = self.availability[country]
        return allowed is None or jurisdiction in allowed

    def pharmacy_for(self, country: str) -> str | None:
        return self.pharmacy_locations.get(country)


_PHARMACIES = {"US": "trt-pharmacy-us", "CA": "trt-pharmacy-ca"}

CATALOG: dict[str, Medication] = {
    m.code: m
    for m in (
        Medication(
            "MED-TRT-CREAM",
            "TRT Cream 200mg/mL",
            "trt-cream",
            None,
            {"US": None, "CA": None},
            _PHARMACIES,
        ),
        Medication(
            "MED-BPC157-VIAL",
            "BPC-157 5mg/vial",
            "peptides",
            None,
            {"US": None},
            {"US": "peptide-pharmacy-us"},
        ),
        Medication(
            "MED-TESTOSTERONE-CYP",
            "Testosterone Cypionate 200mg/mL (10mL vial)",
            "trt-cream",
            "III",
            {"US": None, "CA": None},
            _PHARMACIES,
        ),
        Medication(
            "MED-SANDBOX-CIII",
            "Sandbox Schedule III Test Medication",
            "trt-cream",
            "III",
            {"US": None, "CA": None},
            _PHARMACIES,
            sandbox_only=True,
        ),
        Medication(
            "MED-SANDBOX-US-ONLY",
            "Sandbox US-Only Test Medication",
            "trt-cream",
            None,
            {"US": None},
            {"US": "trt-pharmacy-us"},
            sandbox_only=True,
        ),
        Medication(
            "MED-SANDBOX-INACTIVE",
            "Sandbox Inactive Test Medication",
            "trt-cream",
            None,
            {"US": None, "CA": None},
            _PHARMACIES,
            active=False,
            sandbox_only=True,
        ),
    )
}


def lookup(code: str) -> Medication | None:
    """The active catalog entry for a code, or None (unknown or inactive: MEDICATION_NOT_FOUND)."""
    med = CATALOG.get(code)
    return med if med is not None and med.active else None
