"""`conformance receiver` against a correct partner endpoint and several broken ones."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from conformance.cli import main
from conformance.partner_receiver import run_receiver_checks
from conformance.spec import Spec
from tests.conformance.fakeapp import serve

SECRET = "whsec_" + "ab" * 16


def make_endpoint(
    *,
    verify: bool = True,
    delay: float = 0.0,
    status: int = 200,
    dedupe_error: bool = False,
    crash_on_unknown: bool = False,
) -> Callable[..., Any]:
    seen: set[str] = set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        header = request.headers.get("x-stealth-signature", "")
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if verify and not hmac.compare_digest(expected.encode(), header.encode()):
            resp = JSONResponse({"error": "invalid signature"}, status_code=401)
        else:
            event = json.loads(raw)
            if crash_on_unknown and event["event_type"] == "referral.conformance_unknown_event":
                resp = JSONResponse({"error": "boom"}, status_code=500)
            elif dedupe_error and event["event_id"] in seen:
                resp = JSONResponse({"error": "duplicate"}, status_code=500)
            else:
                seen.add(event["event_id"])
                if delay and event["event_type"] == "referral.approved":
                    time.sleep(delay)
                resp = JSONResponse({"ok": True}, status_code=status)
        await resp(scope, receive, send)

    return app


@pytest.fixture(scope="module")
def spec(mini_bundle: Path) -> Spec:
    return Spec.load(mini_bundle)


def verdicts(url: str, spec: Spec, timeout: float = 10.0) -> dict[str, str]:
    return {k: r.status.value for k, r in run_receiver_checks(url, SECRET, spec, timeout=timeout).items()}


def test_correct_endpoint_passes(spec: Spec) -> None:
    with serve(make_endpoint()) as url:
        v = verdicts(url + "/webhooks", spec)
    assert set(v.values()) == {"pass"}, v


def test_endpoint_accepting_forged_events_fails(spec: Spec) -> None:
    with serve(make_endpoint(verify=False)) as url:
        v = verdicts(url, spec)
    assert v["partner.rejects_forged"] == "fail"
    assert v["partner.accepts_valid"] == "pass"


def test_slow_endpoint_fails(spec: Spec) -> None:
    with serve(make_endpoint(delay=0.6)) as url:
        v = verdicts(url, spec, timeout=0.3)
    assert v["partner.responds_fast"] == "fail"


def test_erroring_endpoint_fails(spec: Spec) -> None:
    with serve(make_endpoint(status=500)) as url:
        v = verdicts(url, spec)
    assert v["partner.accepts_valid"] == "fail"
    assert v["partner.idempotent_duplicates"] == "skip"


def test_endpoint_failing_on_duplicates_and_unknown_events_fails(spec: Spec) -> None:
    with serve(make_endpoint(dedupe_error=True, crash_on_unknown=True)) as url:
        v = verdicts(url, spec)
    assert v["partner.idempotent_duplicates"] == "fail"
    assert v["partner.unknown_event"] == "fail"


def test_receiver_cli_exit_codes_and_report(
    mini_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(make_endpoint()) as url:
        assert (
            main(
                [
                    "receiver",
                    "--url",
                    url,
                    "--secret",
                    SECRET,
                    "--spec",
                    str(mini_bundle),
                    "--report-dir",
                    str(tmp_path),
                ]
            )
            == 0
        )
    with serve(make_endpoint(verify=False)) as url:
        assert main(["receiver", "--url", url, "--secret", SECRET, "--spec", str(mini_bundle)]) == 1
    out = capsys.readouterr().out
    assert "partner.rejects_forged" in out and SECRET not in out
    assert (tmp_path / "conformance.json").is_file()


def test_events_of_our_contract_are_built_through_the_generated_models(monkeypatch):
    """Against our own spec, every event the tester sends has passed its generated model."""
    from pathlib import Path

    import conformance.partner_receiver as pr
    from conformance.spec import Spec
    from stealth_spec.bundle import bundle

    spec = Spec(bundle(Path(__file__).resolve().parents[2] / "spec" / "partner-api"))
    checked: list[str] = []
    real = pr.event_model

    def spy(event_type):
        checked.append(event_type)
        return real(event_type)

    monkeypatch.setattr(pr, "event_model", spy)
    payloads = pr.event_payloads(spec)
    assert {p["event_type"] for p in payloads} == set(checked) == set(spec.webhooks)
