"""Secrets at rest and in use: no API key (current or rotated-out) and no webhook secret is stored in plain
text anywhere in the database (the SQLite files, or every table of the PostgreSQL schema, scanned for the
values); webhook secrets are Fernet-encrypted with STEALTH_SECRET_KEY and useless under another key; API
keys are checked with hmac.compare_digest on their SHA-256 (the code path is instrumented, not assumed)."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from server import auth
from server.crypto import SecretBox, sha256_hex
from server.db.models import ApiKey, Partner
from server.services.partners import rotate_key
from tests.server.reliability.procs import record


def _database_text(sandbox: Any) -> bytes:
    """Everything the database holds, as bytes to search (files on SQLite, every row on PostgreSQL)."""
    db = sandbox.state.db
    if db.backend == "sqlite":
        with db.engine.connect() as conn:  # flush the WAL into the main file too, then read both
            conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
        path = Path(db.engine.url.database or "")
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.is_file())
    chunks: list[bytes] = []
    with db.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        tables = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
        ).scalars()
        for table in list(tables):
            for (row,) in conn.execute(text(f'SELECT t::text FROM "{schema}"."{table}" t')):
                chunks.append(row.encode())
    return b"\n".join(chunks)


def _forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, raw.hex().encode(), raw[12:]]  # plain, as hex (bytea), and the key without its prefix


def test_no_key_or_webhook_secret_is_stored_in_plain_text(sandbox: Any) -> None:
    made = [sandbox.partner(tier, webhook_url="http://127.0.0.1:9/hook") for tier in ("referral", "clinical")]
    rotated_out = made[0].api_key
    new_key = rotate_key(sandbox.state.db, made[0].partner_id)["api_key"]
    secrets = [c.api_key for c in made] + [new_key, rotated_out] + [c.webhook_secret for c in made]
    assert sandbox.call("GET", "/partner/products", made[1]).status_code == 200  # the keys work
    blob = _database_text(sandbox)
    assert len(blob) > 1000 and made[0].partner_id.encode() in blob  # the scan sees the data
    found = [s[:12] for s in secrets for form in _forms(s) if form in blob]
    assert not found, f"plaintext secrets in the database: {found}"
    with sandbox.state.db.session() as session:
        key_row = session.get(ApiKey, made[0].partner_id)
        assert key_row is not None
        assert key_row.key_hash == sha256_hex(new_key)
        assert key_row.previous_key_hash == sha256_hex(rotated_out)
    record(
        f"secrets at rest ({sandbox.state.db.backend})",
        secrets_scanned=len(secrets),
        bytes_scanned=len(blob),
        plaintext_found=len(found),
    )


def test_webhook_secrets_are_encrypted_with_the_environment_key(sandbox: Any) -> None:
    creds = sandbox.partner(webhook_url="http://127.0.0.1:9/hook")
    with sandbox.state.db.session() as session:
        partner = session.get(Partner, creds.partner_id)
        assert partner is not None
        stored = bytes(partner.webhook_secret_encrypted)
    assert creds.webhook_secret.encode() not in stored
    # a Fernet token under the server's key (STEALTH_SECRET_KEY) ...
    assert sandbox.state.box.decrypt(stored) == creds.webhook_secret
    key = sandbox.state.settings.secret_key
    assert key and Fernet(key.encode()).decrypt(stored).decode() == creds.webhook_secret
    # ... and useless under any other key
    with pytest.raises(ValueError):
        SecretBox(Fernet.generate_key().decode()).decrypt(stored)


def test_production_refuses_to_start_without_a_secret_key() -> None:
    from server.config import ConfigError, Settings

    with pytest.raises(ConfigError):
        Settings.from_env({"STEALTH_ENVIRONMENT": "production"})


def test_api_keys_are_compared_in_constant_time(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = sandbox.partner()
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    with sandbox.state.db.session() as session:
        stored = session.get(ApiKey, creds.partner_id)
        assert stored is not None
        stored_hash = stored.key_hash

    assert sandbox.call("GET", "/partner/products", creds).status_code == 200
    assert (sha256_hex(creds.api_key), stored_hash) in calls

    calls.clear()
    wrong = creds.api_key[:-4] + ("0000" if not creds.api_key.endswith("0000") else "1111")
    r = sandbox.call(
        "GET", "/partner/products", headers={"X-Partner-ID": creds.partner_id, "X-Api-Key": wrong}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "INVALID_CREDENTIALS"
    assert (sha256_hex(wrong), stored_hash) in calls  # the wrong key was compared the same way
    # the stored value is only ever a hash: the presented key is never compared to it directly
    assert all(a != creds.api_key and b != creds.api_key for a, b in calls)
