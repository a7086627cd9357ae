"""Every failure answers in the envelope with a documented code; nothing leaks."""

from __future__ import annotations

import json
import logging

import pytest

from server.db.engine import Database

ENVELOPE_KEYS = {"code", "message", "details"}


def _envelope(r, status: int, code: str, schemas) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    schemas.component("ErrorResponse", body)
    assert body["error"]["code"] == code
    assert r.headers["content-type"].startswith("application/json")
    for h in ("x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert h in r.headers, h
    return body["error"]


def test_status_comes_from_the_spec_catalog(sandbox):
    catalog = sandbox.state.spec.catalog
    assert catalog["REFERRAL_NOT_FOUND"].status == 404
    assert sandbox.state.renderer.status("PAYLOAD_TOO_LARGE") == 413
    assert sandbox.state.renderer.status("SERVICE_UNAVAILABLE") == 503


def test_connexion_errors_use_the_envelope(sandbox, schemas):
    p = sandbox.partner()
    _envelope(sandbox.call("GET", "/nowhere", p), 404, "NOT_FOUND", schemas)
    err = _envelope(sandbox.call("DELETE", "/partner/referrals", p), 405, "METHOD_NOT_ALLOWED", schemas)
    r = sandbox.call("PUT", "/partner/referrals/ref_abc123xyz", p)
    assert r.headers["allow"] == "GET"
    assert sandbox.call("OPTIONS", "/partner/referrals", p).headers["allow"] == "GET, POST"
    assert err["details"]["allow"]
    _envelope(
        sandbox.call("POST", "/partner/referrals", p, content=b"x", headers={"Content-Type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        schemas,
    )
    _envelope(sandbox.call("GET", "/partner/referrals/not-a-ref", p), 400, "VALIDATION_ERROR", schemas)
    _envelope(sandbox.call("GET", "/partner/referrals/ref_abc123xyz"), 401, "MISSING_CREDENTIALS", schemas)


def test_request_id_is_echoed_when_sane(sandbox):
    p = sandbox.partner()
    r = sandbox.call("GET", "/partner/products", p, headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = sandbox.call("GET", "/partner/products", p, headers={"X-Request-Id": "bad id with spaces <script>"})
    assert r.headers["x-request-id"].startswith("req_")
    assert sandbox.call("GET", "/partner/products", p).headers["x-request-id"].startswith("req_")


def test_unhandled_exception_is_500_without_details(sandbox, schemas, monkeypatch, caplog):
    p = sandbox.partner()

    leak = "".join(["sk_", "test_", "leak"])  # built at run time: the traceback shows source lines only

    def boom(*_a, **_k):
        raise RuntimeError(leak)

    monkeypatch.setattr(sandbox.state.db, "session", boom)
    with caplog.at_level(logging.ERROR, logger="stealth.errors"):
        r = sandbox.call("GET", "/partner/products", p)
    err = _envelope(r, 500, "INTERNAL_ERROR", schemas)
    assert err["details"]["request_id"] == r.headers["x-request-id"]
    assert leak not in r.text and "Traceback" not in r.text
    assert "sk_test_leak" not in caplog.text  # exception messages never reach the log either


def test_response_schema_violation_is_a_plain_500(sandbox, schemas, monkeypatch):
    p = sandbox.partner()
    handlers = sandbox.state
    from server import serializers

    monkeypatch.setattr(serializers, "product", lambda *_a, **_k: {"category": "trt-cream"})
    r = sandbox.call("GET", "/partner/products", p)
    err = _envelope(r, 500, "INTERNAL_ERROR", schemas)
    assert "schema" not in err["message"].lower() and "conform" not in r.text
    assert handlers is sandbox.state


def test_database_down_is_503_with_retry_after(sandbox_factory, schemas):
    down = Database("postgresql+psycopg://postgres@127.0.0.1:1/none")
    sb = sandbox_factory()
    sb.state.db = down
    sb.state.limits.db = down
    r = sb.client.get(
        "/partner/products", headers={"X-Partner-ID": "ptr_x", "X-Api-Key": "sk_test_" + "0" * 64}
    )
    err = _envelope(r, 503, "SERVICE_UNAVAILABLE", schemas)
    assert int(r.headers["retry-after"]) > 0
    assert err["message"]


def test_access_log_has_one_json_line_without_secrets(sandbox, caplog):
    p = sandbox.partner()
    with caplog.at_level(logging.INFO, logger="stealth.access"):
        created = sandbox.create_referral(p, metadata={"campaign": "secret-campaign"})
        sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p)
        sandbox.call("GET", "/track/tkn_0123456789abcdef")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "stealth.access"]
    assert len(lines) == 3
    assert lines[0]["operation_id"] == "createReferral" and lines[0]["status"] == 201
    assert lines[1]["path"] == "/partner/referrals/{referral_id}" and lines[1]["partner_id"] == p.partner_id
    assert set(lines[0]) == {
        "request_id",
        "partner_id",
        "operation_id",
        "method",
        "path",
        "status",
        "latency_ms",
    }
    text = caplog.text
    assert p.api_key not in text and "secret-campaign" not in text and "0123456789abcdef" not in text


def test_openapi_json_and_healthz(sandbox):
    r = sandbox.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1") and "/partner/referrals" in doc["paths"]
    assert doc["components"]["schemas"]["Referral"]["x-lifecycle"]["name"] == "referral"
    assert "x-request-id" in r.headers and "x-ratelimit-limit" in r.headers
    assert sandbox.client.get("/healthz").json() == {"status": "ok", "environment": "sandbox"}


def test_json_null_is_a_body_and_is_validated(sandbox, schemas):
    """Found by conformance fuzzing: `null` on an optional-body operation was taken for "no body"."""
    p = sandbox.partner()
    ref = sandbox.create_referral(p)
    url = f"/partner/referrals/{ref['referral_id']}/cancel"
    headers = {"Content-Type": "application/json"}
    _envelope(sandbox.call("POST", url, p, content=b"null", headers=headers), 400, "INVALID_BODY", schemas)
    _envelope(sandbox.call("POST", url, p, content=b"[]", headers=headers), 400, "INVALID_BODY", schemas)
    got = sandbox.call("GET", f"/partner/referrals/{ref['referral_id']}", p).json()
    assert got["status"] == "created"  # nothing changed
    # No body at all is still fine for an optional body.
    assert sandbox.call("POST", url, p).status_code == 200


def test_get_with_a_stray_content_type_and_no_body_is_served(sandbox):
    """Found by conformance fuzzing: a bodiless GET with Content-Type multipart/form-data was a 400."""
    p = sandbox.partner()
    for ctype in ("multipart/form-data", "text/plain", "application/x-www-form-urlencoded"):
        r = sandbox.call("GET", "/partner/products", p, headers={"Content-Type": ctype})
        assert r.status_code == 200, (ctype, r.status_code, r.text)


def test_a_path_parameter_the_router_cannot_take_is_a_400_not_an_unknown_path(sandbox):
    """Found by conformance: a control character in an id made the router miss the route (404 NOT_FOUND)."""
    p = sandbox.partner()
    r = sandbox.call("POST", "/partner/referrals/%C2%AF%0A%C3%9C/cancel", p, json={})
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR", r.text
    r = sandbox.call("GET", "/partner/no-such-thing/%0A", p)
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/partner/referrals", {"partner_reference": "no_type_1", "product_category": "trt-cream"}),
        ("POST", "/partner/sandbox/clock/advance", {"seconds": 60}),
        ("POST", "/partner/sandbox/events/trigger", {"event_type": "referral.enrolled"}),
    ],
)
def test_a_body_without_content_type_is_415_and_changes_nothing(sandbox, schemas, method, path, body):
    """connexion would validate such a body as JSON but hand the handler raw bytes (it was a 500)."""
    p = sandbox.partner()
    before = sandbox.call("GET", "/partner/referrals", p).json()["referrals"]

    def offset() -> object:
        view = sandbox.call("GET", "/partner/sandbox/clock", p).json()
        return {k: v for k, v in view.items() if k not in ("now", "real_now")}

    clock_before = offset()
    r = sandbox.call(method, path, p, content=json.dumps(body).encode())
    assert "content-type" not in {k.lower() for k in r.request.headers}
    err = _envelope(r, 415, "UNSUPPORTED_MEDIA_TYPE", schemas)
    assert err["message"] == "Send the request body as application/json."
    assert sandbox.call("GET", "/partner/referrals", p).json()["referrals"] == before
    assert offset() == clock_before
    # the same body with its Content-Type is served
    assert sandbox.call(method, path, p, json=body).status_code in (200, 201)
