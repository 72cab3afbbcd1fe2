"""The audit's figures: the map of findings, the households histogram and the CV bars, as inline SVG data.

Drawn from the data on the server so the report needs no script and no network; every name reaches the page
through the templates' autoescaping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import shapely

from gridmap.audit.options import FINDING_KINDS

MAP_WIDTH = 960.0
BASE_GRID_LIMIT = 4000  # above this many grids the map draws community outlines only (SVG slows down)


class _Canvas:
    """Map lon/lat into SVG units: x east, y down, a degree of longitude shortened by cos(latitude)."""

    def __init__(self, bounds: Sequence[float], width: float = MAP_WIDTH, margin: float = 12.0) -> None:
        minx, miny, maxx, maxy = bounds
        self.kx = math.cos(math.radians((miny + maxy) / 2))
        span_x = max((maxx - minx) * self.kx, 1e-9)
        span_y = max(maxy - miny, 1e-9)
        self.scale = (width - 2 * margin) / max(span_x, span_y * 0.75)
        self.minx, self.maxy, self.margin = minx, maxy, margin
        self.width = width
        self.height = round(span_y * self.scale + 2 * margin, 1)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (
            round((lon - self.minx) * self.kx * self.scale + self.margin, 1),
            round((self.maxy - lat) * self.scale + self.margin, 1),
        )

    def path(self, geom: shapely.Geometry | None) -> str:
        if geom is None or geom.is_empty:
            return ""
        commands = []
        for polygon in shapely.get_parts(geom):
            if polygon.geom_type != "Polygon":
                continue
            for ring in (polygon.exterior, *polygon.interiors):
                coords = shapely.get_coordinates(ring)
                x = np.round((coords[:, 0] - self.minx) * self.kx * self.scale + self.margin, 1)
                y = np.round((self.maxy - coords[:, 1]) * self.scale + self.margin, 1)
                commands.append("M" + " ".join(f"{a:g},{b:g}" for a, b in zip(x, y, strict=True)) + "Z")
        return "".join(commands)


def _bounds(geoms: Iterable) -> list[float]:
    present = [g for g in geoms if g is not None and not g.is_empty]
    if not present:
        return [0.0, 0.0, 1.0, 1.0]
    return list(shapely.total_bounds(np.array(present, dtype=object)))


def _histogram(values: list[int], low: int, high: int, second: list[int] | None = None) -> dict:
    """Bars of households per grid in bins of 50, with the guideline range as a band."""
    width, height, left, bottom = 640.0, 220.0, 40.0, 30.0
    everything = values + (second or [])
    top = max([*everything, high]) + 50
    step = 50
    bins = np.arange(0, top + step, step)
    counts = np.histogram(values, bins=bins)[0] if values else np.zeros(len(bins) - 1, dtype=int)
    counts2 = np.histogram(second, bins=bins)[0] if second else None
    peak = max(1, int(counts.max(initial=0)), int(counts2.max(initial=0)) if counts2 is not None else 0)
    plot_w, plot_h = width - left - 10, height - bottom - 10
    bar_w = plot_w / len(counts)

    def x_of(v: float) -> float:
        return round(left + v / bins[-1] * plot_w, 1)

    def bars(series: np.ndarray, shift: float, share: float) -> list[dict]:
        out = []
        for k, c in enumerate(series.tolist()):
            # A bin holding even one grid stays visible next to a bin of thousands.
            h = max(round(c / peak * plot_h, 1), 2.0) if c else 0.0
            out.append(
                {
                    "x": round(left + k * bar_w + shift, 1),
                    "y": round(10 + plot_h - h, 1),
                    "w": round(bar_w * share - 1, 1),
                    "h": h,
                    "count": int(c),
                    "label": f"{int(bins[k])}–{int(bins[k + 1])}",
                }
            )
        return out

    half = 0.5 if counts2 is not None else 1.0
    ticks = [{"x": x_of(v), "label": str(int(v))} for v in bins[:: max(1, len(bins) // 8)]]
    return {
        "width": width,
        "height": height,
        "axis_y": round(10 + plot_h, 1),
        "left": left,
        "peak": peak,
        "band": {"x": x_of(low), "w": round(x_of(high) - x_of(low), 1)},
        "bars": bars(counts, 0.0, half),
        "bars_b": bars(counts2, bar_w * 0.5, half) if counts2 is not None else [],
        "ticks": ticks,
    }


def _cv_bars(communities: list[dict], limit: int = 30) -> dict:
    rows = sorted((c for c in communities if c.get("cv") is not None), key=lambda c: -c["cv"])[:limit]
    peak = max([c["cv"] for c in rows] + [0.5])
    bar_h, label_w, width = 16.0, 200.0, 640.0
    return {
        "width": width,
        "height": round(len(rows) * bar_h + 10, 1),
        "bars": [
            {
                "y": round(k * bar_h + 5, 1),
                "w": round(c["cv"] / peak * (width - label_w - 60), 1),
                "x": label_w,
                "label": c["name"] or c["code"],
                "code": c["code"],
                "value": c["cv"],
                "ratio": c["max_min_ratio"],
            }
            for k, c in enumerate(rows)
        ],
    }


def audit_figures(frame, report: dict) -> dict:
    """Turn an audit into SVG shapes: a map of the findings and the balance plots."""
    levels = list(frame["level"]) if len(frame) else []
    geoms = list(frame.geometry) if len(frame) else []
    codes = list(frame["code"]) if len(frame) else []
    canvas = _Canvas(_bounds(geoms))
    grid_count = levels.count("grid")
    base_level = "grid" if grid_count <= BASE_GRID_LIMIT else "community"
    base = [
        {"d": canvas.path(g), "code": c, "level": lv}
        for g, c, lv in zip(geoms, codes, levels, strict=True)
        if lv in (base_level, "community", "street") and g is not None
    ]
    marks = []
    for kind in FINDING_KINDS:
        for finding in report[kind]:
            geometry = shapely.from_geojson(json.dumps(finding["geometry"])) if finding["geometry"] else None
            cx, cy = canvas.xy(*finding["point"]) if finding["point"] else (None, None)
            marks.append(
                {
                    "kind": kind,
                    "sub": finding["kind"],
                    "d": canvas.path(geometry),
                    "cx": cx,
                    "cy": cy,
                    "title": f"{finding['kind']} {' '.join(finding['codes'])} {finding['area_m2']:g} m²",
                }
            )
    points = []
    for which in ("unassigned", "ambiguous"):
        for incident in report["incidents"][which]:
            x, y = canvas.xy(incident["lon"], incident["lat"])
            points.append({"kind": which, "cx": x, "cy": y, "title": f"incident {incident['id']} ({which})"})
    balance = report["balance"]
    low, high = balance["households_range"]
    values = [r["households"] for r in balance["grids"] if r["range_applies"] and r["households"] is not None]
    return {
        "map": {
            "width": canvas.width,
            "height": canvas.height,
            "base": base,
            "marks": marks,
            "points": points,
            "base_level": base_level,
        },
        "histogram": _histogram(values, low, high),
        "cv": _cv_bars(balance["communities"]),
    }


def compare_figures(old_frame, new_frame, report: dict) -> dict:
    """Turn a comparison into SVG shapes: the changed grids over the old boundaries, moved cases, histograms."""
    old_grids = old_frame[old_frame["level"] == "grid"] if len(old_frame) else old_frame
    new_grids = new_frame[new_frame["level"] == "grid"] if len(new_frame) else new_frame
    canvas = _Canvas(_bounds([*old_grids.geometry, *new_grids.geometry]))
    status = {g["code"]: g["status"] for g in report["grids"]}
    new_shapes = [
        {"d": canvas.path(g), "code": c, "status": status.get(c, "unchanged")}
        for c, g in zip(new_grids["code"], new_grids.geometry, strict=True)
    ]
    kept = {g["code"] for g in report["grids"] if g["status"] == "unchanged"}
    old_shapes = [
        {"d": canvas.path(g), "code": c}
        for c, g in zip(old_grids["code"], old_grids.geometry, strict=True)
        if c not in kept
    ]
    moved = []
    for case in report["cases"]["moved"]:
        x, y = canvas.xy(case["lon"], case["lat"])
        moved.append(
            {"cx": x, "cy": y, "open": case["open"], "title": f"incident {case['id']}: {case['from']} → {case['to']}"}
        )
    low, high = report["balance"]["a"]["households_range"]
    before = [r["households"] for r in report["balance"]["a"]["grids"] if r["households"] is not None]
    after = [r["households"] for r in report["balance"]["b"]["grids"] if r["households"] is not None]
    return {
        "map": {"width": canvas.width, "height": canvas.height, "new": new_shapes, "old": old_shapes, "moved": moved},
        "histogram": _histogram(before, low, high, second=after),
    }
