"""PostgreSQL unreachable under load, for our server process only (a TCP proxy of ours between the server
and PostgreSQL is cut: open connections reset, new ones refused; the shared PostgreSQL keeps running).

While it is cut the server answers 503 SERVICE_UNAVAILABLE in the error envelope with Retry-After; once it is
back the server recovers by itself within seconds; every create it acknowledged (201) is in the database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from server.db.models import Referral
from tests.server.reliability.procs import (
    POSTGRES_URL,
    Store,
    TcpProxy,
    fresh_database,
    headers,
    new_key,
    pg_url_via,
    record,
    serve,
    server_env,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="STEALTH_TEST_POSTGRES_URL is not set"),
]
CLIENTS = 8
RECOVERY_LIMIT_S = 10.0


@dataclass
class Call:
    sent: float
    done: float
    status: int
    code: str | None
    retry_after: str | None
    reference: str


async def _load(base: str, hdrs: dict[str, str], stop_at: float, calls: list[Call]) -> None:
    async with httpx.AsyncClient(base_url=base, headers=hdrs, timeout=30) as client:

        async def loop() -> None:
            while time.monotonic() < stop_at:
                reference = f"cust_{uuid.uuid4().hex[:12]}"
                sent = time.monotonic()
                try:
                    r = await client.post(
                        "/partner/referrals",
                        json={"partner_reference": reference, "product_category": "trt-cream"},
                    )
                except httpx.HTTPError:
                    calls.append(Call(sent, time.monotonic(), -1, None, None, reference))
                    await asyncio.sleep(0.05)
                    continue
                code = None
                if r.status_code >= 400:
                    code = r.json()["error"]["code"]
                calls.append(
                    Call(sent, time.monotonic(), r.status_code, code, r.headers.get("retry-after"), reference)
                )
                if r.status_code == 503:
                    await asyncio.sleep(0.05)  # a polite client would wait Retry-After; keep the load up

        await asyncio.gather(*(loop() for _ in range(CLIENTS)))


def _outages(proxy: TcpProxy, plan: list[tuple[float, float]], marks: list[tuple[float, float]]) -> None:
    for cut_after, down_for in plan:
        time.sleep(cut_after)
        cut = time.monotonic()
        proxy.cut()
        time.sleep(down_for)
        restored = time.monotonic()
        proxy.restore()
        marks.append((cut, restored))


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param([(3.0, 4.0)], id="quick"),
        pytest.param(
            [(5.0, 5.0), (5.0, 15.0), (5.0, 2.0), (5.0, 30.0), (5.0, 5.0)], marks=pytest.mark.soak, id="soak"
        ),
    ],
)
def test_postgres_outage_under_load(plan: list[tuple[float, float]], tmp_path: Path) -> None:
    with fresh_database("postgres", tmp_path) as url:
        key = new_key()
        store = Store(url, key)
        proxy = TcpProxy("127.0.0.1", int(url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
        try:
            creds = store.partner("referral")
            env = server_env(pg_url_via(url, proxy.port), key, tmp_path / "state")
            with serve(env, tmp_path / "server.log") as server:
                calls: list[Call] = []
                marks: list[tuple[float, float]] = []
                total = sum(a + b for a, b in plan) + 8.0
                started = time.monotonic()

                async def main() -> None:
                    load = asyncio.create_task(_load(server.base_url, headers(creds), started + total, calls))
                    await asyncio.to_thread(_outages, proxy, plan, marks)
                    await load

                asyncio.run(main())
                log = server.log_text()
        finally:
            proxy.close()
        try:
            _check(calls, marks, store, plan, log)
        finally:
            store.close()


def _check(
    calls: list[Call],
    marks: list[tuple[float, float]],
    store: Store,
    plan: list[tuple[float, float]],
    log: str,
) -> None:
    assert not [c for c in calls if c.status == -1], "transport errors: the server must always answer"
    bad = [c for c in calls if c.status not in (201, 503)]
    assert not bad, [(c.status, c.code) for c in bad[:5]]
    assert "INTERNAL_ERROR" not in log and "unhandled error" not in log
    for c in calls:
        if c.status == 503:
            assert c.code == "SERVICE_UNAVAILABLE" and c.retry_after == "5"
    recoveries: list[float] = []
    during: list[Call] = []
    for cut, restored in marks:
        # requests sent while the proxy was cut (a small grace after the cut for in-flight ones)
        inside = [c for c in calls if cut + 0.2 <= c.sent and c.done <= restored]
        assert inside, "no request was made during the outage"
        assert all(c.status == 503 for c in inside), {c.status for c in inside}
        during += inside
        first_ok = min((c.done for c in calls if c.status == 201 and c.sent >= restored), default=None)
        assert first_ok is not None, "the server did not recover"
        recoveries.append(round(first_ok - restored, 2))
    assert max(recoveries) <= RECOVERY_LIMIT_S, recoveries
    acknowledged = {c.reference for c in calls if c.status == 201}
    with store.db.session() as session:
        stored = set(session.scalars(select(Referral.partner_reference)))
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged creates are missing"
    unacknowledged_but_stored = len(stored - acknowledged)
    record(
        "postgres outage under load",
        outages_s=[b for _a, b in plan],
        requests=len(calls),
        acknowledged_201=len(acknowledged),
        answered_503=sum(1 for c in calls if c.status == 503),
        sent_during_outage=len(during),
        max_latency_during_outage_ms=round(max(c.done - c.sent for c in during) * 1000),
        recovery_s=recoveries,
        acknowledged_missing=len(missing),
        stored_without_201=unacknowledged_but_stored,
    )
