"""Holding under load and faults: a busy database is a 503 with Retry-After, API writes go on during a large
import, and an import killed with SIGKILL at any moment leaves all of it or none of it."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import sqlalchemy as sa
from geodata import MID_LON, E, N, S, W, load_district

from gridmap import clock, people
from gridmap.config import Settings
from gridmap.store import Store
from gridmap.web import create_app

REPORT = {"title": "井盖缺失", "category": "0403", "lon": 117.105, "lat": 39.115}


def write_hotline_csv(path: Path, count: int, *, seed: int = 1) -> Path:
    """Write a 12345 export of `count` rows with coordinates inside the tiny district."""
    rng = random.Random(seed)
    start = clock.now() - dt.timedelta(days=30)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["工单编号", "诉求内容", "经度", "纬度", "来电时间", "来电号码", "类别"])
        for i in range(count):
            writer.writerow(
                [
                    f"GD{seed}-{i:07d}",
                    f"下水道堵塞，污水外溢 {i}",
                    f"{rng.uniform(W + 1e-4, E - 1e-4):.6f}",
                    f"{rng.uniform(S + 1e-4, N - 1e-4):.6f}",
                    f"{start + dt.timedelta(seconds=i):%Y-%m-%d %H:%M:%S}",
                    f"138{i:08d}",
                    "0102",
                ]
            )
    return path


def _import_command(path: Path, database_url: str) -> list[str]:
    return [str(Path(sys.executable).with_name("gridmap")), "import-incidents", str(path), "--db", database_url]


# ---- a busy database --------------------------------------------------------------------------------------
def _hold_write_lock(database_url: str):
    """Open a second connection that holds the write lock on incidents; return (engine, connection)."""
    engine = sa.create_engine(
        database_url.replace("postgresql+psycopg", "postgresql+psycopg"),
        **({"module": __import__("sqlean").dbapi2} if database_url.startswith("sqlite") else {}),
    )
    conn = engine.connect()
    if database_url.startswith("sqlite"):
        conn.connection.driver_connection.isolation_level = None
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("LOCK TABLE incidents IN EXCLUSIVE MODE")
    return engine, conn


def test_a_busy_database_answers_503_with_retry_after_and_reads_go_on(database_url, tmp_path):
    app = create_app(Settings(database_url=database_url, secret_key="test", db_busy_timeout=0.3))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    token = people.add_user(store, "管理员", role="admin")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/incidents", json=REPORT, headers=headers).status_code == 201
    if store.backend == "spatialite":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine, holder = _hold_write_lock(database_url)
    try:
        started = time.perf_counter()
        busy = client.post("/api/incidents", json=REPORT, headers=headers)
        waited = time.perf_counter() - started
        assert busy.status_code == 503, busy.get_json()
        assert busy.headers["Retry-After"] == "1"
        assert "busy" in busy.get_json()["error"] and "Traceback" not in busy.get_data(as_text=True)
        assert 0.25 < waited < 5
        # Readers are not blocked by a writer (WAL on SQLite, MVCC on PostgreSQL).
        started = time.perf_counter()
        listed = client.get("/api/incidents", headers=headers)
        assert listed.status_code == 200 and listed.get_json()["count"] == 1
        assert time.perf_counter() - started < 0.25 + 1
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    assert client.post("/api/incidents", json=REPORT, headers=headers).status_code == 201
    assert store.table_counts()["incidents"] == 2
    store.close()


# ---- API writes during a large import ----------------------------------------------------------------------
def test_api_writes_go_on_during_a_large_import(live_server, database_url, tmp_path):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    token = people.add_user(store, "管理员", role="admin")
    store.close()
    source = write_hotline_csv(tmp_path / "big.csv", 25_000)
    importer = subprocess.Popen(
        _import_command(source, database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    latencies, failures = [], []

    def write_once() -> None:
        body = json.dumps(REPORT).encode()
        request = urllib.request.Request(live_server + "/api/incidents", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {token}")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            failures.append((exc.code, exc.read()[:200]))
        latencies.append(time.perf_counter() - started)

    # 10 writes a second (the bench does 20), each on its own thread so a slow one does not slow the rate,
    # until the import ends.
    writers = []
    while importer.poll() is None:
        thread = threading.Thread(target=write_once)
        thread.start()
        writers.append(thread)
        time.sleep(0.1)
    for thread in writers:
        thread.join()
    output, errors = importer.communicate()
    assert importer.returncode == 0, errors
    assert "imported: 25000" in output
    assert failures == []
    assert len(latencies) >= 10  # the import lasted long enough to overlap the writes
    # Before the import was staged, writes waited for its whole transaction (many seconds) or failed.
    assert max(latencies) < 2.5, sorted(latencies)[-5:]
    store = Store.open(database_url)
    assert store.table_counts()["incidents"] == 25_000 + len(latencies)
    store.close()


# ---- kill -9 ------------------------------------------------------------------------------------------
def _counts(database_url: str) -> tuple[int, int]:
    store = Store.open(database_url)
    try:
        counts = store.table_counts()
        return counts["incidents"], counts["incident_history"]
    finally:
        store.close()


def _swap_started(engine, wal: Path | None, baseline: int) -> bool:
    """Whether the import process has begun writing the main database (SQLite: its WAL grows; PostgreSQL:
    a COPY into incidents is running)."""
    if wal is not None:
        return wal.exists() and wal.stat().st_size > baseline
    with engine.connect() as conn:
        return bool(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY incidents%%' AND pid <> pg_backend_pid()"
            ).scalar()
        )


def test_an_import_killed_while_writing_writes_all_or_nothing(database_url, tmp_path):
    # Before its one writing transaction an import has written nothing to the main database by construction
    # (SQLite stages in the connection's TEMP database); the moment that matters is during that transaction.
    store = Store.open(database_url)
    load_district(store, tmp_path)
    store.close()
    rows = 15_000
    source = write_hotline_csv(tmp_path / "big.csv", rows, seed=2)
    wal = Path(database_url.removeprefix("sqlite:///") + "-wal") if database_url.startswith("sqlite") else None
    baseline = wal.stat().st_size if wal is not None and wal.exists() else 0
    importer = subprocess.Popen(
        _import_command(source, database_url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    watcher = sa.create_engine(database_url) if wal is None else None
    while importer.poll() is None and time.monotonic() < deadline:
        if _swap_started(watcher, wal, baseline):
            break
        time.sleep(0.001 if wal is not None else 0.005)
    importer.send_signal(signal.SIGKILL)
    importer.wait()
    if watcher is not None:
        watcher.dispose()
    incidents, history = _counts(database_url)
    assert (incidents, history) in ((0, 0), (rows, rows)), (incidents, history)
    if database_url.startswith("sqlite"):
        engine = sa.create_engine(database_url, module=__import__("sqlean").dbapi2)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        engine.dispose()
    # The next import finds a consistent database: it completes, or adds nothing if the first had finished.
    again = subprocess.run(_import_command(source, database_url), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _counts(database_url) == (rows, rows)
    assert os.path.exists(source)


def test_incident_rows_written_by_an_import_read_back_like_api_rows(store, tmp_path):
    load_district(store, tmp_path)
    at = dt.datetime(2026, 11, 2, 9, 15)
    ids = store.add_incidents(
        [{"title": "api", "source": "web", "reported_at": at, "status": "reported", "lon": MID_LON, "lat": 39.115}]
    )
    store.import_incident_rows(
        ("title", "source", "reported_at", "status", "ambiguous", "deadline"),
        [("import", "import", at, "reported", True, at + dt.timedelta(hours=4))],
    )
    rows = store.list_incidents(reported_from=at, reported_to=at + dt.timedelta(seconds=1), limit=None)
    assert [r["title"] for r in rows] == ["api", "import"]
    imported = store.get_incident(ids[0] + 1)
    assert imported["reported_at"] == at and imported["ambiguous"] is True
    assert imported["deadline"] == at + dt.timedelta(hours=4)
    assert [(h["action"], h["at"]) for h in imported["history"]] == [("report", at)]
    assert store.list_incidents(deadline_before=at + dt.timedelta(hours=5), limit=None)[-1]["title"] == "import"
