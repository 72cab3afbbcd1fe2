"""A demo district served by `gridmap serve` in its own process, for tests with real clients (GDAL, OWSLib).

GDAL reads features while holding Python's GIL (pyogrio), so a server thread in the test process would
never answer it: the server runs as a separate process, as it does for real users.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from click.testing import CliRunner
from conftest import _admin, _database_numbers, _database_url, _free_port

from gridmap import people
from gridmap.cli import main
from gridmap.store import Store

OPEN_CASES, CLOSED_CASES = 400, 100


@dataclass
class DemoServer:
    """What the tests need: the base URL, the database, API tokens per role and the grid worker's grid."""

    base: str
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)
    worker_grid: str = ""
    supervisor_community: str = ""
    request_log: Path | None = None

    def requests_seen(self) -> list[str]:
        """Return every request the server answered so far: 'METHOD /path?query STATUS'."""
        return self.request_log.read_text(encoding="utf-8").splitlines() if self.request_log.exists() else []

    def headers(self, role: str) -> dict[str, str]:
        """Return the Authorization header of a role's token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def store(self) -> Store:
        """Open the served database."""
        return Store.open(self.database_url)


def _fresh_database(request, backend: str, tmp_dir: Path) -> tuple[str, callable]:
    if backend == "spatialite":
        path = tmp_dir / "gridmap.sqlite"
        shutil.copy(request.getfixturevalue("spatialite_template"), path)
        return f"sqlite:///{path}", lambda: None
    admin_url = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("postgis_template")
    name = f"gridmap_ogc_{os.getpid()}_{next(_database_numbers)}"
    with _admin(admin_url) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")

    def drop() -> None:
        with _admin(admin_url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return _database_url(admin_url, name), drop


def start_demo_server(request, backend: str, tmp_dir: Path):
    """Load the demo district with cases and users, serve it; a generator the fixture yields from."""
    url, drop = _fresh_database(request, backend, tmp_dir)
    loaded = CliRunner().invoke(
        main, ["demo", "--cases", str(OPEN_CASES), "--closed-cases", str(CLOSED_CASES), "--db", url]
    )
    assert loaded.exit_code == 0, loaded.output
    store = Store.open(url)
    try:
        per_grid = collections.Counter(c["grid_code"] for c in store.list_incidents(limit=None))
        worker_grid = per_grid.most_common(1)[0][0]
        community = store.get_area(store.current_edition().name, worker_grid)["parent_code"]
        tokens = {
            "admin": people.add_user(store, "t-admin", role="admin"),
            "viewer": people.add_user(store, "t-viewer", role="viewer"),
            "planner": people.add_user(store, "t-planner", role="planner"),
            "grid_worker": people.add_user(store, "t-worker", role="grid_worker", areas=[worker_grid]),
            "supervisor": people.add_user(store, "t-super", role="supervisor", areas=[community]),
        }
    finally:
        store.close()
    port = _free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": url, "GRIDMAP_SECRET_KEY": "test", "GRIDMAP_THREADS": "4"}
    log = (tmp_dir / "server.log").open("w")
    request_log = tmp_dir / "requests.log"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("serve_logged.py")), str(port), str(request_log)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None:
                raise AssertionError((tmp_dir / "server.log").read_text())
            time.sleep(0.1)
        else:
            raise AssertionError("gridmap serve did not answer within 30 s")
        yield DemoServer(base, url, tokens, worker_grid, community, request_log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        drop()
