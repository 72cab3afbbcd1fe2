"""The one clock: gridmap keeps China Standard Time (Asia/Shanghai, UTC+08:00) whatever the server's zone.

Working hours, deadlines and report times are local by nature, so times are stored as naive wall-clock
times in Asia/Shanghai. What leaves gridmap (the API, exports) carries the offset (+08:00); a time that
arrives with an offset is converted to Shanghai time, one without an offset is taken as Shanghai time.
China has kept UTC+08:00 without daylight saving since 1991, so a fixed offset is exact and needs no tz
database.
"""

from __future__ import annotations

import datetime as dt

TIMEZONE = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
TIMEZONE_NAME = "Asia/Shanghai"


def now() -> dt.datetime:
    """Return the current Shanghai wall-clock time, naive, to the second."""
    return dt.datetime.now(TIMEZONE).replace(tzinfo=None, microsecond=0)


def now_exact() -> dt.datetime:
    """Return the current Shanghai wall-clock time, naive, to the microsecond (for what must tell two moments of
    the same second apart, such as two editions made one after the other)."""
    return dt.datetime.now(TIMEZONE).replace(tzinfo=None)


def today() -> dt.date:
    """Return today's date in Shanghai."""
    return dt.datetime.now(TIMEZONE).date()


def local(value: dt.datetime) -> dt.datetime:
    """Return a datetime as naive Shanghai time: an aware one is converted, a naive one is taken as it is."""
    if value.tzinfo is None:
        return value
    return value.astimezone(TIMEZONE).replace(tzinfo=None)


def aware(value: dt.datetime) -> dt.datetime:
    """Attach the Shanghai offset to a stored (naive Shanghai) time."""
    return value.replace(tzinfo=TIMEZONE) if value.tzinfo is None else value.astimezone(TIMEZONE)


def iso(value) -> str | None:
    """Write a stored time as ISO 8601 with its offset (2026-03-01T09:30:00+08:00); dates and None as they are."""
    if isinstance(value, dt.datetime):
        return aware(value).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
