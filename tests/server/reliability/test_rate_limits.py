"""Rate limits hold across processes: two `stealth serve` processes sharing Redis allow exactly the limit per
window (within one request); one process with the in-process backend allows exactly the limit under
concurrent load. Requests are fired concurrently at both servers, well inside one 60 s window."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from server.services.partners import Credentials
from tests.server.reliability.procs import (
    REDIS_URL,
    Server,
    Store,
    fresh_database,
    headers,
    new_key,
    record,
    serve,
    server_env,
)


async def _burst(servers: list[Server], creds: Credentials, n: int) -> collections.Counter[int]:
    # a fresh connection per request: a reused keep-alive connection the server is just closing would make
    # the client see a transport error, not an answer
    hdrs = {**headers(creds), "Connection": "close"}
    clients = [httpx.AsyncClient(base_url=s.base_url, headers=hdrs, timeout=60) for s in servers]
    try:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> int:
            async with sem:
                r = await clients[i % len(clients)].get("/partner/products")
                if r.status_code == 429:
                    assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
                    assert int(r.headers["retry-after"]) >= 1
                return r.status_code

        return collections.Counter(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        for c in clients:
            await c.aclose()


def sent_for(limit: int) -> int:
    return limit + max(20, limit // 3)


def _windows(servers: list[Server], store: Store, limit: int, windows: int) -> list[int]:
    creds = store.partner("referral")
    allowed: list[int] = []
    for w in range(windows):
        if w:
            time.sleep(61)  # the sliding window empties
        started = time.monotonic()
        statuses = asyncio.run(_burst(servers, creds, sent_for(limit)))
        assert time.monotonic() - started < 55, "the burst must fit in one window"
        assert set(statuses) <= {200, 429}, statuses
        allowed.append(statuses[200])
    return allowed


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="STEALTH_TEST_REDIS_URL is not set")
@pytest.mark.parametrize(
    ("limit", "windows"),
    [pytest.param(30, 1, id="quick"), pytest.param(150, 3, marks=pytest.mark.soak, id="soak")],
)
def test_two_processes_share_the_redis_window(tmp_path: Path, limit: int, windows: int) -> None:
    assert REDIS_URL
    with fresh_database("sqlite", tmp_path) as url, contextlib.ExitStack() as stack:
        key = new_key()
        store = Store(url, key)
        stack.callback(store.close)
        env = server_env(
            url,
            key,
            tmp_path / "state",
            STEALTH_REDIS_URL=REDIS_URL,
            STEALTH_RATE_LIMIT_PER_MINUTE=str(limit),
        )
        servers = [stack.enter_context(serve(env, tmp_path / f"server-{i}.log")) for i in range(2)]
        allowed = _windows(servers, store, limit, windows)
    record(
        "rate limit, two processes on Redis", limit=limit, sent_per_window=sent_for(limit), allowed=allowed
    )
    assert all(abs(a - limit) <= 1 for a in allowed), allowed


@pytest.mark.parametrize(
    ("limit", "windows"),
    [pytest.param(30, 1, id="quick"), pytest.param(150, 3, marks=pytest.mark.soak, id="soak")],
)
def test_one_process_in_memory_window(tmp_path: Path, limit: int, windows: int) -> None:
    with fresh_database("sqlite", tmp_path) as url, contextlib.ExitStack() as stack:
        key = new_key()
        store = Store(url, key)
        stack.callback(store.close)
        env = server_env(url, key, tmp_path / "state", STEALTH_RATE_LIMIT_PER_MINUTE=str(limit))
        server = stack.enter_context(serve(env, tmp_path / "server.log"))
        allowed = _windows([server], store, limit, windows)
    record("rate limit, one process in memory", limit=limit, sent_per_window=sent_for(limit), allowed=allowed)
    assert allowed == [limit] * windows
