"""Benchmark the case map: the demo district (1,464 grids) with 50,000 open cases in headless Chromium.

Prints the time from navigation to `window.__mapReady` (grids, outlines and clustered cases drawn) and the
bytes the browser received for the page, its assets and its data, both as sent (gzip) and uncompressed.

    .venv/bin/python bench/bench_map.py [--cases 50000] [--runs 3] [--db sqlite:///PATH]

Without --db it runs `gridmap demo --cases N` into a fresh SQLite file first. Needs the map assets installed
(`python -m gridmap.assets install`) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from gridmap import people
from gridmap.config import Settings
from gridmap.store import Store

CHROMIUM = "/usr/bin/chromium"


def serve(database_url: str):
    """Start gridmap on 127.0.0.1 in a thread; return (base URL, server)."""
    import waitress.server

    from gridmap.web import create_app

    app = create_app(Settings(database_url=database_url, secret_key="bench"))
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}", server


def _watch_network(page, context, base: str) -> tuple[list[str], dict[str, dict]]:
    """Block (and list) requests leaving 127.0.0.1; count each response's bytes as sent and as decoded."""
    outside: list[str] = []
    sizes: dict[str, dict] = {}

    def block(route) -> None:
        outside.append(route.request.url)
        route.abort()

    def on_response(event) -> None:
        sizes.setdefault(event["requestId"], {})["url"] = event["response"]["url"]

    def on_data(event) -> None:
        entry = sizes.setdefault(event["requestId"], {})
        entry["raw"] = entry.get("raw", 0) + event["dataLength"]

    def on_finished(event) -> None:
        sizes.setdefault(event["requestId"], {})["wire"] = event["encodedDataLength"]

    page.route(lambda url: not url.startswith(base), block)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.dataReceived", on_data)
    cdp.on("Network.loadingFinished", on_finished)
    return outside, sizes


def measure(base: str, token: str, runs: int) -> list[dict]:
    """Open /map `runs` times in a fresh headless Chromium each (cold cache); return timings and bytes."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        for _ in range(runs):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(
                extra_http_headers={"Authorization": f"Bearer {token}"}, viewport={"width": 1400, "height": 900}
            )
            page = context.new_page()
            outside, sizes = _watch_network(page, context, base)
            started = time.perf_counter()
            page.goto(base + "/map")
            page.wait_for_function("window.__mapReady === true", timeout=60_000)
            ready = time.perf_counter() - started
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
            marks = page.evaluate(
                "performance.getEntriesByType('mark').map((m) => [m.name.replace('gm-', ''), Math.round(m.startTime)])"
            )
            # The page's own clock: from navigation start to the moment it set __mapReady.
            page_ready = dict(marks)["ready"] / 1000
            grids = page.evaluate("window.__gridmap.drawnGridCount()")
            cases = page.evaluate("window.__gridmap.caseCount()")
            page.wait_for_timeout(300)  # let the last loadingFinished events arrive
            results.append(
                {
                    "ready_s": page_ready,
                    "wait_s": ready,
                    "wire_bytes": sum(s.get("wire", 0) for s in sizes.values()),
                    "raw_bytes": sum(s.get("raw", 0) for s in sizes.values()),
                    "requests": len(sizes),
                    "by_url": {s.get("url", "?"): (s.get("wire", 0), s.get("raw", 0)) for s in sizes.values()},
                    "heap_mb": heap / 1e6,
                    "grids": grids,
                    "cases": cases,
                    "outside": outside,
                    "marks": ", ".join(f"{name} {ms}" for name, ms in marks),
                }
            )
            browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", help="Database URL with the demo and cases already loaded (skips loading).")
    args = parser.parse_args()
    if args.db:
        database_url = args.db
        store = Store.open(database_url)
    else:
        database_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='gridmap-bench-')) / 'bench.sqlite'}"
        from click.testing import CliRunner

        from gridmap.cli import main as gridmap

        started = time.perf_counter()
        result = CliRunner().invoke(gridmap, ["demo", "--cases", str(args.cases), "--db", database_url])
        if result.exit_code != 0:
            raise SystemExit(f"gridmap demo failed: {result.output}")
        print(f"gridmap demo --cases {args.cases}: {time.perf_counter() - started:.1f} s")
        store = Store.open(database_url)
    token = people.add_user(store, f"bench-{time.time_ns()}", role="admin")
    open_cases = sum(1 for r in store.incident_points(only_open=True))
    grid_total = store.area_counts(store.current_edition().name).get("grid", 0)
    store.close()
    base, server = serve(database_url)
    try:
        results = measure(base, token, args.runs)
    finally:
        server.close()
    print(f"demo district: {grid_total:,} grids, {open_cases:,} open located cases; {args.runs} cold runs")
    for i, r in enumerate(results, 1):
        print(
            f"run {i}: ready {r['ready_s']:.2f} s (seen by playwright at {r['wait_s']:.2f} s), "
            f"{r['requests']} requests, "
            f"{r['wire_bytes'] / 1e6:.2f} MB sent ({r['raw_bytes'] / 1e6:.2f} MB uncompressed), "
            f"JS heap {r['heap_mb']:.0f} MB, {r['grids']} grids drawn, {r['cases']} cases; "
            f"outside requests: {len(r['outside'])}"
        )
        print(f"       page timeline (ms): {r['marks']}")
    print(f"median ready: {statistics.median(r['ready_s'] for r in results):.2f} s (target < 2 s)")
    print(
        f"median page + data: {statistics.median(r['wire_bytes'] for r in results) / 1e6:.2f} MB sent (target < 3 MB)"
    )
    print("largest responses (sent / uncompressed bytes):")
    for url, (wire, raw) in sorted(results[-1]["by_url"].items(), key=lambda kv: -kv[1][0])[:8]:
        print(f"  {wire:>10,} {raw:>11,}  {url.replace(base, '')[:90]}")


if __name__ == "__main__":
    main()
