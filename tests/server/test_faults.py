"""STEALTH_TEST_FAULTS: parsed once into Settings, refused in production, installed by create_app."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from server import faults
from server.config import ConfigError, Settings


def test_faults_are_parsed_and_unknown_names_refused(tmp_path: Path) -> None:
    s = Settings.from_env({"STEALTH_TEST_FAULTS": " phi_leak, bad_signature ,"}, cwd=tmp_path)
    assert s.test_faults == frozenset({"phi_leak", "bad_signature"})
    assert Settings.from_env({}, cwd=tmp_path).test_faults == frozenset()
    with pytest.raises(ConfigError, match="unknown test fault"):
        Settings.from_env({"STEALTH_TEST_FAULTS": "phi_leak,no_such_fault"}, cwd=tmp_path)


def test_faults_are_refused_in_production(tmp_path: Path) -> None:
    env = {
        "STEALTH_ENVIRONMENT": "production",
        "STEALTH_SECRET_KEY": "x" * 44,
        "STEALTH_TEST_FAULTS": "phi_leak",
    }
    with pytest.raises(ConfigError, match="refused in production"):
        Settings.from_env(env, cwd=tmp_path)


def test_create_app_installs_faults_only_in_the_sandbox(tmp_path: Path) -> None:
    from server.app import create_app

    base = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", state_dir=tmp_path)
    try:
        create_app(base.with_(test_faults=frozenset({"phi_leak"})))
        assert faults.active("phi_leak") and not faults.active("bad_signature")
        create_app(
            base.with_(
                test_faults=frozenset({"phi_leak"}),
                environment="production",
                secret_key=Fernet.generate_key().decode(),
            )
        )
        assert not faults.active("phi_leak")
        create_app(base)
        assert not faults.active("phi_leak")
    finally:
        faults.configure(())
