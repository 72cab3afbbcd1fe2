"""The household register: loading buildings (GBK CSV, XLSX, GeoJSON), refusals, idempotency, figures, map layer."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

import openpyxl
import pytest
import shapely
from click.testing import CliRunner
from geodata import GRIDS, MID_LAT, load_district

from gridmap import assign, audit, buildings, geocode, people
from gridmap.cli import main
from gridmap.demo.buildings import demo_buildings
from gridmap.demo.district import demo_boundary_dir, read_district
from gridmap.errors import InvalidInput

NW, SW, NE, SE = (g["code"] for g in GRIDS)
HEADER = ["楼栋编码", "楼栋名称", "地址", "小区", "经度", "纬度", "户数", "人口"]
ROWS = [
    ["B001", "朝园里1栋", "", "朝园里", "117.104", "39.104", "120", "300"],
    ["B002", "朝园里3栋", "天津市南开区朝园里3栋", "朝园里", "", "", "80", "190"],  # geocoded: building
    ["B003", "翠园小区", "", "翠园小区", "", "", "60", ""],  # geocoded: estate, population unknown
    ["B004", "火星路1号楼", "火星路1号", "", "", "", "40", "90"],  # not in the gazetteer
    ["B005", "百合楼", "", "", "117.105", "39.115", "abc", ""],  # households not a number
    ["B001", "重复", "", "", "117.101", "39.101", "10", ""],  # the same code again
    ["B006", "倒置", "", "", "39.115", "117.105", "10", ""],  # lat/lon swapped
    ["", "无编码", "", "", "117.101", "39.101", "10", ""],
    ["B007", "百合北楼", "", "", "117.105", "39.118", "200", "480"],
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


def write_gbk_csv(path, rows, header=HEADER):
    text = "\r\n".join(",".join(r) for r in [header, *rows]) + "\r\n"
    path.write_bytes(text.encode("gbk"))
    return path


def test_a_gbk_register_is_loaded_geocoded_and_every_refusal_listed(district, tmp_path):
    outcome = buildings.load_buildings(district, write_gbk_csv(tmp_path / "楼栋.csv", ROWS))
    assert outcome.written == {"added": 4, "updated": 0, "unchanged": 0}
    assert outcome.geocoded == Counter({"building": 1, "estate": 1})
    refused = "\n".join(outcome.refused)
    assert len(outcome.refused) == 5
    for expected in (
        "row 5 (B004): address '火星路1号' was not found",
        "row 6 (B005): households 'abc' is not a whole number",
        "row 7 (B001): the code appears twice in the file (first in row 2)",
        "row 8 (B006): lon=39.115, lat=117.105",
        "row 9: has no building code",
    ):
        assert expected in refused
    stored = {b["code"]: b for b in district.buildings()}
    assert (stored["B002"]["lon"], stored["B002"]["lat"], stored["B002"]["geocode_level"]) == (
        117.106,
        39.106,
        "building",
    )
    assert stored["B003"]["population"] is None and stored["B003"]["estate"] == "翠园小区"
    assert stored["B001"]["households"] == 120 and stored["B001"]["name"] == "朝园里1栋"


def test_loading_the_same_file_again_changes_nothing_and_a_changed_row_is_updated(district, tmp_path):
    source = write_gbk_csv(tmp_path / "r.csv", [ROWS[0], ROWS[-1]])
    buildings.load_buildings(district, source)
    fingerprint = district.buildings_fingerprint()
    again = buildings.load_buildings(district, source)
    assert again.written == {"added": 0, "updated": 0, "unchanged": 2}
    assert district.buildings_fingerprint() == fingerprint
    changed = write_gbk_csv(tmp_path / "r2.csv", [[*ROWS[0][:6], "125", "300"], ROWS[-1]])
    assert buildings.load_buildings(district, changed).written == {"added": 0, "updated": 1, "unchanged": 1}
    assert {b["code"]: b["households"] for b in district.buildings()} == {"B001": 125, "B007": 200}


def test_xlsx_and_geojson_with_a_footprint(district, tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["code", "name", "estate", "lon", "lat", "households", "population"])
    sheet.append([1001, "一号楼", "百合园", 117.103, 39.112, 90.0, 200])  # Excel keeps numbers as numbers
    workbook.save(tmp_path / "register.xlsx")
    loaded = buildings.load_buildings(district, tmp_path / "register.xlsx")
    assert loaded.written["added"] == 1 and loaded.refused == []
    footprint = shapely.box(117.1045, 39.1145, 117.1055, 39.1155)
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "G1", "name": "大楼", "households": 150},
                "geometry": shapely.geometry.mapping(footprint),
            },
            {
                "type": "Feature",
                "properties": {"code": "G2", "name": "小楼", "households": 30},
                "geometry": {"type": "Point", "coordinates": [117.116, 39.106]},
            },
            {
                "type": "Feature",
                "properties": {"code": "G3", "name": "坏楼", "households": 5},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[117.1, 39.1], [117.101, 39.101], [117.101, 39.1], [117.1, 39.101], [117.1, 39.1]]
                    ],
                },
            },
        ],
    }
    (tmp_path / "b.geojson").write_text(json.dumps(collection), encoding="utf-8")
    outcome = buildings.load_buildings(district, tmp_path / "b.geojson")
    assert outcome.written["added"] == 2 and len(outcome.refused) == 1
    assert "row 3 (G3): the footprint is invalid" in outcome.refused[0]
    stored = {b["code"]: b for b in district.buildings()}
    assert stored["1001"]["households"] == 90
    assert stored["G1"]["footprint"].equals(footprint) and footprint.contains(
        shapely.Point(stored["G1"]["lon"], stored["G1"]["lat"])
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("register.txt", b"code,households\n1,2\n", "buildings are read from .csv, .xlsx or .geojson"),
        ("no_code.csv", "名称,户数\n一号楼,10\n".encode(), r"no code column \(looked for code, id"),
        ("empty.csv", b"", "the file is empty"),
        ("headers_only.csv", b"code,households\n", "has no rows"),
        ("broken.geojson", b'{"type": "FeatureCollection", "features": [', "malformed JSON"),
        ("missing.csv", None, "no such file"),
    ],
)
def test_unreadable_files_are_refused_and_write_nothing(district, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        buildings.load_buildings(district, path)
    assert district.building_count() == 0


def test_grid_households_come_from_their_buildings_where_the_register_has_them(district):
    # Two buildings in the west community (one on the NW/SW edge), none in the east one.
    district.save_buildings(
        [
            {"code": "W1", "name": "西楼", "households": 100, "population": 250, "lon": 117.104, "lat": 39.115},
            {"code": "W2", "name": "边楼", "households": 50, "population": 120, "lon": 117.105, "lat": MID_LAT},
        ]
    )
    figures = buildings.grid_figures(district, "main")
    # The building on the shared edge goes to the lowest code, NW, as every point does.
    assert figures[NW] == {"households": 150, "population": 370, "buildings": 2}
    assert figures[SW] == {"households": 0, "population": 0, "buildings": 0}
    assert NE not in figures and SE not in figures  # no buildings in that community: stored figures stand
    balance = {g["code"]: g["households"] for g in audit.audit_edition(district)["balance"]["grids"]}
    assert (balance[NW], balance[SW], balance[SE]) == (150, 0, 510)
    index = assign.grid_index(district)
    assert buildings.located_grids(index, district.buildings()) == [NW, NW]


def test_the_cli_loads_and_a_dry_run_writes_nothing(district, database_url, tmp_path):
    source = write_gbk_csv(tmp_path / "楼栋.csv", ROWS)
    runner = CliRunner()
    dry = runner.invoke(main, ["load-buildings", str(source), "--dry-run", "--db", database_url])
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing written" in dry.output and district.building_count() == 0
    done = runner.invoke(main, ["load-buildings", str(source), "--db", database_url])
    assert done.exit_code == 0, done.output
    assert "added 4, updated 0, unchanged 0" in done.output
    assert "refused: 5" in done.output and "row 5 (B004)" in done.output
    assert "in no grid of edition 'main': 0" in done.output


def test_the_map_layer_shows_buildings_or_only_counts_by_role(district, live_server):
    district.save_buildings(
        [
            {"code": "W1", "name": "西楼", "households": 100, "population": 250, "lon": 117.104, "lat": 39.115},
            {"code": "S1", "name": "南楼", "households": 70, "population": 150, "lon": 117.104, "lat": 39.104},
        ]
    )
    tokens = {
        "admin": people.add_user(district, "管理员", role="admin"),
        "viewer": people.add_user(district, "访客", role="viewer"),
        "worker": people.add_user(district, "网格员", role="grid_worker", areas=[NW]),
    }

    def layer(who: str) -> dict:
        request = urllib.request.Request(f"{live_server}/api/map/buildings")
        request.add_header("Authorization", f"Bearer {tokens[who]}")
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.loads(response.read())

    admin = layer("admin")
    assert admin["detail"] is True
    assert sorted(f["properties"]["name"] for f in admin["features"]) == ["南楼", "西楼"]
    viewer = layer("viewer")
    assert viewer["detail"] is False
    assert all("name" not in f["properties"] for f in viewer["features"])
    assert sorted((f["properties"]["grid_code"], f["properties"]["households"]) for f in viewer["features"]) == [
        (NW, 100),
        (SW, 70),
    ]
    worker = layer("worker")
    named = [f["properties"]["name"] for f in worker["features"] if "name" in f["properties"]]
    counted = [f["properties"]["grid_code"] for f in worker["features"] if "name" not in f["properties"]]
    assert named == ["西楼"] and counted == [SW]


def test_the_demo_register_adds_up_to_every_grid():
    district = read_district(demo_boundary_dir())
    register = demo_buildings()
    grids = district["grid"]
    index = assign.GridIndex.build(list(grids["code"]), list(grids.geometry))
    located = index.locate_many([b["lon"] for b in register], [b["lat"] for b in register], nearest=False)
    households, population = Counter(), Counter()
    for building, code in zip(register, located.grid_codes(), strict=True):
        households[code] += building["households"]
        population[code] += building["population"]
    assert None not in households
    assert all(households[c] == h for c, h in zip(grids["code"], grids["households"], strict=True))
    assert all(population[c] == p for c, p in zip(grids["code"], grids["population"], strict=True))
    assert len({b["code"] for b in register}) == len(register)
    assert demo_buildings() == register  # the same every time
