"""Part 2: webhook dispatch by `stealth worker` processes to a loopback receiver.

State changes are real: referrals are cancelled through ``transition_referral`` (the referral row, its
history and the outbox event in one transaction), in batches. Throughput: a backlog of N changes is
written first, then the workers start; deliveries/s is measured from the first receipt to the last.
Latency: with the workers running, changes are written at a fixed rate (the requested one, capped at half
the measured capacity, so the figure is latency and not queueing) and each delivery's time from
its transaction's commit to its receipt is taken.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.dbsetup import Target
from server import clock, ids
from server.app import build_state
from server.db.models import Fulfillment, Payment, Referral, ReferralStatusHistory
from server.idempotency import fingerprint
from server.repositories import partners as partners_repo
from server.services.partners import create_partner
from server.services.referrals import ENROLLMENT_TTL
from server.services.transitions import transition_referral
from server.state import AppState


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


class Producer:
    def __init__(self, state: AppState, receiver_url: str) -> None:
        self.state = state
        creds = create_partner(
            state.db,
            state.box,
            tier="referral",
            environment="sandbox",
            name="Bench Hooks",
            webhook_url=receiver_url,
        )
        self.partner_id = creds.partner_id
        with state.db.session() as session:
            self.category = partners_repo.products(session, self.partner_id)[0].category
        self._pending: list[str] = []

    def make_referrals(self, count: int) -> None:
        """``count`` referrals in status created, written in bulk (not what is measured)."""
        now = clock.real_now()
        for start in range(0, count, 500):
            with self.state.db.session() as session:
                for _ in range(start, min(count, start + 500)):
                    rid = ids.referral_id()
                    body = {"partner_reference": f"hook_{rid}", "product_category": self.category}
                    referral = Referral(
                        id=rid,
                        partner_id=self.partner_id,
                        partner_reference=body["partner_reference"],
                        product_category=self.category,
                        status="created",
                        metadata_={},
                        request_fingerprint=fingerprint(body),
                        created_at=now,
                        updated_at=now,
                        expires_at=now + ENROLLMENT_TTL,
                    )
                    session.add(referral)
                    session.flush()
                    session.add(ReferralStatusHistory.entry(referral, "created", now))
                    session.add(
                        Payment(referral_id=rid, partner_id=self.partner_id, status="not_due", currency="USD")
                    )
                    session.add(Fulfillment(referral_id=rid))
                    self._pending.append(rid)

    def change(self, count: int) -> tuple[float, list[str]]:
        """Cancel ``count`` referrals in one transaction; (commit time, referral ids)."""
        batch, self._pending = self._pending[:count], self._pending[count:]
        with self.state.db.session() as session:
            for rid in batch:
                referral = session.get(Referral, rid)
                assert referral is not None
                now = clock.real_now()
                transition_referral(
                    session,
                    self.state.lifecycles,
                    referral,
                    "cancelled",
                    now,
                    partner_tier="referral",
                    values={"cancelled_at": now, "cancelled_by": "partner", "cancel_reason": "bench"},
                )
        return time.time(), batch


def _read(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def _workers(target: Target, n: int, logs: Path, tag: str, batch: int) -> list[Any]:
    env = {**target.server_env(), "STEALTH_BACKGROUND_JOBS": "0"}
    cmd = [procs.PY, "-m", "server.cli", "worker", "--batch", str(batch), "--poll", "0.02"]
    return [
        procs.process([*cmd, "--name", f"bench{i}"], env, None, logs / f"worker-{tag}-{i}.log")
        for i in range(n)
    ]


def run_one(
    target: Target,
    workers: int,
    *,
    backlog: int,
    rate: float,
    duration: float,
    logs: Path,
    worker_batch: int = 100,
) -> dict[str, Any]:
    tag = f"{target.label}-{workers}"
    port = procs.free_port()
    received = logs / f"received-{tag}.jsonl"
    received.unlink(missing_ok=True)
    state = build_state(target.settings())
    latency_changes = int(rate * duration)
    try:
        rcv = procs.process(
            [procs.PY, "-m", "bench.receiver", str(port), str(received)],
            {},
            port,
            logs / f"receiver-{tag}.log",
        )
        with rcv:
            producer = Producer(state, f"http://127.0.0.1:{port}/hooks")
            producer.make_referrals(backlog + latency_changes)
            for done in range(0, backlog, 100):
                producer.change(min(100, backlog - done))
            contexts = _workers(target, workers, logs, tag, worker_batch)
            for c in contexts:
                c.__enter__()
            try:
                drain_start = time.perf_counter()
                deadline = time.monotonic() + max(120.0, backlog / 20)
                while time.monotonic() < deadline and _undelivered(state, producer.partner_id):
                    time.sleep(0.2)
                backlog_left = _undelivered(state, producer.partner_id)
                capacity = backlog / max(
                    1e-3, time.perf_counter() - drain_start
                )  # workers' start-up included
                # Latency at a fixed rate, in batches every 20 ms. The rate is the requested one, capped at
                # half the capacity just measured: above capacity the figure would be the queue, not latency.
                offered = min(rate, max(1.0, 0.5 * capacity))
                latency_changes = min(latency_changes, max(20, int(offered * duration)))
                committed: dict[str, float] = {}
                per_tick = max(1, round(offered * 0.02))
                start = time.perf_counter()
                made = 0
                tick = 0
                while made < latency_changes:
                    due = start + tick * max(0.02, per_tick / offered)
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    t, batch = producer.change(min(per_tick, latency_changes - made))
                    if not batch:
                        break
                    committed.update(dict.fromkeys(batch, t))
                    made += len(batch)
                    tick += 1
                produce_seconds = time.perf_counter() - start
                deadline = time.monotonic() + 60
                time.sleep(0.1)
                while time.monotonic() < deadline and _undelivered(state, producer.partner_id):
                    time.sleep(0.2)
                latency_left = _undelivered(state, producer.partner_id)
            finally:
                for c in reversed(contexts):
                    c.__exit__(None, None, None)
        seen = _read(received)
    finally:
        state.db.dispose()
    backlog_seen = [s for s in seen if s["referral_id"] not in committed]
    times = sorted(s["t"] for s in backlog_seen)
    rate_measured = (
        (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    )
    lat = [(s["t"] - committed[s["referral_id"]]) * 1000 for s in seen if s["referral_id"] in committed]
    return {
        "db": target.label,
        "workers": workers,
        "worker_batch": worker_batch,
        "backlog": backlog,
        "backlog_deliveries": len(backlog_seen),
        "undelivered_after_backlog": backlog_left,
        "undelivered_at_end": latency_left,
        "deliveries_per_s": round(rate_measured, 1),
        "requested_rate": rate,
        "offered_rate": round(offered, 1),
        "achieved_rate": round(made / produce_seconds, 1) if produce_seconds else 0.0,
        "latency_deliveries": len(lat),
        "p50_ms": round(_percentile(lat, 50), 1),
        "p99_ms": round(_percentile(lat, 99), 1),
    }


def _undelivered(state: AppState, partner_id: str) -> int:
    from sqlalchemy import func, select

    from server.db.models import Event

    with state.db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.partner_id == partner_id, Event.delivery_status != "delivered")
            )
            or 0
        )


def run(
    targets: list[Target],
    *,
    workers: list[int],
    backlog: int,
    rate: float,
    duration: float,
    logs: Path,
    batch: int = 100,
) -> list[dict[str, Any]]:
    rows = []
    for target in targets:
        for n in workers:
            row = run_one(
                target, n, backlog=backlog, rate=rate, duration=duration, logs=logs, worker_batch=batch
            )
            print(f"bench webhooks {row}", flush=True)
            rows.append(row)
    return rows
