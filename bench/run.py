"""`python -m bench.run`: the benchmark harness behind `make bench` (see bench/README.md).

``--quick`` is the smoke run pytest makes: tiny durations and sizes, SQLite, results in a temporary
directory; the full run writes bench/results/<timestamp>.json and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import dbsetup, procs, report, wrk

PARTS = ("http", "webhooks", "growth", "tooling")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny durations and sizes")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument("--db", default="sqlite,postgresql", help="sqlite and/or postgresql")
    p.add_argument("--workers", default="1,2", help="uvicorn / stealth worker process counts")
    p.add_argument("--duration", type=float, default=9.0, help="seconds per throughput figure (all rounds)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per throughput figure")
    p.add_argument("--fixed-rps", type=float, default=200.0, help="offered rate of the latency run")
    p.add_argument("--fixed-duration", type=float, default=10.0)
    p.add_argument("--hook-backlog", type=int, default=3000)
    p.add_argument("--hook-batch", type=int, default=100, help="stealth worker --batch")
    p.add_argument("--hook-rate", type=float, default=500.0, help="state changes/s in the latency run")
    p.add_argument("--hook-duration", type=float, default=6.0)
    p.add_argument("--sizes", default="10000,1000000", help="referral counts of the growth part")
    p.add_argument("--repeat", type=int, default=200, help="calls per growth timing")
    p.add_argument("--no-prism", action="store_true")
    p.add_argument("--no-install", action="store_true", help="do not apt-get install wrk when missing")
    p.add_argument(
        "--generator", choices=("auto", "wrk", "asyncio"), default="auto", help="throughput load generator"
    )
    p.add_argument("--db-prefix", default="stealth_bench", help="PostgreSQL database name prefix")
    p.add_argument("--out-dir", type=Path, default=procs.REPO / "bench" / "results")
    p.add_argument("--work-dir", type=Path, default=procs.REPO / "build" / "bench")
    p.add_argument("--readme", type=Path, default=procs.REPO / "bench" / "README.md")
    p.add_argument("--no-readme", action="store_true")
    p.add_argument("--render", type=Path, help="only re-render the README table from a results JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.fixed_rps, args.fixed_duration = 1.0, 50.0, 1.0
        args.hook_backlog, args.hook_rate, args.hook_duration = 40, 50.0, 0.5
        args.sizes, args.repeat, args.connections, args.rounds = "200,2000", 10, 4, 1
    return args


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    args = parse(argv)
    if args.render:
        saved = json.loads(args.render.read_text())
        saved["verdicts"] = report.verdicts(saved)
        report.update_readme(args.readme, report.markdown(saved, args.render.name))
        print(f"bench: {args.readme} re-rendered from {args.render}", flush=True)
        return 0
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(f"unknown part(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    workers = [int(w) for w in args.workers.split(",")]
    want_db = [d for d in args.db.split(",") if d]
    if "http" in parts and args.generator != "asyncio" and not args.no_install:
        wrk.ensure_installed()
    if args.generator == "wrk" and not wrk.available():
        print("bench: wrk is not installed", file=sys.stderr)
        return 2
    use_wrk = args.generator != "asyncio" and wrk.available() is not None
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = args.work_dir / stamp
    logs = work / "logs"
    pg_admin = dbsetup.postgres_admin_url() if ("postgresql" in want_db or "growth" in parts) else None
    result: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python -m bench.run " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "machine": report.machine(),
        "versions": report.versions(pg_admin),
        "load_generator": (
            "wrk (Debian package; -t2, closed loop) for throughput, our asyncio generator (bench/loadgen.py, "
            "open loop) for the fixed-rate latency runs"
            if use_wrk
            else "our asyncio generator (bench/loadgen.py) for everything (closed loop for throughput)"
        ),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    t0 = time.perf_counter()
    targets = dbsetup.targets(work, want_db, args.db_prefix) if {"http", "webhooks"} & set(parts) else []
    try:
        if "http" in parts:
            from bench import http_bench

            seeds = {t.label: http_bench.seed(t) for t in targets}
            result["http"] = http_bench.run(
                targets,
                seeds,
                workers=workers,
                duration=args.duration,
                connections=args.connections,
                fixed_rps=args.fixed_rps,
                fixed_duration=args.fixed_duration,
                with_prism=not args.no_prism and (procs.REPO / "node_modules" / ".bin" / "prism").exists(),
                logs=logs,
                use_wrk=use_wrk,
                rounds=args.rounds,
            )
        if "webhooks" in parts:
            from bench import webhook_bench

            result["webhooks"] = webhook_bench.run(
                targets,
                workers=workers,
                backlog=args.hook_backlog,
                batch=args.hook_batch,
                rate=args.hook_rate,
                duration=args.hook_duration,
                logs=logs,
            )
        if "growth" in parts:
            if pg_admin is None:
                print("bench: PostgreSQL not reachable; growth part skipped", flush=True)
            else:
                from bench import growth

                key = targets[0].secret_key if targets else dbsetup.Fernet.generate_key().decode()
                sizes = [int(s) for s in args.sizes.split(",")]
                result["growth"] = growth.run(pg_admin, sizes, work, key, args.repeat, args.db_prefix)
        if "tooling" in parts:
            from bench import tooling

            result["tooling"] = {"generate": tooling.generate(logs), "conformance": tooling.conformance(logs)}
    finally:
        if pg_admin and any(t.label == "postgresql" for t in targets):
            dbsetup.drop_pg_database(pg_admin, args.db_prefix)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["verdicts"] = report.verdicts(result)
    path = report.write_json(result, args.out_dir, stamp)
    print(f"bench: wrote {path}", flush=True)
    table = report.markdown(result, path.name)
    print(table, flush=True)
    if not args.no_readme:
        report.update_readme(args.readme, table)
        print(f"bench: updated {args.readme}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
