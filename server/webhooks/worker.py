"""`stealth worker`: the webhook dispatcher as a separate process (PostgreSQL, several at once).

Each worker claims due deliveries with ``FOR UPDATE SKIP LOCKED`` and a lease; workers never send
the same attempt concurrently, and a worker killed mid-batch loses nothing (its leases expire and
another worker, or the same one restarted, sends those events).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from server import logs
from server.config import ConfigError, Settings
from server.crypto import SecretBox, load_or_create_key
from server.db.engine import Database
from server.webhooks.dispatcher import Dispatcher

log = logging.getLogger("stealth.worker")


def run_worker(
    dispatcher: Dispatcher,
    *,
    poll_seconds: float = 0.5,
    batch: int = 20,
    stop: threading.Event | None = None,
    max_idle_polls: int | None = None,
) -> int:
    """Deliver until stopped (or idle ``max_idle_polls`` times in a row); returns attempts made."""
    stop = stop or threading.Event()
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
        stop.wait(poll_seconds)
    return made


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser("worker", help="deliver webhooks from the outbox (separate process)")
    worker.add_argument("--batch", type=int, default=20, help="deliveries claimed at once (default 20)")
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
    print(f"stealth worker {dispatcher.name} on {db.backend}", flush=True)
    try:
        run_worker(dispatcher, poll_seconds=args.poll, batch=args.batch, stop=stop)
    finally:
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
