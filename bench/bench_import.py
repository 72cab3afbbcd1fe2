"""Import speed, and API writes during a large import, on SpatiaLite and PostGIS, in one run.

    .venv/bin/python bench/bench_import.py [--rows 100000] [--load-rows 150000] [--rate 20] [--postgres ADMIN_URL]

The demo district (1,464 grids) is loaded into a scratch SpatiaLite file and a scratch PostGIS database
(--postgres or GRIDMAP_BENCH_POSTGRES_URL names an admin URL; without one a private PostgreSQL cluster is
started in a temporary directory, as the tests do). A 12345 hotline CSV (GBK, Chinese headers, coordinates
inside the district, a category per row) is generated.

1. Speed: `import-incidents` of --rows rows, measured in-process (file read → every row committed, the way
   the CLI calls it) and as the whole `gridmap import-incidents` command (interpreter start-up included).
   Target (issue 15): ≥ 20,000 rows/s on SpatiaLite.
2. Under load: `gridmap serve` answers POST /api/incidents at --rate requests a second (each on its own thread,
   so a slow answer does not slow the rate) while `gridmap import-incidents` writes --load-rows rows.
   Target (issue 11): 0 errors, p99 < 1 s, no lost writes.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy.engine import make_url

from gridmap import assign, boundaries, clock, incidents, people
from gridmap.demo.district import demo_boundary_dir
from gridmap.store import Store

SCRATCH = "gridmap_bench_import"
BASELINE_SECONDS = 10
GRIDMAP = str(Path(sys.executable).with_name("gridmap"))
HEADER = ["工单编号", "诉求内容", "地址", "经度", "纬度", "来电时间", "来电号码", "类别"]
CATEGORIES = ["0102", "0103", "0104", "0401", "0403", "暴露垃圾", "Dirty road"]


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def write_hotline_csv(path: Path, count: int, grids, communities, *, seed: int) -> Path:
    """Write `count` rows at random points inside the district's grids, reported over the past 60 days."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = grids.total_bounds
    lons, lats = np.empty(0), np.empty(0)
    while len(lons) < count:
        # Rounded as the file writes them, then kept only when that point is inside a grid.
        x = np.round(rng.uniform(minx, maxx, count), 6)
        y = np.round(rng.uniform(miny, maxy, count), 6)
        inside = assign.locate_batch(grids, communities, x, y).grid >= 0
        lons, lats = np.concatenate([lons, x[inside]]), np.concatenate([lats, y[inside]])
    start = clock.now() - dt.timedelta(days=60)
    step = dt.timedelta(days=59) / count
    with path.open("w", encoding="gbk", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(count):
            writer.writerow(
                [
                    f"B{seed}-{i:07d}",
                    f"下水道堵塞，污水外溢，第{i}号工单",
                    "",
                    f"{lons[i]:.6f}",
                    f"{lats[i]:.6f}",
                    f"{start + step * i:%Y-%m-%d %H:%M:%S}",
                    f"13{i % 10}{i:08d}"[:11],
                    CATEGORIES[i % len(CATEGORIES)],
                ]
            )
    return path


def clear_incidents(store: Store) -> None:
    import sqlalchemy as sa

    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM incident_history"))
        conn.execute(sa.text("DELETE FROM incidents"))


def measure_speed(url: str, backend: str, source: Path, rows: int) -> dict:
    """Import in-process, then (after clearing) with the CLI; return rows/s of both."""
    store = Store.open(url)
    clear_incidents(store)
    store.close()
    store = Store.open(url)  # a fresh connection and no cached district, as a fresh command has
    started = time.perf_counter()
    outcome = incidents.import_incidents(store, source)
    in_process = time.perf_counter() - started
    assert outcome.written == rows and not outcome.rejected, (outcome.written, outcome.rejected[:3])
    clear_incidents(store)
    store.close()
    started = time.perf_counter()
    run = subprocess.run([GRIDMAP, "import-incidents", str(source), "--db", url], capture_output=True, text=True)
    command = time.perf_counter() - started
    assert run.returncode == 0 and f"imported: {rows}" in run.stdout, run.stdout[-500:] + run.stderr[-500:]
    figures = {"in_process": rows / in_process, "command": rows / command}
    print(
        f"{backend:<10} import {rows:,} rows: in-process {in_process:6.2f} s = {figures['in_process']:8,.0f} rows/s; "
        f"whole command {command:6.2f} s = {figures['command']:8,.0f} rows/s   (load {load_average()})"
    )
    return figures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_under_load(url: str, backend: str, source: Path, rows: int, rate: float) -> dict:
    """Serve, write at `rate`/s through the API while the CLI imports `source`; return latency figures."""
    store = Store.open(url)
    clear_incidents(store)
    token = people.add_user(store, f"bench-{time.time_ns()}", role="admin")
    store.close()
    port = free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_PORT": str(port), "GRIDMAP_SECRET_KEY": "bench"}
    server = subprocess.Popen([GRIDMAP, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/api/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        results: list[tuple[float, int]] = []
        lock = threading.Lock()

        def write(i: int) -> None:
            body = json.dumps({"title": f"bench write {i}", "category": "0102", "lon": lon, "lat": lat}).encode()
            request = urllib.request.Request(base + "/api/incidents", data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            request.add_header("Authorization", f"Bearer {token}")
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            with lock:
                results.append((time.perf_counter() - started, status))

        store = Store.open(url)
        grids = store.areas(store.current_edition().name, "grid")
        store.close()
        point = grids.geometry.iloc[0].representative_point()
        lon, lat = point.x, point.y

        def drive(until) -> float:
            """Start one write every 1/rate s until `until()` is true; return how long that took."""
            threads, started, i = [], time.perf_counter(), 0
            while not until():
                thread = threading.Thread(target=write, args=(i,))
                thread.start()
                threads.append(thread)
                i += 1
                time.sleep(max(0.0, started + i / rate - time.perf_counter()))
            seconds = time.perf_counter() - started
            for thread in threads:
                thread.join()
            return seconds

        for i in range(5):  # warm up: the first request builds the grid index and fills the caches
            write(-1 - i)
        results.clear()
        # The same writes with no import first: what this machine gives at this rate anyway.
        quiet_until = time.perf_counter() + BASELINE_SECONDS
        drive(lambda: time.perf_counter() >= quiet_until)
        baseline = sorted(t for t, status in results if status == 201)
        baseline_failed = len(results) - len(baseline)
        results.clear()
        importer = subprocess.Popen(
            [GRIDMAP, "import-incidents", str(source), "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        import_seconds = drive(lambda: importer.poll() is not None)
        _output, errors = importer.communicate()
        assert importer.returncode == 0, _output.decode()[-1500:] + errors.decode()[-500:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    store = Store.open(url)
    stored = store.table_counts()["incidents"]
    store.close()
    latencies = sorted(t for t, _ in results)
    ok = sum(status == 201 for _, status in results)
    failed = len(results) - ok
    lost = ok + len(baseline) + 5 - (stored - rows)  # every 201 must be a row (5: the warm-up writes)
    failed += baseline_failed

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    figures = {
        "writes": len(results),
        "errors": failed,
        "lost": lost,
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": latencies[-1] if latencies else float("nan"),
        "import_s": import_seconds,
    }
    base99 = baseline[min(len(baseline) - 1, int(0.99 * len(baseline)))] if baseline else float("nan")
    figures["baseline_p99"] = base99
    print(
        f"{backend:<10} API writes at {rate:g}/s with no import, {BASELINE_SECONDS} s: p50 "
        f"{statistics.median(baseline) * 1000:.0f} ms, p99 {base99 * 1000:.0f} ms (this machine, for comparison)"
    )
    print(
        f"{backend:<10} {rows:,}-row import took {import_seconds:5.1f} s ({rows / import_seconds:,.0f} rows/s incl. "
        f"start-up) while {len(results)} API writes ran at {rate:g}/s: errors {failed}, lost writes {lost}, "
        f"p50 {figures['p50'] * 1000:.0f} ms, p95 {figures['p95'] * 1000:.0f} ms, p99 {figures['p99'] * 1000:.0f} ms, "
        f"max {figures['max'] * 1000:.0f} ms   (load {load_average()})"
    )
    if failed:
        print(f"           statuses: {statistics.multimode(s for _, s in results)}")
    return figures


def postgres_admin(args) -> tuple[str | None, object]:
    """Return an admin URL: the given one, or a private cluster's (with the object that stops it)."""
    if args.postgres:
        return args.postgres, None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from conftest import ThrowawayCluster
    except ImportError:
        return None, None
    try:
        cluster = ThrowawayCluster()
        return cluster.start(), cluster
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"postgis    skipped: no PostgreSQL to start ({exc})")
        return None, None


def prepare(url: str) -> None:
    store = Store.open(url)
    boundaries.load_demo(store, demo_boundary_dir())
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the speed run")
    parser.add_argument("--load-rows", type=int, default=150_000, help="rows of the import under API writes")
    parser.add_argument("--rate", type=float, default=20.0, help="API writes per second during the import")
    parser.add_argument("--postgres", default=os.environ.get("GRIDMAP_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    print(f"load average at start: {load_average()} on {os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="gridmap-bench-import-"))
    cluster = None
    try:
        sqlite_url = f"sqlite:///{workdir / 'bench.sqlite'}"
        prepare(sqlite_url)
        store = Store.open(sqlite_url)
        edition = store.current_edition().name
        grids, communities = store.areas(edition, "grid"), store.areas(edition, "community")
        store.close()
        speed_file = write_hotline_csv(workdir / "speed.csv", args.rows, grids, communities, seed=1)
        load_file = write_hotline_csv(workdir / "load.csv", args.load_rows, grids, communities, seed=2)
        targets: dict[str, dict] = {"spatialite": {"url": sqlite_url}}
        admin, cluster = postgres_admin(args)
        if admin:
            admin_url = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {SCRATCH}")
            pg_url = make_url(admin).set(drivername="postgresql+psycopg", database=SCRATCH)
            targets["postgis"] = {"url": pg_url.render_as_string(hide_password=False)}
            prepare(targets["postgis"]["url"])
        for backend, target in targets.items():
            target["speed"] = measure_speed(target["url"], backend, speed_file, args.rows)
        for backend, target in targets.items():
            target["load"] = measure_under_load(target["url"], backend, load_file, args.load_rows, args.rate)
        print()
        lite = targets["spatialite"]
        met = lite["speed"]["in_process"] >= 20_000
        print(
            f"target ≥ 20,000 rows/s on SpatiaLite: {lite['speed']['in_process']:,.0f} rows/s in-process, "
            f"{lite['speed']['command']:,.0f} rows/s whole command → {'met' if met else 'NOT met'}"
        )
        if "postgis" in targets:
            pg = targets["postgis"]["speed"]["in_process"]
            print(f"PostGIS: {pg:,.0f} rows/s in-process; SpatiaLite/PostGIS = {lite['speed']['in_process'] / pg:.2f}")
        for backend, target in targets.items():
            load = target["load"]
            ok = load["errors"] == 0 and load["lost"] == 0 and load["p99"] < 1.0
            print(
                f"target 0 errors, p99 < 1 s with {args.rate:g} writes/s during a {args.load_rows:,}-row import on "
                f"{backend}: errors {load['errors']}, lost {load['lost']}, p99 {load['p99'] * 1000:.0f} ms → "
                f"{'met' if ok else 'NOT met'}"
            )
        print(f"load average at end: {load_average()}")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
