"""`stealth worker` processes on PostgreSQL: two workers never send the same attempt; a worker killed
mid-batch (SIGKILL) loses nothing once a worker runs again. Needs STEALTH_TEST_POSTGRES_URL."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from server.db.engine import Database
from server.db.models import Event, EventAttempt
from tests.server.webhooks.conftest import Receiver
from tests.server.webhooks.workers import (
    POSTGRES_URL,
    delivered_count,
    received_counts,
    seed,
    start_worker,
    stop_worker,
    wait_until,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="STEALTH_TEST_POSTGRES_URL is not set"),
]


def test_two_workers_never_double_send(pg: tuple[Database, str], receiver: Receiver, tmp_path: Path) -> None:
    db, schema = pg
    key = Fernet.generate_key().decode()
    n = 240

    def slowish(_rec: Any) -> int:
        time.sleep(0.003)
        return 200

    receiver.responder = slowish
    seed(db, key, receiver.url, n)
    workers = [start_worker(schema, key, tmp_path, f"w{i}") for i in range(2)]
    try:
        assert wait_until(lambda: delivered_count(db) == n, 120), f"delivered {delivered_count(db)} of {n}"
    finally:
        for w in workers:
            stop_worker(w)
    counts = received_counts(receiver)
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
        time.sleep(0.2)  # a batch's concurrent sends stay in flight long enough to be killed in
        return 200

    receiver.responder = slow
    seed(db, key, receiver.url, n)
    first = start_worker(schema, key, tmp_path, "doomed", lease=2.0, batch=25)
    try:
        assert wait_until(lambda: len(receiver.received) >= n // 3 + 10, 60)  # mid-batch (batch 25)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    at_kill = delivered_count(db)
    received_at_kill = len(receiver.received)
    with db.session() as session:
        claimed = int(
            session.scalar(select(func.count()).select_from(Event).where(Event.claimed_by.is_not(None))) or 0
        )
    second = start_worker(schema, key, tmp_path, "rescuer", lease=2.0, batch=25)
    try:
        assert wait_until(lambda: delivered_count(db) == n, 120), f"delivered {delivered_count(db)} of {n}"
    finally:
        stop_worker(second)
    counts = received_counts(receiver)
    duplicates = sum(c - 1 for c in counts.values())
    print(
        f"\n[kill -9] events={n} delivered_at_kill={at_kill} received_at_kill={received_at_kill} "
        f"claimed_by_dead_worker={claimed} after_restart: delivered={delivered_count(db)} "
        f"unique_received={len(counts)} duplicates={duplicates} lost={n - len(counts)}"
    )
    assert len(counts) == n  # every event delivered at least once, none lost
    assert duplicates <= 25  # at most the batch in flight when the worker died (sent, not yet recorded)
    assert 0 < at_kill < n
    assert claimed > 0  # the dead worker held claims on the rest of its batch


def test_an_idle_worker_wakes_on_commit_not_at_its_next_poll(
    pg: tuple[Database, str], receiver: Receiver, tmp_path: Path
) -> None:
    """LISTEN stealth_outbox: with a 30 s poll, events committed while the worker idles go out at once."""
    db, schema = pg
    key = Fernet.generate_key().decode()
    worker = start_worker(schema, key, tmp_path, "listener", poll=30.0)
    log = tmp_path / "listener.log"
    try:
        assert wait_until(lambda: log.exists() and "stealth worker" in log.read_text(), 60)
        time.sleep(1.0)  # past its first (empty) poll: now waiting on the channel
        started = time.monotonic()
        seed(db, key, receiver.url, 5)
        assert wait_until(lambda: delivered_count(db) == 5, 10), f"delivered {delivered_count(db)} of 5"
        elapsed = time.monotonic() - started
    finally:
        stop_worker(worker)
    assert len(received_counts(receiver)) == 5
    assert elapsed < 5.0  # well inside the 30 s poll
