"""An unhandled exception in a handler: the traceback is logged, PHI never (not the request body, not an
exception message that quotes it); our log formatters write exceptions without their messages."""

from __future__ import annotations

import io
import logging
import uuid
from typing import Any

import pytest

from server.config import Settings
from server.logs import JsonFormatter, configure, safe_exception
from server.redaction import MASK
from server.services.clinical_prescribers import PrescriberService
from tests.server.clinical.helpers import CLINICAL
from tests.server.phi_logging import capture_all_logs


def _boom(_self: Any, _partner: Any, body: dict[str, Any]) -> Any:
    try:
        raise KeyError(f"no slot for {body['email']}")
    except KeyError as inner:
        raise ValueError(f"cannot store {body['first_name']} {body['last_name']}") from inner


@pytest.fixture
def logged_sandbox(sandbox_factory: Any) -> Any:
    return sandbox_factory(log_bodies=True)


def test_handler_exception_logs_traceback_without_phi(logged_sandbox: Any, monkeypatch: Any) -> None:
    sandbox = logged_sandbox
    monkeypatch.setattr(PrescriberService, "create", _boom)
    t = uuid.uuid4().hex[:10]
    phi = [f"Xavier{t}", f"Yellow{t}", f"x.{t}@example.com", f"LIC-{t}"]
    p = sandbox.partner("clinical")
    body = {
        "first_name": phi[0],
        "last_name": phi[1],
        "email": phi[2],
        "licenses": [
            {"country": "US", "jurisdiction": "TX", "license_number": phi[3], "expires_at": "2099-01-01"}
        ],
    }
    with capture_all_logs() as capture:
        r = sandbox.call("POST", "/partner/prescribers", p, headers=CLINICAL, json=body)
    assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL_ERROR"
    assert r.headers["cache-control"] == "no-store"
    request_id = r.headers["x-request-id"]
    texts = capture.texts()
    assert not [v for v in phi if any(v in text for text in texts)]
    errors = [rec for rec in capture.records if rec.levelno >= logging.ERROR]
    assert errors, [rec.name for rec in capture.records]
    logged = "\n".join(rec.getMessage() for rec in errors)
    assert request_id in logged and "ValueError" in logged and "_boom" in logged  # the traceback is there
    (line,) = [x for x in capture.access_lines() if x["request_id"] == request_id]
    assert line["status"] == 500 and line["operation_id"] == "createPrescriber"
    assert line["request_body"]["first_name"] == MASK and line["request_body"]["licenses"] == MASK


def test_formatters_write_exceptions_without_messages(tmp_path: Any) -> None:
    secret = f"patient-{uuid.uuid4().hex}"
    try:
        try:
            raise KeyError(secret)
        except KeyError as inner:
            raise RuntimeError(f"wrapped {secret}") from inner
    except RuntimeError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "failed", None, exc_info=__import__("sys").exc_info()
        )
    text = safe_exception(record.exc_info)
    assert secret not in text and "RuntimeError" in text and "KeyError" in text and "Caused by" in text
    assert "test_formatters_write_exceptions_without_messages" in text  # frames kept
    out = JsonFormatter().format(record)
    assert secret not in out and '"exception"' in out and '"message":"failed"' in out

    stream = io.StringIO()
    settings = Settings(database_url="sqlite://", state_dir=tmp_path, log_format="json", log_level="debug")
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        configure(settings, stream=stream)
        logging.getLogger("stealth.test").exception("boom %s", "ok", exc_info=record.exc_info)
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/1.1" %d', "1.2.3.4", "GET", f"/x?search={secret}", 200
        )
    finally:
        root = logging.getLogger()
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    written = stream.getvalue()
    assert secret not in written
    assert '"logger":"stealth.test"' in written and '"message":"boom ok"' in written
