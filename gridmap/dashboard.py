"""What the command dashboard (指挥中心) shows, computed from the cases; no Flask, no database.

Every figure comes from `cases.indicators` over the cases the user may see, narrowed by the dashboard's
filters, so the headline equals `/api/stats` for the same filters and period: a case counts in a period
when it was *reported* in it (received; of those, closed, overdue, …). Only the daily chart counts flows:
cases received that day and cases closed that day, whenever they were reported.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter

from gridmap import cases
from gridmap.errors import InvalidInput

PERIODS = ("today", "week", "month", "30d", "range")
DEFAULT_PERIOD = "30d"
MAX_RANGE_DAYS = 366 * 3  # the daily chart has one point a day
CLOSE_HOUR_BINS = (0, 4, 8, 24, 72, 168, 336)  # time-to-close histogram edges in hours; the last bin is open
TOP_CATEGORIES = 10


def period_window(
    period: str | None, *, today: dt.date, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """Return [from, to) of a named period ending today, or of a chosen range of days (both included)."""
    period = period or (DEFAULT_PERIOD if start is None and end is None else "range")
    if period not in PERIODS:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    tomorrow = today + dt.timedelta(days=1)
    if period == "today":
        first = today
    elif period == "week":
        first = today - dt.timedelta(days=today.weekday())
    elif period == "month":
        first = today.replace(day=1)
    elif period == "30d":
        first = today - dt.timedelta(days=29)
    else:
        if start is None or end is None:
            raise InvalidInput("a chosen range needs both from and to (YYYY-MM-DD)")
        if end < start:
            raise InvalidInput("to is before from: give a period that ends after it starts")
        if (end - start).days > MAX_RANGE_DAYS:
            raise InvalidInput(f"a range may span at most {MAX_RANGE_DAYS} days")
        first, tomorrow = start, end + dt.timedelta(days=1)
    return dt.datetime.combine(first, dt.time()), dt.datetime.combine(tomorrow, dt.time())


def select(
    rows: Iterable[Mapping],
    *,
    user,
    grid_code: str | None = None,
    community_code: str | None = None,
    street_code: str | None = None,
    category_code: str | None = None,
    source: str | None = None,
) -> list[Mapping]:
    """Return the incidents in the user's scope that match the filters (as the store's list_incidents does)."""
    scope = cases.scope_of(user)
    wanted = {
        k: v
        for k, v in (
            ("grid_code", grid_code),
            ("community_code", community_code),
            ("street_code", street_code),
            ("category_code", category_code),
            ("source", source),
        )
        if v is not None
    }
    areas = set(scope) if scope is not None else None
    kept = []
    for row in rows:
        if areas is not None and not (
            row["grid_code"] in areas or row["community_code"] in areas or row["street_code"] in areas
        ):
            continue
        if any(row[k] != v for k, v in wanted.items()):
            continue
        kept.append(row)
    return kept


def _ranked(groups: list[dict], names: Mapping[str, str]) -> list[dict]:
    ranked = [
        {"code": g["key"], "name": names.get(g["key"]), "open": g["open"], "overdue": g["overdue"]}
        for g in groups
        if g["key"] is not None
    ]
    ranked.sort(key=lambda g: (-g["overdue"], -g["open"], g["code"]))
    return ranked


def _days(start: dt.datetime, end: dt.datetime) -> list[str]:
    count = (end.date() - start.date()).days
    return [(start.date() + dt.timedelta(days=i)).isoformat() for i in range(count)]


def build(
    rows: Sequence[Mapping],
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    names: Mapping[str, str] | None = None,
    category_names: Mapping[str, str] | None = None,
    light_of: Callable[[Mapping], str | None] | None = None,
) -> dict:
    """Return every figure of the dashboard for these (already selected) incidents and the period [start, end)."""
    names = names or {}
    cohort = [r for r in rows if start <= r["reported_at"] < end]
    headline = cases.indicators(cohort, now=now)
    days = _days(start, end)
    received = Counter(r["reported_at"].date().isoformat() for r in cohort)
    closed = Counter(
        r["closed_at"].date().isoformat()
        for r in rows
        if r["status"] == "closed" and r["closed_at"] is not None and start <= r["closed_at"] < end
    )
    weekly = cases.stats_of(cohort, by="week", now=now)["groups"]
    streets = _ranked(cases.stats_of(cohort, by="street", now=now)["groups"], names)
    communities = _ranked(cases.stats_of(cohort, by="community", now=now)["groups"], names)
    by_category = Counter(r["category_code"] for r in cohort)
    category_names = category_names or {}
    categories = [
        {"code": code, "name": category_names.get(code, code), "received": n}
        for code, n in sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0] or ""))[:TOP_CATEGORIES]
        if code is not None
    ]
    hours = [
        (r["closed_at"] - r["reported_at"]).total_seconds() / 3600
        for r in cohort
        if r["status"] == "closed" and r["closed_at"]
    ]
    bins = [0] * len(CLOSE_HOUR_BINS)
    for h in hours:
        i = len(CLOSE_HOUR_BINS) - 1
        while i > 0 and h < CLOSE_HOUR_BINS[i]:
            i -= 1
        bins[i] += 1
    open_rows = [r for r in cohort if r["status"] in cases.OPEN_STATUSES]
    light_of = light_of or (
        lambda r: cases.traffic_light(reported_at=r["reported_at"], deadline=r["deadline"], now=now)
    )
    lights = Counter(light_of(r) or "none" for r in open_rows)
    per_grid = Counter(map(itemgetter("grid_code"), open_rows))
    per_grid.pop(None, None)
    return {
        "as_of": now.replace(microsecond=0).isoformat(timespec="seconds"),
        "from": start.isoformat(timespec="seconds"),
        "to": end.isoformat(timespec="seconds"),
        "headline": headline,
        "daily": {"days": days, "received": [received[d] for d in days], "closed": [closed[d] for d in days]},
        "weekly": {
            "weeks": [g["key"] for g in weekly],
            "resolution_rate": [g["resolution_rate"] for g in weekly],
            "on_time_rate": [g["on_time_rate"] for g in weekly],
            "received": [g["received"] for g in weekly],
        },
        "streets": streets,
        "communities": communities,
        "categories": categories,
        "close_hours": {"edges": list(CLOSE_HOUR_BINS), "counts": bins},
        "lights": {k: lights.get(k, 0) for k in ("green", "yellow", "red", "none")},
        "grids": dict(sorted(per_grid.items())),
    }


def filter_choices(areas: Sequence[Mapping], *, user) -> dict[str, list[dict]]:
    """Return the streets and communities a user may filter by: those that hold some of their scope."""
    by_code = {a["code"]: a for a in areas}
    children: dict[str | None, list[Mapping]] = defaultdict(list)
    for area in areas:
        children[area["parent_code"]].append(area)
    if user.sees_all_areas:
        visible = {a["code"] for a in areas if a["level"] in ("street", "community")}
    else:
        visible = set()
        for code in user.areas:
            area = by_code.get(code)
            while area is not None:  # the area itself and every parent
                if area["level"] in ("street", "community"):
                    visible.add(area["code"])
                area = by_code.get(area["parent_code"])
            for child in children.get(code, ()):  # a street supervisor filters by its communities too
                if child["level"] == "community":
                    visible.add(child["code"])
    pick = sorted((a for a in areas if a["code"] in visible), key=itemgetter("code"))
    return {
        "streets": [{"code": a["code"], "name": a["name"]} for a in pick if a["level"] == "street"],
        "communities": [
            {"code": a["code"], "name": a["name"], "street": a["parent_code"]}
            for a in pick
            if a["level"] == "community"
        ],
    }
