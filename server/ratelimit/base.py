"""The rate limiter interface."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }


def decide(allowed: bool, limit: int, count: int, oldest: float | None, now: float) -> RateDecision:
    """Build a decision from the window state after this request (``count`` requests in the window)."""
    remaining = max(0, limit - count)
    if oldest is None:
        oldest = now
    free_at = oldest + WINDOW_SECONDS  # when the oldest request leaves the window
    reset = (math.ceil(now) if allowed else math.ceil(free_at)) if remaining > 0 else math.ceil(free_at)
    retry_after = 0 if allowed else max(1, math.ceil(free_at - now))
    return RateDecision(allowed, limit, remaining, int(reset), retry_after)


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int) -> RateDecision:
        """Count one request for ``key`` if the window has room; say whether it is allowed."""
        ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...
