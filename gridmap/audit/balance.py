"""Where incidents lie under an edition, and the workload balance of its grids (households, cases, staff)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import shapely

from gridmap import assign, clock
from gridmap.audit.areas import Areas, as_datetime
from gridmap.audit.options import CLOSED_STATUSES, DEDICATED_KIND, AuditOptions


class Located:
    """Where each incident lies under one edition, by assign's rule (boundary-inclusive, lowest code wins)."""

    def __init__(self, areas: Areas, incidents: Sequence[dict]) -> None:
        self.incidents = [p for p in incidents if p.get("lon") is not None and p.get("lat") is not None]
        grids = areas.by_level["grid"]
        grids = np.array([i for i in grids if areas.usable[i] and areas.position[areas.codes[i]] == i], dtype=np.int64)
        n = len(self.incidents)
        self.grid: list[int | None] = [None] * n
        self.ambiguous = [False] * n
        self.candidates: list[tuple[str, ...]] = [()] * n
        self.nearest: list[tuple[str | None, float | None]] = [(None, None)] * n
        if not n or not len(grids):
            return
        lons = np.array([float(p["lon"]) for p in self.incidents])
        lats = np.array([float(p["lat"]) for p in self.incidents])
        points = shapely.points(lons, lats)  # Point(lon, lat)
        tree = shapely.STRtree(areas.work[grids])
        # For a point, "intersects" is "covered by": the boundary counts, as the rule says.
        point_index, grid_index = tree.query(points, predicate="intersects")
        order = np.argsort(point_index, kind="stable")
        point_index, grid_index = point_index[order], grid_index[order]
        hits = np.bincount(point_index, minlength=n)
        start = np.searchsorted(point_index, np.arange(n))
        position = np.full(n, -1, dtype=np.int64)
        single = np.flatnonzero(hits == 1)
        position[single] = grids[grid_index[start[single]]]
        self.grid = [g if g >= 0 else None for g in position.tolist()]
        for p in np.flatnonzero(hits > 1).tolist():
            codes = [areas.codes[grids[g]] for g in grid_index[start[p] : start[p] + hits[p]].tolist()]
            code, ambiguous, candidates = assign.choose(codes)
            self.grid[p] = areas.position[code]
            self.ambiguous[p] = ambiguous
            self.candidates[p] = candidates
        lost = [p for p in range(n) if self.grid[p] is None]
        if lost:
            metric_grids = areas.metric.project(areas.work[grids])
            metric_points = areas.metric.project(points[lost])
            nearest_tree = shapely.STRtree(metric_grids)
            (which, target), distance = nearest_tree.query_nearest(
                metric_points, return_distance=True, all_matches=False
            )
            for w, t, d in zip(which.tolist(), target.tolist(), distance.tolist(), strict=True):
                self.nearest[lost[w]] = (areas.codes[grids[t]], round(float(d), 2))

    def code(self, areas: Areas, k: int) -> str | None:
        """Return the code of incident k's grid, or None."""
        return areas.codes[self.grid[k]] if self.grid[k] is not None else None


def is_open(incident: dict) -> bool:
    """Tell whether an incident is still open (not closed or rejected)."""
    return incident.get("status") not in CLOSED_STATUSES


def spread_stats(values: list[int]) -> dict:
    """Max/min ratio and coefficient of variation (population standard deviation over the mean)."""
    if not values:
        return {"max_min_ratio": None, "cv": None, "mean": None}
    array = np.array(values, dtype=float)
    mean = float(array.mean())
    low = float(array.min())
    return {
        "max_min_ratio": round(float(array.max()) / low, 3) if low > 0 else None,
        "cv": round(float(array.std()) / mean, 4) if mean > 0 else None,
        "mean": round(mean, 1),
    }


def _grid_rows(areas: Areas, located: Located, options: AuditOptions, households=None) -> list[dict]:
    as_of = options.as_of or clock.now()
    since = as_of - dt.timedelta(days=options.recent_days)
    open_cases: Counter = Counter()
    recent: Counter = Counter()
    for k, incident in enumerate(located.incidents):
        g = located.grid[k]
        if g is None:
            continue
        open_cases[g] += is_open(incident)
        when = as_datetime(incident.get("reported_at"))
        recent[g] += bool(when is not None and since <= when <= as_of)
    rows = []
    for i in areas.by_level["grid"]:
        i = int(i)
        count = areas.households[i] if households is None else households[i]
        applies = areas.kinds[i] != DEDICATED_KIND
        flag = None
        if applies and count is not None:
            flag = "below" if count < options.households_min else "above" if count > options.households_max else None
        rows.append(
            {
                "code": areas.codes[i],
                "name": areas.names[i],
                "community_code": areas.parents[i],
                "kind": areas.kinds[i],
                "households": count,
                "population": areas.population[i],
                "staff": areas.staff[i],
                "open_cases": open_cases[i],
                "recent_cases": recent[i],
                "area_m2": round(float(areas.area_m2[i]), 1),
                "compactness": round(float(areas.compactness[i]), 4),
                "households_flag": flag,
                "range_applies": applies,
            }
        )
    return rows


def workload_balance(areas: Areas, located: Located, options: AuditOptions, households=None) -> dict:
    grids = _grid_rows(areas, located, options, households)
    by_community: dict[str | None, list[dict]] = defaultdict(list)
    for row in grids:
        by_community[row["community_code"]].append(row)
    communities = []
    for code in sorted(by_community, key=lambda c: c or ""):
        rows = by_community[code]
        j = areas.position.get(code) if code else None
        counted = [r["households"] for r in rows if r["range_applies"] and r["households"] is not None]
        staff = [r["staff"] for r in rows if r["staff"] is not None]
        communities.append(
            {
                "code": code,
                "name": areas.names[j] if j is not None else None,
                "grids": len(rows),
                "households": sum(r["households"] or 0 for r in rows),
                "population": sum(r["population"] or 0 for r in rows),
                "open_cases": sum(r["open_cases"] for r in rows),
                "recent_cases": sum(r["recent_cases"] for r in rows),
                "staff": sum(staff) if staff else None,
                "outside_range": sum(r["households_flag"] is not None for r in rows),
                **spread_stats(counted),
            }
        )
    counted = [r["households"] for r in grids if r["range_applies"] and r["households"] is not None]
    has_staff = any(r["staff"] is not None for r in grids)
    return {
        "households_range": [options.households_min, options.households_max],
        "recent_days": options.recent_days,
        "grids": grids,
        "communities": communities,
        "outside_range": [
            {"code": r["code"], "households": r["households"], "flag": r["households_flag"]}
            for r in grids
            if r["households_flag"] is not None
        ],
        "totals": {
            "grids": len(grids),
            "households": sum(r["households"] or 0 for r in grids),
            "population": sum(r["population"] or 0 for r in grids),
            "open_cases": sum(r["open_cases"] for r in grids),
            "recent_cases": sum(r["recent_cases"] for r in grids),
            "staff": sum(r["staff"] or 0 for r in grids) if has_staff else None,
            "households_unknown": sum(r["households"] is None for r in grids),
            **spread_stats(counted),
        },
        "staff_note": None if has_staff else "no staff numbers are stored for this edition's grids",
        "range_note": "the households range applies to comprehensive grids, not dedicated ones",
    }


def incident_lists(areas: Areas, located: Located) -> dict:
    unassigned, ambiguous = [], []
    for k, incident in enumerate(located.incidents):
        base = {
            "id": incident.get("id"),
            "lon": round(float(incident["lon"]), 7),
            "lat": round(float(incident["lat"]), 7),
            "status": incident.get("status"),
        }
        g = located.grid[k]
        if g is None:
            nearest, distance = located.nearest[k]
            unassigned.append({**base, "nearest_code": nearest, "nearest_distance_m": distance})
        elif located.ambiguous[k]:
            community = areas.parents[g]
            c = areas.position.get(community) if community else None
            ambiguous.append(
                {
                    **base,
                    "grid_code": areas.codes[g],
                    "community_code": community,
                    "street_code": areas.parents[c] if c is not None else None,
                    "candidates": list(located.candidates[k]),
                }
            )
    return {"unassigned": unassigned, "ambiguous": ambiguous}
