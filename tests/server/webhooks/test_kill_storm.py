"""Webhooks lose nothing while `stealth worker` processes are SIGKILLed at random points and restarted
(PostgreSQL): every event is delivered at least once, every delivery is recorded as an attempt, and the
only duplicates are the sends of the batch a worker was in when it died: a batch's attempts are recorded
together after its concurrent sends, so a kill repeats at most one batch (BATCH events).

Quick variant in `make test` (300 events), 10,000 events in `make soak`.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from server.db.engine import Database
from server.db.models import Event, EventAttempt
from tests.server.reliability.procs import record
from tests.server.webhooks.conftest import Receiver
from tests.server.webhooks.workers import (
    POSTGRES_URL,
    delivered_count,
    received_counts,
    seed,
    start_worker,
    stop_worker,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="STEALTH_TEST_POSTGRES_URL is not set"),
]
WORKERS = 2
BATCH = 25
LEASE_S = 2.0


@pytest.mark.parametrize(
    ("events", "kills_planned", "timeout_s"),
    [
        pytest.param(300, 3, 180, id="quick"),
        pytest.param(10_000, 40, 1800, marks=pytest.mark.soak, id="soak"),
    ],
)
def test_workers_killed_at_random_lose_nothing(
    pg: tuple[Database, str],
    receiver: Receiver,
    tmp_path: Path,
    events: int,
    kills_planned: int,
    timeout_s: float,
) -> None:
    db, schema = pg
    key = Fernet.generate_key().decode()
    rng = random.Random(11)

    def jittery(_rec: Any) -> int:
        time.sleep(rng.random() * 0.004)  # receivers take a little while: kills land mid-send
        return 200

    receiver.responder = jittery
    seed(db, key, receiver.url, events)
    started = time.monotonic()
    serial = 0

    def spawn() -> subprocess.Popen[bytes]:
        nonlocal serial
        serial += 1
        return start_worker(schema, key, tmp_path, f"w{serial}", lease=LEASE_S, batch=BATCH)

    # random kill points: after a random number of deliveries, plus a random delay (mid-batch, mid-send)
    points = sorted(rng.sample(range(events // 20, events - events // 20), kills_planned))
    workers = [spawn() for _ in range(WORKERS)]
    kills = 0
    try:
        deadline = started + timeout_s
        for point in points:
            while delivered_count(db) < point:
                assert time.monotonic() < deadline, f"delivered {delivered_count(db)} of {events}"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.2))
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = spawn()  # restarted
        while delivered_count(db) < events:
            assert time.monotonic() < deadline, f"delivered {delivered_count(db)} of {events}"
            time.sleep(0.1)
    finally:
        for w in workers:
            stop_worker(w)
    elapsed = time.monotonic() - started
    counts = received_counts(receiver)
    with db.session() as session:
        ids_all = set(session.scalars(select(Event.id)))
        not_delivered = int(
            session.scalar(
                select(func.count()).select_from(Event).where(Event.delivery_status != "delivered")
            )
            or 0
        )
        attempts = int(session.scalar(select(func.count()).select_from(EventAttempt)) or 0)
        succeeded_per_event = dict(
            session.execute(
                select(Event.id, func.count(EventAttempt.id))
                .join(EventAttempt, EventAttempt.event_seq == Event.seq)
                .where(EventAttempt.outcome == "succeeded")
                .group_by(Event.id)
            ).all()
        )
        stale_claims = int(
            session.scalar(select(func.count()).select_from(Event).where(Event.claimed_by.is_not(None))) or 0
        )
    received = sum(counts.values())
    duplicates = received - len(counts)
    lost = len(ids_all - set(counts))
    unrecorded = received - attempts
    record(
        f"webhook kill storm ({events} events)",
        events=events,
        workers=WORKERS,
        kills=kills,
        received=received,
        unique_received=len(counts),
        lost=lost,
        duplicates=duplicates,
        attempts_recorded=attempts,
        sends_not_recorded=unrecorded,
        elapsed_s=round(elapsed, 1),
        events_per_s=round(events / elapsed, 1),
    )
    assert kills >= 1
    assert lost == 0 and set(counts) == ids_all  # every event delivered at least once, none lost
    assert not_delivered == 0 and stale_claims == 0
    # every event has exactly one recorded successful attempt; a send is unrecorded only when its worker
    # died between its batch's sends and their record (at most one batch per kill), and was sent again
    assert set(succeeded_per_event) == ids_all and set(succeeded_per_event.values()) == {1}
    assert 0 <= unrecorded <= kills * BATCH
    assert duplicates == unrecorded
