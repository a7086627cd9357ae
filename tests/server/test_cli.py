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


def test_conformance_is_mounted_as_a_subcommand(capsys):
    import pytest

    from server.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["conformance", "run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--base-url" in out and "--allow-writes" in out
    # Missing credentials are the conformance suite's own configuration error (exit code 3).
    assert main(["conformance", "run"]) == 3
    assert "missing --base-url" in capsys.readouterr().err


def test_set_webhook_changes_and_clears_the_url(cli_env, capsys):
    created = json.loads(_run(capsys, "partner", "create", "--tier", "referral", "--json"))
    pid = created["partner_id"]
    out = json.loads(_run(capsys, "partner", "set-webhook", pid, "http://localhost:3000/webhooks", "--json"))
    assert out == {"partner_id": pid, "webhook_url": "http://localhost:3000/webhooks"}
    listed = json.loads(_run(capsys, "partner", "list", "--json"))
    assert any(
        p["partner_id"] == pid and p.get("webhook_url") == "http://localhost:3000/webhooks" for p in listed
    )
    out = json.loads(_run(capsys, "partner", "set-webhook", pid, "--clear", "--json"))
    assert out["webhook_url"] is None
    assert cli.main(["partner", "set-webhook", "ptr_nobody", "http://localhost:1/x"]) == 1


def test_production_refuses_unsafe_webhook_urls(cli_env, monkeypatch, capsys):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("STEALTH_ENVIRONMENT", "production")
    monkeypatch.setenv("STEALTH_SECRET_KEY", Fernet.generate_key().decode())
    for url in (
        "http://partner.example.com/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest",
    ):
        assert cli.main(["partner", "create", "--tier", "referral", "--webhook-url", url]) == 2, url
        assert "error:" in capsys.readouterr().err
    assert json.loads(_run(capsys, "partner", "list", "--json")) == []
