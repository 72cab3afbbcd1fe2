"""Time the coverage audit on a 15,000-grid tiling with planted defects, and check every defect is found.

    .venv/bin/python bench/bench_audit.py [--grids 15000] [--incidents 50000] [--spatialite]

The tiling is a jittered lattice (neighbours share their vertices exactly, as real data exported from one
editor does): 15 streets × 10 communities × 100 grids, each grid edge split into 4 segments. Then one of each
defect is planted, each in its own community: a missing grid (a gap), a grid stretched over half its neighbour
(an overlap), a grid pushed out of the district (outside its community), a grid pushed into the next
community (outside and across), a bow-tie, a thin strip split off a grid (a sliver), a code that does not start
with its community's, a duplicated code and a duplicated geometry. Incidents are scattered at random, some in
the gap and some on shared edges. The target is under 5 s on 2 cores; the exit status is non-zero when a
planted defect is missed. `--spatialite` also loads the tiling into a scratch SpatiaLite file and times the
audit through the store (what `gridmap audit` does), without the duplicated code the database refuses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

from gridmap import audit
from gridmap.store import AreaRecord, Store

# The hard test files are built by code in tests/fixtures; the benches use the same builders.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.tilings import false_gap_district, geodesic_area_m2

TARGET_SECONDS = 5.0
CELL = 0.001  # degrees: a grid about 86 m × 111 m near 39° N
SUB = 4  # vertices per grid edge
WEST, SOUTH = 117.0, 39.0


class Lattice:
    """Shared, jittered vertices: every ring built from them tiles exactly with its neighbours."""

    def __init__(self, nx: int, ny: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        xs = WEST + np.arange(nx * SUB + 1) * CELL / SUB
        ys = SOUTH + np.arange(ny * SUB + 1) * CELL / SUB
        self.x, self.y = np.meshgrid(xs, ys, indexing="ij")
        jitter = CELL / SUB * 0.2
        # The outer border stays straight so nothing pokes out of the district by accident.
        self.x[1:-1, :] += rng.uniform(-jitter, jitter, (nx * SUB - 1, ny * SUB + 1))
        self.y[:, 1:-1] += rng.uniform(-jitter, jitter, (nx * SUB + 1, ny * SUB - 1))

    def ring(self, i0: int, j0: int, i1: int, j1: int) -> shapely.Polygon:
        """Return the polygon of cells [i0, i1) × [j0, j1), walking every lattice vertex on its border."""
        a, b, c, d = i0 * SUB, j0 * SUB, i1 * SUB, j1 * SUB
        walk = (
            [(i, b) for i in range(a, c)]
            + [(c, j) for j in range(b, d)]
            + [(i, d) for i in range(c, a, -1)]
            + [(a, j) for j in range(d, b, -1)]
        )
        return shapely.Polygon([(self.x[i, j], self.y[i, j]) for i, j in walk])


def build(grids: int = 15_000, seed: int = 7) -> tuple[gpd.GeoDataFrame, dict]:
    """Build the tiling and plant one of each defect; return the areas and what was planted."""
    # Always 15 × 10 communities in 15 streets; `grids` sets how many grids a community holds (at least 6 × 6,
    # which the planted defects need).
    communities_x, communities_y = 15, 10
    per_side = max(6, round((grids / (communities_x * communities_y)) ** 0.5))
    nx, ny = communities_x * per_side, communities_y * per_side
    lattice = Lattice(nx, ny, seed)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    street_cols, street_rows = 5, 2
    street_number = 0
    community_of: dict[tuple[int, int], str] = {}
    for sx in range(0, communities_x, street_cols):
        for sy in range(0, communities_y, street_rows):
            street_number += 1
            street = f"120104{street_number:03d}"
            rows.append(
                {
                    "code": street,
                    "name": f"第{street_number}街道",
                    "level": "street",
                    "parent_code": None,
                    "geometry": lattice.ring(
                        sx * per_side, sy * per_side, (sx + street_cols) * per_side, (sy + street_rows) * per_side
                    ),
                }
            )
            number = 0
            for cx in range(sx, sx + street_cols):
                for cy in range(sy, sy + street_rows):
                    number += 1
                    community = f"{street}{number:03d}"
                    community_of[cx, cy] = community
                    rows.append(
                        {
                            "code": community,
                            "name": f"第{street_number}街道第{number}社区",
                            "level": "community",
                            "parent_code": street,
                            "geometry": lattice.ring(
                                cx * per_side, cy * per_side, (cx + 1) * per_side, (cy + 1) * per_side
                            ),
                        }
                    )
                    sequence = 0
                    # Numbered west→east, north→south, as the standard says.
                    for gy in reversed(range(per_side)):
                        for gx in range(per_side):
                            sequence += 1
                            i, j = cx * per_side + gx, cy * per_side + gy
                            rows.append(
                                {
                                    "code": f"{community}{sequence:03d}",
                                    "name": f"网格{sequence}",
                                    "level": "grid",
                                    "parent_code": community,
                                    "kind": "综合",
                                    "households": int(rng.integers(320, 480)),
                                    "population": int(rng.integers(800, 1400)),
                                    "staff": int(rng.integers(1, 4)),
                                    "geometry": lattice.ring(i, j, i + 1, j + 1),
                                    "cell": (i, j),
                                }
                            )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    planted = plant(frame.drop(columns=["cell"]), community_of, per_side)
    return planted.pop("frame"), planted


def plant(frame: gpd.GeoDataFrame, community_of: dict, per_side: int) -> dict:
    """Plant one defect per community (communities far apart so the defects do not meet)."""
    grids = frame[frame.level == "grid"]
    by_code = {code: index for index, code in zip(grids.index, grids.code, strict=True)}

    def grid(cx: int, cy: int, gx: int, gy: int) -> str:
        sequence = (per_side - 1 - gy) * per_side + gx + 1
        return f"{community_of[cx, cy]}{sequence:03d}"

    def geometry(code: str) -> shapely.Geometry:
        return frame.at[by_code[code], "geometry"]

    planted: dict = {}
    # 1. A missing grid: a gap of exactly its area in community (1, 1).
    missing = grid(1, 1, 4, 4)
    planted["gap"] = {"community": community_of[1, 1], "grid": missing, "area": geometry(missing)}
    # 2. A grid stretched over the western half of its eastern neighbour, in community (3, 1).
    a, b = grid(3, 1, 4, 4), grid(3, 1, 5, 4)
    bx0, by0, bx1, by1 = geometry(b).bounds
    half = shapely.intersection(geometry(b), box(bx0 - 1, by0 - 1, (bx0 + bx1) / 2, by1 + 1))
    frame.at[by_code[a], "geometry"] = shapely.union(geometry(a), half)
    planted["overlap"] = {"codes": sorted([a, b]), "area": half}
    # 3. A grid on the district's southern border pushed 30 % of a cell south: outside its community.
    south = grid(5, 0, 4, 0)
    frame.at[by_code[south], "geometry"] = shapely.affinity.translate(geometry(south), yoff=-0.3 * CELL)
    planted["outside"] = {"grid": south, "community": community_of[5, 0]}
    # 4. A grid on a community border stretched into the next community (outside, across, and an overlap).
    west, east = grid(7, 1, per_side - 1, 4), grid(8, 1, 0, 4)
    ex0, ey0, ex1, ey1 = geometry(east).bounds
    strip = shapely.intersection(geometry(east), box(ex0 - 1, ey0 - 1, ex0 + 0.25 * (ex1 - ex0), ey1 + 1))
    frame.at[by_code[west], "geometry"] = shapely.union(geometry(west), strip)
    planted["across"] = {"grid": west, "community": community_of[7, 1], "into": community_of[8, 1], "area": strip}
    # 5. A bow-tie: two corners of a grid swapped.
    bowtie = grid(10, 1, 4, 4)
    x0, y0, x1, y1 = geometry(bowtie).bounds
    frame.at[by_code[bowtie], "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    planted["bowtie"] = bowtie
    # 6. A thin strip (4 % of the width) split off a grid under a new code: a sliver.
    split = grid(12, 1, 4, 4)
    sx0, sy0, sx1, sy1 = geometry(split).bounds
    cut = box(sx0 - 1, sy0 - 1, sx0 + 0.04 * (sx1 - sx0), sy1 + 1)
    sliver_code = f"{community_of[12, 1]}901"
    original = geometry(split)
    frame.at[by_code[split], "geometry"] = shapely.difference(original, cut)
    sliver = {**frame.loc[by_code[split]].to_dict(), "code": sliver_code, "name": "细条"}
    sliver["geometry"] = shapely.intersection(original, cut)
    planted["sliver"] = sliver_code
    # 7. A code that does not start with its community's code.
    wrong = grid(1, 3, 2, 2)
    frame.at[by_code[wrong], "code"] = "120104999999" + wrong[-3:]
    planted["bad_code"] = "120104999999" + wrong[-3:]
    # 8. The same geometry under a second code (a duplicate) and a second area reusing a code.
    twin = grid(3, 3, 2, 2)
    twin_code = f"{community_of[3, 3]}902"
    extra = [
        {**frame.loc[by_code[twin]].to_dict(), "code": twin_code, "name": "重复"},
    ]
    reused = grid(5, 3, 2, 2)
    reuse_target = grid(5, 3, 3, 2)
    frame.at[by_code[reuse_target], "code"] = reused
    planted["duplicate_geometry"] = sorted([twin, twin_code])
    planted["duplicate_code"] = reused
    # 9. Households outside the guideline.
    frame.at[by_code[grid(7, 3, 1, 1)], "households"] = 900
    frame.at[by_code[grid(7, 3, 2, 1)], "households"] = 40
    planted["households"] = {grid(7, 3, 1, 1): "above", grid(7, 3, 2, 1): "below"}
    frame = frame.drop(index=by_code[missing])
    added = gpd.GeoDataFrame([sliver, *extra], geometry="geometry", crs="EPSG:4326")
    planted["frame"] = gpd.GeoDataFrame(pd.concat([frame, added], ignore_index=True), crs="EPSG:4326")
    return planted


def incidents(frame: gpd.GeoDataFrame, planted: dict, count: int, seed: int = 7) -> list[dict]:
    """Scatter incidents: most at random, a few in the gap and a few on shared edges."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = frame.total_bounds
    now = dt.datetime(2026, 11, 1, 9, 0)
    rows = []
    gap_centre = planted["gap"]["area"].centroid
    for k in range(count):
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        rows.append(
            {
                "id": k + 1,
                "lon": lon,
                "lat": lat,
                "status": "reported" if k % 3 else "closed",
                "reported_at": now - dt.timedelta(days=int(rng.integers(0, 365))),
            }
        )
    for k in range(5):
        rows.append(
            {
                "id": len(rows) + 1,
                "lon": gap_centre.x + k * 1e-5,
                "lat": gap_centre.y,
                "status": "reported",
                "reported_at": now,
            }
        )
    # Corners shared by four grids, in communities with no planted defect: each lies on a shared edge.
    corners = frame[frame.level == "grid"].geometry.iloc[2000:2005]
    for corner in corners:
        x, y = corner.exterior.coords[0]
        rows.append({"id": len(rows) + 1, "lon": x, "lat": y, "status": "reported", "reported_at": now})
    return rows


def check(report: dict, planted: dict, *, store_run: bool = False) -> list[str]:
    """Return what was planted but not found."""
    missed = []

    def found(kind: str, test) -> bool:
        return any(test(f) for f in report[kind])

    gap = planted["gap"]
    # pyproj's geodesic area of the lon/lat piece (its rings densified), independent of the audit's own measure.
    expected = geodesic_area_m2(gap["area"])
    if not found(
        "gaps", lambda f: f["codes"][0] == gap["community"] and abs(f["area_m2"] - expected) < 0.01 * expected
    ):
        missed.append(f"gap of {expected:.1f} m² in {gap['community']}")
    overlap = planted["overlap"]
    if not found("overlaps", lambda f: sorted(f["codes"]) == overlap["codes"]):
        missed.append(f"overlap {overlap['codes']}")
    if not found(
        "outside_parent", lambda f: f["codes"][:2] == [planted["outside"]["grid"], planted["outside"]["community"]]
    ):
        missed.append(f"grid {planted['outside']['grid']} outside its community")
    across = planted["across"]
    if not found(
        "outside_parent",
        lambda f: f["codes"][0] == across["grid"] and any(a["code"] == across["into"] for a in f["across"]),
    ):
        missed.append(f"grid {across['grid']} across into {across['into']}")
    if not found("invalid", lambda f: f["codes"] == [planted["bowtie"]] and "Self-intersection" in f["detail"]):
        missed.append(f"bow-tie {planted['bowtie']}")
    if not found("slivers", lambda f: f["codes"] == [planted["sliver"]]):
        missed.append(f"sliver {planted['sliver']}")
    if not found("codes", lambda f: f["kind"] == "parent_prefix" and f["codes"][0] == planted["bad_code"]):
        missed.append(f"bad code {planted['bad_code']}")
    if not found(
        "overlaps", lambda f: f["kind"] == "duplicate" and sorted(f["codes"]) == planted["duplicate_geometry"]
    ):
        missed.append(f"duplicate geometry {planted['duplicate_geometry']}")
    if not store_run and not found(
        "codes", lambda f: f["kind"] == "duplicate" and f["codes"][0] == planted["duplicate_code"]
    ):
        missed.append(f"duplicate code {planted['duplicate_code']}")
    flags = {r["code"]: r["flag"] for r in report["balance"]["outside_range"]}
    for code, flag in planted["households"].items():
        if flags.get(code) != flag:
            missed.append(f"households {flag} range in {code}")
    if len(report["incidents"]["unassigned"]) < 5:
        missed.append("incidents in the gap")
    if len(report["incidents"]["ambiguous"]) < 5:
        missed.append("incidents on shared corners")
    return missed


def through_store(frame: gpd.GeoDataFrame, points: list[dict], planted: dict) -> None:
    """Load the tiling into a scratch SpatiaLite file and audit it the way `gridmap audit` does."""
    frame = frame.drop_duplicates("code", keep="first")
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        records = [
            AreaRecord(
                code=r["code"],
                name=r["name"],
                level=r["level"],
                parent_code=r["parent_code"],
                geometry=r["geometry"],
                kind=r.get("kind") if isinstance(r.get("kind"), str) else None,
                households=None
                if r.get("households") != r.get("households") or r.get("households") is None
                else int(r["households"]),
            )
            for r in frame.to_dict("records")
        ]
        store.add_areas("bench", records, create_edition_status="current")
        started = time.perf_counter()
        report = audit.audit_edition(store, "bench")
        seconds = time.perf_counter() - started
        store.close()
    print(f"through SpatiaLite (load + audit, no incidents): {seconds:.2f} s")
    missed = [m for m in check(report, planted, store_run=True) if not m.startswith(("incidents", "households"))]
    if missed:
        print("MISSED through the store: " + "; ".join(missed))
        sys.exit(1)


def demo_and_false_gaps() -> None:
    """Audit the demo district and the false-gap district of issue 18 (long two-vertex street edges)."""
    from gridmap.demo.district import demo_boundary_dir

    directory = demo_boundary_dir()
    frames = []
    for level, name in (("street", "streets"), ("community", "communities"), ("grid", "grids")):
        frame = gpd.read_file(directory / f"{name}.geojson", engine="pyogrio")
        frames.append(frame.assign(level=level))
    demo = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    started = time.perf_counter()
    report = audit.audit_areas(demo, options=audit.AuditOptions(as_of=dt.datetime(2026, 11, 1, 12)))
    seconds = time.perf_counter() - started
    counts = demo.level.value_counts().to_dict()
    print(
        f"demo district ({counts['grid']} grids, {counts['community']} communities, {counts['street']} streets): "
        f"audit {seconds:.2f} s; findings: " + ", ".join(f"{k} {v}" for k, v in report["summary"]["findings"].items())
    )
    district = gpd.GeoDataFrame(false_gap_district(), geometry="geometry", crs="EPSG:4326")
    started = time.perf_counter()
    report = audit.audit_areas(district)
    seconds = time.perf_counter() - started
    found = sum(report["summary"]["findings"].values())
    print(
        f"false-gap district of issue 18 ({len(district)} areas, 10 km street edges with 2 vertices): audit "
        f"{seconds:.2f} s, {found} findings (target 0; before the fix: 152 gaps, the largest 320 m²)"
    )
    if found:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=15_000, help="About this many grids (at least 5,400).")
    parser.add_argument("--incidents", type=int, default=50_000)
    parser.add_argument("--spatialite", action="store_true", help="Also time the audit through a SpatiaLite store.")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    demo_and_false_gaps()
    started = time.perf_counter()
    frame, planted = build(args.grids)
    points = incidents(frame, planted, args.incidents)
    counts = frame.level.value_counts().to_dict()
    print(
        f"tiling: {counts.get('grid', 0)} grids, {counts.get('community', 0)} communities, "
        f"{counts.get('street', 0)} streets, {len(points)} incidents (built in {time.perf_counter() - started:.1f} s, "
        f"{os.cpu_count()} cores)"
    )
    started = time.perf_counter()
    report = audit.audit_areas(frame, points, options=audit.AuditOptions(as_of=dt.datetime(2026, 11, 1, 12)))
    seconds = time.perf_counter() - started
    verdict = "within" if seconds < TARGET_SECONDS else "OVER"
    print(f"audit: {seconds:.2f} s ({verdict} the {TARGET_SECONDS:g} s target)")
    print("findings: " + ", ".join(f"{k} {v}" for k, v in report["summary"]["findings"].items()))
    print(f"below tolerance: {report['summary']['below_tolerance']}")
    missed = check(report, planted)
    if missed:
        print("MISSED: " + "; ".join(missed))
        sys.exit(1)
    print("every planted defect was found")
    if args.spatialite:
        through_store(frame, points, planted)


if __name__ == "__main__":
    main()
