"""Per-partner simulated clock: real UTC time plus the partner's offset (moved by sandbox controls)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_real_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def to_millis(dt: datetime) -> datetime:
    """Drop sub-millisecond precision: the API shows milliseconds, so stored times must not carry more."""
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)


def real_now() -> datetime:
    return to_millis(_real_now())


def set_real_clock(fn: Callable[[], datetime]) -> None:
    """Tests only: replace the wall clock."""
    global _real_now
    _real_now = fn


def partner_now(offset_seconds: float) -> datetime:
    return to_millis(real_now() + timedelta(seconds=offset_seconds))


def iso(dt: datetime | None) -> str | None:
    """RFC 3339 UTC with a Z, whole seconds unless sub-second precision matters."""
    if dt is None:
        return None
    if dt.tzinfo is not UTC:  # what the database columns return already is UTC (most of a list page)
        dt = dt.astimezone(UTC)
    # "YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00" (the year padded to four digits): cut to milliseconds (truncated)
    # or seconds. isoformat() without arguments is the cheapest formatting there is (a page has hundreds).
    text = dt.isoformat()
    return text[:23] + "Z" if dt.microsecond else text[:19] + "Z"


def parse_iso(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
