"""Shared fixtures: a real SpatiaLite file and a real PostGIS database per test.

PostGIS comes from GRIDMAP_TEST_POSTGRES_URL when given (an admin URL such as
postgresql://postgres@127.0.0.1:5432/postgres), otherwise from a private throwaway cluster started
with initdb in a temporary directory. Locally a missing backend skips; with CI=true it fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gridmap.store import Store

IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ("spatialite", "postgis")
_database_numbers = itertools.count()


def skip_or_fail(reason: str) -> None:
    """Skip locally; in CI a missing component is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    if IN_CI and skipped:
        terminalreporter.write_line(f"CI=true: {len(skipped)} skipped tests count as failures", red=True)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = 1


# ---- PostgreSQL --------------------------------------------------------------------------------------
class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, owned by `postgres` when we run as root."""

    def __init__(self) -> None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
        if not candidates:
            raise FileNotFoundError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
        self.bin = candidates[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="gridmap-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self.as_postgres:
            shutil.chown(self.root, "postgres")

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def start(self) -> str:
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "log", "-w", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_admin_url():
    """An admin URL of a PostgreSQL server with PostGIS available."""
    given = os.environ.get("GRIDMAP_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        cluster = ThrowawayCluster()
        url = cluster.start()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        skip_or_fail(f"no PostgreSQL for the PostGIS tests: {exc} {detail.decode(errors='replace')[-300:]}")
    try:
        yield url
    finally:
        cluster.stop()


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
    )


def _database_url(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgis_template(postgres_admin_url):
    """A template database with PostGIS and the gridmap schema, cloned for every test."""
    name = f"gridmap_template_{os.getpid()}"
    with _admin(postgres_admin_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    Store.open(_database_url(postgres_admin_url, name)).close()
    yield name
    with _admin(postgres_admin_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def spatialite_template(tmp_path_factory):
    """A SpatiaLite file with the gridmap schema, copied for every test."""
    path = tmp_path_factory.mktemp("spatialite") / "template.sqlite"
    Store.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def database_url(request, tmp_path):
    """A URL of a fresh, migrated database of the backend named by the test's parameter."""
    backend = getattr(request, "param", "spatialite")
    if backend == "spatialite":
        path = tmp_path / "gridmap.sqlite"
        shutil.copy(request.getfixturevalue("spatialite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("postgis_template")
    name = f"gridmap_test_{os.getpid()}_{next(_database_numbers)}"
    with _admin(admin_url) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield _database_url(admin_url, name)
    with _admin(admin_url) as conn:
        for _ in range(3):
            try:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.2)


def pytest_generate_tests(metafunc):
    # Every test that asks for `store` or `database_url` runs once per backend.
    if "database_url" in metafunc.fixturenames and "database_url" not in getattr(metafunc, "_gridmap_done", ()):
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


@pytest.fixture
def store(database_url):
    """An open Store on a fresh database (SpatiaLite and PostGIS)."""
    opened = Store.open(database_url)
    yield opened
    opened.close()


# ---- a real HTTP server --------------------------------------------------------------------------------
@pytest.fixture
def live_server(database_url, tmp_path):
    """Serve create_app() on a real WSGI server (waitress) on 127.0.0.1; yields its base URL."""
    import threading

    import waitress.server

    from gridmap.config import Settings
    from gridmap.web import create_app

    photos = tmp_path / "photos"  # never the repository's instance/attachments
    app = create_app(Settings(database_url=database_url, secret_key="test-secret", attachments=str(photos)))
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4)
    stopping = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except OSError:
            # Closing the listening socket under waitress's select loop raises EBADF; only then is it expected.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    server.gridmap_app = app
    yield base
    stopping.set()
    server.close()
    thread.join(timeout=5)
    app.extensions["gridmap"].store.close()
