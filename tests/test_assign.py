"""The one point-in-polygon rule, through every front door: core index, database, CLI and HTTP."""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from geodata import COMMUNITIES, GRIDS, STREET, load_district, write_geojson
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from gridmap import assign, crs
from gridmap.cli import main
from gridmap.errors import InvalidInput

NW, SW, NE, SE = (g["code"] for g in GRIDS)
# The north-east grid has a hole: a 0.002° square its community covers and no grid does (a gap).
HOLE = box(117.114, 39.114, 117.116, 39.116)
HOLED_GRIDS = [{**g, "geometry": g["geometry"].difference(HOLE)} if g["code"] == NE else g for g in GRIDS]


def metres(lon1, lat1, lon2, lat2) -> float:
    return crs.geodesic_distance_m(lon1=lon1, lat1=lat1, lon2=lon2, lat2=lat2)


# (name, lon, lat, expected grid, ambiguous, candidates, nearest, nearest distance in metres)
SCENARIOS = [
    ("interior", 117.105, 39.115, NW, False, [NW], None, None),
    ("edge between two grids of one community", 117.105, 39.11, NW, True, [NW, SW], None, None),
    ("edge between two communities", 117.11, 39.105, SW, True, [SW, SE], None, None),
    ("vertex shared by four grids", 117.11, 39.11, NW, True, [NW, SW, NE, SE], None, None),
    ("outer edge belongs to its one grid", 117.10, 39.105, SW, False, [SW], None, None),
    ("outer corner", 117.12, 39.12, NE, False, [NE], None, None),
    ("in a hole (a gap in coverage)", 117.115, 39.115, None, False, [], NE, metres(117.115, 39.115, 117.114, 39.115)),
    ("on the rim of a hole", 117.114, 39.115, NE, False, [NE], None, None),
    ("east of the district", 117.13, 39.115, None, False, [], NE, metres(117.12, 39.115, 117.13, 39.115)),
    ("south of the district", 117.115, 39.09, None, False, [], SE, metres(117.115, 39.10, 117.115, 39.09)),
]
IDS = [s[0] for s in SCENARIOS]
# (name, lon, lat, what the refusal says)
REFUSALS = [
    ("swapped lat/lon", 39.115, 117.105, "swapped"),
    ("projected metres given as degrees", 13030000.0, 4740000.0, "projected"),
]


@pytest.fixture(scope="module")
def tiny_index():
    communities = {g["parent_code"] for g in GRIDS}
    assert communities == {"120104001001", "120104001002"}
    return assign.GridIndex.build(
        [g["code"] for g in HOLED_GRIDS],
        [g["geometry"] for g in HOLED_GRIDS],
        [g["parent_code"] for g in HOLED_GRIDS],
        ["120104001"] * len(HOLED_GRIDS),
    )


def load_holed_district(store, directory) -> None:
    from gridmap import boundaries

    files = {
        "street": write_geojson(directory / "streets.geojson", [STREET]),
        "community": write_geojson(directory / "communities.geojson", COMMUNITIES),
        "grid": write_geojson(directory / "grids.geojson", HOLED_GRIDS),
    }
    for level in ("street", "community", "grid"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level))


@pytest.fixture
def district(store, tmp_path):
    load_holed_district(store, tmp_path)
    return store


def check(answer: dict, scenario) -> None:
    _, _, _, grid, ambiguous, candidates, nearest, distance = scenario
    assert answer["grid_code"] == grid
    assert answer["ambiguous"] is ambiguous
    assert answer["candidates"] == candidates
    assert answer["nearest_code"] == nearest
    if distance is None:
        assert answer["nearest_distance_m"] is None
    else:
        assert answer["nearest_distance_m"] == pytest.approx(distance, abs=0.05)
    if grid is not None:
        assert answer["community_code"] == grid[:12]
        assert answer["street_code"] == "120104001"


# ---- core ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_scenarios_in_memory(tiny_index, scenario):
    _, lon, lat, *_ = scenario
    check(tiny_index.locate(lon=lon, lat=lat).to_dict(), scenario)


def test_bulk_answers_equal_single_answers(tiny_index):
    lons = [s[1] for s in SCENARIOS]
    lats = [s[2] for s in SCENARIOS]
    bulk = tiny_index.locate_many(lons, lats)
    for scenario, answer in zip(SCENARIOS, bulk.assignments(), strict=True):
        check(answer.to_dict(), scenario)


def test_choose_lowest_code_and_records_the_tie():
    assert assign.choose(["b", "a", "c"]) == ("a", True, ("a", "b", "c"))
    assert assign.choose(["x"]) == ("x", False, ("x",))
    assert assign.choose([]) == (None, False, ())


def test_hole_is_outside_and_its_rim_is_inside():
    ring = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], holes=[[(1, 1), (3, 1), (3, 3), (1, 3)]])
    island = box(1, 1, 3, 3)
    index = assign.GridIndex.build(["A", "B"], [ring, island])
    assert index.locate(lon=0.5, lat=0.5).grid_code == "A"
    assert index.locate(lon=2, lat=2).grid_code == "B"
    rim = index.locate(lon=1, lat=2)
    assert (rim.grid_code, rim.ambiguous, rim.candidates) == ("A", True, ("A", "B"))
    alone = assign.GridIndex.build(["A"], [ring])
    hole = alone.locate(lon=2, lat=2)
    assert hole.grid_code is None and hole.nearest_code == "A"
    # Near the equator a degree of latitude is shorter than one of longitude: the edge due south is nearest.
    assert hole.nearest_distance_m == pytest.approx(metres(2, 2, 2, 1), rel=1e-6)
    assert metres(2, 2, 2, 1) < metres(2, 2, 3, 2)


def test_overlapping_grids_both_candidates_lowest_code_wins():
    index = assign.GridIndex.build(["G2", "G1"], [box(0, 0, 2, 2), box(1, 1, 3, 3)])
    inside_both = index.locate(lon=1.5, lat=1.5)
    assert (inside_both.grid_code, inside_both.ambiguous, inside_both.candidates) == ("G1", True, ("G1", "G2"))
    assert index.locate(lon=0.5, lat=0.5).grid_code == "G2"
    bulk = index.locate_many([1.5, 0.5, 2.5], [1.5, 0.5, 2.5])
    assert bulk.grid_codes() == ["G1", "G2", "G1"]
    assert bulk.ambiguous.tolist() == [True, False, False]


def test_l_shaped_grid_and_its_notch():
    ell = Polygon([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])
    index = assign.GridIndex.build(["L"], [ell])
    assert index.locate(lon=0.5, lat=1.5).grid_code == "L"
    assert index.locate(lon=1.5, lat=1.5).grid_code is None
    assert index.locate(lon=1, lat=1.5).grid_code == "L"  # the notch's edge is the L's boundary


def test_duplicate_codes_are_refused():
    with pytest.raises(InvalidInput, match="unique"):
        assign.GridIndex.build(["A", "A"], [box(0, 0, 1, 1), box(1, 0, 2, 1)])


def tilings():
    """Random tilings of the unit square into rectangles (vertical strips, each cut into rows)."""
    cut = st.lists(st.integers(1, 99), min_size=1, max_size=5, unique=True).map(sorted)
    return st.lists(cut, min_size=1, max_size=4).flatmap(
        lambda rows: st.tuples(
            st.just(rows),
            st.lists(st.integers(1, 99), min_size=len(rows) - 1, max_size=len(rows) - 1, unique=True).map(sorted),
        )
    )


@settings(max_examples=60, deadline=None)
@given(tilings(), st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=60))
def test_every_point_of_a_tiling_lands_in_exactly_the_grids_covering_it(tiling, raw_points):
    rows_per_strip, strip_cuts = tiling
    xs = [0, *strip_cuts, 100]
    codes, geometries = [], []
    for strip, rows in enumerate(rows_per_strip):
        ys = [0, *rows, 100]
        for row in range(len(ys) - 1):
            codes.append(f"{strip:02d}{row:02d}")
            geometries.append(box(xs[strip] / 100, ys[row] / 100, xs[strip + 1] / 100, ys[row + 1] / 100))
    index = assign.GridIndex.build(codes, geometries)
    # Points on a 1/100 lattice hit edges and vertices often, which is where the rule matters.
    lons = np.array([p[0] / 100 for p in raw_points])
    lats = np.array([p[1] / 100 for p in raw_points])
    bulk = index.locate_many(lons, lats)
    for position, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
        covering = sorted(c for c, g in zip(codes, geometries, strict=True) if g.covers(shapely.Point(lon, lat)))
        assert covering, "the tiling covers the whole square"
        single = index.locate(lon=lon, lat=lat)
        assert single.grid_code == covering[0]
        assert list(single.candidates) == covering
        assert single.ambiguous == (len(covering) > 1)
        assert bulk.assignment(position) == single


# ---- database, CLI, HTTP: the same table -----------------------------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_scenarios_through_the_store(district, scenario):
    _, lon, lat, *_ = scenario
    check(assign.locate(district, lon=lon, lat=lat), scenario)
    answer = assign.locate_via_database(district, lon=lon, lat=lat)
    assert answer.grid_code == scenario[3]
    assert answer.ambiguous is scenario[4]
    assert list(answer.candidates) == scenario[5]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_through_the_store_and_the_cli(district, database_url, refusal):
    _, lon, lat, reason = refusal
    with pytest.raises(InvalidInput, match=reason):
        assign.locate(district, lon=lon, lat=lat)
    result = CliRunner().invoke(main, ["locate", "--lon", str(lon), "--lat", str(lat), "--db", database_url])
    assert result.exit_code == 1
    assert reason in result.output


def test_scenarios_through_the_cli(district, database_url):
    runner = CliRunner()
    for scenario in SCENARIOS:
        _, lon, lat, *_ = scenario
        result = runner.invoke(main, ["locate", "--lon", str(lon), "--lat", str(lat), "--json", "--db", database_url])
        assert result.exit_code == 0, result.output
        check(json.loads(result.output), scenario)
    plain = runner.invoke(main, ["locate", "--lon", "117.11", "--lat", "39.11", "--db", database_url])
    assert f"grid {NW} 百合第1网格" in plain.output
    assert "ambiguous" in plain.output and SE in plain.output


def get_json(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_scenarios_through_http(live_server, database_url, tmp_path):
    from gridmap import people
    from gridmap.store import Store

    store = Store.open(database_url)
    try:
        load_holed_district(store, tmp_path)
        token = people.add_user(store, "viewer", role="viewer")  # /api/locate needs a sign-in by default
    finally:
        store.close()
    assert get_json(f"{live_server}/api/locate?lon=117.105&lat=39.115")[0] == 401
    for scenario in SCENARIOS:
        _, lon, lat, *_ = scenario
        status, answer = get_json(f"{live_server}/api/locate?lon={lon}&lat={lat}", token)
        assert status == 200
        check(answer, scenario)
    for query, message, code in (
        ("lon=abc&lat=39.1", "lon='abc' is not a number", 400),
        ("lat=39.1", "missing query parameter 'lon'", 400),
        ("lon=117.1&lat=39.1&crs=utm", "utm", 400),
        # Swapped coordinates are well-formed but implausible (422); projected metres are out of range (400).
        *((f"lon={lon}&lat={lat}", reason, 422 if reason == "swapped" else 400) for _, lon, lat, reason in REFUSALS),
    ):
        status, answer = get_json(f"{live_server}/api/locate?{query}", token)
        assert status == code, query
        assert message in answer["error"], answer


def test_gcj02_and_bd09_points_land_where_their_wgs84_point_does(district):
    lon, lat = 117.1199, 39.1199  # 10 m inside the north-east corner: the ~500 m GCJ-02 shift would leave the grid
    gcj = crs.from_wgs84(lon=lon, lat=lat, crs="gcj02")
    bd = crs.from_wgs84(lon=lon, lat=lat, crs="bd09")
    assert assign.locate(district, lon=gcj[0], lat=gcj[1])["grid_code"] is None
    assert assign.locate(district, lon=gcj[0], lat=gcj[1], crs="gcj02")["grid_code"] == NE
    assert assign.locate(district, lon=bd[0], lat=bd[1], crs="bd09")["grid_code"] == NE


def test_index_is_rebuilt_when_another_edition_is_activated(district, tmp_path):
    before = assign.grid_index(district)
    assert assign.grid_index(district) is before  # cached while nothing changes
    (tmp_path / "next").mkdir()
    load_district(district, tmp_path / "next", edition="2027")
    assert assign.grid_index(district) is before  # a draft changes nothing that lookups see
    district.activate_edition("2027")
    after = assign.grid_index(district)
    assert after is not before and after.edition == "2027"
    assert assign.locate(district, lon=117.105, lat=39.115)["edition"] == "2027"


# ---- bulk CSV --------------------------------------------------------------------------------------------
def test_bulk_csv_keeps_every_row_and_marks_bad_ones(district, tmp_path, database_url):
    source = tmp_path / "points.csv"
    rows = [
        ("a1", "117.105", "39.115"),
        ("a2", "117.11", "39.11"),
        ("a3", "117.13", "39.115"),
        ("a4", "not-a-number", "39.1"),
        ("a5", "39.115", "117.105"),
        ("a6", "", ""),
    ]
    source.write_bytes(("编号,经度,纬度\n" + "\n".join(",".join(r) for r in rows) + "\n").encode("gbk"))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        main,
        [
            "locate",
            "--input",
            str(source),
            "--output",
            str(out),
            "--id-column",
            "编号",
            "--lon-column",
            "经度",
            "--lat-column",
            "纬度",
            "--db",
            database_url,
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [r["编号"] for r in written] == ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert [r["grid_code"] for r in written] == [NW, NW, "", "", "", ""]
    assert [r["ambiguous"] for r in written[:3]] == ["false", "true", "false"]
    assert written[2]["error"] == ""
    assert "not a pair of numbers" in written[3]["error"]
    assert "swapped" in written[4]["error"]
    assert written[5]["error"]
    assert "6 rows" in result.output and "3 errors" in result.output


def test_bulk_csv_names_missing_columns(district, tmp_path):
    source = tmp_path / "points.csv"
    source.write_text("id,x,y\n1,117.1,39.1\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="no column lon, lat; its columns are: id, x, y"):
        assign.locate_csv(assign.grid_index(district), source, tmp_path / "out.csv")


# ---- reassignment after a redivision ---------------------------------------------------------------------
def test_reassign_moves_current_grid_and_keeps_the_original(district, tmp_path):
    import datetime as dt

    when = dt.datetime(2026, 11, 1, 9, 0)
    district.add_incidents(
        [
            {
                "source": "hotline",
                "title": "drain",
                "reported_at": when,
                "lon": 117.105,
                "lat": 39.105,
                "grid_code": SW,
                "original_grid_code": SW,
                "community_code": SW[:12],
                "street_code": "120104001",
            },
            {
                "source": "hotline",
                "title": "noise",
                "reported_at": when,
                "lon": 117.115,
                "lat": 39.115,
                "grid_code": NE,
                "original_grid_code": NE,
                "community_code": NE[:12],
                "street_code": "120104001",
            },
        ]
    )
    # The next edition merges the west community's two grids into one.
    from geodata import COMMUNITIES, STREET, write_geojson

    from gridmap import boundaries

    merged_west = {
        **GRIDS[0],
        "code": "120104001001003",
        "name": "百合合并网格",
        "geometry": box(117.10, 39.10, 117.11, 39.12),
    }
    files = {
        "street": write_geojson(tmp_path / "s.geojson", [STREET]),
        "community": write_geojson(tmp_path / "c.geojson", COMMUNITIES),
        "grid": write_geojson(tmp_path / "g.geojson", [merged_west, *GRIDS[2:]]),
    }
    for level in ("street", "community", "grid"):
        boundaries.commit_import(district, boundaries.plan_import(district, files[level], level=level, edition="2027"))
    district.activate_edition("2027")
    counts = assign.reassign(district)
    assert counts == {"incidents": 2, "moved": 1, "unassigned": 0, "ambiguous": 0}
    points = {p["id"]: p for p in district.incident_points()}
    moved, kept = sorted(points.values(), key=lambda p: p["id"])
    assert (moved["grid_code"], moved["original_grid_code"]) == ("120104001001003", SW)
    assert (kept["grid_code"], kept["original_grid_code"]) == (NE, NE)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.001, 0.999), st.floats(0.001, 0.999)), min_size=3, max_size=25, unique=True),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=40),
    st.integers(0, 2**32 - 1),
)
def test_slanted_tilings_agree_with_brute_force_covers(seeds, free_points, pick):
    """Voronoi cells have slanted edges at every angle: the raster must never hide one."""
    square = box(117.0, 39.0, 117.05, 39.05)
    sites = shapely.multipoints([(117.0 + x * 0.05, 39.0 + y * 0.05) for x, y in seeds])
    cells = [c.intersection(square) for c in shapely.get_parts(shapely.voronoi_polygons(sites, extend_to=square))]
    cells = [c for c in cells if not c.is_empty and c.area > 0]
    codes = [f"G{i:03d}" for i in range(len(cells))]
    index = assign.GridIndex.build(codes, cells)
    # Probe free points, every vertex and the midpoint of every edge (where ties live).
    vertices = shapely.get_coordinates(np.array(cells, dtype=object))
    rng = np.random.default_rng(pick)
    chosen = vertices[rng.choice(len(vertices), size=min(30, len(vertices)), replace=False)]
    midpoints = (chosen + np.roll(chosen, 1, axis=0)) / 2
    probes = np.vstack([[(117.0 + x * 0.05, 39.0 + y * 0.05) for x, y in free_points], chosen, midpoints])
    bulk = index.locate_many(probes[:, 0], probes[:, 1], nearest=False)
    for position, (lon, lat) in enumerate(probes):
        point = shapely.Point(lon, lat)
        covering = sorted(code for code, cell in zip(codes, cells, strict=True) if cell.covers(point))
        answer = bulk.assignment(position)
        assert answer.grid_code == (covering[0] if covering else None), (lon, lat)
        if covering:
            assert list(answer.candidates) == covering
        assert index.locate(lon=lon, lat=lat).grid_code == answer.grid_code
