"""PHI and secrets never reach an artifact; config files with ${ENV}; CLI argument handling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conformance.cli import ConfigError, load_config, main, substitute_env
from conformance.redact import MASK, Redactor
from conformance.spec import Spec

from .conftest import RunFn


def test_redactor_masks_phi_json_text_and_secrets(mini_bundle: Path) -> None:
    spec = Spec.load(mini_bundle)
    assert {"first_name", "email", "patient_id"} <= spec.phi_names
    red = Redactor(spec, ["sk_test_" + "f" * 64, "whsec_topsecret1"])
    red.learn({"patients": [{"first_name": "Johnathan", "email": "john@example.com", "status": "active"}]})
    assert red.json_value({"first_name": "Johnathan", "status": "active"}) == {
        "first_name": MASK,
        "status": "active",
    }
    text = (
        '\'first_name\': \'Johnathan\' and {"email": "john@example.com", "address": {"line1": "1 Main"}} '
        "curl 'http://x/partner/patients?email=john@example.com' -H 'X-Api-Key: sk_test_"
        + "f" * 64
        + "' whsec_topsecret1"
    )
    out = red.text(text) or ""
    for secret in ("Johnathan", "john@example.com", "1 Main", "f" * 64, "topsecret1"):
        assert secret not in out, out
    assert red.headers({"X-Api-Key": "sk_test_" + "f" * 64})["X-Api-Key"].startswith("sk_test_")


def test_no_phi_or_secret_in_any_artifact(run_fake: RunFn, tmp_path: Path) -> None:
    code, data, out = run_fake(
        {"phi_leak"},
        fuzz=True,
        only=["referrals.create", "phi.*", "auth.invalid_credentials", "fuzz.*"],
        fuzz_phases=("examples", "coverage"),
        fuzz_max_examples=2,
    )
    assert data["summary"]["exit_code"] == code == 1
    report_dir = tmp_path / "report"
    files = [p for p in report_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {
        "conformance.json",
        "conformance-junit.xml",
        "conformance.html",
        "schemathesis.har",
        "schemathesis-junit.xml",
    } <= names
    for p in files:
        text = p.read_text(encoding="utf-8", errors="replace")
        assert "Leaky" not in text, p  # the leaked first_name value
        assert "ptn_leak0001" not in text, p
        assert not re.search(r"sk_test_[0-9a-f]{64}", text), f"{p}: an API key"
        assert not re.search(r"whsec_[0-9a-f]{32}", text), f"{p}: a webhook secret"
    assert "Leaky" not in out
    leak = next(c for c in data["checks"] if c["id"] == "phi.referral_responses")
    assert leak["status"] == "fail" and "first_name" in leak["reason"]


def test_env_substitution_and_config_files(tmp_path: Path) -> None:
    env = {"KEY": "sk_test_abc", "URL": "http://h"}
    assert substitute_env({"a": "${KEY}", "b": ["${MISSING:-d}"]}, env) == {"a": "sk_test_abc", "b": ["d"]}
    with pytest.raises(ConfigError):
        substitute_env("${NOPE}", env)
    y = tmp_path / "c.yaml"
    y.write_text("base-url: ${URL}\napi_key: ${KEY}\npartner_id: ptr_x\nallow_writes: true\n")
    assert load_config(y, env) == {
        "base_url": "http://h",
        "api_key": "sk_test_abc",
        "partner_id": "ptr_x",
        "allow_writes": True,
    }
    t = tmp_path / "c.toml"
    t.write_text('[conformance]\nbase_url = "${URL}"\nmax_rps = 3.5\n')
    assert load_config(t, env) == {"base_url": "http://h", "max_rps": 3.5}


def test_cli_reports_configuration_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--base-url", "http://127.0.0.1:9"]) == 3
    assert "missing --partner-id, --api-key" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("base_url: http://127.0.0.1:9\npartner_id: p\napi_key: ${CONF_TEST_UNSET_VAR}\n")
    assert main(["run", "--config", str(cfg)]) == 3
    assert "CONF_TEST_UNSET_VAR" in capsys.readouterr().err


def test_cli_run_from_config_file(
    run_fake: RunFn, mini_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conformance.fakeapp import FakePartnerApi, serve

    app = FakePartnerApi()
    a = app.add_partner("referral")
    monkeypatch.setenv("CONF_KEY", a.api_key)
    cfg = tmp_path / "c.yaml"
    with serve(app) as url:
        cfg.write_text(
            f"base_url: {url}\npartner_id: {a.partner_id}\napi_key: ${{CONF_KEY}}\nspec: {mini_bundle}\n"
            f"report_dir: {tmp_path / 'r'}\nmax_rps: 200\nonly: [auth.invalid_credentials]\n"
        )
        code = main(["run", "--config", str(cfg)])
    data = json.loads((tmp_path / "r" / "conformance.json").read_text())
    assert {c["id"]: c["status"] for c in data["checks"]}["auth.invalid_credentials"] == "pass"
    assert code == 0


def test_example_config_loads() -> None:
    env = {"STEALTH_PARTNER_ID": "ptr_x", "STEALTH_API_KEY": "sk_test_x", "STEALTH_WEBHOOK_SECRET": "whsec_x"}
    cfg = load_config(Path(__file__).resolve().parents[2] / "conformance" / "config.example.yaml", env)
    assert cfg["partner_id"] == "ptr_x" and cfg["base_url"] == "http://127.0.0.1:8080"
    from conformance.runner import RunConfig

    assert set(cfg) <= set(RunConfig.__dataclass_fields__)


def test_contract_constants_stay_readable_under_phi_named_keys():
    """`code` is a PHI name (a prescription's medication code), but error codes must stay readable."""
    from conformance.redact import MASK, Redactor

    red = Redactor(None)
    red.names |= {"code"}  # as when the spec marks a medication `code` x-phi
    red.constants.add("MISSING_CREDENTIALS")  # an ErrorCode enum value
    out = red.json_value({"error": {"code": "MISSING_CREDENTIALS"}, "items": [{"code": "MED-TRT-CREAM"}]})
    assert out["error"]["code"] == "MISSING_CREDENTIALS"
    assert out["items"][0]["code"] == MASK
