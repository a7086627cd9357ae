"""Helpers for tests that run `stealth worker` processes on PostgreSQL: seed due events straight into the
outbox, start and stop workers, count deliveries (shared by test_workers_pg and the reliability soak)."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from server import clock, ids
from server.crypto import SecretBox
from server.db.engine import Database, wake_outbox
from server.db.models import Event
from server.services.partners import create_partner
from tests.server.webhooks.conftest import Receiver

POSTGRES_URL = os.environ.get("STEALTH_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parents[3]


def seed(db: Database, key: str, url: str, n: int) -> str:
    creds = create_partner(
        db, SecretBox(key), tier="referral", environment="sandbox", name="Workers", webhook_url=url
    )
    now = clock.real_now()
    with db.session() as session:
        for i in range(n):
            event_id = ids.event_id()
            session.add(
                Event(
                    id=event_id,
                    partner_id=creds.partner_id,
                    event_type="referral.enrolled",
                    referral_id=None,
                    payload={"event_id": event_id, "event_type": "referral.enrolled", "n": i},
                    created_at=now,
                    delivery_status="pending",
                    attempt_count=0,
                    next_attempt_at=now,
                )
            )
        wake_outbox(session)  # as server.services.events.add_event does
    return creds.partner_id


def start_worker(
    schema: str, key: str, tmp: Path, name: str, lease: float = 3.0, batch: int = 10, poll: float = 0.05
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STEALTH_DATABASE_URL": str(POSTGRES_URL),
        "STEALTH_SECRET_KEY": key,
        "STEALTH_STATE_DIR": str(tmp),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.webhooks.worker",
            "--schema",
            schema,
            "--batch",
            str(batch),
            "--poll",
            str(poll),
            "--lease",
            str(lease),
            "--name",
            name,
        ],
        cwd=REPO,
        env=env,
        stdout=(tmp / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,  # a pipe nobody reads would block a long-running worker
    )


def delivered_count(db: Database) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Event).where(Event.delivery_status == "delivered")
            )
            or 0
        )


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def received_counts(receiver: Receiver) -> collections.Counter[str]:
    with receiver.lock:
        return collections.Counter(json.loads(r.body)["event_id"] for r in receiver.received)
