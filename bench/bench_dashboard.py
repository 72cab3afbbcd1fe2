"""Benchmark the command dashboard: the demo district with 50,000 cases in headless Chromium.

Prints the time from navigation to `window.__dashboardReady` (every chart and the grid map drawn) on a server
that has just started (cold: nothing cached) and on later visits (warm), and the bytes of JSON the page
fetched as sent on the wire (gzip) and uncompressed. Targets (issue 16): ready < 1.5 s, JSON < 300 kB.

    .venv/bin/python bench/bench_dashboard.py [--cases 50000] [--closed-cases 10000] [--runs 3] [--db URL]

Without --db it runs `gridmap demo --cases N --closed-cases M` into a fresh SQLite file first. Needs the
browser assets installed (`python -m gridmap.assets install`) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_map import CHROMIUM, _watch_network, serve

from gridmap import people
from gridmap.store import Store


def open_dashboard(pw, base: str, token: str, path: str) -> dict:
    """Open the dashboard in a fresh headless Chromium (cold browser cache); return timings and bytes."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    context = browser.new_context(
        extra_http_headers={"Authorization": f"Bearer {token}"}, viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    outside, sizes = _watch_network(page, context, base)
    started = time.perf_counter()
    page.goto(base + path)
    page.wait_for_function("window.__dashboardReady === true || !!window.__dashboardError", timeout=120_000)
    waited = time.perf_counter() - started
    error = page.evaluate("window.__dashboardError || null")
    ready = page.evaluate("performance.getEntriesByName('dashboard-ready')[0].startTime") / 1000
    received = page.evaluate("document.querySelector('#tiles .tile[data-key=received] .value').dataset.value")
    marks = page.evaluate(
        "performance.getEntriesByType('mark').map((m) => m.name.replace('dashboard-', '') + ' '"
        " + Math.round(m.startTime)).join(', ')"
    )
    page.wait_for_timeout(300)  # the last loadingFinished events
    browser.close()
    api = [s for s in sizes.values() if "/api/" in s.get("url", "")]
    return {
        "ready_s": ready,
        "wait_s": waited,
        "error": error,
        "received": received,
        "json_wire": sum(s.get("wire", 0) for s in api),
        "json_raw": sum(s.get("raw", 0) for s in api),
        "all_wire": sum(s.get("wire", 0) for s in sizes.values()),
        "by_url": {s.get("url", "?"): (s.get("wire", 0), s.get("raw", 0)) for s in sizes.values()},
        "outside": outside,
        "marks": marks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--closed-cases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", help="Database URL with the demo and cases already loaded (skips loading).")
    args = parser.parse_args()
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.db:
        database_url = args.db
    else:
        database_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='gridmap-bench-')) / 'bench.sqlite'}"
        from click.testing import CliRunner

        from gridmap.cli import main as gridmap

        started = time.perf_counter()
        command = ["demo", "--cases", str(args.cases), "--closed-cases", str(args.closed_cases), "--db", database_url]
        result = CliRunner().invoke(gridmap, command)
        if result.exit_code != 0:
            raise SystemExit(f"gridmap demo failed: {result.output}")
        print(f"gridmap {' '.join(command[:5])}: {time.perf_counter() - started:.1f} s")
    store = Store.open(database_url)
    token = people.add_user(store, f"bench-{time.time_ns()}", role="admin")
    total = store.incidents_fingerprint()[0]
    store.close()
    from playwright.sync_api import sync_playwright

    results = []
    base, server = serve(database_url)
    try:
        with sync_playwright() as pw:
            for run in range(args.runs + 1):
                results.append(("cold" if run == 0 else "warm", open_dashboard(pw, base, token, "/dashboard")))
            # The wall screen with a whole year and a street filter: the same JSON, another shape.
            year = open_dashboard(pw, base, token, "/dashboard?period=range&from=2026-01-01&to=2026-12-31&screen=1")
    finally:
        server.close()
    print(f"demo district, {total:,} cases; a fresh server, then {args.runs} visits in fresh browsers")
    for kind, r in [*results, ("year", year)]:
        print(
            f"{kind:>5}: ready {r['ready_s']:.2f} s (playwright saw it at {r['wait_s']:.2f} s); "
            f"JSON {r['json_wire'] / 1e3:.0f} kB sent ({r['json_raw'] / 1e3:.0f} kB uncompressed); "
            f"everything {r['all_wire'] / 1e6:.2f} MB sent; received={r['received']}; "
            f"error={r['error']}; outside requests: {len(r['outside'])}"
        )
        print(f"       page timeline (ms): {r['marks']}")
    warm = [r for kind, r in results if kind == "warm"]
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"cold ready: {results[0][1]['ready_s']:.2f} s; median warm ready: "
        f"{statistics.median(r['ready_s'] for r in warm):.2f} s (target < 1.5 s)"
    )
    print(f"median JSON on the wire: {statistics.median(r['json_wire'] for r in warm) / 1e3:.0f} kB (target < 300 kB)")
    print("responses (sent / uncompressed bytes):")
    for url, (wire, raw) in sorted(warm[-1]["by_url"].items(), key=lambda kv: -kv[1][0])[:8]:
        print(f"  {wire:>10,} {raw:>11,}  {url.replace(base, '')[:90]}")


if __name__ == "__main__":
    main()
