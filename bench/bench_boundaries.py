"""Time loading and exporting the demo district on SpatiaLite and PostGIS.

    .venv/bin/python bench/bench_boundaries.py [--postgres ADMIN_URL]

PostGIS is measured when --postgres (or GRIDMAP_BENCH_POSTGRES_URL) names an admin URL of a server with
PostGIS available, e.g. postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and
dropped. Prints seconds per step.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from gridmap import boundaries
from gridmap.demo.district import demo_boundary_dir
from gridmap.store import Store

SCRATCH = "gridmap_bench_boundaries"


def measure(url: str, label: str, workdir: Path) -> None:
    started = time.perf_counter()
    store = Store.open(url)
    opened = time.perf_counter()
    counts = boundaries.load_demo(store, demo_boundary_dir())
    loaded = time.perf_counter()
    exports = {}
    for fmt in ("geojson", "gpkg", "shp"):
        begin = time.perf_counter()
        boundaries.export_boundaries(store, workdir / f"{label}_grids.{fmt}", level="grid", fmt=fmt)
        exports[fmt] = time.perf_counter() - begin
    store.close()
    print(
        f"{label:<10} schema {opened - started:6.2f} s  load {loaded - opened:6.2f} s "
        f"({counts['street']} streets, {counts['community']} communities, {counts['grid']} grids)  "
        + "  ".join(f"export {fmt} {seconds:5.2f} s" for fmt, seconds in exports.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("GRIDMAP_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        measure(f"sqlite:///{workdir / 'bench.sqlite'}", "spatialite", workdir)
        if not args.postgres:
            print("postgis    skipped: pass --postgres ADMIN_URL or set GRIDMAP_BENCH_POSTGRES_URL")
            return
        admin = make_url(args.postgres).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
            conn.execute(f"CREATE DATABASE {SCRATCH}")
        try:
            url = make_url(args.postgres).set(drivername="postgresql+psycopg", database=SCRATCH)
            measure(url.render_as_string(hide_password=False), "postgis", workdir)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")


if __name__ == "__main__":
    main()
