"""Exports: XLSX (Chinese headers, dates as dates, widths, frozen header) and CSV (UTF-8 with BOM) of the case
list, the indicators, the audit and a comparison; masked and scoped exactly as the screen; web and CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import openpyxl
import pytest
from click.testing import CliRunner
from test_maps import GRID_A, load_map_data

from gridmap import cases, drafts, exports, people
from gridmap.cli import main
from gridmap.config import Settings
from gridmap.store import Store
from gridmap.web import create_app

NOW = dt.datetime(2026, 11, 20, 10, 30)
FORMULA = '=HYPERLINK("http://x","点我")'


def presented(**extra) -> dict:
    row = {
        "id": 7, "title": FORMULA, "category_code": "0102", "status": "in_progress", "light": "red", "overdue": True,
        "handling_level": "grid", "grid_code": GRID_A, "reporter_name": "王**", "reporter_phone": "138****1234",
        "reported_at": "2026-11-19T08:15:00", "deadline": "2026-11-20T09:00:00", "rework_count": 0,
        "supervised": False, "source": "hotline", "lon": 117.1, "lat": 39.1,
    }  # fmt: skip
    return {**row, **extra}


# ---- the writers -------------------------------------------------------------------------------------------
def test_xlsx_has_chinese_headers_real_dates_widths_a_frozen_header_and_text_kept_text(tmp_path):
    out = tmp_path / "cases.xlsx"
    exports.write([exports.case_table([presented()])], "xlsx", target=out)
    sheet = openpyxl.load_workbook(out).active
    headers = [c.value for c in sheet[1]]
    assert headers[:5] == ["案件编号", "标题", "类别", "状态", "红黄绿灯"]
    row = {h: c for h, c in zip(headers, sheet[2], strict=True)}
    assert row["标题"].value == FORMULA and row["标题"].data_type == "s", "a formula-looking title stays text"
    assert row["状态"].value == "处置中" and row["红黄绿灯"].value == "超期"
    assert row["上报时间"].value == dt.datetime(2026, 11, 19, 8, 15) and row["上报时间"].is_date
    assert row["上报时间"].number_format == "yyyy-mm-dd hh:mm"
    assert row["案件编号"].value == 7 and row["来源"].value == "12345 热线"
    assert row["类别"].value == "0102 暴露垃圾"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(headers)).column_letter}2"
    widths = {h: sheet.column_dimensions[c.column_letter].width for h, c in zip(headers, sheet[1], strict=True)}
    assert widths["上报时间"] >= 17 and widths["标题"] >= len(FORMULA) and widths["案件编号"] >= 8


def test_english_headers_when_english_is_chosen(tmp_path):
    out = tmp_path / "cases.xlsx"
    exports.write([exports.case_table([presented()], lang="en")], "xlsx", lang="en", target=out)
    sheet = openpyxl.load_workbook(out).active
    assert [c.value for c in sheet[1]][:3] == ["Case number", "Title", "Category"]
    assert sheet["C2"].value == "0102 Exposed rubbish" and sheet["D2"].value == "In progress"
    assert sheet.title == "Cases"


def test_csv_is_utf8_with_a_bom_and_defuses_formulas():
    data = exports.write([exports.case_table([presented(), presented(id=8, title="路灯不亮", deadline=None)])], "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:2] == ["案件编号", "标题"]
    assert rows[1][1] == "'" + FORMULA and rows[2][1] == "路灯不亮"
    header = rows[0]
    assert rows[1][header.index("上报时间")] == "2026-11-19 08:15:00"
    assert rows[2][header.index("处置时限")] == ""
    assert rows[1][header.index("类别")] == "0102 暴露垃圾"


def test_a_wrong_format_is_refused_by_name():
    with pytest.raises(exports.InvalidInput, match="format must be one of xlsx, csv, not 'pdf'"):
        exports.check_format("pdf")


# ---- the web: what the screen shows, in a file --------------------------------------------------------------
@pytest.fixture
def site(database_url, tmp_path):
    store = Store.open(database_url)
    tokens = load_map_data(store, tmp_path)
    admin = people.find_user(store, "admin1")
    for name, phone in (("王小明", "13812341234"), ("李四", "13987654321")):
        cases.report(
            store, user=admin, title=f"{name}反映", category_code="0102", lon=117.1021, lat=39.1181,
            reporter_name=name, reporter_phone=phone,
        )  # fmt: skip
    tokens["supervisor"] = people.add_user(store, "sup1", role="supervisor", areas=[GRID_A[:12]])
    drafts.create_draft(store, "plan-b", source="current")
    store.close()
    app = create_app(Settings(database_url=database_url, secret_key="k"))
    yield app.test_client(), tokens
    app.extensions["gridmap"].store.close()


def fetch(client, path: str, token: str, **headers):
    return client.get(path, headers={"Authorization": f"Bearer {token}", **headers})


def xlsx_rows(data: bytes, sheet: int = 0) -> list[dict]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    rows = list(book.worksheets[sheet].iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_the_case_export_is_masked_and_scoped_as_the_list(site):
    client, tokens = site
    listed = fetch(client, "/api/incidents?limit=500", tokens["worker"]).get_json()["items"]
    response = fetch(client, "/cases/export?format=xlsx", tokens["worker"])
    assert response.status_code == 200 and response.mimetype == exports.XLSX_MIME
    assert response.headers["Content-Disposition"].startswith('attachment; filename="cases-')
    rows = xlsx_rows(response.data)
    assert [r["案件编号"] for r in rows] == [i["id"] for i in listed]
    assert {r["网格"] for r in rows} == {GRID_A}, "a grid worker's export holds their own grid only"
    assert {r["上报人"] for r in rows if r["上报人"]} == {"王**", "李*"}
    assert {r["电话"] for r in rows if r["电话"]} == {"138****1234", "139****4321"}
    full = xlsx_rows(fetch(client, "/cases/export?format=xlsx", tokens["supervisor"]).data)
    assert {r["电话"] for r in full if r["电话"]} == {"13812341234", "13987654321"}, "a supervisor sees phones"


def test_the_case_export_takes_the_list_filters_and_every_page(site):
    client, tokens = site
    response = fetch(client, "/cases/export?format=csv&status=reported&limit=1", tokens["admin"])
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert response.data.startswith(b"\xef\xbb\xbf") and response.mimetype == "text/csv"
    assert len(rows) > 1 and {r["状态"] for r in rows} == {"已上报"}
    english = fetch(client, "/cases/export?format=csv&lang=en", tokens["admin"])
    assert english.data.decode("utf-8-sig").startswith("Case number,Title,Category,Status,")


def test_the_indicator_export_equals_api_stats(site):
    client, tokens = site
    stats = fetch(client, "/api/stats?by=street", tokens["admin"]).get_json()
    rows = xlsx_rows(fetch(client, "/stats/export?format=xlsx&by=street", tokens["admin"]).data)
    by_key = {r["街道"]: r for r in rows}
    for group in stats["groups"]:
        row = by_key[group["key"]]
        assert row["名称"] == ("长虹街道" if group["key"] else None)  # a case with no place has no street
        assert (row["受理"], row["已结案"], row["超期"]) == (group["received"], group["closed"], group["overdue"])
    assert by_key["合计"]["受理"] == stats["total"]["received"]


def test_audit_and_comparison_exports(site):
    client, tokens = site
    audit = fetch(client, "/audit/export?format=xlsx", tokens["admin"])
    book = openpyxl.load_workbook(io.BytesIO(audit.data))
    assert book.sheetnames == ["发现", "网格", "社区"]
    assert [c.value for c in book["网格"][1]][:4] == ["编码", "名称", "类型", "户数"]
    assert book["网格"]["C2"].value in ("综合网格", "专属网格")
    compare = fetch(client, "/compare/export?format=xlsx&a=main&b=plan-b", tokens["admin"])
    assert openpyxl.load_workbook(io.BytesIO(compare.data)).sheetnames == ["网格", "撤销的网格", "变更网格的案件"]
    refused = fetch(client, "/compare/export?format=xlsx&a=main&b=plan-b", tokens["worker"])
    assert refused.status_code == 403


def test_a_bad_export_request_says_what_is_wrong(site):
    client, tokens = site
    response = fetch(client, "/cases/export?format=pdf", tokens["admin"], Accept="application/json")
    assert response.status_code == 400
    assert "xlsx" in response.get_json()["error"]
    assert fetch(client, "/cases/export", "wrong-token").status_code == 401


# ---- the CLI -------------------------------------------------------------------------------------------------
def test_stats_and_audit_write_xlsx_from_the_cli(database_url, tmp_path):
    store = Store.open(database_url)
    load_map_data(store, tmp_path)
    store.close()
    runner = CliRunner()
    stats_out, audit_out, compare_out = tmp_path / "stats.xlsx", tmp_path / "audit.xlsx", tmp_path / "cmp.xlsx"
    result = runner.invoke(main, ["stats", "--by", "grid", "--xlsx", str(stats_out), "--json", "--db", database_url])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    rows = xlsx_rows(stats_out.read_bytes())
    assert {r["网格"]: r["受理"] for r in rows} == {
        **{g["key"]: g["received"] for g in printed["groups"]},
        "合计": printed["total"]["received"],
    }
    result = runner.invoke(main, ["audit", "--xlsx", str(audit_out), "--lang", "en", "--db", database_url])
    assert result.exit_code == 0, result.output
    assert openpyxl.load_workbook(audit_out).sheetnames == ["Findings", "Grids", "Communities"]
    result = runner.invoke(main, ["compare", "main", "main", "--xlsx", str(compare_out), "--db", database_url])
    assert result.exit_code == 0, result.output and compare_out.exists()
