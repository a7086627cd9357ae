"""Teeth: against Prism's stateless mock of the referral bundle, the suite must FAIL, and say why."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conformance.report import EXIT_FAIL
from conformance.runner import RunConfig, run
from conformance.spec import load_document, subset_for_tier
from tests.conformance.fakeapp import free_port

from .conftest import statuses

REPO = Path(__file__).resolve().parents[2]
PRISM = REPO / "node_modules" / ".bin" / "prism"
BUILD = REPO / "build" / "openapi"


def _bundles(tmp: Path, mini_bundle: Path) -> tuple[Path, Path, str]:
    """(document Prism mocks, document the suite reads, label): the real referral bundle when built and valid."""
    full, referral = BUILD / "partner-api.json", BUILD / "partner-api.referral.json"
    if full.is_file() and referral.is_file():
        try:
            load_document(full)
            load_document(referral)
            return referral, full, "build/openapi/partner-api.referral.json"
        except ValueError:
            pass
    mocked = tmp / "mini.referral.json"
    mocked.write_text(json.dumps(subset_for_tier(load_document(mini_bundle), "referral")), encoding="utf-8")
    return mocked, mini_bundle, "tests/conformance/fixtures/mini-partner-api.yaml (referral subset)"


@pytest.fixture
def prism(tmp_path: Path, mini_bundle: Path):  # type: ignore[no-untyped-def]
    if not PRISM.exists() or shutil.which("node") is None:
        pytest.skip("node_modules/.bin/prism is missing (run `make install`)")
    mocked, suite_spec, label = _bundles(tmp_path, mini_bundle)
    port = free_port()
    log = (tmp_path / "prism.log").open("w")
    proc = subprocess.Popen(
        [str(PRISM), "mock", "-p", str(port), "-h", "127.0.0.1", str(mocked)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 45
        while time.time() < deadline:
            try:
                httpx.get(url + "/partner/products", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    pytest.fail(f"prism exited: {(tmp_path / 'prism.log').read_text()[-2000:]}")
                time.sleep(0.3)
        else:
            pytest.fail("prism did not start within 45 s")
        yield url, suite_spec, label
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_suite_fails_against_prism_mock_and_says_why(prism, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, suite_spec, label = prism
    out = io.StringIO()
    cfg = RunConfig(
        base_url=url,
        partner_id="ptr_prism_a",
        api_key="sk_test_" + "a" * 64,
        tier="referral",
        second_partner_id="ptr_prism_b",
        second_api_key="sk_test_" + "b" * 64,
        allow_writes=True,
        report_dir=str(tmp_path / "report"),
        max_rps=200,
        spec=str(suite_spec),
        fuzz=False,
    )
    code, data = run(cfg, out=out)
    text = out.getvalue()
    st = statuses(data)
    assert code == EXIT_FAIL, text
    # No auth enforcement: a wrong key is accepted.
    assert st["auth.invalid_credentials"] == "fail", text
    # No state: a made-up id is found, and a replayed create is not recognised.
    assert st["errors.not_found_codes"] == "fail", text
    assert st["idempotency.create_replay"] in ("fail", "skip"), text
    # No isolation: partner B "reads" partner A's referral.
    assert st["bola.reads"] == "fail", text
    # No rate limiting.
    assert st["ratelimit.burst"] == "fail", text
    failing = [c for c in data["checks"] if c["status"] == "fail"]
    assert len(failing) >= 6
    # The report says why, with the requirement broken and the evidence.
    reasons = {c["id"]: c["reason"] for c in failing}
    assert "INVALID_CREDENTIALS" in reasons["auth.invalid_credentials"]
    assert any(r["status"] == "fail" and r["id"] == "REF-AUTH-002" for r in data["requirements"])
    assert "Result: FAIL" in text and "requirements verified automatically:" in text
    report = json.loads((tmp_path / "report" / "conformance.json").read_text())
    assert report["summary"]["exit_code"] == EXIT_FAIL
    print(f"\nPrism ({label}): {len(failing)} failing checks: {sorted(reasons)}")
