"""`python -m bench.cpu`: CPU time per request of the sandbox, in process (no network, no load generator).

Seeds a database as the HTTP benchmark does (a referral-tier partner, 120 referrals), builds the app as
shipped (auth, rate limit, request and response validation, database) and sends N requests through
``httpx.ASGITransport`` one at a time. It prints CPU per request (``time.process_time``: every thread of
this process, so the worker-thread hops count) and SQL statements per request. On a shared machine this
is steadier than req/s under wrk: compare before/after in the same conditions.

    python -m bench.cpu --db sqlite --endpoint get --n 400
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from bench import dbsetup, http_bench
from server.app import build_state, create_app

PATHS = {
    "get": "/partner/referrals/{id}",
    "list": "/partner/referrals?limit=50",
    "post": "/partner/referrals",
}


@dataclass(frozen=True)
class Result:
    endpoint: str
    db: str
    n: int
    cpu_ms: float
    wall_ms: float
    statements: float

    def line(self) -> str:
        return (
            f"{self.db:10s} {self.endpoint:5s} n={self.n:4d}  cpu {self.cpu_ms:6.2f} ms/req  "
            f"wall {self.wall_ms:6.2f} ms/req  sql {self.statements:4.1f}/req"
        )


async def _run(
    app: Any, seeded: http_bench.Seeded, endpoint: str, n: int, warmup: int, count: list[int]
) -> Result:
    headers = dict(seeded.headers)
    path = PATHS[endpoint].replace("{id}", seeded.referral_ids[0])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:

        async def one(i: int) -> None:
            if endpoint == "post":
                body = {"partner_reference": f"cpu_{time.time_ns()}_{i}", "product_category": seeded.category}
                r = await client.post(path, headers=headers, json=body)
            else:
                r = await client.get(path, headers=headers)
            assert r.status_code in (200, 201), (r.status_code, r.text[:300])

        for i in range(warmup):
            await one(i)
        count[0] = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(n):
            await one(warmup + i)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Result(endpoint, "", n, 1000 * cpu / n, 1000 * wall / n, count[0] / n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--endpoint", choices=tuple(PATHS), action="append")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="figure = the lowest CPU of the rounds")
    args = parser.parse_args(argv)
    endpoints = args.endpoint or list(PATHS)
    with tempfile.TemporaryDirectory() as work:
        (target,) = dbsetup.targets(Path(work), [args.db], prefix="stealth_bench_cpu")
        seeded = http_bench.seed(target)
        state = build_state(target.settings(), migrate=False)
        count = [0]

        @event.listens_for(state.db.engine, "before_cursor_execute")
        def _count(*_a: Any) -> None:
            count[0] += 1

        app = create_app(state=state)
        try:
            for endpoint in endpoints:
                rounds = [
                    asyncio.run(_run(app, seeded, endpoint, args.n, args.warmup, count))
                    for _ in range(args.rounds)
                ]
                best = min(rounds, key=lambda r: r.cpu_ms)
                print(
                    Result(endpoint, args.db, best.n, best.cpu_ms, best.wall_ms, best.statements).line(),
                    flush=True,
                )
        finally:
            state.db.dispose()
            if args.db == "postgresql" and (admin := dbsetup.postgres_admin_url()):
                dbsetup.drop_pg_database(admin, "stealth_bench_cpu")


if __name__ == "__main__":
    main()
