"""Per-partner sliding-window rate limits (in-process, or Redis shared by several processes)."""

from __future__ import annotations

from server.ratelimit.base import RateDecision, RateLimiter
from server.ratelimit.memory import MemoryRateLimiter

__all__ = ["MemoryRateLimiter", "RateDecision", "RateLimiter", "make_rate_limiter"]


def make_rate_limiter(redis_url: str | None, prefix: str = "stealth:rl:") -> RateLimiter:
    if redis_url:
        from server.ratelimit.redis import RedisRateLimiter

        return RedisRateLimiter(redis_url, prefix=prefix)
    return MemoryRateLimiter()
