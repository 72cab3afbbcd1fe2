"""Files of points located in bulk: what comes in goes out unchanged, whatever the encoding, quoting or size."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from test_assign import HOLED_GRIDS, NE, NW, SE, SW

from gridmap import assign
from gridmap.assign import bulk


@pytest.fixture(scope="module")
def index():
    return assign.GridIndex.build(
        [g["code"] for g in HOLED_GRIDS], [g["geometry"] for g in HOLED_GRIDS], [g["parent_code"] for g in HOLED_GRIDS]
    )


def read(path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_gbk_body_behind_a_plain_head_is_read_as_gbk(index, tmp_path):
    # The encoding is judged from the first megabyte; a Chinese name further down must still come out right.
    filler = "".join(f"p{i},117.105,39.115,\n" for i in range(bulk.HEAD_BYTES // 20 + 10))
    source = tmp_path / "points.csv"
    source.write_bytes(("id,lon,lat,name\n" + filler + "last,117.115,39.105,红合北里\n").encode("gbk"))
    counts = assign.locate_csv(index, source, tmp_path / "out.csv", columns=("id", "lon", "lat"))
    rows = read(tmp_path / "out.csv")
    assert len(rows) == counts["rows"] > bulk.HEAD_BYTES // 20
    assert rows[-1]["name"] == "红合北里" and rows[-1]["grid_code"] == SE
    assert {r["grid_code"] for r in rows[:-1]} == {NW}


def test_values_that_need_quotes_come_back_as_they_were(index, tmp_path):
    source = tmp_path / "points.csv"
    note = 'said "blocked drain", then left\nsecond line'
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "lon", "lat", "note", "code"])
        writer.writerow(["1", "117.105", "39.115", note, "007"])
        writer.writerow(["2", "117.105", "39.105", "plain", "0010"])
    assign.locate_csv(index, source, tmp_path / "out.csv")
    rows = read(tmp_path / "out.csv")
    assert [r["note"] for r in rows] == [note, "plain"]
    assert [r["code"] for r in rows] == ["007", "0010"]  # text stays text: no zero lost
    assert [r["grid_code"] for r in rows] == [NW, SW]


def test_a_file_without_quotes_is_written_without_quotes(index, tmp_path):
    source = tmp_path / "points.csv"
    source.write_text("id,lon,lat\n1,117.105,39.115\n2,117.13,39.115\n", encoding="utf-8")
    assign.locate_csv(index, source, tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert lines[1] == f"1,117.105,39.115,{NW},{NW[:12]},,false,,,"
    assert lines[2].startswith("2,117.13,39.115,,,,false," + NE + ",")


def test_streamed_in_small_blocks_or_read_at_once_the_output_is_the_same(index, tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    lons, lats = rng.uniform(117.095, 117.125, 20_000).round(6), rng.uniform(39.095, 39.125, 20_000).round(6)
    text = io.StringIO()
    text.write("id,lon,lat,note\n")
    for i, (x, y) in enumerate(zip(lons, lats, strict=True)):
        lon = "n/a" if i % 997 == 0 else x
        text.write(f'{i},{lon},{y},"a, b"\n' if i % 13 == 0 else f"{i},{lon},{y},c\n")
    source = tmp_path / "points.csv"
    source.write_text(text.getvalue(), encoding="utf-8")
    whole = assign.locate_csv(index, source, tmp_path / "whole.csv")
    monkeypatch.setattr(bulk, "WHOLE_FILE_BYTES", 0)
    monkeypatch.setattr(bulk, "BLOCK_BYTES", 1 << 14)  # dozens of blocks, some with quoted values, some without
    streamed = assign.locate_csv(index, source, tmp_path / "streamed.csv")
    assert whole == streamed and whole["errors"] == len(range(0, 20_000, 997))
    assert read(tmp_path / "whole.csv") == read(tmp_path / "streamed.csv")
    rows = read(tmp_path / "whole.csv")
    expected = index.locate_many(lons, lats, nearest=False).grid_codes()
    assert [r["grid_code"] or None for r in rows if not r["error"]] == [
        code for i, code in enumerate(expected) if i % 997
    ]
