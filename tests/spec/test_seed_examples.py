"""The seeds' own JSON examples (requests, responses, webhooks, errors) validate against the matching schema.

The examples are extracted from the seed files themselves (``<repo>/../shared/seeds``), keyed by seed and line.
``SEED_EXAMPLES`` maps every JSON block of the seeds to what it exemplifies; blocks that are not examples (type
descriptions of the data-model sections, elided fragments, log lines) are listed in ``NOT_EXAMPLES`` with the
reason. ``DEVIATIONS`` lists the examples that do not validate, each with the DECISIONS.md entry that justifies
it; the test asserts they still fail, so the list stays exact.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from stealth_spec.walk import deref
from tests.conftest import REPO, SPECS, bundled
from tests.spec.seed_blocks import Block, blocks

SEEDS = REPO.parent / "shared" / "seeds"
pytestmark = pytest.mark.skipif(not SEEDS.is_dir(), reason=f"seed documents not found at {SEEDS}")


@dataclass(frozen=True)
class Target:
    api: str  # "partner" or "pharmacy"
    kind: str  # request | response | webhook | schema
    name: str  # URL path, webhook name ("" = the example's event_type / event_name), or component name
    method: str = ""
    status: str = ""  # "" = the operation's first 2xx response
    merge: str = ""  # key of another block whose fields this block completes (elided "...": "..." fields)
    field: str = ""  # validate only this property of the block (a fragment of a larger object)
    branch: str = ""  # the oneOf branch (component schema) of the response the example shows


P = "partner"
Ph = "pharmacy"


def req(path: str, method: str = "post", api: str = P, merge: str = "") -> Target:
    return Target(api, "request", path, method, merge=merge)


def resp(path: str, method: str = "get", status: str = "", api: str = P, branch: str = "") -> Target:
    return Target(api, "response", path, method, status, branch=branch)


def hook(name: str = "", api: str = P) -> Target:
    return Target(api, "webhook", name)


def schema(name: str, api: str = P, field: str = "") -> Target:
    return Target(api, "schema", name, field=field)


SEED_EXAMPLES: dict[str, Target] = {
    # 000 referral tier guide
    "000:189": req("/partner/referrals"),
    "000:207": resp("/partner/referrals", "post", "201"),
    "000:227": resp("/partner/referrals/{referral_id}"),
    "000:304": resp("/partner/referrals/summary"),
    "000:337": resp("/partner/products"),
    "000:378": resp("/partner/referrals/{referral_id}/tracking-link"),
    "000:395": req("/partner/referrals/{referral_id}/cancel"),
    "000:403": resp("/partner/referrals/{referral_id}/cancel", "post"),
    "000:421": hook("referral.approved"),
    "000:555": resp("/partner/referrals/{referral_id}/cancel", "post", "409"),
    # 001 pharmacy-operations plan
    "001:37": req("/webhook", api=Ph),
    "001:45": resp("/webhook", "post", api=Ph),
    "001:68": hook("shipment:created", api=Ph),
    "001:98": hook("shipment:cancelled", api=Ph),
    "001:123": hook("medication:updated", api=Ph),
    "001:237": req("/refill-request", api=Ph),
    "001:245": resp("/refill-request", "post", api=Ph),
    # 002 clinical tier guide
    "002:194": resp("/partner/patients"),
    "002:225": resp("/partner/patients/{patient_id}"),
    "002:260": resp("/partner/patients/{patient_id}/appointments"),
    "002:308": resp("/partner/appointments/{appointment_id}", branch="ClinicalAppointment"),
    "002:384": resp("/partner/patients/{patient_id}/intake"),
    "002:438": resp("/partner/patients/{patient_id}/messages"),
    "002:519": resp("/partner/patients/{patient_id}/transactions"),
    "002:552": resp("/partner/transactions/{transaction_id}"),
    "002:588": Target(P, "response", "/partner/referrals/{referral_id}", "get", merge="000:227"),
    "002:602": req("/partner/prescribers"),
    "002:615": resp("/partner/prescribers", "post", "201"),
    "002:661": req("/partner/prescriptions", merge="002:651"),
    "002:663": req("/partner/prescriptions", merge="002:651"),
    "002:665": req("/partner/prescriptions", merge="002:651"),
    "002:691": resp("/partner/prescriptions", "post", "201"),
    "002:734": hook("referral.approved"),
    # 003 prescriber-partner guide
    "003:141": req("/partner/appointments"),
    "003:223": resp("/partner/appointments", "post", "201"),
    "003:266": resp("/partner/appointments"),
    "003:292": resp("/partner/appointments/{appointment_id}", branch="PrescriberAppointment"),
    "003:340": schema("DenialDetails", field="denial_details"),
    "003:356": resp("/partner/appointments/{appointment_id}/prescription"),
    "003:402": req("/partner/appointments/{appointment_id}/route-pharmacy"),
    "003:410": resp("/partner/appointments/{appointment_id}/route-pharmacy", "post"),
    "003:435": resp("/partner/appointments/{appointment_id}/routing-status"),
    "003:456": resp("/partner/products"),
    "003:518": schema("IntakeAnswer"),
    "003:546": hook(),
    "003:581": hook(),
    "003:718": schema("ErrorResponse"),
}

NOT_EXAMPLES: dict[str, str] = {
    "000:278": 'list items elided with "...": "..." (each item is the 6.2 referral, validated there)',
    "000:494": "8.1 Referral Object: a type description (values are type names), not an example",
    "000:523": "8.2 Event Object: a type description, not an example",
    "002:640": "not JSON (a /* comment */ stands for the items)",
    "002:651": "the common fields of POST /partner/prescriptions without a patient mode; validated merged into "
    "each of the three mode examples (002:661, 002:663, 002:665)",
    "002:785": "13.1 Patient Object: a type description, not an example",
    "002:812": "13.2 Appointment Object: a type description, not an example",
    "002:867": "13.3 Intake Response Object: a type description, not an example",
    "002:881": "13.4 Message Thread Object: a type description, not an example",
    "002:918": "13.5 Transaction Object: a type description, not an example",
    "002:951": "13.6 Prescriber Object: a type description, not an example",
    "002:972": "13.7 Partner-Submitted Prescription Object: a type description, not an example",
    "002:1085": "16.5: a line of the partner's own SIEM log, not an API payload (and not one JSON value)",
    "003:648": "13.1 Appointment: a type description, not an example",
    "003:668": "13.2 Prescription: a type description, not an example",
    "003:696": "13.3 Denial Details: a type description, not an example",
    "003:704": "13.4 Review Fee: a type description, not an example",
}


@dataclass(frozen=True)
class Deviation:
    why: str  # the DECISIONS.md entries that justify it
    allowed: tuple[str, ...]  # every validation error must match one of these regular expressions


PAT = r"'pat_8f2e9a1b' does not match"  # D-007: patient ids are ptn_
PROF = r"'prof_a1b2c3d4e5f6' does not match"  # D-007
APT = r"'apt_c4d5e6f7' does not match"  # D-008: appointment ids are appt_
EVT = r"^/event_id: 'evt_[0-9a-f]+' does not match"  # D-009: event ids are evt_ + 24 hex
UUID = r"'(uuid|uuid-of-clinic|uuid-of-medication-request|optional-group-id|order-id-\d)' is not a 'uuid'"  # PH-003

# Seed examples that do not validate, with the DECISIONS.md entries that justify each deviation.
DEVIATIONS: dict[str, Deviation] = {
    "000:421": Deviation("D-009 short event id", (EVT,)),
    "001:37": Deviation("PH-003 placeholder ids, the spec's ids are UUIDs", (UUID,)),
    "001:45": Deviation("PH-003", (UUID,)),
    "001:68": Deviation("PH-003", (UUID,)),
    "001:98": Deviation("PH-003", (UUID,)),
    "001:123": Deviation("PH-003", (UUID,)),
    "001:237": Deviation("PH-003", (UUID,)),
    "001:245": Deviation("PH-003", (UUID,)),
    "002:194": Deviation("D-007 pat_ patient id", (PAT,)),
    "002:225": Deviation("D-007, D-008", (PAT, APT)),
    "002:260": Deviation("D-007, D-008", (PAT, APT)),
    "002:308": Deviation("D-007, D-008 (D-017: the clinical branch of the appointment)", (PAT, APT)),
    "002:384": Deviation("D-007, D-008", (PAT, APT)),
    "002:438": Deviation(
        "D-007, D-008; C-004 messages are paginated, the seed example has no pagination",
        (PAT, APT, r"^/: 'pagination' is a required property"),
    ),
    "002:519": Deviation(
        "D-007, D-008; C-003 list items are the full Transaction, the seed's items are abridged",
        (
            PAT,
            APT,
            r"^/transactions/0: '(patient_id|partner_reference|referral_id|line_items|refund)' is a required",
        ),
    ),
    "002:552": Deviation("D-007, D-008", (PAT, APT)),
    "002:588": Deviation("D-007, D-008 (merged into the 000 §6.2 referral it extends)", (PAT, APT)),
    "002:661": Deviation("D-007", (PAT,)),
    "002:691": Deviation(
        "D-007 (C-017): the inline patient's id is ptn_",
        (r"'partner_inline_test_partner_pat_inline_example_com' does not match",),
    ),
    "002:734": Deviation("D-009, D-007, D-008", (EVT, PAT, APT)),
    "003:223": Deviation("D-007 prof_ patient id", (PROF,)),
    "003:266": Deviation("D-007", (PROF,)),
    "003:292": Deviation(
        "D-007; P-004 the embedded prescription lacks prescription_id/diagnosis_codes/valid_until; the §7.2 example "
        "also omits has_prescription, pharmacy_preference and reviewed_at that §13.1 lists",
        (
            PROF,
            r"^/prescription",
            r"^/: '(has_prescription|pharmacy_preference|reviewed_at)' is a required property",
        ),
    ),
    "003:546": Deviation(
        "D-009, D-007; P-004 the embedded prescription lacks prescription_id, status, diagnosis_codes, notes, valid_until",
        (
            EVT,
            PROF,
            r"^/data/prescription: '(prescription_id|status|diagnosis_codes|notes|valid_until)' is a required",
        ),
    ),
    "003:581": Deviation("D-009, D-007", (EVT, PROF)),
}


def _all_blocks() -> dict[str, Block]:
    if not SEEDS.is_dir():
        return {}
    return {b.key: b for path in sorted(SEEDS.glob("0*.txt")) for b in blocks(path)}


BLOCKS = _all_blocks()
EXAMPLE_KEYS = sorted(SEED_EXAMPLES, key=lambda k: (k[:3], int(k[4:])))


def _media_schema(doc: dict[str, Any], holder: Any, where: str) -> Any:
    holder = deref(doc, holder)
    try:
        return holder["content"]["application/json"]["schema"]
    except (KeyError, TypeError):
        raise AssertionError(f"{where}: no application/json schema in the spec") from None


def target_schema(doc: dict[str, Any], target: Target, value: Any) -> Any:
    if target.kind == "schema":
        assert target.name in doc["components"]["schemas"], f"no component schema {target.name}"
        return {"$ref": f"#/components/schemas/{target.name}"}
    if target.kind == "webhook":
        name = target.name or value.get("event_type") or value.get("event_name")
        assert name in (doc.get("webhooks") or {}), f"no webhook {name}"
        return _media_schema(doc, doc["webhooks"][name]["post"]["requestBody"], f"webhook {name}")
    assert target.name in doc["paths"], f"no path {target.name}"
    op = doc["paths"][target.name][target.method]
    if target.kind == "request":
        return _media_schema(doc, op["requestBody"], f"{target.method} {target.name} request")
    status = target.status or next(s for s in map(str, op["responses"]) if s.startswith("2"))
    media_schema = _media_schema(doc, op["responses"][status], f"{target.method} {target.name} {status}")
    if target.branch:
        branch = {"$ref": f"#/components/schemas/{target.branch}"}
        branches = deref(doc, media_schema).get("oneOf") or deref(doc, media_schema).get("anyOf") or []
        assert branch in branches, (
            f"{target.branch} is not a branch of {target.method} {target.name} {status}"
        )
        return branch
    return media_schema


def example_value(key: str) -> Any:
    target = SEED_EXAMPLES[key]
    value = BLOCKS[key].value
    if target.merge:
        value = {**BLOCKS[target.merge].value, **{k: v for k, v in value.items() if k != "..."}}
    if target.field:
        value = value[target.field]
    return value


def errors_of(key: str) -> list[str]:
    target = SEED_EXAMPLES[key]
    doc = bundled(target.api)
    value = example_value(key)
    uri = f"urn:stealth:{target.api}"
    registry = Registry().with_resource(uri, Resource(doc, specification=DRAFT202012))
    schema_node = target_schema(doc, target, value)

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (uri + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else rebase(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rebase(v) for v in node]
        return node

    validator = Draft202012Validator(rebase(schema_node), registry=registry, format_checker=FormatChecker())
    out = []
    for err in validator.iter_errors(value):
        # For oneOf/anyOf, report why each branch failed (the top message only repeats the value).
        leaves = [e for e in err.context or [] if not e.context] or [err]
        for leaf in leaves:
            branch = f" [branch {leaf.schema_path[0]}]" if leaf is not err and leaf.schema_path else ""
            out.append(f"/{'/'.join(map(str, leaf.absolute_path))}{branch}: {leaf.message[:200]}")
    return out


def test_every_seed_block_is_classified() -> None:
    assert set(BLOCKS) == set(SEED_EXAMPLES) | set(NOT_EXAMPLES), (
        "seed JSON blocks changed: update the tables"
    )
    assert not set(SEED_EXAMPLES) & set(NOT_EXAMPLES)
    assert set(DEVIATIONS) <= set(SEED_EXAMPLES)
    for key in SEED_EXAMPLES:
        assert BLOCKS[key].value is not None, f"{key} is not valid JSON"


@pytest.mark.parametrize("key", EXAMPLE_KEYS)
def test_seed_example(key: str) -> None:
    target = SEED_EXAMPLES[key]
    if not (SPECS[target.api] / "openapi.yaml").is_file():
        pytest.skip(f"no {target.api} spec")
    errors = errors_of(key)
    if key in DEVIATIONS:
        deviation = DEVIATIONS[key]
        assert errors, f"{key} now validates: remove it from DEVIATIONS ({deviation.why})"
        unjustified = [e for e in errors if not any(re.search(p, e) for p in deviation.allowed)]
        assert unjustified == [], f"{key}: errors beyond the justified deviation ({deviation.why})"
    else:
        assert errors == [], f"{key} ({BLOCKS[key].heading}) does not validate against {target}"


def counts() -> dict[str, int]:
    """Valid / total as the spec stands now (computed, not read off the tables)."""
    keys = [k for k in SEED_EXAMPLES if (SPECS[SEED_EXAMPLES[k].api] / "openapi.yaml").is_file()]
    valid = 0
    for key in keys:
        with contextlib.suppress(AssertionError, KeyError):
            valid += not errors_of(key)
    return {
        "total": len(keys),
        "valid": valid,
        "deviations": len(DEVIATIONS),
        "not_examples": len(NOT_EXAMPLES),
    }


def seeds_dir() -> Path:
    return SEEDS
