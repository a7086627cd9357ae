"""The suite passes a correct implementation and fails each deliberately broken one with a named check."""

from __future__ import annotations

import pytest

from conformance.report import EXIT_CONFIG, EXIT_FAIL, EXIT_OK

from .conftest import RunFn, statuses


def test_correct_app_has_zero_failures_including_schemathesis(run_fake: RunFn) -> None:
    code, data, out = run_fake(fuzz=True)
    st = statuses(data)
    bad = {k: v for k, v in st.items() if v in ("fail", "skip")}
    assert not bad, out
    assert code == EXIT_OK
    assert data["run"]["fuzz"]["generated"] > 50
    assert "requirements verified automatically:" in out
    for must in (
        "auth.invalid_credentials",
        "bola.reads",
        "phi.referral_responses",
        "idempotency.create_replay",
        "pagination.no_repeat_no_drop",
        "state.cancel_after_approval",
        "webhooks.signature",
        "webhooks.retry_schedule",
        "webhooks.dead_letter",
        "lifecycle.transitions",
        "ratelimit.burst",
        "fuzz.response_schema_conformance",
        "fuzz.ignored_auth",
    ):
        assert st[must] == "pass", must


FAULT_CASES = [
    ("auth_skipped_on_products", ["auth.*"], "auth.missing_credentials"),
    ("phi_leak", ["referrals.create", "phi.*"], "phi.referral_responses"),
    ("bad_signature", ["state.cancel_before_approval", "webhooks.signature"], "webhooks.signature"),
    ("missing_ratelimit_header", ["referrals.read_back", "ratelimit.headers"], "ratelimit.headers"),
    ("wrong_error_code", ["errors.*"], "errors.not_found_codes"),
    ("cross_partner_read", ["bola.*"], "bola.reads"),
    ("retry_too_early", ["webhooks.retry_schedule"], "webhooks.retry_schedule"),
    (
        "event_id_per_attempt",
        ["webhooks.retry_schedule", "webhooks.event_id_stable"],
        "webhooks.event_id_stable",
    ),
    ("no_idempotency", ["idempotency.*"], "idempotency.create_replay"),
    ("cancel_after_approval", ["state.*", "lifecycle.*"], "state.cancel_after_approval"),
    ("pagination_repeats", ["pagination.*"], "pagination.no_repeat_no_drop"),
    ("no_rate_limit", ["ratelimit.burst"], "ratelimit.burst"),
]


@pytest.mark.parametrize(("fault", "only", "check_id"), FAULT_CASES, ids=[c[0] for c in FAULT_CASES])
def test_each_injected_fault_fails_a_named_check(
    run_fake: RunFn, fault: str, only: list[str], check_id: str
) -> None:
    code, data, out = run_fake({fault}, only=only, rate_limit=120 if fault == "no_rate_limit" else 1000)
    st = statuses(data)
    assert st[check_id] == "fail", out
    assert code == EXIT_FAIL
    failing_reqs = {r["id"] for r in data["requirements"] if r["status"] == "fail"}
    assert failing_reqs, "a failing check must fail the requirements it verifies"
    chk = next(c for c in data["checks"] if c["id"] == check_id)
    assert chk["findings"] and chk["findings"][0]["message"]
    assert any(f.get("exchanges") for f in chk["findings"]), "a failure carries the exchange that shows it"


def test_read_only_run_omits_writes_and_skips_block_a_pass(run_fake: RunFn) -> None:
    code, data, _ = run_fake(
        allow_writes=False,
        webhooks=False,
        second=False,
        only=["auth.*", "referrals.*", "bola.*", "ratelimit.headers", "errors.*"],
    )
    st = statuses(data)
    assert st["referrals.create"] == "omit"
    assert st["bola.reads"] == "skip"  # no second partner: could not verify
    assert st["auth.invalid_credentials"] == "pass"
    assert code != EXIT_OK


def test_configuration_problem_is_reported_first(mini_bundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    from conformance.runner import RunConfig, run
    from tests.conformance.fakeapp import FakePartnerApi, serve

    app = FakePartnerApi()
    a = app.add_partner("referral")
    out = io.StringIO()
    with serve(app) as url:
        code, data = run(
            RunConfig(
                base_url=url,
                partner_id=a.partner_id,
                api_key="sk_test_" + "0" * 64,
                spec=str(mini_bundle),
                report_dir=str(tmp_path),
                max_rps=100,
            ),
            out=out,
        )
    assert code == EXIT_CONFIG
    assert "configuration problem" in out.getvalue() and "rejected" in out.getvalue()
    assert [c["id"] for c in data["checks"]] == ["config.preflight"]
    # Declared clinical but the key is referral-tier.
    out = io.StringIO()
    with serve(app) as url:
        code, _ = run(
            RunConfig(
                base_url=url,
                partner_id=a.partner_id,
                api_key=a.api_key,
                tier="clinical",
                spec=str(mini_bundle),
                report_dir=str(tmp_path),
                max_rps=100,
            ),
            out=out,
        )
    assert code == EXIT_CONFIG
    assert "declared clinical-tier" in out.getvalue()


def test_clinical_run_checks_tier_enforcement_with_the_referral_partner(run_fake: RunFn) -> None:
    code, data, out = run_fake(
        primary_tier="clinical", webhooks=False, only=["tier.*", "phi.*", "bola.*", "auth.*"]
    )
    st = statuses(data)
    assert st["tier.enforcement"] == "pass", out
    assert st["tier.access_tier_header"] == "pass", out
    assert st["phi.referral_responses"] == "pass", out
    assert st["bola.reads"] == st["bola.actions"] == "pass", out
    assert code == EXIT_OK, out


@pytest.mark.parametrize("fault", [None, "sandbox_ops_in_production"])
def test_production_run_is_read_only_and_refuses_sandbox_controls(run_fake: RunFn, fault: str | None) -> None:
    code, data, out = run_fake(
        {fault} if fault else set(),
        production=True,
        allow_writes=False,
        webhooks=False,
        only=["auth.*", "sandbox.*", "referrals.*", "errors.not_found_codes", "ratelimit.*", "state.*"],
    )
    st = statuses(data)
    assert data["run"]["environment"] == "production"
    assert st["referrals.create"] == st["state.cancel_after_approval"] == "omit"
    assert st["ratelimit.burst"] == "omit"  # opt-in outside the sandbox
    assert not any(
        e for e in data["checks"] if e["id"] == "sandbox.production_refuses" and "crashed" in e["reason"]
    )
    if fault is None:
        assert st["sandbox.production_refuses"] == "pass", out
        assert st["auth.environment_key"] == "pass", out
        assert code == EXIT_OK, out
    else:
        assert st["sandbox.production_refuses"] == "fail", out
