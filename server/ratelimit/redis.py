"""Redis sliding-window log: one sorted set per key, updated atomically by a Lua script.

The script reads Redis's own clock (TIME), so several server processes share one window exactly.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from server.ratelimit.base import WINDOW_SECONDS, RateDecision, decide

_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2])
local member = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_us)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, member)
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', key, math.ceil(window_us / 1000) + 1000)
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local oldest_us = -1
if oldest[2] then oldest_us = tonumber(oldest[2]) end
return {allowed, count, string.format('%.0f', now), string.format('%.0f', oldest_us)}
"""


class RedisRateLimiter:
    def __init__(self, url: str, prefix: str = "stealth:rl:") -> None:
        self._redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._prefix = prefix
        self._script = self._redis.register_script(_SCRIPT)

    async def hit(self, key: str, limit: int) -> RateDecision:
        member = secrets.token_hex(8)
        allowed, count, now_us, oldest_us = await self._script(
            keys=[self._prefix + key], args=[limit, int(WINDOW_SECONDS * 1_000_000), member]
        )
        now = int(now_us) / 1_000_000
        oldest = int(oldest_us) / 1_000_000 if int(oldest_us) >= 0 else None
        return decide(bool(int(allowed)), limit, int(count), oldest, now)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        await self._redis.aclose()
