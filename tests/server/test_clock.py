"""server.clock.iso: the API's RFC 3339 text, unchanged by the isoformat-based implementation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from server.clock import iso


def _fieldwise(dt: datetime) -> str:
    """The previous implementation, field by field."""
    dt = dt.astimezone(UTC)
    base = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if dt.microsecond:
        return f"{base}.{dt.microsecond // 1000:03d}Z"
    return base + "Z"


def test_iso_matches_the_fieldwise_format() -> None:
    rng = random.Random(10)
    fixed = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC),  # sub-millisecond: ".000"
        datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 6, 1, 1, 0, 0, 5000, tzinfo=ZoneInfo("UTC")),  # another UTC object
        datetime(2026, 6, 1, 1, 0, 0, 5000),  # naive: local time, as before
    ]
    randoms = [
        datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**16)) for _ in range(5000)
    ]
    for dt in fixed + randoms:
        assert iso(dt) == _fieldwise(dt), dt
    assert iso(None) is None
