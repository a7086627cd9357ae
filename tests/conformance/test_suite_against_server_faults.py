"""The suite's teeth against the REAL sandbox: each fault injected with STEALTH_TEST_FAULTS fails a named check.

Each case starts `stealth serve` the way `make conformance` does (conformance/local.py: fresh SQLite, provisioned
partners, the suite's webhook receiver) with one fault switched on, runs only the checks that concern it, and
asserts that the named check fails, that the requirements it verifies fail with it, and that the failure carries
the exchange that shows it. Zero failures against the correct sandbox is `make test`'s quick conformance pass.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main as conformance_main
from conformance.local import REPO, local_sandbox
from conformance.report import EXIT_FAIL, EXIT_OK
from server import faults

SPEC = REPO / "build" / "openapi" / "partner-api.json"

# (fault, checks to run, the check that must fail); referral-tier runs unless CLINICAL_FAULTS says otherwise
SERVER_FAULT_CASES: list[tuple[str, list[str], str]] = [
    ("auth_skipped_on_products", ["auth.missing_credentials"], "auth.missing_credentials"),
    ("phi_leak", ["referrals.read_back", "phi.referral_responses"], "phi.referral_responses"),
    ("bad_signature", ["state.cancel_before_approval", "webhooks.signature"], "webhooks.signature"),
    ("missing_ratelimit_header", ["referrals.read_back", "ratelimit.headers"], "ratelimit.headers"),
    ("wrong_error_code", ["errors.not_found_codes"], "errors.not_found_codes"),
    ("cross_partner_read", ["bola.reads"], "bola.reads"),
    ("retry_too_early", ["webhooks.retry_schedule"], "webhooks.retry_schedule"),
    (
        "event_id_per_attempt",
        ["webhooks.retry_schedule", "webhooks.event_id_stable"],
        "webhooks.event_id_stable",
    ),
    ("no_idempotency", ["idempotency.create_replay"], "idempotency.create_replay"),
    ("cancel_after_approval", ["state.cancel_after_approval"], "state.cancel_after_approval"),
    ("pagination_repeats", ["pagination.no_repeat_no_drop"], "pagination.no_repeat_no_drop"),
    ("no_rate_limit", ["ratelimit.burst"], "ratelimit.burst"),
    # Partner A's patient (from a prescription for an inline patient) read by clinical partner B.
    ("cross_partner_patient_read", ["clinical.intake_not_available", "bola.reads"], "bola.reads"),
]
CLINICAL_FAULTS = {"cross_partner_patient_read"}

pytestmark = pytest.mark.skipif(not SPEC.is_file(), reason="needs the bundle (make bundle)")


@pytest.fixture(autouse=True)
def _background_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhook delivery runs in the sandbox's lifespan, as under `stealth serve` (off under pytest by default)."""
    monkeypatch.setenv("STEALTH_BACKGROUND_JOBS", "1")


def run_against_sandbox(
    tmp_path: Path, fault: str | None, only: list[str], rate_limit: int = 1200, tier: str = "referral"
) -> tuple[int, dict[str, Any], str]:
    report_dir = tmp_path / "report"
    out = io.StringIO()
    with local_sandbox(
        [tier],
        tmp_path / "sandbox.log",
        faults=(fault,) if fault else (),
        rate_limit=rate_limit,
        in_process=True,
    ) as sb:
        args = [*sb.run_args(tier, report_dir, SPEC), "--no-fuzz"]
        for check_id in only:
            args += ["--only", check_id]
        with redirect_stdout(out):
            code = conformance_main(args)
    data = json.loads((report_dir / "conformance.json").read_text(encoding="utf-8"))
    return code, data, out.getvalue()


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in data["checks"]}


def test_every_server_fault_has_a_case() -> None:
    assert {case[0] for case in SERVER_FAULT_CASES} == set(faults.FAULTS)


@pytest.mark.parametrize(
    ("fault", "only", "check_id"), SERVER_FAULT_CASES, ids=[c[0] for c in SERVER_FAULT_CASES]
)
def test_each_fault_in_the_real_sandbox_fails_a_named_check(
    tmp_path: Path, fault: str, only: list[str], check_id: str
) -> None:
    # A low limit keeps the burst short; the others need room for the checks themselves.
    code, data, out = run_against_sandbox(
        tmp_path,
        fault,
        only,
        rate_limit=120 if fault == "no_rate_limit" else 1200,
        tier="clinical" if fault in CLINICAL_FAULTS else "referral",
    )
    st = statuses(data)
    assert st[check_id] == "fail", out
    assert code == EXIT_FAIL, out
    chk = next(c for c in data["checks"] if c["id"] == check_id)
    failing_reqs = {r["id"] for r in data["requirements"] if r["status"] == "fail"}
    assert set(chk["requirements"]) & failing_reqs, "the requirements the check verifies must fail with it"
    failures = [f for f in chk["findings"] if f["status"] == "fail"]
    assert failures and failures[0]["message"]
    assert any(f.get("exchanges") for f in failures), "a failure carries the exchange that shows it"


def test_the_same_checks_pass_against_the_correct_sandbox(tmp_path: Path) -> None:
    """The control: every check the fault cases use passes when no fault is injected (webhooks included)."""
    only = sorted({c for case in SERVER_FAULT_CASES for c in case[1]} - {"ratelimit.burst"})
    code, data, out = run_against_sandbox(tmp_path, None, only)
    st = statuses(data)
    for case in SERVER_FAULT_CASES:
        if case[2] != "ratelimit.burst" and case[0] not in CLINICAL_FAULTS:
            assert st[case[2]] == "pass", out
    assert code == EXIT_OK, out


def test_the_clinical_checks_pass_against_the_correct_sandbox(tmp_path: Path) -> None:
    only = sorted({c for case in SERVER_FAULT_CASES if case[0] in CLINICAL_FAULTS for c in case[1]})
    code, data, out = run_against_sandbox(tmp_path, None, [*only, "clinical.*"], tier="clinical")
    st = statuses(data)
    for check_id in (*only, "clinical.prescriber_registration", "clinical.prescriber_inactive"):
        assert st[check_id] == "pass", out
    assert code == EXIT_OK, out
