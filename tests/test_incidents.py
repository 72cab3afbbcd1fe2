"""Importing incident files: 12345 exports (GBK CSV, XLSX), GeoJSON; geocoding, assignment, idempotency."""

from __future__ import annotations

import csv
import datetime as dt
import json

import openpyxl
import pytest
from click.testing import CliRunner
from geodata import GRIDS, load_district

from gridmap import cases, categories, geocode, incidents
from gridmap.cli import main
from gridmap.errors import InvalidInput

NW, SW, NE, SE = (g["code"] for g in GRIDS)
HOTLINE_HEADER = ["工单编号", "诉求内容", "地址", "经度", "纬度", "来电时间", "来电号码", "类别"]
HOTLINE_ROWS = [
    ["GD001", "下水道堵塞，污水外溢", "", "117.105", "39.115", "2026-11-02 09:15:00", "13812341234", "0403"],
    ["GD002", "楼道堆放杂物", "天津市南开区朝园里3栋", "", "", "2026/11/02 10:00", "", "积存垃圾渣土"],
    ["GD003", "邻里噪音纠纷", "翠园小区", "", "", "2026年11月03日 14:30", "", "Exposed rubbish"],
    ["GD004", "路灯不亮", "", "39.115", "117.105", "2026-11-03 20:00", "", "0102"],  # swapped lat/lon
    ["GD005", "违章搭建", "火星路1号", "", "", "2026-11-04 08:00", "", "0101"],  # not in the gazetteer
    ["GD006", "井盖缺失", "", "117.11", "39.11", "not a time", "", "0102"],
]
NOW = dt.datetime(2026, 11, 20, 9, 0)


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


def write_csv(path, header, rows):
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_a_gbk_hotline_export_is_imported_geocoded_assigned_and_given_deadlines(district, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS)
    outcome = incidents.import_incidents(district, source, allow_partial=True, now=NOW)
    assert [r["source_id"] for r in outcome.rows] == ["GD001", "GD002", "GD003"]
    assert dict(outcome.geocoded) == {"building": 1, "estate": 1}
    assert [(r.row, r.reason) for r in outcome.rejected] == [
        (5, "lon and lat swapped"),
        (6, "address not found"),
        (7, "unreadable report time"),
    ]
    assert "swapped" in outcome.rejected[0].detail and "火星路1号" in outcome.rejected[1].detail
    assert outcome.written == 3 and not outcome.refused
    stored = {r["source_id"]: r for r in district.list_incidents(limit=None)}
    assert set(stored) == {"GD001", "GD002", "GD003"}
    assert stored["GD001"]["grid_code"] == NW and stored["GD001"]["original_grid_code"] == NW
    assert stored["GD001"]["source"] == "import" and stored["GD001"]["title"] == "下水道堵塞，污水外溢"
    assert stored["GD001"]["reporter_phone"] == "13812341234"
    assert stored["GD002"]["grid_code"] == SW and stored["GD002"]["geocode_level"] == "building"
    assert (stored["GD002"]["lon"], stored["GD002"]["lat"]) == (117.106, 39.106)
    assert stored["GD003"]["grid_code"] == SE and stored["GD003"]["geocode_level"] == "estate"
    assert stored["GD001"]["edition"] == stored["GD001"]["original_edition"] == district.current_edition().name
    # Categories by code, Chinese name or English name; deadlines from the category table and working calendar.
    assert [stored[k]["category_code"] for k in ("GD001", "GD002", "GD003")] == ["0403", "0103", "0102"]
    for row in stored.values():
        assert row["deadline"] == categories.deadline_for(row["category_code"], row["reported_at"])
        assert row["status"] == "reported" and row["deadline"] < NOW  # so they show as overdue
    history = district.get_incident(stored["GD001"]["id"])["history"]
    assert [(h["action"], h["to_status"], h["at"]) for h in history] == [
        ("report", "reported", dt.datetime(2026, 11, 2, 9, 15))
    ]
    listed = cases.list_cases(district, user=cases_user(), overdue=True, now=NOW)
    assert {r["source_id"] for r in listed} == {"GD001", "GD002", "GD003"}


def cases_user():
    from gridmap.people import User

    return User("admin", "admin")


def test_by_default_one_rejected_row_means_nothing_is_written(district, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS)
    outcome = incidents.import_incidents(district, source, now=NOW)
    assert outcome.refused and outcome.written == 0 and len(outcome.values) == 3 and len(outcome.rejected) == 3
    assert district.table_counts()["incidents"] == 0


def test_importing_the_same_file_again_adds_nothing(district, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS[:3])
    first = incidents.import_incidents(district, source, now=NOW)
    again = incidents.import_incidents(district, source, now=NOW)
    assert first.written == 3
    assert again.written == 0 and again.duplicates == 3 and not again.refused
    assert district.table_counts()["incidents"] == 3
    assert district.table_counts()["incident_history"] == 3


def test_an_xlsx_export_with_excel_dates_and_numbers(district, tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HOTLINE_HEADER)
    sheet.append([101, "垃圾清运不及时", None, 117.115, 39.115, dt.datetime(2026, 11, 5, 9, 30), 13812341234, "0102"])
    sheet.append(["GD102", "共享单车乱停放", "朝园里", None, None, dt.datetime(2026, 11, 5, 10, 0), None, 102])
    path = tmp_path / "12345.xlsx"
    workbook.save(path)
    outcome = incidents.import_incidents(district, path, now=NOW, allow_partial=True)
    # 102 as a number is not the category 0102: categories are 4-digit codes or names.
    assert [(r.row, r.reason) for r in outcome.rejected] == [(3, "unknown category")]
    assert [(r["source_id"], r["grid_code"], r["reporter_phone"]) for r in outcome.rows] == [("101", NE, "13812341234")]
    assert outcome.rows[0]["reported_at"] == dt.datetime(2026, 11, 5, 9, 30)


def test_geojson_points_on_a_shared_edge_and_outside_the_district(district, tmp_path):
    features = [
        {
            "type": "Feature",
            "properties": {"id": "P1", "title": "占道经营", "reported_at": "2026-11-06 08:00", "category": "0102"},
            "geometry": {"type": "Point", "coordinates": [117.11, 39.115]},
        },
        {
            "type": "Feature",
            "properties": {"id": "P2", "title": "河道漂浮物", "reported_at": "2026-11-06 09:00", "category": "0102"},
            "geometry": {"type": "Point", "coordinates": [117.13, 39.115]},
        },
    ]
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    refused = incidents.import_incidents(district, path, now=NOW)
    assert refused.refused and [(r.row, r.reason) for r in refused.rejected] == [(2, "outside the jurisdiction")]
    assert "the streets of edition 'main'" in refused.rejected[0].detail
    outcome = incidents.import_incidents(district, path, now=NOW, allow_outside=True)
    first, second = outcome.rows
    assert (first["grid_code"], first["ambiguous"]) == (NW, True)  # edge between NW and NE: lowest code
    assert second["grid_code"] is None
    assert (outcome.ambiguous, outcome.unassigned, outcome.outside, outcome.written) == (1, 1, 1, 2)


def test_gcj02_coordinates_are_converted_before_assignment(district, tmp_path):
    from gridmap import crs

    lon, lat = crs.from_wgs84(lon=117.1199, lat=39.1199, crs="gcj02")
    source = tmp_path / "gcj.csv"
    source.write_text(
        f"id,title,lon,lat,reported_at,category\nA1,标题,{lon},{lat},2026-11-06 08:00,0102\n", encoding="utf-8"
    )
    outcome = incidents.import_incidents(district, source, crs="gcj02", now=NOW)
    assert outcome.rows[0]["grid_code"] == NE
    assert outcome.rows[0]["lon"] == pytest.approx(117.1199, abs=1e-7)


# Every case rule of the API holds for imports too: (cells to change, reason it is refused under).
IMPORT_RULES = [
    ({"类别": "9999"}, "unknown category"),
    ({"类别": ""}, "no category"),
    ({"来电号码": "call-me-maybe"}, "malformed phone number"),
    ({"诉求内容": "井盖\x00缺失"}, "control character in description"),
    ({"标题": "井盖\x07缺失"}, "control character in title"),
    ({"来电时间": "2099-01-01 09:00"}, "report time in the future"),
    ({"来电时间": "2026-11-20 09:20"}, "report time in the future"),  # beyond ten minutes of clock skew
    ({"来电时间": "1999-12-31 23:59"}, "report time before 2000"),
    ({"经度": "116.397", "纬度": "39.909"}, "outside the jurisdiction"),  # Tiananmen, another city
    ({"经度": "east"}, "coordinates not numbers"),
    ({"经度": "", "纬度": "", "地址": ""}, "no place"),
    ({"标题": "x" * 201}, "title too long"),
    ({"工单编号": "G" * 101}, "source id too long"),
    ({"来电人": "王" * 101}, "reporter name too long"),
]
RULE_HEADER = ["工单编号", "标题", "诉求内容", "地址", "经度", "纬度", "来电时间", "来电号码", "来电人", "类别"]
GOOD_ROW = {
    "工单编号": "R0",
    "标题": "井盖缺失",
    "诉求内容": "路口井盖缺失\n有人险些跌倒",
    "地址": "",
    "经度": "117.105",
    "纬度": "39.115",
    "来电时间": "2026-11-20 09:05",  # five minutes ahead of NOW: within the allowed clock skew
    "来电号码": "+86 (22) 2345-6789",
    "来电人": "王小明",
    "类别": "0403",
}


@pytest.mark.parametrize(("changes", "reason"), IMPORT_RULES, ids=[r for _, r in IMPORT_RULES])
def test_every_case_rule_holds_for_imports(district, tmp_path, changes, reason):
    bad = {**GOOD_ROW, "工单编号": "R1", **changes}
    source = write_csv(
        tmp_path / "rules.csv", RULE_HEADER, [[GOOD_ROW[h] for h in RULE_HEADER], [bad[h] for h in RULE_HEADER]]
    )
    outcome = incidents.import_incidents(district, source, now=NOW)
    assert [(r.row, r.reason) for r in outcome.rejected] == [(3, reason)], outcome.rejected
    assert outcome.refused and district.table_counts()["incidents"] == 0
    partial = incidents.import_incidents(district, source, now=NOW, allow_partial=True)
    assert partial.written == 1
    stored = district.list_incidents(limit=None)[0]
    assert stored["description"] == "路口井盖缺失\n有人险些跌倒" and stored["reporter_phone"] == "+86 (22) 2345-6789"


def test_a_category_for_rows_without_one(district, tmp_path):
    header = [h for h in RULE_HEADER if h != "类别"]
    source = write_csv(tmp_path / "plain.csv", header, [[GOOD_ROW[h] for h in header]])
    with pytest.raises(InvalidInput, match=r"no category column .* give --category CODE"):
        incidents.import_incidents(district, source, now=NOW)
    with pytest.raises(InvalidInput, match="unknown category '9'"):
        incidents.import_incidents(district, source, now=NOW, category="9")
    outcome = incidents.import_incidents(district, source, now=NOW, category="0403")
    assert outcome.written == 1 and outcome.rows[0]["category_code"] == "0403"


def test_rejections_are_grouped_by_reason_and_the_report_lists_every_one(district, tmp_path):
    rows = [[GOOD_ROW[h] if h != "工单编号" else f"R{i}" for h in RULE_HEADER] for i in range(12)]
    for i in (1, 2, 3, 4, 7):
        rows[i][RULE_HEADER.index("类别")] = "9999"
    rows[9][RULE_HEADER.index("来电号码")] = "call-me-maybe"
    source = write_csv(tmp_path / "mixed.csv", RULE_HEADER, rows)
    outcome = incidents.import_incidents(district, source, now=NOW)
    assert [(reason, [r.row for r in items]) for reason, items in outcome.by_reason()] == [
        ("unknown category", [3, 4, 5, 6, 9]),
        ("malformed phone number", [11]),
    ]
    summary = "\n".join(outcome.summary())
    assert "rejected: 6" in summary
    assert "  unknown category: 5 rows (3-6, 9)" in summary
    assert "  malformed phone number: 1 row (11)" in summary
    assert "e.g. mixed.csv: row 11: reporter_phone 'call-me-maybe'" in summary
    report = tmp_path / "rejected.csv"
    assert outcome.write_report(report) == 6
    with report.open(encoding="utf-8-sig", newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == ["file", "row", "reason", "detail"] and len(lines) == 7
    assert [line[1] for line in lines[1:]] == ["3", "4", "5", "6", "9", "11"]
    assert lines[1][2] == "unknown category" and "9999" in lines[1][3]


def test_malformed_csv_is_named_for_what_it_is(district, tmp_path):
    unterminated = tmp_path / "quote.csv"
    unterminated.write_text(
        'id,title,lon,lat,reported_at,category\nA1,"路灯不亮,117.105,39.115,2026-11-06 08:00,0102\n'
        "A2,井盖缺失,117.105,39.115,2026-11-06 08:00,0102\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match=r"never closed .*unterminated") as caught:
        incidents.import_incidents(district, unterminated, now=NOW)
    assert "report time" not in caught.value.message
    extra = write_csv(
        tmp_path / "extra.csv",
        ["id", "title", "lon", "lat", "reported_at", "category"],
        [["A1", "井盖缺失", "117.105", "39.115", "2026-11-06 08:00", "0102", "surplus"]],
    )
    outcome = incidents.import_incidents(district, extra, now=NOW)
    assert [(r.row, r.reason) for r in outcome.rejected] == [(2, "more fields than the header")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("no_title.csv", "编号,经度,纬度\n1,117.1,39.1\n".encode(), "no title or description column"),
        ("only_header.csv", b"id,title,lon,lat,reported_at,category\n", "has no rows"),
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [', "malformed JSON at line 1"),
        ("not_a_workbook.xlsx", b"plain text", "cannot read it as an Excel workbook"),
        ("missing.csv", None, "no such file"),
        ("folder.csv", "dir", "is a directory"),
    ],
)
def test_bad_files_are_refused_and_write_nothing(district, tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        incidents.import_incidents(district, path, now=NOW)
    assert district.table_counts()["incidents"] == 0


def test_the_cli_prints_what_it_did_and_exits_non_zero_when_nothing_was_imported(district, database_url, tmp_path):
    source = write_gbk_csv(tmp_path / "12345.csv", HOTLINE_HEADER, HOTLINE_ROWS)
    runner = CliRunner()
    refused = runner.invoke(main, ["import-incidents", str(source), "--db", database_url])
    assert refused.exit_code == 1, refused.output
    assert "rejected: 3" in refused.output and "nothing written because 3 rows were rejected" in refused.output
    assert district.table_counts()["incidents"] == 0
    report = tmp_path / "report.csv"
    partial = runner.invoke(
        main, ["import-incidents", str(source), "--allow-partial", "--report", str(report), "--db", database_url]
    )
    assert partial.exit_code == 0, partial.output
    assert "geocoded by level: building 1, estate 1" in partial.output
    assert "imported: 3" in partial.output and "report: 3 rejected rows written" in partial.output
    assert len(report.read_text(encoding="utf-8-sig").splitlines()) == 4
    again = runner.invoke(main, ["import-incidents", str(source), "--allow-partial", "--db", database_url])
    assert "already imported (same source id): 3" in again.output and "imported: 0" in again.output
    assert again.exit_code == 1  # rows were rejected and nothing was imported
    bad_only = write_gbk_csv(tmp_path / "bad.csv", HOTLINE_HEADER, HOTLINE_ROWS[3:])
    nothing = runner.invoke(main, ["import-incidents", str(bad_only), "--allow-partial", "--db", database_url])
    assert nothing.exit_code == 1 and "imported: 0" in nothing.output
    good_again = write_gbk_csv(tmp_path / "good.csv", HOTLINE_HEADER, HOTLINE_ROWS[:3])
    idempotent = runner.invoke(main, ["import-incidents", str(good_again), "--db", database_url])
    assert idempotent.exit_code == 0 and "already imported (same source id): 3" in idempotent.output
    dry = runner.invoke(main, ["import-incidents", str(bad_only), "--dry-run", "--allow-partial", "--db", database_url])
    assert dry.exit_code == 1 and district.table_counts()["incidents"] == 3


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
