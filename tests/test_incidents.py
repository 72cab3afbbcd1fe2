"""Importing incident files: 12345 exports (GBK CSV, XLSX), GeoJSON; geocoding, assignment, idempotency."""

from __future__ import annotations

import json

import openpyxl
import pytest
from click.testing import CliRunner
from geodata import GRIDS, load_district

from gridmap import geocode, incidents
from gridmap.cli import main
from gridmap.errors import InvalidInput

NW, SW, NE, SE = (g["code"] for g in GRIDS)
HOTLINE_HEADER = ["工单编号", "诉求内容", "地址", "经度", "纬度", "来电时间", "来电号码"]
HOTLINE_ROWS = [
    ["GD001", "下水道堵塞，污水外溢", "", "117.105", "39.115", "2026-11-02 09:15:00", "13812341234"],
    ["GD002", "楼道堆放杂物", "天津市南开区朝园里3栋", "", "", "2026/11/02 10:00", ""],
    ["GD003", "邻里噪音纠纷", "翠园小区", "", "", "2026年11月03日 14:30", ""],
    ["GD004", "路灯不亮", "", "39.115", "117.105", "2026-11-03 20:00", ""],  # swapped lat/lon
    ["GD005", "违章搭建", "火星路1号", "", "", "2026-11-04 08:00", ""],  # not in the gazetteer
    ["GD006", "井盖缺失", "", "117.11", "39.11", "not a time", ""],
]


@pytest.fixture
def district(store, tmp_path):
    load_district(store, tmp_path)
    gazetteer = tmp_path / "gazetteer.csv"
    gazetteer.write_text(
        "kind,name,lon,lat,estate,building\n"
        "estate,朝园里,117.105,39.105,,\n"
        "building,朝园里3栋,117.106,39.106,朝园里,3\n"
        "estate,翠园小区,117.115,39.105,,\n",
        encoding="utf-8",
    )
    geocode.load_gazetteer(store, gazetteer)
    return store


def write_gbk_csv(path, header, rows):
    text = "\r\n".join(",".join(r) for r in [header, *rows]) + "\r\n"
    path.write_bytes(text.encode("gbk"))
    return path


def test_a_gbk_hotline_export_is_imported_geocoded_and_assigned(district, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS)
    outcome = incidents.import_incidents(district, source)
    assert [r["source_id"] for r in outcome.rows] == ["GD001", "GD002", "GD003"]
    assert dict(outcome.geocoded) == {"building": 1, "estate": 1}
    assert len(outcome.rejected) == 3
    assert "row 5" in outcome.rejected[0] and "swapped" in outcome.rejected[0]
    assert "row 6" in outcome.rejected[1] and "火星路1号" in outcome.rejected[1]
    assert "row 7" in outcome.rejected[2] and "not a time" in outcome.rejected[2]
    stored = {r["source_id"]: r for r in district.list_incidents(limit=None)}
    assert set(stored) == {"GD001", "GD002", "GD003"}
    assert stored["GD001"]["grid_code"] == NW and stored["GD001"]["original_grid_code"] == NW
    assert stored["GD001"]["source"] == "import" and stored["GD001"]["title"] == "下水道堵塞，污水外溢"
    assert stored["GD001"]["reporter_phone"] == "13812341234"
    assert stored["GD002"]["grid_code"] == SW and stored["GD002"]["geocode_level"] == "building"
    assert (stored["GD002"]["lon"], stored["GD002"]["lat"]) == (117.106, 39.106)
    assert stored["GD003"]["grid_code"] == SE and stored["GD003"]["geocode_level"] == "estate"
    assert stored["GD001"]["edition"] == stored["GD001"]["original_edition"] == district.current_edition().name
    history = district.get_incident(stored["GD001"]["id"])["history"]
    assert [(h["action"], h["to_status"]) for h in history] == [("report", "reported")]


def test_importing_the_same_file_again_adds_nothing(district, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS[:3])
    first = incidents.import_incidents(district, source)
    again = incidents.import_incidents(district, source)
    assert len(first.rows) == 3
    assert len(again.rows) == 0 and again.duplicates == 3
    assert district.table_counts()["incidents"] == 3


def test_an_xlsx_export_with_excel_dates(district, tmp_path):
    import datetime as dt

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HOTLINE_HEADER)
    sheet.append(["GD101", "垃圾清运不及时", None, 117.115, 39.115, dt.datetime(2026, 11, 5, 9, 30), None])
    sheet.append(["GD102", "共享单车乱停放", "朝园里", None, None, dt.datetime(2026, 11, 5, 10, 0), None])
    path = tmp_path / "12345.xlsx"
    workbook.save(path)
    outcome = incidents.import_incidents(district, path)
    assert outcome.rejected == []
    grids = {r["source_id"]: r["grid_code"] for r in outcome.rows}
    assert grids == {"GD101": NE, "GD102": SW}
    assert outcome.rows[0]["reported_at"] == dt.datetime(2026, 11, 5, 9, 30)


def test_geojson_points_and_a_point_on_a_shared_edge(district, tmp_path):
    features = [
        {
            "type": "Feature",
            "properties": {"id": "P1", "title": "占道经营", "reported_at": "2026-11-06 08:00"},
            "geometry": {"type": "Point", "coordinates": [117.11, 39.115]},
        },
        {
            "type": "Feature",
            "properties": {"id": "P2", "title": "河道漂浮物", "reported_at": "2026-11-06 09:00"},
            "geometry": {"type": "Point", "coordinates": [117.13, 39.115]},
        },
    ]
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    outcome = incidents.import_incidents(district, path)
    first, second = outcome.rows
    assert (first["grid_code"], first["ambiguous"]) == (NW, True)  # edge between NW and NE: lowest code
    assert second["grid_code"] is None
    assert (outcome.ambiguous, outcome.unassigned) == (1, 1)


def test_gcj02_coordinates_are_converted_before_assignment(district, tmp_path):
    from gridmap import crs

    lon, lat = crs.from_wgs84(lon=117.1199, lat=39.1199, crs="gcj02")
    source = tmp_path / "gcj.csv"
    source.write_text(f"id,title,lon,lat,reported_at\nA1,标题,{lon},{lat},2026-11-06 08:00\n", encoding="utf-8")
    outcome = incidents.import_incidents(district, source, crs="gcj02")
    assert outcome.rows[0]["grid_code"] == NE
    assert outcome.rows[0]["lon"] == pytest.approx(117.1199, abs=1e-7)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("no_title.csv", "编号,经度,纬度\n1,117.1,39.1\n".encode(), "no title or description column"),
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [', "malformed JSON at line 1"),
        ("not_a_workbook.xlsx", b"plain text", "cannot read it as an Excel workbook"),
        ("missing.csv", None, "no such file"),
    ],
)
def test_bad_files_are_refused_and_write_nothing(district, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        incidents.import_incidents(district, path)
    assert district.table_counts()["incidents"] == 0


def test_the_cli_prints_what_it_did(district, database_url, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS)
    result = CliRunner().invoke(main, ["import-incidents", str(source), "--db", database_url])
    assert result.exit_code == 0, result.output
    assert "geocoded by level: building 1, estate 1" in result.output
    assert "rejected: 3" in result.output
    assert "imported: 3" in result.output
    again = CliRunner().invoke(main, ["import-incidents", str(source), "--db", database_url])
    assert "already imported (same source id): 3" in again.output
    assert "imported: 0" in again.output


def test_geocode_command_finds_an_address_and_its_grid(district, database_url):
    runner = CliRunner()
    found = runner.invoke(
        main, ["geocode", "天津市南开区朝园里三栋2单元501", "--locate", "--json", "--db", database_url]
    )
    answer = json.loads(found.output)
    assert (answer["level"], answer["lon"], answer["lat"]) == ("building", 117.106, 39.106)
    assert answer["grid"]["grid_code"] == SW
    missing = runner.invoke(main, ["geocode", "火星路1号", "--db", database_url])
    assert missing.exit_code == 0 and missing.output.startswith("not found: 火星路1号")
