"""The `gridmap` command: the same core through the front door people type into."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from geodata import write_district

from gridmap.cli import main


@pytest.fixture
def run(database_url):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args, "--db", database_url], catch_exceptions=False)

    return invoke


def test_load_without_commit_is_a_dry_run_and_with_commit_writes(run, tmp_path):
    files = write_district(tmp_path)
    dry = run("load-boundaries", str(files["street"]), "--level", "street")
    assert dry.exit_code == 0
    assert "dry run: nothing written" in dry.output
    assert "no editions yet" in run("editions").output
    for level in ("street", "community", "grid"):
        result = run("load-boundaries", str(files[level]), "--level", level, "--commit")
        assert result.exit_code == 0, result.output
    listed = json.loads(run("editions", "--json").output)
    assert listed == [
        {
            "name": "main",
            "status": "current",
            "valid_from": listed[0]["valid_from"],
            "valid_to": None,
            "areas": {"district": 0, "street": 1, "community": 2, "grid": 4},
        }
    ]


def test_refusal_exits_non_zero_with_the_reason(run, tmp_path):
    files = write_district(tmp_path)
    result = run("load-boundaries", str(files["grid"]), "--level", "grid", "--commit")
    assert result.exit_code == 1
    assert "error: grids.geojson: 4 refusals in 4 features; nothing written:\nparent not in the edition: 4\n" in (
        result.output
    )
    first = "  feature 1 (code 120104001001001 百合第1网格): parent code 120104001001 is not a community"
    assert first in result.output
    assert "add --create-parents" in result.output
    assert "Traceback" not in result.output


def test_activate_and_retire(run, tmp_path):
    files = write_district(tmp_path)
    run("load-boundaries", str(files["street"]), "--level", "street", "--commit")
    run("load-boundaries", str(files["street"]), "--level", "street", "--edition", "plan", "--commit")
    assert run("activate", "plan", "--valid-from", "2027-01-01").output == "edition 'plan' is current from 2027-01-01\n"
    rows = {r["name"]: r for r in json.loads(run("editions", "--json").output)}
    assert rows["main"]["status"] == "retired" and rows["main"]["valid_to"] == "2026-12-31"
    assert run("retire", "plan").exit_code == 0
    again = run("activate", "main")
    assert again.exit_code == 1 and "retired" in again.output


def test_export_writes_the_requested_format(run, tmp_path):
    files = write_district(tmp_path)
    for level in ("street", "community", "grid"):
        run("load-boundaries", str(files[level]), "--level", level, "--commit")
    out = tmp_path / "grids.gpkg"
    result = run("export-boundaries", str(out), "--level", "grid")
    assert result.output == f"wrote 4 grid areas to {out}\n" and out.exists()


def test_init_db_is_idempotent(run, database_url):
    from gridmap.store import Store

    first, second = run("init-db"), run("init-db")
    assert first.exit_code == second.exit_code == 0
    store = Store.open(database_url)
    head = store.head_revision()
    store.close()
    assert first.output == second.output and f"schema at revision {head} " in first.output


def test_bad_database_url_hides_the_password():
    result = CliRunner().invoke(main, ["editions", "--db", "postgresql+psycopg://gm:s3cret@127.0.0.1:1/none"])
    assert result.exit_code == 1
    assert "s3cret" not in result.output and "gm:***@127.0.0.1" in result.output
