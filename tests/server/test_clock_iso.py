"""clock.iso (every time in every response) writes exactly what the field-by-field formatting it replaced did;
UTC columns read back as they did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from server.clock import iso


def _reference(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    base = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if dt.microsecond:
        return f"{base}.{dt.microsecond // 1000:03d}Z"
    return base + "Z"


ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(0), "other UTC"),
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=-8)),
    ]
)
TIMES = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30))


@given(TIMES, ZONES)
def test_aware_times_format_as_before(dt: datetime, zone: timezone) -> None:
    aware = dt.replace(tzinfo=zone)
    assert iso(aware) == _reference(aware)


@given(TIMES)
def test_naive_times_format_as_before(dt: datetime) -> None:
    assert iso(dt) == _reference(dt)  # naive: local time, as astimezone reads it


def test_edges() -> None:
    assert iso(None) is None
    assert iso(datetime(816, 2, 15, tzinfo=UTC)) == "0816-02-15T00:00:00Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 123999, tzinfo=UTC)) == "2026-01-02T03:04:05.123Z"


@given(TIMES)
def test_utc_column_values_read_back_as_before(dt: datetime) -> None:
    from server.db.types import UTCDateTime

    read = UTCDateTime().process_result_value(dt, None)  # type: ignore[arg-type]
    assert read == dt.replace(tzinfo=UTC) and read.tzinfo is UTC and read.fold == dt.fold
    assert UTCDateTime().process_result_value(dt.isoformat(), None) == dt.replace(tzinfo=UTC)  # type: ignore[arg-type]
