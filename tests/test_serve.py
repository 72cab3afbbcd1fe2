"""`gridmap serve --workers N` as real processes, quick start-up of the command line, and bulk files in arrays."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import _free_port
from geodata import GRIDS, load_district

from gridmap import assign, crs, drafts
from gridmap.cli import main
from gridmap.store import Store

NW, SW, NE, SE = (g["code"] for g in GRIDS)
GRIDMAP = Path(sys.executable).with_name("gridmap")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.parametrize("threads", [1, 2])  # sync workers and gthread workers
def test_every_worker_answers_from_an_edition_another_process_activates(database_url, tmp_path, threads):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    drafts.create_draft(store, "plan")
    merged = drafts.merge_grids(store, "plan", [NW, SW])["properties"]["code"]
    port = _free_port()
    server = subprocess.Popen(
        [str(GRIDMAP), "serve", "--port", str(port), "--workers", "2", "--threads", str(threads)],
        # Lookups without a token, as a public locate service would be set up.
        env={**os.environ, "GRIDMAP_DATABASE_URL": database_url, "GRIDMAP_ANONYMOUS_ACCESS": "names"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/locate?lon=117.105&lat=39.115"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                before = _get(base)
                break
            except urllib.error.HTTPError:
                raise  # the server answered: waiting longer will not help
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stderr.read().decode()[-2000:]) from None
                time.sleep(0.3)
        assert len(_children(server.pid)) == 2  # gunicorn's master and two workers
        assert all(_get(base)["grid_code"] == NW for _ in range(20)) and before["edition"] == "main"
        store.activate_edition("plan")  # this test's process, not the server's
        after = [_get(base) for _ in range(20)]  # spread over both workers: none may answer from "main"
        assert {(a["edition"], a["grid_code"]) for a in after} == {("plan", merged)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        server.stderr.close()
        store.close()


# ---- start-up ----------------------------------------------------------------------------------------------
HEAVY = ("sqlalchemy", "geopandas", "pandas", "folium", "shapely", "scipy", "pyarrow", "alembic", "pyproj", "jinja2")


def test_the_command_line_imports_nothing_heavy_until_a_command_runs():
    code = f"import sys, gridmap.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
    helped = subprocess.run([str(GRIDMAP), "--help"], capture_output=True, text=True, check=True)
    assert "locate" in helped.stdout and "serve" in helped.stdout


def test_one_point_imports_no_dataframes_and_answers_like_the_index(district_url):
    code = (
        "import sys; from gridmap.cli import main\n"
        "try:\n    main(['locate', '--lon', '117.105', '--lat', '39.115', '--json'])\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(m for m in ('geopandas', 'pandas', 'folium', 'scipy', 'pyarrow', 'alembic') "
        "if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "GRIDMAP_DATABASE_URL": district_url},
        check=True,
    )
    assert done.stderr.strip() == ""
    store = Store.open(district_url)
    try:
        assert json.loads(done.stdout) == assign.locate(store, lon=117.105, lat=39.115)
    finally:
        store.close()


def test_the_written_out_choices_match_the_modules_they_stand_for():
    from gridmap import attachments, audit, boundaries, casefields, casestats
    from gridmap.cli import EXPORT_FORMATS, IMPORT_LEVELS, attachment_commands, audit_commands, case_commands

    assert IMPORT_LEVELS == boundaries.IMPORT_LEVELS
    assert set(EXPORT_FORMATS) == set(boundaries.EXPORT_FORMATS)
    assert audit_commands.FAIL_KINDS == audit.FAIL_KINDS
    assert case_commands.GROUPS == casestats.GROUPS
    assert case_commands.SOURCES == casefields.SOURCES
    assert attachments.SWEEP_GRACE.total_seconds() == attachment_commands.SWEEP_GRACE_MINUTES * 60


@pytest.fixture
def district_url(database_url, tmp_path):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    store.close()
    return database_url


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(117.105, 39.115), (117.11, 39.11), (117.11, 39.115), (117.13, 39.115), (117.0, 38.9), (117.12, 39.12)],
)
def test_the_database_path_gives_the_index_answer(district_url, lon, lat):
    store = Store.open(district_url)
    try:
        by_index = assign.locate(store, lon=lon, lat=lat)
        assign.keeper._entries.clear()  # no index in memory: the database's spatial index answers
        by_database = assign.locate(store, lon=lon, lat=lat, use_index=False)
    finally:
        store.close()
    assert by_database == by_index


# ---- bulk files ------------------------------------------------------------------------------------------
def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def _run_bulk(url: str, source: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["locate", "--input", str(source), "--output", str(out), *extra, "--db", url])


def test_bulk_adds_the_nearest_grid_for_points_in_no_grid(district_url, tmp_path):
    source = tmp_path / "p.csv"
    source.write_text('id,lon,lat,note\n1,117.105,39.115,"a, b"\n2,117.125,39.105,x\n3,117.11,39.11,y\n')
    result = _run_bulk(district_url, source, tmp_path / "o.csv")
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "o.csv")
    assert [r["note"] for r in rows] == ["a, b", "x", "y"]  # every column passes through, quoting kept
    assert (rows[0]["grid_code"], rows[0]["nearest_code"], rows[0]["nearest_distance_m"]) == (NW, "", "")
    assert rows[1]["grid_code"] == "" and rows[1]["nearest_code"] == SE
    assert float(rows[1]["nearest_distance_m"]) == pytest.approx(432.5, abs=1.0)  # 0.005° of longitude at 39.1°
    assert rows[2]["ambiguous"] == "true" and rows[2]["grid_code"] == NW
    assert "3 rows, 2 in a grid, 1 in no grid, 1 ambiguous, 0 errors" in result.output


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_bulk_converts_whole_columns_like_one_point(district_url, tmp_path, system):
    rng = np.random.default_rng(4)
    lons, lats = rng.uniform(117.1005, 117.1195, 200), rng.uniform(39.1005, 39.1195, 200)
    shifted = crs.from_wgs84(lon=lons, lat=lats, crs=system)
    source = tmp_path / "p.csv"
    source.write_text(
        "id,lon,lat\n" + "".join(f"{i},{x:.10f},{y:.10f}\n" for i, (x, y) in enumerate(zip(*shifted, strict=True)))
    )
    assert _run_bulk(district_url, source, tmp_path / "o.csv", "--crs", system).exit_code == 0
    rows = _rows(tmp_path / "o.csv")
    store = Store.open(district_url)
    try:
        expected = [assign.locate(store, lon=x, lat=y, crs=system)["grid_code"] for x, y in zip(*shifted, strict=True)]
    finally:
        store.close()
    assert [r["grid_code"] for r in rows] == expected and all(expected)


def test_bulk_skips_and_names_a_malformed_line_and_keeps_the_rest(district_url, tmp_path):
    source = tmp_path / "p.csv"
    source.write_text("id,lon,lat\n1,117.105,39.115\n2,117.1,39.1,extra\n3, 117.115 ,39.105\n4,nan,39.1\n")
    result = _run_bulk(district_url, source, tmp_path / "o.csv")
    assert result.exit_code == 0, result.output
    assert "with 4 fields where the header has 3: '2,117.1,39.1,extra'" in result.output
    rows = _rows(tmp_path / "o.csv")
    assert [r["id"] for r in rows] == ["1", "3", "4"]
    assert rows[1]["grid_code"] == SE  # spaces around a number are fine
    assert "not a pair of numbers" in rows[2]["error"] or "finite" in rows[2]["error"]


def test_a_failed_bulk_run_leaves_no_output(district_url, tmp_path):
    source = tmp_path / "p.csv"
    source.write_bytes(b"id,lon,lat\n1,117.105,39.115\n2,\xff\xfe\xfa,39\n")
    out = tmp_path / "o.csv"
    result = _run_bulk(district_url, source, out)
    assert result.exit_code == 1 and "error:" in result.output
    assert not out.exists() and not list(tmp_path.glob("o.csv*"))
