"""`gridmap locate --input/--output` against the five-line geopandas script, end to end, in one run.

    .venv/bin/python bench/bench_bulk.py [--rows 1000000] [--outside 0.01] [--uniform] [--backends spatialite,postgis]
                                         [--postgres ADMIN_URL]

Both are timed as a user runs them (warmed up once on 1,000 rows, then the best of --runs): a new process that
reads the CSV, locates every point in the demo district
(1,464 grids) and writes a CSV. The geopandas script is read_csv → points_from_xy → sjoin → to_csv (it reads
the grids from the same database first, as it must). Points are spread over the grids like incidents, with
--outside of them beyond the district (those get the nearest grid and its distance, which the script does not
compute); --uniform spreads them over the district's bounding box instead (a third fall outside). The grid of
every row must be the same in both outputs (for a point on a shared edge: the lowest code), or the run fails.
gridmap keeps the edition's index on disk (GRIDMAP_CACHE_DIR, here a scratch directory), so its timed runs find
the index the warm-up kept; the first run after an edition changes builds it, and is timed too (with an empty
directory each time) and printed with its own ratio.
Then gridmap alone: the same file given in GCJ-02, and with 0.1 % bad rows (each keeps its place with an `error`).
PostGIS runs on --postgres (or GRIDMAP_BENCH_POSTGRES_URL), else on a private throwaway cluster.

Target (issue 15): ≥ 5× the geopandas script on 1,000,000 rows, identical grid answers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import GRIDMAP, load, load_demo, postgres_admin_url, scratch_database

from gridmap import assign, crs
from gridmap.store import Store

PEER = """\
import sys, geopandas as gpd, pandas as pd
from gridmap.store import Store
grids = Store.open(sys.argv[1]).areas("main", "grid")[["code", "geometry"]]
df = pd.read_csv(sys.argv[2])
points = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.lon, df.lat), crs="EPSG:4326")
gpd.sjoin(points, grids, how="left", predicate="intersects").drop(columns="geometry").to_csv(sys.argv[3], index=False)
"""


def make_points(url: str, rows: int, outside: float, uniform: bool, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Points over the grids (and a share beyond them), or uniform over the bounding box."""
    store = Store.open(url)
    index = assign.grid_index(store)
    store.close()
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = shapely.total_bounds(index.geometries)
    if uniform:
        return rng.uniform(minx, maxx, rows), rng.uniform(miny, maxy, rows)
    far = int(rows * outside)
    lons, lats = [], []
    while sum(len(x) for x in lons) < rows - far:
        x, y = rng.uniform(minx, maxx, rows), rng.uniform(miny, maxy, rows)
        inside = index.locate_many(x, y, nearest=False).grid >= 0
        lons.append(x[inside])
        lats.append(y[inside])
    lon, lat = np.concatenate(lons)[: rows - far], np.concatenate(lats)[: rows - far]
    # Beyond the district: a ring up to 5 km out, where mistyped or GPS-drifted reports land.
    angle, reach = rng.uniform(0, 2 * np.pi, far), rng.uniform(0.01, 0.05, far)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    out_lon = cx + np.cos(angle) * ((maxx - minx) / 2 + reach)
    out_lat = cy + np.sin(angle) * ((maxy - miny) / 2 + reach)
    order = rng.permutation(rows)
    return np.concatenate([lon, out_lon])[order], np.concatenate([lat, out_lat])[order]


def write_csv(path: Path, lons: np.ndarray, lats: np.ndarray, bad: float = 0.0) -> None:
    frame = pd.DataFrame({"id": np.arange(len(lons)), "lon": np.round(lons, 7), "lat": np.round(lats, 7)})
    if bad:
        frame = frame.astype({"lon": object, "lat": object})
        chosen = np.random.default_rng(5).choice(len(frame), int(len(frame) * bad), replace=False)
        frame.loc[chosen[0::3], "lon"] = "n/a"
        frame.loc[chosen[1::3], ["lon", "lat"]] = frame.loc[chosen[1::3], ["lat", "lon"]].to_numpy()  # swapped
        frame.loc[chosen[2::3], ["lon", "lat"]] = 0  # a missing point written as 0, 0
    frame.to_csv(path, index=False)


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{done.stderr[-2000:]}")
    return seconds


def lowest_codes(path: Path, rows: int) -> np.ndarray:
    """The script's answer per id: sjoin repeats a point on a shared edge once per grid; the lowest code wins."""
    frame = pd.read_csv(path, dtype={"code": str}, usecols=["id", "code"])
    codes = frame.dropna().groupby("id")["code"].min()
    answer = np.full(rows, "", dtype=object)
    answer[codes.index.to_numpy()] = codes.to_numpy()
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--outside", type=float, default=0.01, help="share of points beyond the district")
    parser.add_argument("--uniform", action="store_true", help="points uniform over the bounding box")
    parser.add_argument("--backends", default="spatialite,postgis")
    parser.add_argument("--runs", type=int, default=2, help="timed runs of each (the best counts)")
    parser.add_argument("--postgres", default=os.environ.get("GRIDMAP_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    python = str(Path(sys.executable))
    print(f"bench_bulk: {args.rows:,} rows; {load()}")
    print("target: gridmap ≥ 5× the geopandas script end to end, identical grid answers")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        peer = tmp / "peer.py"
        peer.write_text(PEER)
        for backend in backends:
            admin = postgres_admin_url(args.postgres) if backend == "postgis" else _null()
            with admin as admin_url, scratch_database(backend, admin_url, "gridmap_bench_bulk") as url:
                load_demo(url)
                lons, lats = make_points(url, args.rows, args.outside, args.uniform)
                source = tmp / "points.csv"
                write_csv(source, lons, lats)
                cache = tmp / f"cache-{backend}"
                env = {"GRIDMAP_DATABASE_URL": url, "GRIDMAP_CACHE_DIR": str(cache)}
                ours_command = [str(GRIDMAP), "locate", "--input", str(source), "--output", str(tmp / "ours.csv")]
                theirs_command = [python, str(peer), url, str(source), str(tmp / "theirs.csv")]
                # Each once on a small file first, so neither pays for reading its libraries from disk; then
                # the best of --runs, alternating, so a burst of load elsewhere hits both alike.
                write_csv(tmp / "small.csv", lons[:1000], lats[:1000])
                timed([*ours_command[:2], "--input", str(tmp / "small.csv"), "--output", str(tmp / "s.csv")], env)
                timed([python, str(peer), url, str(tmp / "small.csv"), str(tmp / "s.csv")])
                ours, theirs, cold = float("inf"), float("inf"), float("inf")
                for _ in range(args.runs):
                    ours = min(ours, timed(ours_command, env))
                    theirs = min(theirs, timed(theirs_command))
                    # The first run after an edition changed: nothing kept on disk, the index built from the store.
                    cold = min(cold, timed(ours_command, {**env, "GRIDMAP_CACHE_DIR": str(tmp / "empty")}))
                    shutil.rmtree(tmp / "empty", ignore_errors=True)
                answer = pd.read_csv(tmp / "ours.csv", dtype=str, keep_default_na=False)
                same = answer["grid_code"].to_numpy(dtype=object) == lowest_codes(tmp / "theirs.csv", args.rows)
                if not same.all():
                    raise SystemExit(f"{backend}: gridmap and the geopandas script disagree on {(~same).sum()} rows")
                outside = int((answer["grid_code"] == "").sum())
                print(
                    f"{backend:<10} gridmap {ours:6.2f} s ({args.rows / ours:,.0f} rows/s)   geopandas script "
                    f"{theirs:6.2f} s   ratio {theirs / ours:4.1f}× (target ≥ 5×)   identical answers; "
                    f"{outside:,} rows in no grid got nearest_code and nearest_distance_m"
                )
                print(
                    f"{'':<10} the first run after an edition changed (its index built, not kept yet): {cold:6.2f} s,"
                    f" ratio {theirs / cold:4.1f}×"
                )
                gx, gy = crs.from_wgs84(lon=lons, lat=lats, crs="gcj02")
                write_csv(tmp / "gcj.csv", gx, gy)
                gcj = timed(
                    [str(GRIDMAP), "locate", "--crs", "gcj02", "--input", str(tmp / "gcj.csv"), "--output",
                     str(tmp / "ours-gcj.csv")],
                    env,
                )  # fmt: skip
                converted = pd.read_csv(tmp / "ours-gcj.csv", dtype=str, keep_default_na=False)["grid_code"]
                moved = int((converted != answer["grid_code"]).sum())
                write_csv(tmp / "bad.csv", lons, lats, bad=0.001)
                bad = timed(
                    [str(GRIDMAP), "locate", "--input", str(tmp / "bad.csv"), "--output", str(tmp / "b.csv")], env
                )
                errors = int((pd.read_csv(tmp / "b.csv", dtype=str, keep_default_na=False)["error"] != "").sum())
                print(
                    f"{'':<10} the same points in GCJ-02 (iterative inverse): {gcj:6.2f} s, {moved} rows in another "
                    f"grid than from WGS84; with 0.1 % bad rows: {bad:6.2f} s, {errors:,} rows with an error"
                )
    print(f"after: {load()}")


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
