"""Plan-vs-plan comparison: where each new grid's land, households and cases come from."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import shapely

from gridmap.audit.areas import Areas
from gridmap.audit.balance import Located, is_open, workload_balance
from gridmap.audit.measure import Metric, polygons, rounded_m2
from gridmap.audit.options import AuditOptions


def _area_flows(old: Areas, new: Areas, tolerance: float) -> tuple[dict[int, list[tuple[int, float]]], set[int]]:
    """Return {new grid: [(old grid, m² it takes from it)]} and the new grids whose code and boundary are unchanged."""
    old_grids = np.array([i for i in old.by_level["grid"] if old.usable[i]], dtype=np.int64)
    new_grids = np.array([i for i in new.by_level["grid"] if new.usable[i]], dtype=np.int64)
    flows: dict[int, list[tuple[int, float]]] = defaultdict(list)
    same_shape: set[int] = set()
    if not len(old_grids) or not len(new_grids):
        return flows, same_shape
    tree = shapely.STRtree(old.work[old_grids])
    target, source = tree.query(new.work[new_grids], predicate="intersects")
    new_i, old_i = new_grids[target], old_grids[source]
    same = np.array([new.codes[n] == old.codes[o] for n, o in zip(new_i.tolist(), old_i.tolist(), strict=True)])
    unchanged = np.zeros(len(new_i), dtype=bool)
    if same.any():
        unchanged[same] = shapely.equals(new.work[new_i[same]], old.work[old_i[same]])
    same_shape.update(new_i[unchanged].tolist())
    # Only pairs whose interiors meet are intersected: most candidates merely touch along an edge.
    overlay = ~unchanged
    if overlay.any():
        meet = shapely.relate_pattern(new.work[new_i[overlay]], old.work[old_i[overlay]], "2********")
        overlay[np.flatnonzero(overlay)[~meet]] = False
    areas = np.zeros(len(new_i))
    areas[unchanged] = new.area_m2[new_i[unchanged]]
    if overlay.any():
        parts, owner = polygons(shapely.intersection(new.work[new_i[overlay]], old.work[old_i[overlay]]))
        if len(parts):
            areas[np.flatnonzero(overlay)] = np.bincount(owner, weights=new.metric.area(parts), minlength=overlay.sum())
    for n, o, m2 in zip(new_i.tolist(), old_i.tolist(), areas.tolist(), strict=True):
        if m2 >= tolerance and m2 > 0:
            flows[n].append((o, m2))
    return flows, same_shape


def _moved_cases(old: Areas, new: Areas, before: Located, after: Located) -> list[dict]:
    """Return the incidents whose grid differs between the two editions."""
    moved = []
    for k, incident in enumerate(before.incidents):
        was, now = before.code(old, k), after.code(new, k)
        if was != now:
            moved.append(
                {
                    "id": incident.get("id"),
                    "status": incident.get("status"),
                    "from": was,
                    "to": now,
                    "lon": round(float(incident["lon"]), 7),
                    "lat": round(float(incident["lat"]), 7),
                    "open": is_open(incident),
                }
            )
    return moved


def compare_areas(
    old_frame,
    new_frame,
    incidents: Sequence[dict] = (),
    *,
    options: AuditOptions | None = None,
    a: str = "A",
    b: str = "B",
) -> dict:
    """Compare two editions' grids: where each new grid's land, households and cases come from."""
    started = time.perf_counter()
    options = options or AuditOptions()
    both = np.concatenate(
        [np.array(list(old_frame.geometry), dtype=object), np.array(list(new_frame.geometry), dtype=object)]
    )
    metric = Metric(both[[g is not None for g in both]]) if len(both) else Metric(both)
    old, new = Areas(old_frame, metric), Areas(new_frame, metric)
    flows, same_shape = _area_flows(old, new, options.area_tolerance_m2)
    old_codes = {old.codes[i] for i in old.by_level["grid"]}
    new_codes = {new.codes[i] for i in new.by_level["grid"]}

    def estimate(o: int, m2: float) -> float | None:
        households = old.households[o]
        if households is None or old.area_m2[o] <= 0:
            return None
        return households * min(1.0, m2 / old.area_m2[o])

    grids, estimated_households, moving_households = [], {}, 0.0
    goes_to: dict[int, list[dict]] = defaultdict(list)
    for n in new.by_level["grid"].tolist():
        sources = []
        total_estimate = 0.0
        known = True
        for o, m2 in sorted(flows.get(n, []), key=lambda f: -f[1]):
            households = estimate(o, m2)
            known = known and households is not None
            total_estimate += households or 0.0
            if old.codes[o] != new.codes[n]:
                moving_households += households or 0.0
            share = m2 / old.area_m2[o] if old.area_m2[o] > 0 else None
            sources.append(
                {
                    "code": old.codes[o],
                    "name": old.names[o],
                    "area_m2": rounded_m2(m2),
                    "share_of_old": round(share, 4) if share is not None else None,
                    "households_estimated": round(households, 1) if households is not None else None,
                }
            )
            goes_to[o].append({"code": new.codes[n], "name": new.names[n], "area_m2": rounded_m2(m2)})
        if new.codes[n] not in old_codes:
            status = "new"
        elif n in same_shape:
            status = "unchanged"
        else:
            status = "changed"
        estimated_households[n] = round(total_estimate) if sources and known else None
        grids.append(
            {
                "code": new.codes[n],
                "name": new.names[n],
                "community_code": new.parents[n],
                "status": status,
                "area_m2": round(float(new.area_m2[n]), 1),
                "households": new.households[n],
                "households_estimated": estimated_households[n],
                "sources": sources,
            }
        )
    retired = [
        {
            "code": old.codes[o],
            "name": old.names[o],
            "households": old.households[o],
            "goes_to": sorted(goes_to.get(o, []), key=lambda f: -f["area_m2"]),
        }
        for o in old.by_level["grid"].tolist()
        if old.codes[o] not in new_codes
    ]
    uncovered = 0.0
    for o in old.by_level["grid"].tolist():
        covered = sum(f["area_m2"] for f in goes_to.get(o, []))
        if old.households[o] is not None and old.area_m2[o] > 0:
            uncovered += old.households[o] * max(0.0, 1 - covered / old.area_m2[o])

    before, after = Located(old, incidents), Located(new, incidents)
    moved = _moved_cases(old, new, before, after)
    new_households = {
        n: new.households[n] if new.households[n] is not None else estimated_households.get(n)
        for n in new.by_level["grid"].tolist()
    }
    balance_a = workload_balance(old, before, options)
    balance_b = workload_balance(new, after, options, households=new_households)
    communities = _compare_communities(balance_a, balance_b)
    open_moving = [m for m in moved if m["open"]]
    counts = Counter(g["status"] for g in grids)
    return {
        "a": a,
        "b": b,
        "grids": grids,
        "retired": retired,
        "households": {"moving": round(moving_households), "left_uncovered": round(uncovered)},
        "cases": {"open_moving": len(open_moving), "moving": len(moved), "moved": moved},
        "balance": {
            "a": _balance_digest(balance_a),
            "b": _balance_digest(balance_b),
            "communities": communities,
            "households_source": "stored where the new edition has them, else estimated by area share",
        },
        "summary": {
            "a": a,
            "b": b,
            "grids": {"a": len(old.by_level["grid"]), "b": len(new.by_level["grid"])},
            "new": counts.get("new", 0),
            "changed": counts.get("changed", 0),
            "unchanged": counts.get("unchanged", 0),
            "retired": len(retired),
            "households_moving": round(moving_households),
            "open_cases_moving": len(open_moving),
            "cases_moving": len(moved),
            "options": options.to_dict(),
            "metric_crs": metric.describe(),
            "seconds": round(time.perf_counter() - started, 3),
        },
    }


def _balance_digest(balance: dict) -> dict:
    return {
        "totals": balance["totals"],
        "outside_range": len(balance["outside_range"]),
        "households_range": balance["households_range"],
        "grids": [
            {k: r[k] for k in ("code", "community_code", "households", "open_cases", "households_flag")}
            for r in balance["grids"]
        ],
    }


def _compare_communities(a: dict, b: dict) -> list[dict]:
    before = {c["code"]: c for c in a["communities"]}
    after = {c["code"]: c for c in b["communities"]}
    rows = []
    for code in sorted(set(before) | set(after), key=lambda c: c or ""):
        x, y = before.get(code, {}), after.get(code, {})
        rows.append(
            {
                "code": code,
                "name": y.get("name") or x.get("name"),
                **{
                    f"{key}_{side}": row.get(key)
                    for key in ("grids", "households", "open_cases", "outside_range", "cv", "max_min_ratio")
                    for side, row in (("a", x), ("b", y))
                },
            }
        )
    return rows


def compare_lines(report: dict, *, limit: int = 20) -> list[str]:
    """Describe a comparison in a few lines of text."""
    s = report["summary"]
    lines = [
        f"{s['a']} → {s['b']}: {s['grids']['a']} → {s['grids']['b']} grids; {s['new']} new, {s['changed']} changed, "
        f"{s['unchanged']} unchanged, {s['retired']} retired",
        f"households changing grid (estimated by area share): {s['households_moving']}",
        f"open cases changing grid: {s['open_cases_moving']} (all cases: {s['cases_moving']})",
    ]
    changed = [g for g in report["grids"] if g["status"] != "unchanged"]
    for grid in changed[:limit]:
        sources = (
            ", ".join(f"{_label(src['code'], src.get('name'))} {src['area_m2']:g} m²" for src in grid["sources"])
            or "no old grid"
        )
        lines.append(f"  {grid['status']} {_label(grid['code'], grid.get('name'))}: from {sources}")
    if len(changed) > limit:
        lines.append(f"  … and {len(changed) - limit} more (use --json or --html for all)")
    ta, tb = report["balance"]["a"], report["balance"]["b"]
    lines.append(
        f"balance: outside range {ta['outside_range']} → {tb['outside_range']}, "
        f"CV {ta['totals']['cv']} → {tb['totals']['cv']}, max/min {ta['totals']['max_min_ratio']} → "
        f"{tb['totals']['max_min_ratio']}"
    )
    return lines


def _label(code: str, name: str | None) -> str:
    return f"{code} {name}" if name and name != code else code
