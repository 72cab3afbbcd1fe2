"""The figures a proposal is judged by, before and after, over the communities it covers.

Households per grid come from the buildings, located by THE rule (`gridmap.assign`) in each edition; so do the
households and open cases changing grid (a household changes grid when its building's grid code differs).
The range applies to comprehensive (综合) grids only, as in the audit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import shapely

from gridmap.propose.cells import Frame, polsby_popper

DEDICATED = "专属"


def located(grids, communities, lons: Sequence[float], lats: Sequence[float]) -> list[str | None]:
    """Return the grid code of each point by THE rule, None outside every grid."""
    from gridmap import assign

    if not len(lons):
        return []
    if not len(grids):
        return [None] * len(lons)
    index = assign.index_from_frames(grids, communities)
    return index.locate_many(list(lons), list(lats), nearest=False).grid_codes()


def grid_stats(grids, households: Counter, *, low: int, high: int) -> dict:
    """Return the balance and shape figures of a set of grids (households from `households` by code)."""
    comprehensive = grids[grids["kind"] != DEDICATED]
    counts = np.array([households.get(c, 0) for c in comprehensive["code"]], dtype=float)
    outside = int(((counts < low) | (counts > high)).sum())
    pp = np.array([polsby_popper(g, Frame.around(g)) for g in grids.geometry]) if len(grids) else np.zeros(0)
    parts = shapely.get_num_geometries(np.asarray(grids.geometry.values, dtype=object)) if len(grids) else np.zeros(0)
    return {
        "grids": len(grids),
        "out_of_range": outside,
        "cv": round(float(counts.std() / counts.mean()), 4) if len(counts) and counts.mean() > 0 else None,
        "pp_median": round(float(np.median(pp)), 4) if len(pp) else None,
        "pp_min": round(float(pp.min()), 4) if len(pp) else None,
        "multipart": int((parts > 1).sum()),
    }


def proposal_figures(
    before, after, communities, buildings: Sequence[dict], open_cases: Sequence[dict], *, scope: Sequence[str], options
) -> dict:
    """Compare the grids of the scope's communities before and after (GeoDataFrames of two editions)."""
    chosen = set(scope)
    before_scope = before[before["parent_code"].isin(chosen)]
    after_scope = after[after["parent_code"].isin(chosen)]
    lons, lats = [b["lon"] for b in buildings], [b["lat"] for b in buildings]
    # Only the scope's grids change, so only they are indexed: elsewhere every answer is "not here" both times.
    was = located(before_scope, communities, lons, lats)
    now = located(after_scope, communities, lons, lats)
    in_scope_before, in_scope_after = set(before_scope["code"]), set(after_scope["code"])
    households_before, households_after = Counter(), Counter()
    moving = total = 0
    for b, old, new in zip(buildings, was, now, strict=True):
        households_before[old] += b["households"]
        households_after[new] += b["households"]
        if old in in_scope_before or new in in_scope_after:
            total += b["households"]
            moving += b["households"] if old != new else 0
    case_lons, case_lats = [c["lon"] for c in open_cases], [c["lat"] for c in open_cases]
    cases_was = located(before_scope, communities, case_lons, case_lats)
    cases_now = located(after_scope, communities, case_lons, case_lats)
    cases_moving = sum(1 for a, b in zip(cases_was, cases_now, strict=True) if a != b)
    low, high = options.households_min, options.households_max
    a = grid_stats(before_scope, households_before, low=low, high=high)
    b = grid_stats(after_scope, households_after, low=low, high=high)
    return {
        "grids": {"before": a["grids"], "after": b["grids"]},
        "out_of_range": {"before": a["out_of_range"], "after": b["out_of_range"]},
        "out_of_range_pct_after": round(100 * b["out_of_range"] / b["grids"], 2) if b["grids"] else 0.0,
        "cv": {"before": a["cv"], "after": b["cv"]},
        "polsby_popper": {
            "median_before": a["pp_median"],
            "median_after": b["pp_median"],
            "min_before": a["pp_min"],
            "min_after": b["pp_min"],
        },
        "multipart": {"before": a["multipart"], "after": b["multipart"]},
        "households": total,
        "households_moving": moving,
        "households_moving_pct": round(100 * moving / total, 2) if total else 0.0,
        "open_cases_moving": cases_moving,
    }
