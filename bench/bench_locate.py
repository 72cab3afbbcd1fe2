"""Locate many points in the demo district: gridmap's index vs geopandas.sjoin vs a PostGIS join, in one run.

    .venv/bin/python bench/bench_locate.py [--points 1000000] [--postgres ADMIN_URL] [--postgis-points N]

The demo district (1,464 grids) is loaded into a scratch SpatiaLite file and, when --postgres (or
GRIDMAP_BENCH_POSTGRES_URL) names an admin URL such as postgresql://postgres@127.0.0.1:5432/postgres, into a
scratch PostGIS database. Points are uniform over the district's bounding box widened by 5 %, plus 1 % placed
exactly on grid vertices, where ties are decided. Every method must give the same grid for every point after
the tie-break (lowest code); the run stops with an error if they differ. Prints points/s and ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from sqlalchemy.engine import make_url

from gridmap import assign, boundaries
from gridmap.demo.district import demo_boundary_dir
from gridmap.store import Store

SCRATCH = "gridmap_bench_locate"


def make_points(grids: gpd.GeoDataFrame, count: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = grids.total_bounds
    pad_x, pad_y = (maxx - minx) * 0.05, (maxy - miny) * 0.05
    on_vertex = count // 100
    lons = rng.uniform(minx - pad_x, maxx + pad_x, count)
    lats = rng.uniform(miny - pad_y, maxy + pad_y, count)
    vertices = shapely.get_coordinates(grids.geometry.values)
    chosen = vertices[rng.integers(0, len(vertices), on_vertex)]
    lons[:on_vertex], lats[:on_vertex] = chosen[:, 0], chosen[:, 1]
    return lons, lats


def lowest_code(pairs_point: np.ndarray, pairs_code: np.ndarray, count: int) -> np.ndarray:
    """Apply the tie-break to (point, code) pairs from a join: one code (or None) per point."""
    answer = np.full(count, None, dtype=object)
    order = np.lexsort((pairs_code, pairs_point))
    pairs_point, pairs_code = pairs_point[order], pairs_code[order]
    first = np.ones(len(pairs_point), dtype=bool)
    first[1:] = pairs_point[1:] != pairs_point[:-1]
    answer[pairs_point[first]] = pairs_code[first]
    return answer


def timed(function):
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("GRIDMAP_BENCH_POSTGRES_URL"))
    parser.add_argument("--postgis-points", type=int, default=None, help="points for PostGIS (default: --points)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        boundaries.load_demo(store, demo_boundary_dir())
        edition = store.current_edition().name
        grids = store.areas(edition, "grid")
        communities = store.areas(edition, "community")
        store.close()
    lons, lats = make_points(grids, args.points)
    count = len(lons)
    print(f"{len(grids)} grids, {count:,} points ({count // 100:,} on grid vertices)")

    index, build = timed(lambda: assign.index_from_frames(grids, communities, edition=edition))
    raster = index.raster_summary()
    print(
        f"gridmap index built in {build:.2f} s: {raster['cells']:,} cells, {raster['inside_one_grid']:,} inside one "
        f"grid, {raster['empty']:,} empty, {raster['on_an_edge']:,} on an edge"
    )
    index.locate_many(lons[:1000], lats[:1000], nearest=False)  # warm up
    result, ours = timed(lambda: index.locate_many(lons, lats, nearest=False))
    our_codes = np.array(result.grid_codes(), dtype=object)
    print(f"gridmap locate_many     {ours:7.3f} s  {count / ours:12,.0f} points/s")
    with_nearest, ours_nearest = timed(lambda: index.locate_many(lons, lats))
    outside = int((with_nearest.grid < 0).sum())
    print(
        f"  with nearest grid     {ours_nearest:7.3f} s  {count / ours_nearest:12,.0f} points/s "
        f"({outside:,} points outside get the nearest grid and metres)"
    )

    points = gpd.GeoDataFrame(geometry=shapely.points(lons, lats), crs="EPSG:4326")
    frame = grids[["code", "geometry"]]
    joined, theirs = timed(lambda: gpd.sjoin(points, frame, predicate="intersects", how="inner"))
    sjoin_codes, tie_break = timed(
        lambda: lowest_code(joined.index.to_numpy(), joined["code"].to_numpy(dtype=object), count)
    )
    print(
        f"geopandas sjoin         {theirs:7.3f} s  {count / theirs:12,.0f} points/s "
        f"(+{tie_break:.3f} s to apply the tie-break)"
    )
    mismatched = int((sjoin_codes != our_codes).sum())
    if mismatched:
        raise SystemExit(f"gridmap and sjoin disagree on {mismatched} points")
    print(
        f"  identical answers; gridmap is {theirs / ours:.1f}x sjoin "
        f"({(theirs + tie_break) / ours:.1f}x with its tie-break)"
    )

    single_inside = np.flatnonzero(result.grid >= 0)[:100_000]
    single_outside = np.flatnonzero(result.grid < 0)[:2_000]
    for label, chosen in (("inside a grid", single_inside), ("outside every grid (nearest grid)", single_outside)):
        xs, ys = lons[chosen].tolist(), lats[chosen].tolist()
        _, seconds = timed(lambda xs=xs, ys=ys: [index.locate(lon=x, lat=y) for x, y in zip(xs, ys, strict=True)])
        print(f"single lookup, {label}: {seconds / len(chosen) * 1e6:.1f} µs each ({len(chosen):,} lookups)")

    at_15000(grids, communities)
    if not args.postgres:
        print("postgis join skipped: pass --postgres ADMIN_URL or set GRIDMAP_BENCH_POSTGRES_URL")
        return
    postgis(args.postgres, lons, lats, our_codes, ours, args.postgis_points or count)


def at_15000(grids: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, copies: int = 11) -> None:
    """The demo district laid out 11 times side by side (16,104 grids with real shapes): build time and lookups."""
    geometries = grids.geometry.values
    minx, miny, maxx, maxy = grids.total_bounds
    street_of = dict(zip(communities["code"], communities["parent_code"], strict=True))
    codes, shapes, community, street = [], [], [], []
    for copy in range(copies):
        shift = np.array([(copy % 4) * (maxx - minx) * 1.02, (copy // 4) * (maxy - miny) * 1.02])
        shapes += list(shapely.transform(geometries, lambda xy, shift=shift: xy + shift))
        codes += [f"{code}{copy:02d}" for code in grids["code"]]
        community += list(grids["parent_code"])
        street += [street_of.get(c) for c in grids["parent_code"]]
    builds = []
    for _ in range(3):
        index, seconds = timed(lambda: assign.GridIndex(codes, shapes, community, street))
        builds.append(seconds)
    raster = index.raster_summary()
    print(
        f"{len(codes):,} grids: index built in {min(builds):.2f} s "
        f"(best of 3: {', '.join(f'{b:.2f}' for b in builds)}) "
        f"— target < 2 s; {raster['cells']:,} cells, {raster['on_an_edge']:,} on an edge"
    )
    rng = np.random.default_rng(5)
    low, high = shapely.total_bounds(np.array(shapes))[:2], shapely.total_bounds(np.array(shapes))[2:]
    xs, ys = rng.uniform(low[0], high[0], 20_000).tolist(), rng.uniform(low[1], high[1], 20_000).tolist()
    inside = [(x, y) for x, y in zip(xs, ys, strict=True) if index.covering(lon=x, lat=y)][:10_000]
    for x, y in inside[:500]:
        index.locate(lon=x, lat=y)  # warm up
    each = []
    for x, y in inside:
        started = time.perf_counter()
        index.locate(lon=x, lat=y)
        each.append(time.perf_counter() - started)
    p50, p99 = np.percentile(np.array(each) * 1e6, [50, 99])
    print(f"  single lookup in a grid, in process: p50 {p50:.1f} µs, p99 {p99:.1f} µs — target p99 ≤ 20 µs")


def postgis(admin_url: str, lons, lats, our_codes, ours: float, count: int) -> None:
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        conn.execute(f"CREATE DATABASE {SCRATCH}")
    url = make_url(admin_url).set(drivername="postgresql", database=SCRATCH)
    try:
        store = Store.open(url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
        boundaries.load_demo(store, demo_boundary_dir())
        edition = store.current_edition().name
        store.close()
        with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
            conn.execute("CREATE TEMP TABLE points (id integer PRIMARY KEY, lon float8, lat float8)")
            buffer = io.StringIO()
            for i, (lon, lat) in enumerate(zip(lons[:count].tolist(), lats[:count].tolist(), strict=True)):
                buffer.write(f"{i}\t{lon!r}\t{lat!r}\n")
            with conn.cursor().copy("COPY points (id, lon, lat) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            conn.execute("ALTER TABLE points ADD COLUMN geom geometry(Point, 4326)")
            conn.execute("UPDATE points SET geom = ST_SetSRID(ST_MakePoint(lon, lat), 4326)")
            conn.execute("ANALYZE points")
            started = time.perf_counter()
            rows = conn.execute(
                """SELECT p.id, min(a.code) FROM points p
                   JOIN areas a ON ST_Covers(a.geom, p.geom)
                   JOIN editions e ON e.id = a.edition_id
                   WHERE e.name = %s AND a.level = 'grid'
                   GROUP BY p.id""",
                (edition,),
            ).fetchall()
            seconds = time.perf_counter() - started
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
    postgis_codes = np.full(count, None, dtype=object)
    for point, code in rows:
        postgis_codes[point] = code
    mismatched = int((postgis_codes != our_codes[:count]).sum())
    if mismatched:
        raise SystemExit(f"gridmap and PostGIS disagree on {mismatched} points")
    print(
        f"postgis join (ST_Covers, GiST) {seconds:7.3f} s  {count / seconds:12,.0f} points/s on {count:,} points; "
        f"identical answers; gridmap is {(len(our_codes) / ours) / (count / seconds):.1f}x its throughput"
    )


if __name__ == "__main__":
    main()
