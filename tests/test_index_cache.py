"""The grid index kept on disk between processes, and the bulk command that uses it without opening the store.

A kept raster is named by the grids it was built from, so it can only ever be used for those very grids; kept
grids are named by the edition's state (name, revision, creation to the microsecond), which every change bumps.
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from geodata import load_district
from shapely.affinity import translate
from test_assign import HOLED_GRIDS, NE, NW, load_holed_district

from gridmap import assign
from gridmap.assign import index_cache
from gridmap.assign.index import GridIndex
from gridmap.cli import main
from gridmap.store import peek


@pytest.fixture(autouse=True)
def restore_directory():
    """Commands run here set the process-wide directory: put back what the other tests had."""
    before = index_cache.directory()
    yield
    index_cache.use_directory(before)


@pytest.fixture
def kept(tmp_path):
    """Keep indexes in a fresh directory for the test."""
    directory = tmp_path / "cache"
    index_cache.use_directory(directory)
    return directory


def build(grids) -> GridIndex:
    return GridIndex.build(
        [g["code"] for g in grids], [g["geometry"] for g in grids], [g["parent_code"] for g in grids]
    )


def points(count: int = 5000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the tiny district and beyond, plus every vertex and edge midpoint of its grids."""
    rng = np.random.default_rng(seed)
    lons, lats = rng.uniform(117.095, 117.125, count), rng.uniform(39.095, 39.125, count)
    rims = shapely.get_coordinates(shapely.segmentize([g["geometry"].boundary for g in HOLED_GRIDS], 0.0005))
    return np.concatenate([lons, rims[:, 0]]), np.concatenate([lats, rims[:, 1]])


def never_computed(monkeypatch) -> None:
    def refuse(self):
        raise AssertionError("the raster was computed although a kept one matches")

    monkeypatch.setattr(GridIndex, "_compute_raster", refuse)


def test_a_kept_raster_answers_exactly_as_a_built_one(kept, monkeypatch):
    built = build(HOLED_GRIDS)
    assert len(list(kept.glob("*.npz"))) == 1
    never_computed(monkeypatch)
    loaded = build(HOLED_GRIDS)
    lons, lats = points()
    first, second = built.locate_many(lons, lats), loaded.locate_many(lons, lats)
    assert np.array_equal(first.grid, second.grid) and np.array_equal(first.ambiguous, second.ambiguous)
    assert np.array_equal(first.nearest, second.nearest)
    assert first.candidates == second.candidates and len(first.candidates) > 0  # the rims are ambiguous
    assert np.array_equal(loaded.owner, built.owner)


@pytest.mark.parametrize(
    "change",
    [
        lambda grids: [{**g, "geometry": translate(g["geometry"], 1e-9)} if g["code"] == NE else g for g in grids],
        lambda grids: [{**g, "code": g["code"][:-1] + "9"} if g["code"] == NW else g for g in grids],
        lambda grids: grids[:-1],
    ],
    ids=["a grid moved by a nanodegree", "a code changed", "a grid removed"],
)
def test_other_grids_never_take_a_kept_raster(kept, change):
    build(HOLED_GRIDS)
    computed = []
    original = GridIndex._compute_raster

    def counting(self):
        computed.append(1)
        original(self)

    GridIndex._compute_raster = counting
    try:
        changed = build(change(HOLED_GRIDS))
    finally:
        GridIndex._compute_raster = original
    assert computed == [1]
    assert len(list(kept.glob("*.npz"))) == 2
    lons, lats = points(2000)
    expected = [[g.covers(shapely.Point(x, y)) for g in changed.geometries] for x, y in zip(lons, lats, strict=True)]
    first_covering = [row.index(True) if any(row) else -1 for row in expected]
    assert changed.locate_many(lons, lats, nearest=False).grid.tolist() == first_covering


def test_a_damaged_file_is_ignored_and_replaced(kept, caplog):
    built = build(HOLED_GRIDS)
    (saved,) = kept.glob("*.npz")
    saved.write_bytes(saved.read_bytes()[:100])  # cut short, as by a full disk
    with caplog.at_level(logging.WARNING, logger="gridmap.assign.index_cache"):
        again = build(HOLED_GRIDS)
    assert "unreadable" in caplog.text
    assert np.array_equal(again.owner, built.owner)
    assert saved.stat().st_size > 100  # written whole again


def test_nothing_is_kept_without_a_directory(tmp_path):
    index_cache.use_directory(None)
    build(HOLED_GRIDS)
    assert index_cache.load(index_cache.digest(["x"], [b"x"], ())) is None
    assert not list(tmp_path.rglob("*.npz"))


def test_old_files_are_pruned_by_count_and_by_size(kept, monkeypatch):
    monkeypatch.setattr(index_cache, "KEEP_FILES", 3)
    for shift in range(5):
        build([{**g, "geometry": translate(g["geometry"], shift * 1e-6)} for g in HOLED_GRIDS])
    assert len(list(kept.glob("*.npz"))) == 3
    monkeypatch.setattr(index_cache, "KEEP_BYTES", 1)
    build(HOLED_GRIDS)
    assert len(list(kept.glob("*.npz"))) == 2  # the newest two stay, however large


# ---- the state of an edition, peeked through the database's own driver ---------------------------------------
def test_peek_gives_what_the_store_gives(store, database_url, tmp_path):
    assert peek.edition_state(database_url) is None  # no current edition yet
    load_holed_district(store, tmp_path)
    current = store.edition_revision()
    assert peek.edition_state(database_url) == current
    assert peek.edition_state(database_url, current[0]) == current
    assert peek.edition_state(database_url, "no-such-edition") is None
    (tmp_path / "next").mkdir()
    load_district(store, tmp_path / "next", edition="2027")
    store.activate_edition("2027")  # a change bumps the revisions, and the peek sees it
    assert peek.edition_state(database_url) == store.edition_revision() == store.edition_revision("2027")
    assert peek.edition_state(database_url, current[0]) == store.edition_revision(current[0]) != current


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "mysql://somewhere/db", "sqlite:////no/such/file.sqlite"])
def test_peek_answers_none_when_unsure(url):
    assert peek.edition_state(url) is None


def test_editions_made_in_the_same_second_have_different_states(store, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    load_district(store, tmp_path / "a", edition="one")
    load_district(store, tmp_path / "b", edition="two")
    one, two = store.edition_revision("one"), store.edition_revision("two")
    assert one[2] != two[2]  # creation times to the microsecond


# ---- the bulk command ----------------------------------------------------------------------------------------
def write_points(path, rows) -> None:
    path.write_text("id,lon,lat\n" + "".join(f"{i},{x},{y}\n" for i, x, y in rows), encoding="utf-8")


def run_locate(database_url, source, out, cache) -> list[dict]:
    result = CliRunner().invoke(
        main,
        ["locate", "--input", str(source), "--output", str(out), "--db", database_url],
        env={"GRIDMAP_CACHE_DIR": str(cache)},
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_bulk_locate_opens_no_store_once_the_grids_are_kept_and_follows_a_change(
    store, database_url, tmp_path, monkeypatch
):
    load_holed_district(store, tmp_path)
    source, cache = tmp_path / "points.csv", tmp_path / "cache"
    hole = (117.115, 39.115)  # in the hole of NE: in no grid in this edition
    write_points(source, [("a", 117.105, 39.115), ("b", *hole)])
    first = run_locate(database_url, source, tmp_path / "first.csv", cache)
    assert [r["grid_code"] for r in first] == [NW, ""] and first[1]["nearest_code"] == NE

    from gridmap.store.database import Store

    def refuse(*args, **kwargs):
        raise AssertionError("the store was opened although the grids of this state are kept")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "open", classmethod(refuse))
        assert run_locate(database_url, source, tmp_path / "second.csv", cache) == first

    (tmp_path / "next").mkdir()
    load_district(store, tmp_path / "next", edition="2027")  # the same grids without the hole
    store.activate_edition("2027")
    after = run_locate(database_url, source, tmp_path / "third.csv", cache)
    assert [r["grid_code"] for r in after] == [NW, NE]


def test_the_bulk_command_does_not_import_pandas_or_sqlalchemy_once_the_grids_are_kept(store, database_url, tmp_path):
    # Each import costs more than locating a million points: a guard on the path the timing depends on.
    load_holed_district(store, tmp_path)
    source, cache = tmp_path / "points.csv", tmp_path / "cache"
    write_points(source, [("a", 117.105, 39.115), ("b", 117.13, 39.115), ("c", "x", 39.1)])
    run_locate(database_url, source, tmp_path / "warm.csv", cache)
    program = (
        "import sys\n"
        "from gridmap.cli import main\n"
        "try:\n"
        f"    main(['locate', '--input', {str(source)!r}, '--output', {str(tmp_path / 'out.csv')!r},"
        f" '--db', {database_url!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sqlalchemy', 'geopandas', 'scipy'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env={**os.environ, "GRIDMAP_CACHE_DIR": str(cache)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
    with (tmp_path / "out.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["grid_code"] for r in rows] == [NW, "", ""]
    assert rows[1]["nearest_code"] == NE and "not a pair of numbers" in rows[2]["error"]


def test_activating_an_edition_keeps_its_index_for_the_next_bulk_run(store, database_url, tmp_path):
    load_holed_district(store, tmp_path)
    (tmp_path / "next").mkdir()
    load_district(store, tmp_path / "next", edition="2027")
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["activate", "2027", "--db", database_url], env={"GRIDMAP_CACHE_DIR": str(cache)})
    assert result.exit_code == 0, result.output
    state = store.edition_revision()
    assert state[0] == "2027"
    index_cache.use_directory(cache)
    kept_index = assign.saved_index(database_url, state)
    assert kept_index is not None and kept_index.edition == "2027"
    assert kept_index.locate(lon=117.115, lat=39.115).grid_code == NE  # the new edition has no hole
