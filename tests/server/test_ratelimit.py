"""Per-partner sliding-window rate limits, in process and on Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from server.ratelimit import MemoryRateLimiter
from tests.server.conftest import set_partner


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_memory_window_slides():
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    decisions = [limiter.hit_sync("k", 3) for _ in range(3)]
    assert [d.remaining for d in decisions] == [2, 1, 0] and all(d.allowed for d in decisions)
    blocked = limiter.hit_sync("k", 3)
    assert not blocked.allowed and blocked.retry_after == 60 and blocked.reset_epoch == 1_000_060
    clock.now += 30
    assert not limiter.hit_sync("k", 3).allowed
    clock.now += 30.5  # the first three leave the window
    again = limiter.hit_sync("k", 3)
    assert again.allowed and again.remaining == 2
    assert limiter.hit_sync("other", 3).remaining == 2  # keys are independent


def _exhaust(sb, creds, limit: int) -> None:
    for i in range(limit):
        r = sb.call("GET", "/partner/products", creds)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == str(limit)
        assert r.headers["x-ratelimit-remaining"] == str(limit - i - 1)
    r = sb.call("GET", "/partner/products", creds)
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == "RATE_LIMIT_EXCEEDED" and err["details"]["limit"] == limit
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining"] == "0"


def test_http_limit_and_headers_on_every_response(sandbox_factory):
    sb = sandbox_factory(rate_limit_per_minute=5)
    p = sb.partner()
    _exhaust(sb, p, 5)
    # another partner has its own window; errors carry the headers too
    q = sb.partner()
    r = sb.call("GET", "/partner/referrals/ref_missing00", q)
    assert r.status_code == 404 and r.headers["x-ratelimit-remaining"] == "4"
    r = sb.call("GET", "/partner/products", headers={"X-Partner-ID": q.partner_id})
    assert r.status_code == 401 and r.headers["x-ratelimit-remaining"] == "3"
    # unauthenticated requests without a partner id are keyed by client address
    r = sb.client.get("/nowhere")
    assert r.status_code == 404 and r.headers["x-ratelimit-limit"] == "5"


def test_per_partner_override(sandbox_factory):
    sb = sandbox_factory(rate_limit_per_minute=5)
    p = sb.partner()
    set_partner(sb, p, rate_limit_per_minute=2)
    _exhaust(sb, p, 2)


def test_production_default_is_300():
    from server.config import Settings

    assert (
        Settings.from_env(
            {"STEALTH_ENVIRONMENT": "production", "STEALTH_SECRET_KEY": "x"}
        ).rate_limit_per_minute
        == 300
    )
    assert Settings.from_env({}).rate_limit_per_minute == 60


@pytest.mark.redis
def test_redis_backend_shared_by_two_servers(sandbox_factory, redis_url):
    from server.ratelimit.redis import RedisRateLimiter

    prefix = f"stealth:test:{uuid.uuid4().hex}:"
    a = sandbox_factory(limiter=RedisRateLimiter(redis_url, prefix=prefix), rate_limit_per_minute=6)
    b = sandbox_factory(limiter=RedisRateLimiter(redis_url, prefix=prefix), rate_limit_per_minute=6)
    p = a.partner()
    codes = [(a if i % 2 else b).call("GET", "/partner/products", p).status_code for i in range(8)]
    assert codes.count(200) == 6 and codes[6:] == [429, 429]
    r = b.call("GET", "/partner/products", p)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


@pytest.mark.redis
def test_redis_limiter_is_atomic_under_concurrency(redis_url):
    from server.ratelimit.redis import RedisRateLimiter

    async def main() -> list[bool]:
        limiter = RedisRateLimiter(redis_url, prefix=f"stealth:test:{uuid.uuid4().hex}:")
        try:
            decisions = await asyncio.gather(*(limiter.hit("k", 10) for _ in range(40)))
        finally:
            await limiter.close()
        return [d.allowed for d in decisions]

    allowed = asyncio.run(main())
    assert allowed.count(True) == 10


def test_limiter_outage_fails_open_with_headers(sandbox_factory):
    class Broken:
        async def hit(self, key: str, limit: int):
            raise ConnectionError("redis down")

        async def reset(self, key: str) -> None:
            return None

        async def close(self) -> None:
            return None

    sb = sandbox_factory(limiter=Broken(), rate_limit_per_minute=7)
    p = sb.partner()
    r = sb.call("GET", "/partner/products", p)
    assert r.status_code == 200
    assert r.headers["x-ratelimit-limit"] == "7" and r.headers["x-ratelimit-remaining"] == "7"
