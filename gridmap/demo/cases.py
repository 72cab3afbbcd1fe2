"""Demo cases: open and closed incidents at random points of the grids, in the statuses, sources and ages a busy
district shows mid-month. Rows are plain dicts for `Store.add_incidents`; the caller assigns them to grids.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from gridmap.demo.district import DEFAULT_SEED

# Open statuses in the proportions a busy district shows mid-month (most cases are being worked on).
DEMO_OPEN_STATUSES = {"reported": 0.10, "registered": 0.15, "dispatched": 0.20, "in_progress": 0.40, "resolved": 0.15}
DEMO_SOURCES = {"patrol": 0.45, "hotline": 0.25, "visit": 0.12, "chat": 0.10, "video": 0.05, "higher": 0.03}
DEMO_DETAILS = ("请尽快处理", "居民多次反映", "影响出行", "夜间尤为严重", "已拍照留存", "涉及多户居民")


def generate_cases(
    grids: gpd.GeoDataFrame,
    categories: list[dict],
    count: int,
    *,
    now,
    deadline_for,
    closed: int = 0,
    seed: int = DEFAULT_SEED,
) -> list[dict]:
    """Make `count` open cases (and `closed` closed ones) at random points of the grids, weighted by households.

    `deadline_for(code, reported_at)` gives each case its deadline; reports fall in the last 30 days.
    """
    import datetime as dt

    rng = np.random.default_rng(seed)
    total = count + closed
    weights = grids["households"].fillna(0).to_numpy(dtype=float) + 1.0
    chosen = rng.choice(len(grids), size=total, p=weights / weights.sum())
    geometries = grids.geometry.to_numpy()
    lons, lats = np.empty(total), np.empty(total)
    for grid in np.unique(chosen):
        where = np.flatnonzero(chosen == grid)
        lons[where], lats[where] = _points_in(geometries[grid], len(where), rng)
    statuses = list(DEMO_OPEN_STATUSES)
    status_of = rng.choice(len(statuses), size=total, p=list(DEMO_OPEN_STATUSES.values()))
    sources = list(DEMO_SOURCES)
    source_of = rng.choice(len(sources), size=total, p=list(DEMO_SOURCES.values()))
    category_of = rng.integers(0, len(categories), size=total)
    # Open cases are mostly recent (a working team keeps up), so the traffic lights show a mix; closed ones are
    # spread over the month.
    minutes_ago = (
        np.concatenate([rng.exponential(2 * 24 * 60, size=count), rng.uniform(0, 30 * 24 * 60, size=closed)])
        .clip(10, 30 * 24 * 60 - 1)
        .astype(int)
    )
    rows = []
    for i in range(total):
        category = categories[int(category_of[i])]
        reported_at = (now - dt.timedelta(minutes=int(minutes_ago[i]))).replace(second=0, microsecond=0)
        status = "closed" if i >= count else statuses[int(status_of[i])]
        deadline = deadline_for(category["code"], reported_at)
        row = {
            "source_id": f"DEMO{i + 1:07d}",
            "source": sources[int(source_of[i])],
            "title": category["name"],
            "description": f"{category['name']}，{DEMO_DETAILS[i % len(DEMO_DETAILS)]}",
            "category_code": category["code"],
            "reported_at": reported_at,
            "reporter_name": f"居民{i % 977:03d}",
            "reporter_phone": f"13{int(rng.integers(0, 10))}{int(rng.integers(10**7, 10**8)):08d}",
            "lon": round(float(lons[i]), 7),
            "lat": round(float(lats[i]), 7),
            "status": status,
            "deadline": deadline,
        }
        if status == "closed":
            row["resolved_at"] = row["closed_at"] = min(now, reported_at + (deadline - reported_at) * 0.7)
        rows.append(row)
    return rows


def _points_in(polygon, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = polygon.bounds
    xs, ys = np.empty(0), np.empty(0)
    while len(xs) < count:
        x = rng.uniform(minx, maxx, count * 2)
        y = rng.uniform(miny, maxy, count * 2)
        inside = shapely.contains_xy(polygon, x, y)
        xs, ys = np.concatenate([xs, x[inside]]), np.concatenate([ys, y[inside]])
    return xs[:count], ys[:count]
