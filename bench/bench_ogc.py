"""Time reading the demo district's grids through OGC API – Features with real clients.

    .venv/bin/python bench/bench_ogc.py [--runs N] [--postgres ADMIN_URL]

Loads the demo district (1,464 grids) into a scratch database, serves it with `gridmap serve` in its own
process, and times: GDAL's OAPIF driver (through pyogrio) reading every grid, the same with a CQL2 filter and
in EPSG:3857; OWSLib paging through every grid 500 at a time; and, as the baseline, the store reading the grids
directly and pyogrio reading them from a local GeoJSON file. The clients send a viewer's API token, as
anonymous callers get every grid with households, population and staff null (and cannot filter on them). The
issue sets no number; it asks for the timings. PostGIS is measured too when --postgres (or
GRIDMAP_BENCH_POSTGRES_URL) names an admin URL.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psycopg
import requests
from sqlalchemy.engine import make_url

from gridmap import boundaries, people
from gridmap.demo.district import demo_boundary_dir
from gridmap.store import Store

SCRATCH = "gridmap_bench_ogc"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _best(runs: int, action) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(url: str, label: str, runs: int, workdir: Path) -> None:
    import pyogrio
    from owslib.ogcapi.features import Features

    store = Store.open(url)
    boundaries.load_demo(store, demo_boundary_dir())
    edition = store.current_edition().name
    token = people.add_user(store, "bench-viewer", role="viewer")  # signed-in callers get the grids' figures
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_SECRET_KEY": "bench"}
    server = subprocess.Popen(
        [sys.executable, "-c", "from gridmap.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/ogc"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        warnings.simplefilter("ignore", RuntimeWarning)  # the wheel's GDAL warns about libcurl's version
        source = f"OAPIF:{base}"
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token})
        direct, frame = _best(runs, lambda: store.areas(edition, "grid"))
        geojson = workdir / f"{label}_grids.geojson"
        frame.to_file(geojson, driver="GeoJSON")
        local, _ = _best(runs, lambda: pyogrio.read_dataframe(geojson))
        everything, read = _best(runs, lambda: pyogrio.read_dataframe(source, layer="grids"))
        filtered, some = _best(runs, lambda: pyogrio.read_dataframe(source, layer="grids", where="households > 450"))
        mercator, _ = _best(runs, lambda: pyogrio.read_dataframe(source, layer="grids", CRS="EPSG:3857"))

        def page_all() -> int:
            client, offset, total = Features(base, headers={"Authorization": f"Bearer {token}"}), 0, 0
            while True:
                page = client.collection_items("grids", limit=500, offset=offset)
                total += page["numberReturned"]
                if not any(link["rel"] == "next" for link in page["links"]):
                    return total
                offset += 500

        paged, count = _best(runs, page_all)
        assert len(read) == count == 1464, (len(read), count)
        assert read["households"].notna().all() and 0 < len(some) < 1464, "the token did not reach the server"
        print(f"{label}: load average {os.getloadavg()[0]:.2f}; median of {runs} runs")
        print(f"  store.areas (direct, baseline)            {direct:7.3f} s  1464 grids")
        print(f"  pyogrio from a local GeoJSON file         {local:7.3f} s")
        print(f"  GDAL OAPIF, all grids                     {everything:7.3f} s  ({everything / direct:5.1f}× direct)")
        print(f"  GDAL OAPIF, CQL2 households > 450         {filtered:7.3f} s  {len(some)} grids")
        print(f"  GDAL OAPIF, all grids in EPSG:3857        {mercator:7.3f} s")
        print(f"  OWSLib, every page of 500                 {paged:7.3f} s  ({paged / direct:5.1f}× direct)")
        print("  target: none set by the issue (it asks for the timings); all 1,464 grids read: yes")
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})
        server.terminate()
        server.wait(timeout=10)
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("GRIDMAP_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        measure(f"sqlite:///{workdir / 'bench.sqlite'}", "spatialite", args.runs, workdir)
        if not args.postgres:
            print("postgis skipped: pass --postgres ADMIN_URL or set GRIDMAP_BENCH_POSTGRES_URL")
            return
        admin = make_url(args.postgres).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
            conn.execute(f"CREATE DATABASE {SCRATCH}")
        try:
            url = make_url(args.postgres).set(drivername="postgresql+psycopg", database=SCRATCH)
            measure(url.render_as_string(hide_password=False), "postgis", args.runs, workdir)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")


if __name__ == "__main__":
    main()
