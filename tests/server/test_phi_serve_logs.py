"""The real server processes (``stealth serve``, and uvicorn on ``app_from_env``) with body logging at DEBUG:
PHI in query strings and path ids never reaches their output (uvicorn's access log with its raw URLs is off),
and the redacted access line is there."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conformance.local import REPO, free_port, stealth


@contextlib.contextmanager
def _server(cmd: list[str], env: dict[str, str], log_path: Path, port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.parametrize("runner", ["serve", "uvicorn"])
def test_server_output_has_no_phi_from_urls(tmp_path: Path, runner: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "STEALTH_STATE_DIR": str(tmp_path / ".stealth"),
        "STEALTH_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.db'}",
        "STEALTH_ENVIRONMENT": "sandbox",
        "STEALTH_LOG_BODIES": "1",
        "STEALTH_LOG_LEVEL": "debug",
        "STEALTH_LOG_FORMAT": "json",
        "STEALTH_BACKGROUND_JOBS": "0",
        "PORT": str(port),
    }
    env.pop("STEALTH_REDIS_URL", None)
    partner = stealth(env, "partner", "create", "--tier", "clinical", "--name", "Log test")
    secret = uuid.uuid4().hex[:12]
    cmd = (
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
        if runner == "serve"
        else [sys.executable, "-m", "uvicorn", "--factory", "server.app:app_from_env", "--port", str(port)]
    )
    log_path = tmp_path / "server.log"
    with _server(cmd, env, log_path, port) as base:
        headers = {
            "X-Partner-ID": partner["partner_id"],
            "X-Api-Key": partner["api_key"],
            "X-Access-Tier": "clinical",
        }
        r = httpx.get(
            f"{base}/partner/patients", params={"search": f"Zed{secret}", "limit": 3}, headers=headers
        )
        assert r.status_code == 200, r.text
        r = httpx.get(f"{base}/partner/patients/ptn_{secret}", headers=headers)
        assert r.status_code == 404
        r = httpx.get(
            f"{base}/partner/appointments", params={"patient_email": f"{secret}@x.com"}, headers=headers
        )
        assert r.status_code in (200, 403, 404)
    out = log_path.read_text()
    assert secret not in out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("logger") == "stealth.access"]
    listing = next(x for x in access if x.get("operation_id") == "listPatients")
    assert listing["query"] == {"search": "[redacted]", "limit": "3"} and listing["status"] == 200
    assert listing["response_body"]["patients"] == [] and listing["partner_id"] == partner["partner_id"]
    got = next(x for x in access if x.get("operation_id") == "getPatient")
    assert got["path"] == "/partner/patients/{patient_id}" and got["status"] == 404
    assert not any(x.get("logger") == "uvicorn.access" for x in lines)
