"""Everything one running app holds: settings, the spec, the database, secrets, limiter."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from server.config import Settings
from server.crypto import SecretBox
from server.db.engine import Database
from server.errors import ErrorRenderer
from server.lifecycle import Lifecycles
from server.ratelimit import RateLimiter
from server.repositories import partners as partners_repo
from server.spec import SpecIndex


@dataclass
class PartnerLimitCache:
    """Per-partner rate-limit overrides, cached briefly so the limiter needs no query per request."""

    db: Database
    default: int
    ttl_seconds: float = 30.0
    _cache: dict[str, tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, partner_id: str) -> int | None:
        """The cached limit without touching the database (None when unknown or stale)."""
        hit = self._cache.get(partner_id)
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def limit_for(self, partner_id: str) -> int:
        now = time.monotonic()
        hit = self._cache.get(partner_id)
        if hit and hit[0] > now:
            return hit[1]
        with self.db.session() as session:
            partner = partners_repo.get(session, partner_id)
            limit = (
                partner.rate_limit_per_minute if partner and partner.rate_limit_per_minute else self.default
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[partner_id] = (now + self.ttl_seconds, limit)
        return limit

    def invalidate(self, partner_id: str | None = None) -> None:
        with self._lock:
            if partner_id is None:
                self._cache.clear()
            else:
                self._cache.pop(partner_id, None)


@dataclass
class AppState:
    settings: Settings
    spec: SpecIndex
    db: Database
    box: SecretBox
    lifecycles: Lifecycles
    limiter: RateLimiter
    renderer: ErrorRenderer
    limits: PartnerLimitCache
