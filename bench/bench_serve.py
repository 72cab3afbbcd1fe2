"""`gridmap serve` over loopback, driven by wrk: one worker (waitress) and N workers (gunicorn), both backends.

    .venv/bin/python bench/bench_serve.py [--workers N] [--threads 8] [--worker-threads 1] [--duration 60]
                                          [--latency-seconds 10] [--no-mix] [--backends spatialite,postgis]
                                          [--postgres ADMIN_URL]

For each backend the demo district (1,464 grids) is loaded into a scratch database and `gridmap serve` is
started as a user starts it. wrk (Debian: `apt-get install wrk`; the script stops and says so when it is
missing — a Python load generator would take the CPU the server needs) then sends `GET /api/locate` with a
Bearer token, at points spread over the district's bounding box:
  * one client, back to back: the latency of one request (target p99 < 2 ms), with 1 worker and N workers;
  * 1 worker is waitress with --threads threads; N workers are gunicorn with --worker-threads threads each (default
    1, as the README advises for a lookup service: `sync` workers; more threads run `gthread` workers);
  * 16 connections for --duration seconds: sustained lookups/s (target ≥ 1,500/s with p99 < 20 ms, 0 errors)
    with N workers (and for comparison 1 worker, for a third of the time);
  * first, the floor: a bare Flask route answering a constant JSON, on waitress and on gunicorn (one client),
    so the server's and Flask's share of the latency is seen apart from gridmap's;
  * the mix (unless --no-mix), N workers: 80 % locate, 10 % list cases, 5 % report a case, 5 % act on a case
    (register a reported one), with req/s, p50/p95/p99, errors per kind and lost writes (a write answered
    2xx that is not in the database afterwards; also writes that are there though the client saw an error).
PostGIS runs on --postgres (or GRIDMAP_BENCH_POSTGRES_URL), else on a private throwaway cluster. Latency on a
busy machine is an upper bound: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import GRIDMAP, free_port, load, load_demo, postgres_admin_url, scratch_database, wait_for

from gridmap import assign
from gridmap.store import Store

POINTS = 2_000
COMMON_LUA = """
local points = {%(points)s}
local token = "%(token)s"
local headers = {["Authorization"] = "Bearer " .. token}
local counter = 0
function locate_path()
  counter = counter + 1
  local p = points[(counter %% #points) + 1]
  return "/api/locate?lon=" .. p[1] .. "&lat=" .. p[2]
end
function report(summary, latency)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%.3f, "p50": %%d, "p95": %%d, "p99": %%d, "max": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
LOCATE_LUA = """
request = function() return wrk.format("GET", locate_path(), headers) end
done = function(summary, latency, requests) report(summary, latency); io.write("}\\n") end
"""
# One connection per wrk thread, so each response follows the request this thread sent last.
MIX_LUA = """
local inside = {%(inside)s}
local threads = {}
local kinds = {"locate", "list", "create", "act"}
setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
init = function(args)
  first_act = %(first_act)d + tid * %(per_thread)d
  acted = 0
  last = "locate"
  for _, k in ipairs(kinds) do _G["ok_" .. k] = 0; _G["err_" .. k] = 0 end
end
request = function()
  local r = math.random(100)
  local json = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  if r <= 80 then
    last = "locate"
    return wrk.format("GET", locate_path(), headers)
  elseif r <= 90 then
    last = "list"
    return wrk.format("GET", "/api/incidents?limit=20", headers)
  elseif r <= 95 then
    last = "create"
    local p = inside[math.random(#inside)]  -- a case is reported inside the district (else a 400, by design)
    local body = '{"title": "bench-create", "description": "wrk", "lon": ' .. p[1] .. ', "lat": ' .. p[2] ..
      ', "category_code": "0102"}'
    return wrk.format("POST", "/api/incidents", json, body)
  else
    last = "act"
    local id = first_act + (acted %% %(per_thread)d)
    acted = acted + 1
    return wrk.format("POST", "/api/incidents/" .. id .. "/actions", json, '{"action": "register"}')
  end
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then
    _G["ok_" .. last] = _G["ok_" .. last] + 1
  else
    _G["err_" .. last] = _G["err_" .. last] + 1
  end
end
done = function(summary, latency, requests)
  report(summary, latency)
  for _, k in ipairs(kinds) do
    local ok, err = 0, 0
    for _, t in ipairs(threads) do ok = ok + t:get("ok_" .. k); err = err + t:get("err_" .. k) end
    io.write(string.format(', "ok_%%s": %%d, "err_%%s": %%d', k, ok, k, err))
  end
  io.write("}\\n")
end
"""


def points_over(url: str, count: int = POINTS, seed: int = 3) -> list[tuple[float, float]]:
    """Points spread over the district's bounding box (about a third fall in no grid and get the nearest)."""
    store = Store.open(url)
    index = assign.grid_index(store)
    store.close()
    minx, miny, maxx, maxy = shapely.total_bounds(index.geometries)
    rng = np.random.default_rng(seed)
    return list(zip(rng.uniform(minx, maxx, count).round(7), rng.uniform(miny, maxy, count).round(7), strict=True))


def add_act_pool(url: str, size: int) -> int:
    """Add `size` reported cases for the mix to register; return the first id (they are consecutive)."""
    import datetime as dt

    store = Store.open(url)
    try:
        index = assign.grid_index(store)
        now = dt.datetime.now().replace(microsecond=0)
        rows = []
        for position in range(size):
            grid = position % len(index)
            point = index.geometries[grid].representative_point()
            found = index.locate(lon=point.x, lat=point.y)
            rows.append(
                {"source": "web", "title": "bench-pool", "reported_at": now, "lon": point.x, "lat": point.y,
                 "category_code": "0102", **found.incident_fields(index.edition)}
            )  # fmt: skip
        ids = store.add_incidents(rows, actor="bench")
        assert ids == list(range(ids[0], ids[0] + size)), "the pool's ids must be consecutive"
        return ids[0]
    finally:
        store.close()


class Server:
    """`gridmap serve` in a child process (its own process group, stopped with SIGTERM)."""

    def __init__(self, url: str, workers: int, threads: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [
            str(GRIDMAP),
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ]
        env = {**os.environ, "GRIDMAP_DATABASE_URL": url}
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - a pipe nobody read would stall the server
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True
        )
        wait_for(f"{self.base}/api/health")

    def errors_logged(self, lines: int = 5) -> list[str]:
        """The last lines the server logged (errors and warnings only are logged)."""
        self.log.seek(0)
        return [x.rstrip() for x in self.log.readlines()[-lines:]]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def wrk(base: str, script: str, *, threads: int, connections: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        done = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
             "-s", handle.name, base],
            capture_output=True, text=True, timeout=seconds + 60,
        )  # fmt: skip
    finally:
        os.unlink(handle.name)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line[len("RESULT ") :])
    result["errors"] = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    result["rps"] = result["requests"] / result["seconds"]
    return result


def line(label: str, result: dict, target: str) -> str:
    ms = {k: result[k] / 1000 for k in ("p50", "p95", "p99")}
    return (
        f"  {label:<34} {result['rps']:8,.0f} req/s  p50 {ms['p50']:6.2f}  p95 {ms['p95']:6.2f}  "
        f"p99 {ms['p99']:6.2f} ms  errors {result['errors']:<4} {target}"
    )


BARE_APP = """
from flask import Flask, jsonify
app = Flask(__name__)
@app.get("/api/constant")
def constant():
    return jsonify({"grid_code": "120104001001001", "ambiguous": False})
"""
BARE_LUA = """
request = function() return wrk.format("GET", "/api/constant") end
done = function(summary, latency, requests) report(summary, latency); io.write("}\\n") end
"""


def baseline(args) -> None:
    """The latency of a bare Flask route on each server: what no application code can go below."""
    kind = "sync" if args.worker_threads == 1 else "gthread"  # as `gridmap serve` chooses
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bare.py").write_text(BARE_APP)
        python = str(Path(sys.executable))
        for name, command in (
            ("waitress", [python, "-m", "waitress", "--threads", str(args.threads)]),
            ("gunicorn 1 worker", [python, "-m", "gunicorn", "-k", kind, "--threads", str(args.worker_threads)]),
        ):
            port = free_port()
            bind = ["--listen", f"127.0.0.1:{port}"] if name == "waitress" else ["-b", f"127.0.0.1:{port}"]
            process = subprocess.Popen(
                [*command, *bind, "bare:app"], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            try:
                wait_for(f"http://127.0.0.1:{port}/api/constant")
                script = COMMON_LUA % {"points": "{0,0}", "token": ""} + BARE_LUA
                result = wrk(f"http://127.0.0.1:{port}", script, threads=1, connections=1, seconds=args.latency_seconds)
                print(line(f"bare Flask on {name}, 1 client", result, "(the floor)"))
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)


def run_backend(backend: str, url: str, args) -> None:
    token = load_demo(url, admin="bench")
    points = points_over(url)
    common = COMMON_LUA % {"points": ",".join(f"{{{x},{y}}}" for x, y in points), "token": token}
    locate_lua = common + LOCATE_LUA
    print(f"{backend}: {load()}")
    for workers in (1, args.workers):
        threads = args.threads if workers == 1 else args.worker_threads
        server = Server(url, workers, threads)
        try:
            kind = "sync" if threads == 1 else f"gthread×{threads}"
            name = f"waitress, 1 process×{threads}" if workers == 1 else f"gunicorn, {workers} {kind} workers"
            wrk(server.base, locate_lua, threads=2, connections=8, seconds=3)  # warm up every worker's index
            one = wrk(server.base, locate_lua, threads=1, connections=1, seconds=args.latency_seconds)
            print(line(f"{name}, 1 client", one, "(target p99 < 2 ms)"))
            seconds = args.duration if workers > 1 else max(5, args.duration / 3)
            many = wrk(server.base, locate_lua, threads=2, connections=16, seconds=seconds)
            print(line(f"{name}, 16 connections, {seconds:.0f} s", many, "(target ≥ 1,500/s, p99 < 20 ms, 0 errors)"))
            if workers > 1 and args.mix:
                mix(server, url, common, args)
        finally:
            server.stop()


def mix(server: Server, url: str, common: str, args) -> None:
    threads = 8
    per_thread = max(2_000, int(args.duration * 400 / threads))  # more than a thread can act on in the run
    first = add_act_pool(url, per_thread * threads)
    store = Store.open(url)
    registered_before = len(store.list_incidents(limit=None, statuses=["registered"]))
    index = assign.grid_index(store)
    inside = [index.geometries[i].representative_point() for i in range(len(index))]
    script = common + MIX_LUA % {
        "first_act": first,
        "per_thread": per_thread,
        "inside": ",".join(f"{{{p.x:.7f},{p.y:.7f}}}" for p in inside),
    }
    result = wrk(server.base, script, threads=threads, connections=threads, seconds=args.duration)
    after_rows = store.list_incidents(limit=None)
    store.close()
    created = sum(1 for r in after_rows if r["title"] == "bench-create")
    registered = sum(1 for r in after_rows if r["status"] == "registered") - registered_before
    print(line(f"mix 80/10/5/5, {threads} connections, {args.duration:.0f} s", result, "(0 errors, 0 lost writes)"))
    kinds = ", ".join(
        f"{k} {result[f'ok_{k}']:,} ok / {result[f'err_{k}']} failed" for k in ("locate", "list", "create", "act")
    )
    print(f"    {kinds}")
    for kind, answered, stored in (("reports", result["ok_create"], created), ("steps", result["ok_act"], registered)):
        print(
            f"    {kind}: {answered:,} answered 2xx, {stored:,} in the database: lost {max(0, answered - stored)}; "
            f"written without a 2xx seen {max(0, stored - answered)} (in flight when wrk stopped, or failed late)"
        )
    if result["errors"]:
        print("    the server's last log lines: " + " | ".join(server.errors_logged()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--threads", type=int, default=8, help="threads of the one waitress process")
    parser.add_argument("--worker-threads", type=int, default=1, help="threads of each gunicorn worker")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sustained load with N workers")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="seconds of one client")
    parser.add_argument("--no-mix", dest="mix", action="store_false")
    parser.add_argument("--backends", default="spatialite,postgis")
    parser.add_argument("--postgres", default=os.environ.get("GRIDMAP_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_serve needs wrk, the HTTP load generator: apt-get install wrk")
    print(f"bench_serve: {load()}")
    print(
        "targets: one client p99 < 2 ms; N workers ≥ 1,500 lookups/s sustained, p99 < 20 ms, 0 errors; "
        "mix: 0 errors, 0 lost writes"
    )
    baseline(args)
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        admin = postgres_admin_url(args.postgres) if backend == "postgis" else _Nothing()
        with admin as admin_url, scratch_database(backend, admin_url, "gridmap_bench_serve") as url:
            run_backend(backend, url, args)
    print(f"after: {load()}")


class _Nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
