"""The prescriber registry (seed 002 §11.1.1-§11.1.4): validation codes and order, idempotency, lifecycle."""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta

import pytest

from tests.server.clinical.helpers import CLINICAL, code

FUTURE = (date.today() + timedelta(days=400)).isoformat()
PAST = (date.today() - timedelta(days=1)).isoformat()
# PrescriberLicense.yaml's country/jurisdiction if/then/else carries no x-error-code, so the adapter maps a
# jurisdiction of the other country to the enclosing `licenses` code (PRESCRIBER_LICENSE_REQUIRED).


def body(**changes):
    out = {
        "first_name": "Alice",
        "last_name": "Doctor",
        "email": "alice.doctor@example.com",
        "npi": "1234567890",
        "dea_number": "AB1234567",
        "licenses": [
            {"country": "US", "jurisdiction": "TX", "license_number": "TX-MD-1", "expires_at": FUTURE},
            {"country": "CA", "jurisdiction": "ON", "license_number": "ON-MD-1", "expires_at": FUTURE},
        ],
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not ...}


def post(sandbox, creds, payload):
    return sandbox.call("POST", "/partner/prescribers", creds, headers=CLINICAL, json=payload)


def test_register_get_list_deactivate(sandbox, schemas):
    p = sandbox.partner("clinical")
    r = post(sandbox, p, body(partner_reference="ALICE-001"))
    assert r.status_code == 201, r.text
    created = r.json()
    schemas.component("Prescriber", created)
    assert created["status"] == "active" and created["prescriber_id"].startswith("pres_")
    assert created["partner_reference"] == "ALICE-001"
    pid = created["prescriber_id"]

    r = sandbox.call("GET", f"/partner/prescribers/{pid}", p, headers=CLINICAL)
    assert r.status_code == 200 and r.json() == created

    second = post(sandbox, p, body(first_name="Bruno", dea_number=None, npi=None)).json()
    listed = sandbox.call("GET", "/partner/prescribers", p, headers=CLINICAL).json()
    schemas.component("PrescriberList", listed)
    assert [x["prescriber_id"] for x in listed["prescribers"]] == [second["prescriber_id"], pid]

    r = sandbox.call("POST", f"/partner/prescribers/{pid}/deactivate", p, headers=CLINICAL)
    assert r.status_code == 200 and r.json()["status"] == "inactive"
    again = sandbox.call("POST", f"/partner/prescribers/{pid}/deactivate", p, headers=CLINICAL)
    assert again.status_code == 200 and again.json() == r.json()  # a no-op
    only = sandbox.call(
        "GET", "/partner/prescribers", p, headers=CLINICAL, params={"status": "inactive"}
    ).json()
    assert [x["prescriber_id"] for x in only["prescribers"]] == [pid]
    page = sandbox.call("GET", "/partner/prescribers", p, headers=CLINICAL, params={"limit": 1}).json()
    assert page["pagination"]["has_more"] is True
    rest = sandbox.call(
        "GET",
        "/partner/prescribers",
        p,
        headers=CLINICAL,
        params={"limit": 1, "cursor": page["pagination"]["next_cursor"]},
    ).json()
    assert [x["prescriber_id"] for x in page["prescribers"] + rest["prescribers"]] == [
        second["prescriber_id"],
        pid,
    ]

    other = sandbox.partner("clinical")
    for method, url in (
        ("GET", f"/partner/prescribers/{pid}"),
        ("POST", f"/partner/prescribers/{pid}/deactivate"),
    ):
        r = sandbox.call(method, url, other, headers=CLINICAL)
        assert r.status_code == 404 and code(r) == "PRESCRIBER_NOT_FOUND"
    r = sandbox.call("GET", "/partner/prescribers", sandbox.partner(), headers=CLINICAL)
    assert r.status_code == 403 and code(r) == "CLINICAL_ACCESS_REQUIRED"


def test_idempotent_on_partner_reference(sandbox):
    p = sandbox.partner("clinical")
    ref = f"DOC-{uuid.uuid4().hex[:6]}"
    first = post(sandbox, p, body(partner_reference=ref))
    assert first.status_code == 201
    replay = post(sandbox, p, body(partner_reference=ref))
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    r = post(sandbox, p, body(partner_reference=ref, first_name="Other"))
    assert r.status_code == 409 and code(r) == "DUPLICATE_REFERENCE"
    # DUPLICATE_REFERENCE comes before PRESCRIBER_LICENSE_EXPIRED in x-validation-order
    expired = body(partner_reference=ref)
    expired["licenses"][0]["expires_at"] = PAST
    r = post(sandbox, p, expired)
    assert r.status_code == 409 and code(r) == "DUPLICATE_REFERENCE"
    # another partner may use the same reference
    assert post(sandbox, sandbox.partner("clinical"), body(partner_reference=ref)).status_code == 201


def _license(**changes):
    lic = {"country": "US", "jurisdiction": "TX", "license_number": "TX-MD-1", "expires_at": FUTURE}
    lic.update(changes)
    return {k: v for k, v in lic.items() if v is not ...}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (body(first_name=...), "PRESCRIBER_NAME_REQUIRED"),
        (body(last_name=""), "PRESCRIBER_NAME_REQUIRED"),
        (body(email="not-an-email"), "PRESCRIBER_EMAIL_INVALID"),
        (body(email=...), "PRESCRIBER_EMAIL_INVALID"),
        (body(licenses=[]), "PRESCRIBER_LICENSE_REQUIRED"),
        (body(licenses=...), "PRESCRIBER_LICENSE_REQUIRED"),
        (body(licenses=[_license(country="MX")]), "PRESCRIBER_LICENSE_INVALID"),
        (body(licenses=[_license(jurisdiction="ZZ")]), "PRESCRIBER_LICENSE_INVALID"),
        (body(licenses=[_license(jurisdiction="ON")]), "PRESCRIBER_LICENSE_INVALID"),
        (body(licenses=[_license(country="CA", jurisdiction="TX")]), "PRESCRIBER_LICENSE_INVALID"),
        (body(licenses=[_license(license_number=...)]), "PRESCRIBER_LICENSE_INVALID"),
        (body(licenses=[_license(expires_at="2027-13-45")]), "PRESCRIBER_LICENSE_INVALID"),
        (body(licenses=[_license(expires_at=PAST)]), "PRESCRIBER_LICENSE_EXPIRED"),
        (body(licenses=[_license(expires_at=date.today().isoformat())]), "PRESCRIBER_LICENSE_EXPIRED"),
        (body(partner_reference=" bad ref"), "INVALID_PARTNER_REFERENCE"),
        (body(npi="12"), "INVALID_BODY"),
        # two broken rules: the earlier one in x-validation-order wins
        (body(first_name=..., email="nope"), "PRESCRIBER_NAME_REQUIRED"),
        (body(email="nope", licenses=[]), "PRESCRIBER_EMAIL_INVALID"),
        (body(licenses=[], partner_reference=" bad"), "PRESCRIBER_LICENSE_REQUIRED"),
        (body(licenses=[_license(country="MX", expires_at=PAST)]), "PRESCRIBER_LICENSE_INVALID"),
        (body(partner_reference=" bad", npi="1"), "INVALID_PARTNER_REFERENCE"),
        (body(npi="1", licenses=[_license(expires_at=PAST)]), "INVALID_BODY"),
    ],
)
def test_validation_codes_and_order(sandbox, payload, expected):
    p = sandbox.partner("clinical")
    r = post(sandbox, p, copy.deepcopy(payload))
    assert r.status_code == (400 if expected != "DUPLICATE_REFERENCE" else 409), r.text
    assert code(r) == expected, r.json()


def test_expired_license_details(sandbox):
    p = sandbox.partner("clinical")
    r = post(sandbox, p, body(licenses=[_license(), _license(jurisdiction="FL", expires_at=PAST)]))
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"field": "/licenses/1/expires_at", "expires_at": PAST}
