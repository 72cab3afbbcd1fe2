"""Every command-line error is one line on stderr and a non-zero exit: never a traceback, never exit 0."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gridmap.cli import main

# (arguments; {dir} is a directory, {file} a garbage file, {db} the database URL; a fragment of the message)
CASES = [
    ("import-incidents {dir} --db {db}", "is a directory"),
    ("import-incidents {dir}/missing.csv --db {db}", "no such file"),
    ("import-incidents {file} --db {db}", "incidents are read from .csv"),
    ("import-incidents {dir}/x.csv --report {dir} --db {db}", "cannot write a report"),
    ("import-incidents {dir}/x.csv --category --db {db}", "Got unexpected extra argument"),
    ("load-boundaries {dir} --level grid --db {db}", "folder"),
    ("load-boundaries {file} --level grid --db {db}", "garbage.bin"),
    ("load-boundaries {file} --db {db}", "Missing option '--level'"),
    ("load-gazetteer {dir} --db {db}", "directory"),
    ("load-gazetteer {dir}/missing.csv --db {db}", "missing.csv"),
    ("locate --lon abc --lat 39 --db {db}", "'abc' is not a valid float"),
    ("locate --db {db}", "give --lon and --lat"),
    ("locate --input {dir} --output {dir}/out.csv --db {db}", "no current edition"),
    ("map {dir} --db {db}", "is a directory"),
    ("activate ../../etc --db {db}", "no edition named '../../etc'"),
    ("users add someone --role nobody --db {db}", "'nobody' is not one of"),
    ("stats --from 2026-13-01 --db {db}", "is not a date"),
    ("demo --cases -1 --db {db}", "--cases"),
    ("audit --edition nope --db {db}", "no edition named 'nope'"),
    ("compare a b --db {db}", "no edition named"),
    ("init-db --db notaurl", "not a database URL"),
    ("init-db --db mysql://u@h/db", "unsupported database"),
    ("nosuchcommand", "No such command"),
]


@pytest.fixture
def places(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4)
    return {"dir": str(folder), "file": str(garbage), "db": f"sqlite:///{tmp_path / 'gridmap.sqlite'}"}


@pytest.mark.parametrize(("template", "fragment"), CASES, ids=[c[0].split(" {")[0] for c in CASES])
def test_command_line_errors_are_one_line_and_exit_non_zero(places, template, fragment):
    result = CliRunner().invoke(main, template.format(**places).split())
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output + result.stderr


def test_a_bad_setting_in_the_environment_is_one_line(places):
    result = CliRunner().invoke(main, ["init-db", "--db", places["db"]], env={"GRIDMAP_DB_BUSY_TIMEOUT": "soon"})
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: GRIDMAP_DB_BUSY_TIMEOUT='soon' is not a float number"


def test_help_and_version_still_exit_zero():
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0
    assert CliRunner().invoke(main, ["import-incidents", "--help"]).exit_code == 0
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
