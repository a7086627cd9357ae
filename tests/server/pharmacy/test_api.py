"""Every operation and error code of the pharmacy-operations API (spec/pharmacy-api)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from server import clock
from server.pharmacy import clinics, service, simulation
from tests.server.pharmacy.conftest import Pharmacy, PharmacySchemas, assert_error

URL = "https://partner.example.com/webhooks/nimbus"


def register(pharmacy: Pharmacy, creds: Any, url: str = URL) -> Any:
    return pharmacy.call("POST", "/webhook", creds, json={"clinic_id": creds.clinic_id, "webhook_url": url})


# ----------------------------------------------------------------------------- authentication


def test_missing_and_invalid_key(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    assert_error(pharmacy.call("GET", "/webhook"), "MISSING_API_KEY", ph_schemas)
    assert_error(
        pharmacy.call("GET", "/webhook", headers={"X-API-Key": "phk_test_nope"}),
        "INVALID_API_KEY",
        ph_schemas,
    )
    # Partner credentials are not pharmacy credentials.
    partner = pharmacy.sandbox.partner()
    response = pharmacy.call("GET", "/webhook", headers=pharmacy.sandbox.headers(partner))
    assert_error(response, "INVALID_API_KEY", ph_schemas)


def test_clinic_key_does_not_open_the_partner_api(pharmacy: Pharmacy) -> None:
    creds = pharmacy.clinic()
    response = pharmacy.sandbox.client.get("/partner/referrals", headers={"X-API-Key": creds.api_key})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "MISSING_CREDENTIALS"


def test_inactive_clinic(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    clinics.set_active(pharmacy.db, creds.clinic_id, False)
    assert_error(pharmacy.call("GET", "/webhook", creds), "CLINIC_INACTIVE", ph_schemas)


def test_key_is_stored_hashed(pharmacy: Pharmacy) -> None:
    from server.db.models_pharmacy import Clinic

    creds = pharmacy.clinic()
    with pharmacy.db.session() as session:
        row = session.get(Clinic, creds.clinic_id)
        assert row is not None
        assert creds.api_key not in (row.key_hash, row.key_prefix)
        assert creds.api_key.encode() not in row.api_key_encrypted


# ----------------------------------------------------------------------------- webhooks


def test_register_is_idempotent(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    first = register(pharmacy, creds)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["success"] is True and body["message"] == "Webhook created successfully"
    ph_schemas.component("RegisterWebhookResponse", body)
    again = register(pharmacy, creds)
    assert again.status_code == 200
    assert again.json()["data"]["webhook_id"] == body["data"]["webhook_id"]
    assert first.headers["Cache-Control"] == "no-store"
    assert first.headers["X-RateLimit-Limit"] == "60"


def test_register_errors(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    other = pharmacy.clinic()
    response = pharmacy.call(
        "POST", "/webhook", creds, json={"clinic_id": other.clinic_id, "webhook_url": URL}
    )
    assert_error(response, "CLINIC_MISMATCH", ph_schemas)
    response = pharmacy.call(
        "POST",
        "/webhook",
        creds,
        json={"clinic_id": creds.clinic_id, "webhook_url": "http://partner.example.com/x"},
    )
    assert_error(response, "INVALID_WEBHOOK_URL", ph_schemas)
    response = register(pharmacy, creds, "https://user:pw@partner.example.com/x")
    assert_error(response, "INVALID_WEBHOOK_URL", ph_schemas)
    # INVALID_WEBHOOK_URL is checked before CLINIC_MISMATCH (x-validation-order).
    response = pharmacy.call(
        "POST",
        "/webhook",
        creds,
        json={"clinic_id": other.clinic_id, "webhook_url": "ftp://partner.example.com"},
    )
    assert_error(response, "INVALID_WEBHOOK_URL", ph_schemas)
    assert_error(
        pharmacy.call("POST", "/webhook", creds, json={"webhook_url": URL}), "INVALID_BODY", ph_schemas
    )
    response = pharmacy.call("POST", "/webhook", creds, json={"clinic_id": "not-a-uuid", "webhook_url": URL})
    assert_error(response, "INVALID_BODY", ph_schemas)
    response = pharmacy.call(
        "POST", "/webhook", creds, json={"clinic_id": creds.clinic_id, "webhook_url": URL, "extra": 1}
    )
    assert_error(response, "INVALID_BODY", ph_schemas)
    response = pharmacy.call(
        "POST", "/webhook", creds, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert_error(response, "INVALID_BODY", ph_schemas)


def test_register_limit(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    for i in range(10):
        assert register(pharmacy, creds, f"{URL}/{i}").status_code == 201
    body = assert_error(register(pharmacy, creds, f"{URL}/10"), "WEBHOOK_LIMIT_EXCEEDED", ph_schemas)
    assert body["error"]["details"] == {"limit": 10}
    assert register(pharmacy, creds, f"{URL}/3").status_code == 200  # re-registering still answers


def test_register_production_refuses_private_hosts(sandbox_factory: Any, ph_schemas: PharmacySchemas) -> None:
    prod = Pharmacy(sandbox_factory(environment="production"))
    creds = prod.clinic(environment="production")
    assert creds.api_key.startswith("phk_live_")
    assert_error(register(prod, creds, "https://127.0.0.1/hook"), "INVALID_WEBHOOK_URL", ph_schemas)
    assert_error(register(prod, creds, "https://localhost/hook"), "INVALID_WEBHOOK_URL", ph_schemas)


def test_list_and_paginate(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    other = pharmacy.clinic()
    register(pharmacy, other)
    empty = pharmacy.call("GET", "/webhook", creds)
    assert empty.status_code == 200
    assert empty.json()["data"] == {"webhooks": [], "pagination": {"has_more": False, "next_cursor": None}}
    ids = [register(pharmacy, creds, f"{URL}/{i}").json()["data"]["webhook_id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = pharmacy.call("GET", "/webhook", creds, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        ph_schemas.component("WebhookListResponse", body)
        seen += [w["webhook_id"] for w in body["data"]["webhooks"]]
        assert all(w["clinic_id"] == creds.clinic_id for w in body["data"]["webhooks"])
        cursor = body["data"]["pagination"]["next_cursor"]
        if not body["data"]["pagination"]["has_more"]:
            break
    assert sorted(seen) == sorted(ids)
    assert_error(
        pharmacy.call("GET", "/webhook", creds, params={"cursor": "garbage"}), "INVALID_CURSOR", ph_schemas
    )
    first = pharmacy.call("GET", "/webhook", creds, params={"limit": 1}).json()["data"]["pagination"][
        "next_cursor"
    ]
    # A cursor of another clinic's list is refused.
    assert_error(
        pharmacy.call("GET", "/webhook", other, params={"cursor": first}), "INVALID_CURSOR", ph_schemas
    )
    assert_error(pharmacy.call("GET", "/webhook", creds, params={"limit": 0}), "VALIDATION_ERROR", ph_schemas)
    assert_error(
        pharmacy.call("GET", "/webhook", creds, params={"limit": 101}), "VALIDATION_ERROR", ph_schemas
    )


def test_delete(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    other = pharmacy.clinic()
    webhook_id = register(pharmacy, creds).json()["data"]["webhook_id"]
    assert_error(pharmacy.call("DELETE", f"/webhook/{webhook_id}", other), "WEBHOOK_NOT_FOUND", ph_schemas)
    response = pharmacy.call("DELETE", f"/webhook/{webhook_id}", creds)
    assert response.status_code == 200, response.text
    ph_schemas.component("DeleteWebhookResponse", response.json())
    assert response.json()["data"] == {"webhook_id": webhook_id}
    assert_error(pharmacy.call("DELETE", f"/webhook/{webhook_id}", creds), "WEBHOOK_NOT_FOUND", ph_schemas)
    assert_error(pharmacy.call("DELETE", f"/webhook/{uuid.uuid4()}", creds), "WEBHOOK_NOT_FOUND", ph_schemas)
    assert_error(pharmacy.call("DELETE", "/webhook/not-a-uuid", creds), "VALIDATION_ERROR", ph_schemas)


# ----------------------------------------------------------------------------- refills


def _delivered_order(pharmacy: Pharmacy, clinic_id: str, **kwargs: Any) -> simulation.OrderRef:
    ref = simulation.create_medication_order(pharmacy.db, clinic_id, medication_name="Semaglutide", **kwargs)
    for _ in range(4):
        simulation.advance_order(pharmacy.db, ref.medication_order_id)
    assert simulation.order_status(pharmacy.db, ref.medication_order_id) == "delivered"
    return ref


def refill(pharmacy: Pharmacy, creds: Any, request_id: str, group: str | None = None) -> Any:
    body: dict[str, Any] = {"medication_request_id": request_id}
    if group is not None:
        body["shipment_group_id"] = group
    return pharmacy.call("POST", "/refill-request", creds, json=body)


def test_refill_success_and_errors(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    other = pharmacy.clinic()
    ref = _delivered_order(pharmacy, creds.clinic_id, refills_allowed=1)
    assert_error(
        refill(pharmacy, other, ref.medication_request_id), "MEDICATION_REQUEST_NOT_FOUND", ph_schemas
    )
    assert_error(refill(pharmacy, creds, str(uuid.uuid4())), "MEDICATION_REQUEST_NOT_FOUND", ph_schemas)
    # The shipment group of the delivered order has shipped: not a group a refill can join.
    response = refill(pharmacy, creds, ref.medication_request_id, ref.shipment_group_id)
    assert_error(response, "SHIPMENT_GROUP_NOT_FOUND", ph_schemas)
    assert_error(
        refill(pharmacy, creds, ref.medication_request_id, str(uuid.uuid4())),
        "SHIPMENT_GROUP_NOT_FOUND",
        ph_schemas,
    )
    created = refill(pharmacy, creds, ref.medication_request_id)
    assert created.status_code == 201, created.text
    body = created.json()
    ph_schemas.component("CreateRefillResponse", body)
    assert body["message"] == "Refill request was created successfully."
    new_order = body["data"]["medication_order_id"]
    assert simulation.order_status(pharmacy.db, new_order) == "validated"
    pending = assert_error(
        refill(pharmacy, creds, ref.medication_request_id), "REFILL_ALREADY_PENDING", ph_schemas
    )
    assert pending["error"]["details"] == body["data"]
    for _ in range(3):
        simulation.advance_order(pharmacy.db, new_order)  # shipped: no longer pending
    nope = assert_error(
        refill(pharmacy, creds, ref.medication_request_id), "NO_REFILLS_REMAINING", ph_schemas
    )
    assert nope["error"]["details"] == {"refills_allowed": 1, "refills_used": 1}
    assert_error(refill(pharmacy, creds, "not-a-uuid"), "INVALID_BODY", ph_schemas)
    assert_error(pharmacy.call("POST", "/refill-request", creds, json={}), "INVALID_BODY", ph_schemas)


def test_refill_not_allowed_before_shipping(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    ref = simulation.create_medication_order(pharmacy.db, creds.clinic_id, refills_allowed=3)
    simulation.advance_order(pharmacy.db, ref.medication_order_id)
    body = assert_error(refill(pharmacy, creds, ref.medication_request_id), "REFILL_NOT_ALLOWED", ph_schemas)
    assert body["error"]["details"] == {"medication_order_id": ref.medication_order_id, "status": "submitted"}
    simulation.cancel_order(pharmacy.db, ref.medication_order_id, "Patient request")
    body = assert_error(refill(pharmacy, creds, ref.medication_request_id), "REFILL_NOT_ALLOWED", ph_schemas)
    assert body["error"]["details"]["status"] == "cancelled"


def test_refill_expired_and_group(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    expired = _delivered_order(
        pharmacy,
        creds.clinic_id,
        refills_allowed=0,
        prescription_expires_at=clock.real_now() - timedelta(days=1),
    )
    # Expiry is checked before refills remaining (PH-010).
    assert_error(refill(pharmacy, creds, expired.medication_request_id), "PRESCRIPTION_EXPIRED", ph_schemas)
    ok = _delivered_order(pharmacy, creds.clinic_id, refills_allowed=2)
    open_group = simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    response = refill(pharmacy, creds, ok.medication_request_id, open_group.shipment_group_id)
    assert response.status_code == 201, response.text
    from server.db.models_pharmacy import MedicationOrder

    with pharmacy.db.session() as session:
        order = session.get(MedicationOrder, response.json()["data"]["medication_order_id"])
        assert order is not None and order.shipment_group_id == open_group.shipment_group_id


# ----------------------------------------------------------------------------- edge errors


def test_edge_errors(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    assert_error(pharmacy.call("GET", "/nothing-here", creds), "NOT_FOUND", ph_schemas)
    response = pharmacy.call("PUT", "/webhook", creds)
    body = assert_error(response, "METHOD_NOT_ALLOWED", ph_schemas)
    assert body["error"]["details"]["allow"] == "GET, POST"
    big = json.dumps({"clinic_id": creds.clinic_id, "webhook_url": URL, "pad": "x" * 2_000_000})
    response = pharmacy.call(
        "POST", "/webhook", creds, content=big, headers={"Content-Type": "application/json"}
    )
    assert_error(response, "PAYLOAD_TOO_LARGE", ph_schemas)
    response = pharmacy.call(
        "POST", "/webhook", creds, content=b"hello", headers={"Content-Type": "text/plain"}
    )
    assert_error(response, "UNSUPPORTED_MEDIA_TYPE", ph_schemas)


def test_rate_limit(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    other = pharmacy.clinic()
    for i in range(60):
        response = pharmacy.call("GET", "/webhook", creds)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Remaining"] == str(59 - i)
    body = assert_error(pharmacy.call("GET", "/webhook", creds), "RATE_LIMIT_EXCEEDED", ph_schemas)
    assert body["error"]["details"]["limit"] == 60
    assert pharmacy.call("GET", "/webhook", other).status_code == 200  # per API key


def test_internal_and_unavailable(
    pharmacy: Pharmacy, ph_schemas: PharmacySchemas, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = pharmacy.clinic()

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(service, "list_webhooks", boom)
    response = pharmacy.call("GET", "/webhook", creds)
    body = assert_error(response, "INTERNAL_ERROR", ph_schemas)
    assert "secret detail" not in response.text and body["error"]["details"]["request_id"]

    def down(*_a: Any, **_k: Any) -> Any:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    monkeypatch.setattr(service, "list_webhooks", down)
    response = pharmacy.call("GET", "/webhook", creds)
    assert_error(response, "SERVICE_UNAVAILABLE", ph_schemas)
    assert response.headers["Retry-After"] == "5"


def test_every_error_code_is_covered(ph_schemas: PharmacySchemas) -> None:
    """Guard: the catalog this file tests is the spec's whole catalog."""
    tested = {
        "MISSING_API_KEY", "INVALID_API_KEY", "CLINIC_MISMATCH", "CLINIC_INACTIVE", "INVALID_BODY",
        "VALIDATION_ERROR", "INVALID_CURSOR", "INVALID_WEBHOOK_URL", "WEBHOOK_LIMIT_EXCEEDED",
        "WEBHOOK_NOT_FOUND", "MEDICATION_REQUEST_NOT_FOUND", "SHIPMENT_GROUP_NOT_FOUND", "REFILL_NOT_ALLOWED",
        "REFILL_ALREADY_PENDING", "NO_REFILLS_REMAINING", "PRESCRIPTION_EXPIRED", "NOT_FOUND",
        "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "RATE_LIMIT_EXCEEDED",
        "INTERNAL_ERROR", "SERVICE_UNAVAILABLE",
    }  # fmt: skip
    assert set(ph_schemas.document["components"]["schemas"]["ErrorCode"]["enum"]) == tested


# ----------------------------------------------------------------------------- CLI


def test_clinic_create_cli(pharmacy: Pharmacy, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from server.pharmacy import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    argv = ["clinic", "create", "--json", "--name", "CLI clinic"]
    if pharmacy.db.schema:
        argv += ["--schema", pharmacy.db.schema]
    args = parser.parse_args(argv)
    assert args.func(args, pharmacy.sandbox.state.settings) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"clinic_id", "api_key", "signing_secret"}
    assert data["signing_secret"].startswith("whsec_")
    response = pharmacy.call("GET", "/webhook", headers={"X-API-Key": data["api_key"]})
    assert response.status_code == 200, response.text
