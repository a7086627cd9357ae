"""In-process sliding-window log (one process; the default)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from server.ratelimit.base import WINDOW_SECONDS, RateDecision, decide

_MAX_KEYS = 100_000


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._log: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int) -> RateDecision:
        return self.hit_sync(key, limit)

    def hit_sync(self, key: str, limit: int) -> RateDecision:
        now = self._clock()
        with self._lock:
            log = self._log.get(key)
            if log is None:
                if len(self._log) >= _MAX_KEYS:
                    self._sweep(now)
                log = self._log[key] = deque()
            cutoff = now - WINDOW_SECONDS
            while log and log[0] <= cutoff:
                log.popleft()
            allowed = len(log) < limit
            if allowed:
                log.append(now)
            return decide(allowed, limit, len(log), log[0] if log else None, now)

    def _sweep(self, now: float) -> None:
        cutoff = now - WINDOW_SECONDS
        for k in [k for k, v in self._log.items() if not v or v[-1] <= cutoff]:
            del self._log[k]

    async def reset(self, key: str) -> None:
        with self._lock:
            self._log.pop(key, None)

    async def close(self) -> None:
        return None
