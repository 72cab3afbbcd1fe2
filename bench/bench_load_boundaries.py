"""Time `load-boundaries` on big and hard files, and check each gives the answer issue 18 asks for.

    .venv/bin/python bench/bench_load_boundaries.py [--grids 15000] [--esri 1440]

Each file is built by the test fixtures' code (tests/fixtures) into a scratch directory and loaded into a scratch
SpatiaLite database, the way `gridmap load-boundaries` does it (plan = read and check everything; commit = one
transaction):
1. a grids-only layer of N grids with `--create-parents` (communities and the street made from their grids);
2. 1,300 grids with an invalid polygon at feature 77 and a duplicate code at feature 179: time until both
   refusals are listed (the issue: both in one run);
3. Esri JSON with curve rings in a local Gauss–Krüger CRS given as WKT, with Shape_Area (the issue: within 0.2 %);
4. the grids-only layer shifted to GCJ-02 and loaded with `--crs gcj02`, then audited (the issue: gap-free).
The issue sets no time targets for these; the exit status is non-zero when an answer is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.esri import curved_grids, write_esrijson
from fixtures.files import bow_tie, grids_only, shift_rows
from geodata import write_geojson

from gridmap import audit, boundaries
from gridmap.store import Store

GRID_FIELDS = {"code_field": "网格编码", "name_field": "网格名称", "parent_field": "社区编码"}
ESRI_FIELDS = {"code_field": "WGDM", "name_field": "WGMC", "parent_field": "SQDM"}


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def fresh_store(directory: Path, name: str) -> Store:
    return Store.open(f"sqlite:///{directory / name}.sqlite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=15_000, help="Grids in the grids-only layer (100 per community).")
    parser.add_argument("--esri", type=int, default=1440, help="About this many Esri JSON features (at least 120).")
    args = parser.parse_args()
    failures: list[str] = []
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        communities = max(1, args.grids // 100)
        rows = grids_only(communities=communities)
        layer = write_geojson(directory / "grids.geojson", rows)
        size = layer.stat().st_size / 1e6

        # 1. grids only, with --create-parents
        store = fresh_store(directory, "parents")
        plan, plan_s = timed(
            lambda: boundaries.plan_import(
                store, layer, level="grid", create_parents=True, community_name_field="社区名称", **GRID_FIELDS
            )
        )
        written, commit_s = timed(lambda: boundaries.commit_import(store, plan))
        store.close()
        print(
            f"1. {len(rows):,} grids ({size:.1f} MB GeoJSON), --create-parents: check {plan_s:.2f} s "
            f"({len(rows) / plan_s:,.0f} grids/s), write {commit_s:.2f} s; {written:,} areas "
            f"({plan.counts()})"
        )

        # 2. the file: 1,300 grids with an invalid polygon (feature 77) and a duplicate code (feature 179)
        broken = grids_only(communities=13)
        broken[76] = {**broken[76], "geometry": bow_tie(broken[76]["geometry"])}
        broken[178] = {**broken[178], "网格编码": broken[5]["网格编码"]}
        path = write_geojson(directory / "broken.geojson", broken)
        store = fresh_store(directory, "broken")
        started = time.perf_counter()
        try:
            boundaries.plan_import(store, path, level="grid", create_parents=True, **GRID_FIELDS)
            found = []
        except boundaries.ImportRefused as refused:
            found = [(p.feature, p.reason) for p in refused.refusals]
        seconds = time.perf_counter() - started
        store.close()
        ok = found == [(77, "invalid_geometry"), (179, "duplicate_code")]
        failures += [] if ok else [f"refusals of the broken layer: {found}"]
        verdict = "ok" if ok else "WRONG"
        print(f"2. 1,300 grids, two planted refusals: both listed in one run in {seconds:.2f} s: {found} ({verdict})")

        # 3. Esri JSON with curve rings in a local Gauss–Krüger CRS
        columns = max(12, round((args.esri * 1.2) ** 0.5))
        built = curved_grids(columns=columns, rows=max(10, round(args.esri / columns)))
        path = write_esrijson(directory / "curved.json", built["document"])
        store = fresh_store(directory, "esri")
        plan, plan_s = timed(
            lambda: boundaries.plan_import(store, path, level="grid", create_parents=True, **ESRI_FIELDS)
        )
        _, commit_s = timed(lambda: boundaries.commit_import(store, plan))
        report, audit_s = timed(lambda: audit.audit_edition(store))
        store.close()
        shape = plan.shape_area
        ok = shape["within_tolerance"] == shape["compared"] and not any(report[k] for k in ("gaps", "overlaps"))
        failures += [] if ok else ["Esri JSON areas or coverage"]
        print(
            f"3. Esri JSON, {len(built['document']['features']):,} features with curve rings "
            f"({path.stat().st_size / 1e6:.1f} MB): check {plan_s:.2f} s, write {commit_s:.2f} s; Shape_Area: "
            f"{shape['within_tolerance']}/{shape['compared']} within 0.2 % (target: all), largest difference "
            f"{shape['largest_difference_percent']:g} %; audit {audit_s:.2f} s: gaps {len(report['gaps'])}, "
            f"overlaps {len(report['overlaps'])} (target 0)"
        )

        # 4. GCJ-02
        shifted = shift_rows(rows, "gcj02")
        path = write_geojson(directory / "gcj02.geojson", shifted)
        store = fresh_store(directory, "gcj02")
        plan, plan_s = timed(
            lambda: boundaries.plan_import(store, path, level="grid", create_parents=True, crs="gcj02", **GRID_FIELDS)
        )
        _, commit_s = timed(lambda: boundaries.commit_import(store, plan))
        report, audit_s = timed(lambda: audit.audit_edition(store))
        store.close()
        ok = report["summary"]["clean"] or not any(report[k] for k in ("gaps", "overlaps", "outside_parent"))
        failures += [] if ok else ["GCJ-02 layer not gap-free"]
        print(
            f"4. GCJ-02 layer of {len(rows):,} grids (--crs gcj02): check and convert {plan_s:.2f} s "
            f"({len(rows) / plan_s:,.0f} grids/s), write {commit_s:.2f} s; audit {audit_s:.2f} s: "
            + ", ".join(f"{k} {report['summary']['findings'][k]}" for k in ("gaps", "overlaps", "outside_parent"))
            + " (target 0)"
        )
    if failures:
        print("WRONG: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
