"""What the user-path benchmarks share: the load average, a scratch PostGIS, the demo district in a database.

Not a benchmark itself (`make bench` runs bench_*.py only).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from gridmap import boundaries, people
from gridmap.demo.district import demo_boundary_dir
from gridmap.store import Store

ROOT = Path(__file__).resolve().parents[1]
GRIDMAP = ROOT / ".venv" / "bin" / "gridmap"


def load() -> str:
    """Say how busy the machine is: figures measured on a busy machine are upper bounds."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_admin_url(given: str | None):
    """Yield an admin URL of a PostgreSQL server with PostGIS: the given one, or a private throwaway cluster."""
    if given:
        yield given
        return
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise SystemExit("PostGIS part: no --postgres URL and no PostgreSQL installed (apt-get install postgresql)")
    binaries, root, port = found[-1].parent, Path(tempfile.mkdtemp(prefix="gridmap-bench-pg-")), free_port()
    as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    def run(*args) -> None:
        command = [str(a) for a in args]
        if as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=root)

    if as_postgres:
        shutil.chown(root, "postgres")
    data = root / "data"
    run(binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    run(binaries / "pg_ctl", "-D", data, "-o", options, "-l", root / "log", "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(binaries / "pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def scratch_database(backend: str, admin_url: str | None, name: str):
    """Yield the URL of an empty gridmap database of `backend`, removed afterwards."""
    if backend == "spatialite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        return
    admin = make_url(admin_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def load_demo(url: str, *, admin: str | None = None) -> str | None:
    """Load the demo district as the current edition; with `admin`, add that admin user and return its token."""
    store = Store.open(url)
    try:
        boundaries.load_demo(store, demo_boundary_dir())
        return people.add_user(store, admin, role="admin") if admin else None
    finally:
        store.close()


def wait_for(url: str, seconds: float = 60.0) -> None:
    """Wait until a URL answers 200."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not answer {url} within {seconds:.0f} s")
        time.sleep(0.2)
