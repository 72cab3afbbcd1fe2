"""Benchmark the exports: the whole case list of the demo's 50,000 cases as XLSX and CSV, and the indicators.

Times what a user waits for: the download through the web route (read every case in scope, mask, write),
for an admin and for a street supervisor (masking and scope as on screen). Target (issue 16): 50,000 cases
export in < 10 s.

    .venv/bin/python bench/bench_exports.py [--cases 50000] [--db URL]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

from gridmap import people
from gridmap.config import Settings
from gridmap.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--db", help="Database URL with the demo and cases already loaded (skips loading).")
    args = parser.parse_args()
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.db:
        database_url = args.db
    else:
        database_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='gridmap-bench-')) / 'bench.sqlite'}"
        from click.testing import CliRunner

        from gridmap.cli import main as gridmap

        result = CliRunner().invoke(gridmap, ["demo", "--cases", str(args.cases), "--db", database_url])
        if result.exit_code != 0:
            raise SystemExit(f"gridmap demo failed: {result.output}")
    store = Store.open(database_url)
    admin = people.add_user(store, f"bench-admin-{time.time_ns()}", role="admin")
    street = store.area_attributes(store.current_edition().name, "street")[0]["code"]
    supervisor = people.add_user(store, f"bench-sup-{time.time_ns()}", role="supervisor", areas=[street])
    total = store.incidents_fingerprint()[0]
    store.close()
    from gridmap.web import create_app

    app = create_app(Settings(database_url=database_url, secret_key="bench"))
    client = app.test_client()
    print(f"demo district, {total:,} cases")
    for who, token in (("admin", admin), ("street supervisor", supervisor)):
        for path in ("/cases/export?format=xlsx", "/cases/export?format=csv", "/stats/export?format=xlsx&by=grid"):
            started, cpu = time.perf_counter(), time.process_time()
            response = client.get(path, headers={"Authorization": f"Bearer {token}"})
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            assert response.status_code == 200, response.data[:300]
            rows = _rows(response.data, path)
            print(
                f"{who:>17} {path:<38} {seconds:6.2f} s (CPU {cpu:5.2f} s)  {len(response.data) / 1e6:6.2f} MB  "
                f"{rows:,} rows"
            )
    app.extensions["gridmap"].store.close()
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("target: 50,000 cases export in < 10 s (on a loaded machine the CPU time is the better guide)")


def _rows(data: bytes, path: str) -> int:
    if "format=csv" in path:
        return data.count(b"\r\n") - 1
    import openpyxl

    return openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0].max_row - 1


if __name__ == "__main__":
    main()
