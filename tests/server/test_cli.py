"""The `stealth` console script."""

from __future__ import annotations

import json
import stat

import pytest

from server import cli


@pytest.fixture
def cli_env(tmp_path, monkeypatch, spec_document):
    monkeypatch.setenv("STEALTH_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("STEALTH_STATE_DIR", str(tmp_path / ".stealth"))
    monkeypatch.delenv("STEALTH_SECRET_KEY", raising=False)
    monkeypatch.delenv("STEALTH_ENVIRONMENT", raising=False)
    return tmp_path


def _run(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


def test_partner_create_rotate_list(cli_env, capsys):
    out = json.loads(
        _run(
            capsys,
            "partner",
            "create",
            "--tier",
            "clinical",
            "--name",
            "Acme Health",
            "--webhook-url",
            "http://localhost:3000/hooks",
            "--json",
        )
    )
    assert set(out) == {"partner_id", "api_key", "webhook_secret", "tier", "environment"}
    assert (
        out["partner_id"] == "ptr_acme_health"
        and out["tier"] == "clinical"
        and out["environment"] == "sandbox"
    )
    assert out["api_key"].startswith("sk_test_") and len(out["api_key"]) == 72
    assert out["webhook_secret"].startswith("whsec_")
    secret_key = cli_env / ".stealth" / "secret.key"
    assert stat.S_IMODE(secret_key.stat().st_mode) == 0o600
    rotated = json.loads(_run(capsys, "partner", "rotate-key", out["partner_id"], "--json"))
    assert rotated["api_key"] != out["api_key"] and rotated["previous_key_expires_at"].endswith("Z")
    listed = json.loads(_run(capsys, "partner", "list", "--json"))
    assert [p["partner_id"] for p in listed] == ["ptr_acme_health"]
    assert "ptr_acme_health" in _run(capsys, "partner", "list")
    assert cli.main(["partner", "rotate-key", "ptr_nobody"]) == 1


def test_production_requires_a_secret_key(cli_env, monkeypatch, capsys):
    monkeypatch.setenv("STEALTH_ENVIRONMENT", "production")
    assert cli.main(["partner", "list"]) == 2
    assert "STEALTH_SECRET_KEY" in capsys.readouterr().err


def test_demo_partners_are_provisioned_once_and_kept_private(cli_env, sandbox):
    from server.config import Settings

    settings = Settings.from_env()
    from server.app import build_state

    state = build_state(settings, spec_document=sandbox.state.spec.document)
    first = cli.provision_demo_partners(settings, state)
    assert [d["tier"] for d in first] == ["referral", "clinical", "prescriber"]
    path = cli_env / ".stealth" / "demo-partners.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli.provision_demo_partners(settings, state) == first
    text = cli.banner(settings, first)
    assert (
        first[0]["api_key"] in text and "curl" in text and "http://127.0.0.1:8080/partner/referrals" in text
    )
