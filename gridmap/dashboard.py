"""What the command dashboard (指挥中心) shows, computed from the cases; no Flask, no database.

Every figure comes from `casestats.indicators` over the cases the user may see, narrowed by the dashboard's
filters, so the headline equals `/api/stats` for the same filters and period: a case counts in a period
when it was *reported* in it (received; of those, closed, overdue, …). Only the daily chart counts flows:
cases received that day and cases closed that day, whenever they were reported.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter

from gridmap import casefields, cases, casestats, clock
from gridmap.errors import InvalidInput, Unprocessable

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
        # Each value is well-formed (the API's 400); together they cannot make a period (422).
        if start is None or end is None:
            raise Unprocessable("a chosen range needs both from and to (YYYY-MM-DD)")
        if end < start:
            raise Unprocessable("to is before from: give a period that ends after it starts")
        if (end - start).days > MAX_RANGE_DAYS:
            raise Unprocessable(f"a range may span at most {MAX_RANGE_DAYS} days")
        if end >= dt.date.max:
            raise Unprocessable(f"to must be before {dt.date.max.isoformat()}")
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


def _ranked(groups: Mapping[str | None, list[int]], names: Mapping[str, str]) -> list[dict]:
    ranked = [
        {"code": code, "name": names.get(code), "open": n_open, "overdue": n_overdue}
        for code, (n_open, n_overdue) in groups.items()
        if code is not None
    ]
    ranked.sort(key=lambda g: (-g["overdue"], -g["open"], g["code"]))
    return ranked


def _days(start: dt.datetime, end: dt.datetime) -> list[str]:
    count = (end.date() - start.date()).days
    return [(start.date() + dt.timedelta(days=i)).isoformat() for i in range(count)]


def _week(moment: dt.datetime) -> str:
    return "{}-W{:02d}".format(*moment.isocalendar()[:2])  # as cases.stats(by="week") names weeks


def build(
    rows: Sequence[Mapping],
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    names: Mapping[str, str] | None = None,
    category_names: Mapping[str, str] | None = None,
    calendar: cases.WorkingCalendar | None = None,
) -> dict:
    """Return every figure of the dashboard for these (already selected) incidents and the period [start, end).

    The headline is `casestats.indicators` itself (so it equals /api/stats); the charts are counted in one pass
    over the period's cases with the same rules (open, overdue, closed on time), because 50,000 cases through
    `indicators` once per week, street and community took seconds.
    """
    names = names or {}
    cohort = [r for r in rows if start <= r["reported_at"] < end]
    headline = casestats.indicators(cohort, now=now)
    open_statuses = frozenset(casefields.OPEN_STATUSES)
    received_on: Counter = Counter()
    weeks: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # received, closed, due, on time
    streets: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])  # open, overdue
    communities: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    by_category: Counter = Counter()
    per_grid: Counter = Counter()
    bins = [0] * len(CLOSE_HOUR_BINS)
    week_of_day: dict[dt.date, str] = {}
    open_rows: list[Mapping] = []
    for r in cohort:
        reported = r["reported_at"]
        day = reported.date()
        received_on[day] += 1
        week = week_of_day.get(day)
        if week is None:
            week = week_of_day[day] = _week(reported)
        counts = weeks[week]
        counts[0] += 1
        by_category[r["category_code"]] += 1
        status, deadline = r["status"], r["deadline"]
        if status == "closed":
            counts[1] += 1
            closed_at = r["closed_at"]
            if deadline is not None:
                counts[2] += 1
                if closed_at and closed_at <= deadline:
                    counts[3] += 1
            if closed_at:
                hours = (closed_at - reported).total_seconds() / 3600
                i = len(CLOSE_HOUR_BINS) - 1
                while i > 0 and hours < CLOSE_HOUR_BINS[i]:
                    i -= 1
                bins[i] += 1
        elif status in open_statuses:
            late = deadline is not None and now >= deadline
            counts[2] += late
            for table, code in ((streets, r["street_code"]), (communities, r["community_code"])):
                table[code][0] += 1
                table[code][1] += late
            if r["grid_code"] is not None:
                per_grid[r["grid_code"]] += 1
            open_rows.append(r)
    reported, deadlines = [r["reported_at"] for r in open_rows], [r["deadline"] for r in open_rows]
    lights = Counter(
        light or "none" for light in cases.traffic_lights_many(reported, deadlines, now=now, calendar=calendar)
    )
    closed_on: Counter = Counter(
        r["closed_at"].date()
        for r in rows
        if r["status"] == "closed" and r["closed_at"] is not None and start <= r["closed_at"] < end
    )
    days = _days(start, end)
    week_keys = sorted(weeks)
    category_names = category_names or {}
    categories = [
        {"code": code, "name": category_names.get(code, code), "received": n}
        for code, n in sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        if code is not None
    ][:TOP_CATEGORIES]
    return {
        "as_of": clock.iso(now.replace(microsecond=0)),  # times leave gridmap with their offset (+08:00)
        "from": clock.iso(start),
        "to": clock.iso(end),
        "headline": headline,
        "daily": {
            "days": days,
            "received": [received_on[dt.date.fromisoformat(d)] for d in days],
            "closed": [closed_on[dt.date.fromisoformat(d)] for d in days],
        },
        "weekly": {
            "weeks": week_keys,
            "resolution_rate": [casestats._rate(weeks[w][1], weeks[w][0]) for w in week_keys],
            "on_time_rate": [casestats._rate(weeks[w][3], weeks[w][2]) for w in week_keys],
            "received": [weeks[w][0] for w in week_keys],
        },
        "streets": _ranked(streets, names),
        "communities": _ranked(communities, names),
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
