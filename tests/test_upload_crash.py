"""kill -9 of a real `gridmap serve` in the middle of an upload: no case is half-created and the files it had
written do not stay for long (both databases).

The server is stopped at the worst moment: its photo files are written and its database transaction is waiting
(the test holds a write lock on the database), so the kill lands between the two.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from click.testing import CliRunner
from geodata import GRIDS, load_district
from photos import jpeg
from sqlalchemy.engine import make_url
from urllib3 import encode_multipart_formdata

from gridmap import people
from gridmap.cli import main
from gridmap.store import Store

NW = GRIDS[0]["code"]
GRIDMAP = Path(sys.executable).with_name("gridmap")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/api/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def _serving(database_url: str, photos: Path):
    port = _free_port()
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": database_url,
        "GRIDMAP_ATTACHMENTS": str(photos),
        "GRIDMAP_SECRET_KEY": "test-secret",
        "GRIDMAP_THREADS": "2",
    }
    server = subprocess.Popen(
        [str(GRIDMAP), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                log = server.stderr.read().decode()[-2000:]
                raise AssertionError(f"gridmap serve did not start: {log}")
            time.sleep(0.1)
        yield server, port
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)
        server.stderr.close()


@contextlib.contextmanager
def _write_lock(database_url: str):
    """Hold the database's write lock: readers go on, the server's transaction waits."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        conn.execute("LOCK TABLE attachments IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def _upload(port: int, token: str, outcome: dict) -> None:
    fields = {
        "title": "违章搭建",
        "category": "0101",
        "lon": "117.105",
        "lat": "39.115",
        "photos": ("a.jpg", jpeg(size=(1200, 900)), "image/jpeg"),
    }
    body, kind = encode_multipart_formdata(
        [*fields.items(), ("photos", ("b.jpg", jpeg(size=(900, 1200)), "image/jpeg"))]
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": kind, "Authorization": f"Bearer {token}"}
        connection.request("POST", "/api/incidents", body=body, headers=headers)
        outcome["status"] = connection.getresponse().status
    except OSError as exc:  # the server died under us: that is the point
        outcome["error"] = type(exc).__name__
    finally:
        connection.close()


def _files(photos: Path) -> list[Path]:
    return sorted(p for p in photos.rglob("*") if p.is_file() and ".partial" not in p.parts)


def test_kill_9_during_an_upload_leaves_no_case_and_no_lasting_files(database_url, tmp_path):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    token = people.add_user(store, "网格员", role="grid_worker", areas=[NW])
    store.close()
    photos = tmp_path / "photos"
    outcome: dict = {}
    with _serving(database_url, photos) as (server, port), _write_lock(database_url):
        sender = threading.Thread(target=_upload, args=(port, token, outcome))
        sender.start()
        deadline = time.monotonic() + 30
        while len(_files(photos)) < 6:  # two photos × (as sent, display, thumbnail)
            assert time.monotonic() < deadline, f"the server wrote {len(_files(photos))} of 6 files"
            assert server.poll() is None
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    sender.join(timeout=30)
    assert "status" not in outcome, outcome  # no answer ever came
    store = Store.open(database_url)
    counts = store.table_counts()
    store.close()
    assert (counts["incidents"], counts["incident_history"], counts["attachments"]) == (0, 0, 0)
    orphans = _files(photos)
    assert len(orphans) == 6

    env = {"GRIDMAP_ATTACHMENTS": str(photos)}
    # Young files may belong to an upload still running: a sweep keeps them…
    result = CliRunner().invoke(main, ["attachments", "sweep", "--db", database_url], env=env)
    assert result.exit_code == 0 and "0 orphan files deleted" in result.output and _files(photos) == orphans
    # …and once they are older than the grace they go (the server runs the same sweep by itself after uploads:
    # test_attachments.test_the_sweep_deletes_old_orphans_only).
    past = (dt.datetime.now() - dt.timedelta(minutes=31)).timestamp()
    for path in orphans:
        os.utime(path, (past, past))
    result = CliRunner().invoke(main, ["attachments", "sweep", "--db", database_url], env=env)
    assert result.exit_code == 0 and "6 orphan files deleted" in result.output
    assert _files(photos) == []
