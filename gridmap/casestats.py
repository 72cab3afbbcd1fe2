"""Case indicators (结案率, 按期结案率, rework, overdue, time to close) over a set of cases, grouped by area,
category, worker or period: the figures of /api/stats, `gridmap stats`, exports and the dashboard.

Plain rows in, plain dicts out; which cases a user may count is decided by `gridmap.cases.stats`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from gridmap import clock
from gridmap.casefields import OPEN_STATUSES, SOURCES
from gridmap.categories import category
from gridmap.errors import InvalidInput

GROUPS = ("total", "grid", "community", "street", "category", "worker", "day", "week", "month")
_GROUP_KEY = {
    "total": lambda r: "all",
    "grid": lambda r: r["grid_code"],
    "community": lambda r: r["community_code"],
    "street": lambda r: r["street_code"],
    "category": lambda r: r["category_code"],
    "worker": lambda r: r["assignee"],
    "day": lambda r: r["reported_at"].date().isoformat(),
    "week": lambda r: "{}-W{:02d}".format(*r["reported_at"].isocalendar()[:2]),
    "month": lambda r: r["reported_at"].strftime("%Y-%m"),
}


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def indicators(rows: Iterable[Mapping], *, now: dt.datetime) -> dict:
    """Compute the indicators of a set of incidents as of `now`.

    resolution_rate = closed ÷ received (the seeds' 结案率: 84 of 86 → 97.7 %); on_time_rate (按期结案率) =
    closed by the deadline ÷ due, where due = closed cases with a deadline plus open cases past theirs;
    rework_rate = cases sent back at least once ÷ cases ever resolved.
    """
    rows = list(rows)
    closed = [r for r in rows if r["status"] == "closed"]
    overdue = [r for r in rows if r["status"] in OPEN_STATUSES and r["deadline"] is not None and now >= r["deadline"]]
    due = [r for r in closed if r["deadline"] is not None] + overdue
    # A closed case with no closing time (imported that way) cannot be judged on time.
    on_time = [r for r in closed if r["deadline"] and r["closed_at"] and r["closed_at"] <= r["deadline"]]
    ever_resolved = [r for r in rows if r["status"] in ("resolved", "closed") or r["rework_count"]]
    reworked = [r for r in rows if r["rework_count"]]
    hours = [(r["closed_at"] - r["reported_at"]).total_seconds() / 3600 for r in closed if r["closed_at"]]
    return {
        "received": len(rows),
        "registered": sum(r["status"] not in ("reported", "rejected") for r in rows),
        "rejected": sum(r["status"] == "rejected" for r in rows),
        "open": sum(r["status"] in OPEN_STATUSES for r in rows),
        "closed": len(closed),
        "resolution_rate": _rate(len(closed), len(rows)),
        "due": len(due),
        "closed_on_time": len(on_time),
        "on_time_rate": _rate(len(on_time), len(due)),
        "reworked": len(reworked),
        "rework_rate": _rate(len(reworked), len(ever_resolved)),
        "overdue": len(overdue),
        "median_hours_to_close": round(statistics.median(hours), 2) if hours else None,
    }


STAT_FILTERS = ("grid_code", "community_code", "street_code", "category_code", "source")


def check_filters(*, category_code=None, source=None, **_codes) -> None:
    """Refuse an unknown category or source in a filter (codes of areas just match nothing)."""
    if category_code is not None:
        category(category_code)
    if source is not None and source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source!r}")


def stats_of(
    rows: Sequence[Mapping],
    *,
    by: str = "total",
    reported_from: dt.datetime | None = None,
    reported_to: dt.datetime | None = None,
    now: dt.datetime | None = None,
    filters: Mapping | None = None,
) -> dict:
    """Return the indicators of these incidents (already selected), grouped `by`: the shape of /api/stats."""
    if by not in GROUPS:
        raise InvalidInput(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
    now = now or clock.now()
    groups: dict = defaultdict(list)
    key = _GROUP_KEY[by]
    for row in rows:
        groups[key(row)].append(row)
    return {
        "by": by,
        "from": clock.iso(reported_from),
        "to": clock.iso(reported_to),
        "filters": dict(filters or {}),
        "as_of": clock.iso(now.replace(microsecond=0)),
        "total": indicators(rows, now=now),
        "groups": [
            {"key": key, **indicators(items, now=now)}
            for key, items in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ],
    }
