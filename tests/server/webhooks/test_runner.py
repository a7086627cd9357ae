"""The background runner of `stealth serve`: auto-advance in real time and in-process delivery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.db.engine import Database
from tests.server.conftest import make_sandbox
from tests.server.webhooks.conftest import Receiver


def test_runner_auto_advances_and_delivers(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    base_settings: Any,
    spec_document: dict[str, Any],
    receiver: Receiver,
) -> None:
    monkeypatch.setenv("STEALTH_BACKGROUND_JOBS", "1")
    monkeypatch.setenv("STEALTH_RUNNER_INTERVAL_SECONDS", "0.05")
    db = Database(f"sqlite:///{tmp_path / 'runner.db'}")  # a fresh database: the runner serves all partners
    db.migrate()
    settings = base_settings.with_(database_url=db.url, auto_advance_seconds=1)
    gen = make_sandbox(settings, db, spec_document)
    sandbox = next(gen)
    try:
        creds = sandbox.partner(webhook_url=receiver.url)
        sandbox.create_referral(creds)
        got = receiver.wait_for(4, timeout=15)
        types = [json.loads(r.body)["event_type"] for r in got]
        assert types[:4] == [
            "referral.enrolled",
            "referral.payment_due",
            "referral.payment_complete",
            "referral.pending_review",
        ]
    finally:
        for _ in gen:
            pass
        db.dispose()
