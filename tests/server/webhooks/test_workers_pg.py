"""`stealth worker` processes on PostgreSQL: two workers never send the same attempt; a worker killed
mid-batch (SIGKILL) loses nothing once a worker runs again. Needs STEALTH_TEST_POSTGRES_URL."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from server import clock, ids
from server.crypto import SecretBox
from server.db.engine import Database
from server.db.models import Event, EventAttempt
from server.services.partners import create_partner
from tests.server.webhooks.conftest import Receiver

POSTGRES_URL = os.environ.get("STEALTH_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parents[3]
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="STEALTH_TEST_POSTGRES_URL is not set"),
]


@pytest.fixture
def pg() -> Iterator[tuple[Database, str]]:
    import psycopg

    assert POSTGRES_URL
    schema = f"stealth_wk_{uuid.uuid4().hex[:10]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = Database(POSTGRES_URL, schema=schema)
    try:
        db.migrate()
        yield db, schema
    finally:
        db.dispose()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _seed(db: Database, key: str, url: str, n: int) -> str:
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
    return creds.partner_id


def _worker(
    schema: str, key: str, tmp: Path, name: str, lease: float = 3.0, batch: int = 10
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
            "0.05",
            "--lease",
            str(lease),
            "--name",
            name,
        ],
        cwd=REPO,
        env=env,
        stdout=(tmp / f"{name}.log").open("wb"),
        stderr=subprocess.PIPE,
    )


def _delivered(db: Database) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Event).where(Event.delivery_status == "delivered")
            )
            or 0
        )


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _counts(receiver: Receiver) -> collections.Counter[str]:
    with receiver.lock:
        return collections.Counter(json.loads(r.body)["event_id"] for r in receiver.received)


def test_two_workers_never_double_send(pg: tuple[Database, str], receiver: Receiver, tmp_path: Path) -> None:
    db, schema = pg
    key = Fernet.generate_key().decode()
    n = 240

    def slowish(_rec: Any) -> int:
        time.sleep(0.003)
        return 200

    receiver.responder = slowish
    _seed(db, key, receiver.url, n)
    workers = [_worker(schema, key, tmp_path, f"w{i}") for i in range(2)]
    try:
        assert _wait(lambda: _delivered(db) == n, 120), f"delivered {_delivered(db)} of {n}"
    finally:
        for w in workers:
            _stop(w)
    counts = _counts(receiver)
    with db.session() as session:
        attempts = int(session.scalar(select(func.count()).select_from(EventAttempt)) or 0)
        by_worker = session.execute(select(func.count(EventAttempt.id))).scalar()
    print(
        f"\n[two workers] events={n} received={sum(counts.values())} unique={len(counts)} "
        f"max_per_event={max(counts.values())} attempts_recorded={attempts} ({by_worker})"
    )
    per_worker = {
        f"w{i}": sum(1 for line in (tmp_path / f"w{i}.log").read_text().splitlines() if " attempt=" in line)
        for i in range(2)
    }
    print(f"[two workers] attempts per worker: {per_worker}")
    assert len(counts) == n
    assert max(counts.values()) == 1  # no double sends
    assert attempts == n
    assert sum(per_worker.values()) == n


def test_worker_killed_mid_batch_loses_nothing(
    pg: tuple[Database, str], receiver: Receiver, tmp_path: Path
) -> None:
    db, schema = pg
    key = Fernet.generate_key().decode()
    n = 200

    def slow(_rec: Any) -> int:
        time.sleep(0.01)
        return 200

    receiver.responder = slow
    _seed(db, key, receiver.url, n)
    first = _worker(schema, key, tmp_path, "doomed", lease=2.0, batch=25)
    try:
        assert _wait(lambda: len(receiver.received) >= n // 3 + 10, 60)  # mid-batch (batch 25)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    at_kill = _delivered(db)
    received_at_kill = len(receiver.received)
    with db.session() as session:
        claimed = int(
            session.scalar(select(func.count()).select_from(Event).where(Event.claimed_by.is_not(None))) or 0
        )
    second = _worker(schema, key, tmp_path, "rescuer", lease=2.0, batch=25)
    try:
        assert _wait(lambda: _delivered(db) == n, 120), f"delivered {_delivered(db)} of {n}"
    finally:
        _stop(second)
    counts = _counts(receiver)
    duplicates = sum(c - 1 for c in counts.values())
    print(
        f"\n[kill -9] events={n} delivered_at_kill={at_kill} received_at_kill={received_at_kill} "
        f"claimed_by_dead_worker={claimed} after_restart: delivered={_delivered(db)} "
        f"unique_received={len(counts)} duplicates={duplicates} lost={n - len(counts)}"
    )
    assert len(counts) == n  # every event delivered at least once, none lost
    assert duplicates <= 1  # at most the one in flight when the worker died
    assert 0 < at_kill < n
    assert claimed > 0  # the dead worker held claims on the rest of its batch
