"""Credentials, key rotation, tiers, IP allowlist, compliance review, sandbox-only operations."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server import clock
from server.db.models import ApiKey, Partner
from server.services.partners import rotate_key, webhook_secret
from tests.server.conftest import set_partner


def _code(r) -> str:
    return r.json()["error"]["code"]


def test_missing_and_invalid_credentials(sandbox, sandbox_factory):
    p = sandbox.partner()
    r = sandbox.call("GET", "/partner/products", headers={"X-Partner-ID": p.partner_id})
    assert r.status_code == 401 and _code(r) == "MISSING_CREDENTIALS"
    assert r.json()["error"]["details"]["missing_headers"] == ["X-Api-Key"]
    bad = [
        {"X-Partner-ID": "ptr_nobody", "X-Api-Key": p.api_key},
        {"X-Partner-ID": p.partner_id, "X-Api-Key": "sk_test_" + "0" * 64},
        {"X-Partner-ID": p.partner_id, "X-Api-Key": p.api_key.replace("sk_test_", "sk_live_")},
        {"X-Partner-ID": p.partner_id, "X-Api-Key": p.api_key[:-1]},
    ]
    for headers in bad:
        r = sandbox.call("GET", "/partner/products", headers=headers)
        assert r.status_code == 401 and _code(r) == "INVALID_CREDENTIALS", headers
    set_partner(sandbox, p, active=False)
    r = sandbox.call("GET", "/partner/products", p)
    assert r.status_code == 401 and _code(r) == "INVALID_CREDENTIALS"
    prod = sandbox_factory(environment="production")
    r = prod.call("GET", "/partner/products", sandbox.partner())  # sk_test_ key on production
    assert r.status_code == 401 and _code(r) == "INVALID_CREDENTIALS"
    live = prod.partner(environment="production")
    assert prod.call("GET", "/partner/products", live).status_code == 200
    assert sandbox.call("GET", "/partner/products", live).status_code == 401  # sk_live_ key on the sandbox


def test_keys_and_secrets_are_not_stored_in_plain_text(sandbox):
    p = sandbox.partner()
    with sandbox.state.db.session() as session:
        key = session.get(ApiKey, p.partner_id)
        partner = session.get(Partner, p.partner_id)
        assert (
            key.key_hash != p.api_key
            and len(key.key_hash) == 64
            and p.api_key not in key.key_prefix[8:] + "x"
        )
        assert p.webhook_secret.encode() not in partner.webhook_secret_encrypted
    assert webhook_secret(sandbox.state.db, sandbox.state.box, p.partner_id) == p.webhook_secret
    assert (
        p.webhook_secret.startswith("whsec_")
        and p.api_key.startswith("sk_test_")
        and len(p.api_key) == 8 + 64
    )


def test_key_rotation_keeps_the_old_key_until_it_expires(sandbox):
    p = sandbox.partner()
    rotated = rotate_key(sandbox.state.db, p.partner_id)
    new = rotated["api_key"]
    expires = clock.parse_iso(rotated["previous_key_expires_at"])
    assert timedelta(days=6, hours=23) < expires - clock.real_now() <= timedelta(days=7)
    assert sandbox.call("GET", "/partner/products", p).status_code == 200  # old key, inside the window
    r = sandbox.call("GET", "/partner/products", headers={"X-Partner-ID": p.partner_id, "X-Api-Key": new})
    assert r.status_code == 200
    with sandbox.state.db.session() as session:
        session.get(ApiKey, p.partner_id).previous_key_expires_at = clock.real_now() - timedelta(seconds=1)
    r = sandbox.call("GET", "/partner/products", p)
    assert r.status_code == 401 and _code(r) == "INVALID_CREDENTIALS"
    assert (
        sandbox.call(
            "GET", "/partner/products", headers={"X-Partner-ID": p.partner_id, "X-Api-Key": new}
        ).status_code
        == 200
    )


def test_ip_allowlist_and_compliance_review(sandbox):
    p = sandbox.partner()
    set_partner(sandbox, p, allowed_ips=["10.0.0.0/8"])
    r = sandbox.call("GET", "/partner/products", p)
    assert r.status_code == 403 and _code(r) == "IP_NOT_ALLOWED"
    set_partner(sandbox, p, allowed_ips=["127.0.0.1/32", "10.0.0.0/8"])
    assert sandbox.call("GET", "/partner/products", p).status_code == 200
    set_partner(sandbox, p, compliance_review_due_at=clock.real_now() - timedelta(days=1))
    r = sandbox.call("GET", "/partner/products", p)
    assert r.status_code == 403 and _code(r) == "COMPLIANCE_REVIEW_PENDING"
    assert r.json()["error"]["details"]["review_due_at"].endswith("Z")
    set_partner(sandbox, p, compliance_review_due_at=clock.real_now() + timedelta(days=30))
    assert sandbox.call("GET", "/partner/products", p).status_code == 200


def test_tier_enforcement_runs_before_any_handler(sandbox):
    referral, clinical, prescriber = (
        sandbox.partner(),
        sandbox.partner("clinical"),
        sandbox.partner("prescriber"),
    )
    r = sandbox.call("GET", "/partner/patients", referral)
    assert r.status_code == 403 and _code(r) == "CLINICAL_ACCESS_REQUIRED"
    r = sandbox.call("GET", "/partner/patients", clinical)
    assert r.status_code == 403 and _code(r) == "CLINICAL_ACCESS_REQUIRED"  # X-Access-Tier missing
    r = sandbox.call("GET", "/partner/patients", prescriber, headers={"X-Access-Tier": "clinical"})
    assert r.status_code == 403 and _code(r) == "CLINICAL_ACCESS_REQUIRED"
    r = sandbox.call("GET", "/partner/patients", clinical, headers={"X-Access-Tier": "clinical"})
    assert r.status_code not in (401, 403)
    r = sandbox.call("GET", "/partner/appointments", referral)
    assert r.status_code == 403 and _code(r) == "PRESCRIBER_ACCESS_REQUIRED"
    r = sandbox.call("GET", "/partner/appointments", clinical, headers={"X-Access-Tier": "clinical"})
    assert r.status_code == 403 and _code(r) == "PRESCRIBER_ACCESS_REQUIRED"
    assert sandbox.call("GET", "/partner/appointments", prescriber).status_code not in (401, 403)
    # tier errors come before validation errors
    r = sandbox.call("GET", "/partner/patients", referral, params={"limit": 100000})
    assert _code(r) == "CLINICAL_ACCESS_REQUIRED"
    # every tier may use the referral-tier surface
    for p in (referral, clinical, prescriber):
        assert sandbox.call("GET", "/partner/referrals", p).status_code == 200


def test_sandbox_only_operations_are_refused_in_production(sandbox_factory):
    prod = sandbox_factory(environment="production")
    live = prod.partner(environment="production")
    r = prod.call("GET", "/partner/sandbox/clock", live)
    assert r.status_code == 403 and _code(r) == "SANDBOX_ONLY_OPERATION"


def test_partners_are_listed_with_their_tier(sandbox):
    p = sandbox.partner("prescriber")
    with sandbox.state.db.session() as session:
        row = session.scalar(select(Partner).where(Partner.id == p.partner_id))
        assert row.tier == "prescriber" and row.environment == "sandbox"
