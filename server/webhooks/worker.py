"""`stealth worker`: the webhook dispatcher as a separate process (PostgreSQL, several at once).

Each worker claims due deliveries with ``FOR UPDATE SKIP LOCKED`` and a lease; workers never send
the same attempt concurrently, and a worker killed mid-batch loses nothing (its leases expire and
another worker, or the same one restarted, sends those events).

When idle, a worker on PostgreSQL waits on ``LISTEN stealth_outbox`` (every transaction that adds
outbox work notifies it as it commits, server.db.engine.wake_outbox) for at most ``--poll`` seconds: new
events go out as soon as they are committed, and retries that come due by time are found by the poll.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from server import logs
from server.config import ConfigError, Settings
from server.crypto import SecretBox, load_or_create_key
from server.db.engine import OUTBOX_CHANNEL, Database
from server.webhooks.dispatcher import Dispatcher

log = logging.getLogger("stealth.worker")


class OutboxListener:
    """Waits for a commit that adds outbox work (PostgreSQL ``LISTEN``), or for the timeout.

    On SQLite, or while the listening connection is down (it reconnects on the next wait), it simply
    sleeps: the poll still finds everything.
    """

    def __init__(self, db: Database, stop: threading.Event) -> None:
        self.db = db
        self.stop = stop
        self.conn: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any] | None:
        if self.db.backend != "postgresql":
            return None
        if self.conn is None or self.conn.closed:
            try:
                self.conn = psycopg.connect(self.db.psycopg_conninfo(), autocommit=True, connect_timeout=5)
                self.conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
            except psycopg.Error:
                log.warning("cannot listen for outbox commits; polling only until it can")
                self.close()
        return self.conn

    def wait(self, seconds: float) -> None:
        conn = self._connect()
        if conn is None:
            self.stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        try:
            while not self.stop.is_set():  # in slices, so SIGTERM stops an idle worker promptly
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if any(True for _ in conn.notifies(timeout=min(left, 0.25), stop_after=1)):
                    for _ in conn.notifies(timeout=0):  # the rest of a burst: one claim serves them all
                        pass
                    return
        except psycopg.Error:
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def run_worker(
    dispatcher: Dispatcher,
    *,
    poll_seconds: float = 0.5,
    batch: int = 20,
    stop: threading.Event | None = None,
    max_idle_polls: int | None = None,
    wait: Callable[[float], None] | None = None,
) -> int:
    """Deliver until stopped (or idle ``max_idle_polls`` times in a row); returns attempts made.

    ``wait(seconds)``: how an idle worker waits (default: sleep; `stealth worker` waits on the listener).
    """
    stop = stop or threading.Event()
    idle_wait = wait or stop.wait
    made = idle = 0
    while not stop.is_set():
        try:
            done = dispatcher.run_once(limit=batch)
        except Exception:  # a database outage must not kill the worker; retry after a pause
            log.exception("dispatch failed")
            stop.wait(min(5.0, poll_seconds * 4))
            continue
        made += len(done)
        for d in done:
            print(
                f"{d.event_type} {d.event_id} attempt={d.attempt_number} {d.result.outcome} "
                f"status={d.result.status_code} {d.result.latency_ms}ms",
                flush=True,
            )
        if done:
            idle = 0
            continue
        idle += 1
        if max_idle_polls is not None and idle >= max_idle_polls:
            break
        idle_wait(poll_seconds)
    return made


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser("worker", help="deliver webhooks from the outbox (separate process)")
    worker.add_argument("--batch", type=int, default=100, help="deliveries claimed at once (default 100)")
    worker.add_argument("--poll", type=float, default=0.5, help="seconds between polls when idle")
    worker.add_argument(
        "--lease",
        type=float,
        default=None,
        help="claim lease in seconds (default 30, STEALTH_WEBHOOK_CLAIM_LEASE_SECONDS)",
    )
    worker.add_argument("--schema", default=None, help="PostgreSQL schema (tests)")
    worker.add_argument("--name", default=None, help="worker name recorded in claims")
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    logs.configure(settings)
    db = Database(settings.database_url, schema=args.schema)
    db.migrate()
    box = SecretBox(load_or_create_key(settings))
    lease = args.lease or float(os.environ.get("STEALTH_WEBHOOK_CLAIM_LEASE_SECONDS") or 30.0)
    dispatcher = Dispatcher(db, box, settings.environment, lease_seconds=lease, name=args.name)
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    listener = OutboxListener(db, stop)
    print(f"stealth worker {dispatcher.name} on {db.backend}", flush=True)
    try:
        run_worker(dispatcher, poll_seconds=args.poll, batch=args.batch, stop=stop, wait=listener.wait)
    finally:
        listener.close()
        dispatcher.close()
        db.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stealth-worker")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["worker", *(argv if argv is not None else sys.argv[1:])])
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
