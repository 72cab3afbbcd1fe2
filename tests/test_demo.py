"""The committed demo district: counts, codes, exact tiling, numbering, attributes, and that it regenerates."""

from __future__ import annotations

import csv
import json
import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from geodata import COMMUNITIES, GRIDS, STREET
from shapely.geometry import box

from gridmap.cli import main
from gridmap.crs import local_metric_crs
from gridmap.demo.district import FILES, check_district, demo_boundary_dir, write_district
from gridmap.demo.gazetteer import GAZETTEER_FILE, write_gazetteer
from gridmap.demo.tiling import _absorb_fragments, _allocate, _make_contiguous
from gridmap.errors import GridmapError

PARENT = {"street": "district", "community": "street", "grid": "community"}
METRIC = local_metric_crs(lon=117.15, lat=39.12)


@pytest.fixture(scope="module")
def demo():
    # Read with GDAL (pyogrio), not with the generator's own reader.
    return {level: gpd.read_file(demo_boundary_dir() / name) for level, name in FILES.items()}


@pytest.fixture(scope="module")
def raw():
    return {
        level: json.loads((demo_boundary_dir() / name).read_text(encoding="utf-8")) for level, name in FILES.items()
    }


def test_counts_are_nankai_scale(demo):
    assert {level: len(frame) for level, frame in demo.items()} == {
        "district": 1,
        "street": 12,
        "community": 175,
        "grid": 1464,
    }


def test_district_is_nankai_sized_and_placed(demo):
    district = demo["district"].iloc[0]
    assert tuple(district[["code", "name", "parent_code", "level"]]) == ("120104", "南开区", "", "district")
    area_km2 = demo["district"].to_crs(METRIC).area.iloc[0] / 1e6
    assert 38 < area_km2 < 42
    centre = district.geometry.centroid
    assert abs(centre.x - 117.15) < 0.01 and abs(centre.y - 39.12) < 0.01


def test_files_have_exactly_the_documented_properties_and_compact_utf8(raw):
    base = ["code", "name", "parent_code", "level"]
    expected = {level: base for level in FILES} | {"grid": [*base, "kind", "households", "population", "staff"]}
    for level, collection in raw.items():
        assert collection["type"] == "FeatureCollection"
        assert {tuple(f["properties"]) for f in collection["features"]} == {tuple(expected[level])}
        assert {f["properties"]["level"] for f in collection["features"]} == {level}
        text = (demo_boundary_dir() / FILES[level]).read_text(encoding="utf-8")
        assert "\n" not in text and ", " not in text and "\\u" not in text
    assert sum((demo_boundary_dir() / name).stat().st_size for name in FILES.values()) < 3_000_000


def test_coordinates_have_at_most_seven_decimals(raw):
    for collection in raw.values():
        for feature in collection["features"]:
            xy = shapely.get_coordinates(shapely.geometry.shape(feature["geometry"]))
            assert np.array_equal(xy, np.round(xy, 7))


@pytest.mark.parametrize(
    "child,parent,length", [("street", "district", 9), ("community", "street", 12), ("grid", "community", 15)]
)
def test_codes_extend_their_parents_code(demo, child, parent, length):
    frame = demo[child]
    assert frame.code.is_unique
    assert (frame.code.str.len() == length).all() and frame.code.str.isdigit().all()
    assert set(frame.parent_code) == set(demo[parent].code)
    assert all(
        code.startswith(p) and len(code) == len(p) + 3 for code, p in zip(frame.code, frame.parent_code, strict=True)
    )
    # Sequence numbers run 001, 002, … without gaps within each parent.
    for _, group in frame.groupby("parent_code"):
        assert sorted(int(code[-3:]) for code in group.code) == list(range(1, len(group) + 1))


@pytest.mark.parametrize("child", ["street", "community", "grid"])
def test_each_level_tiles_its_parent_exactly(demo, child):
    children = demo[child]
    geometries = children.geometry.values
    assert children.geometry.is_valid.all() and (children.geom_type == "Polygon").all()
    assert (shapely.get_num_interior_rings(geometries) == 0).all()
    assert shapely.coverage_is_valid(geometries)  # no overlaps, shared edges have identical vertices
    assert shapely.is_empty(shapely.coverage_invalid_edges(geometries)).all()
    parents = demo[PARENT[child]].set_index("code").geometry
    child_areas = children.to_crs(METRIC).area.groupby(children.parent_code).sum()
    parent_areas = parents.to_crs(METRIC).area
    for code, group in children.groupby("parent_code"):
        assert shapely.union_all(group.geometry.values).equals(parents[code])
        assert child_areas[code] == pytest.approx(parent_areas[code], rel=1e-9)


def test_grids_have_no_slivers(demo):
    grids = demo["grid"].to_crs(METRIC)
    compactness = 4 * math.pi * grids.area / grids.length**2  # 1 for a circle, 0.785 for a square
    assert compactness.min() > 0.5
    assert grids.area.min() > 10_000 and grids.area.max() < 50_000  # m²; 40 km² / 1,464 ≈ 27,000 m²


@pytest.mark.parametrize("child", ["street", "community", "grid"])
def test_numbering_runs_west_to_east_then_north_to_south(demo, child):
    # The rule of the module docstring and SOURCES.md: round(√n) bands of the parent's bounding box, north to
    # south; within a band, by centroid longitude.
    parents = demo[PARENT[child]].set_index("code").geometry
    for code, group in demo[child].groupby("parent_code"):
        group = group.sort_values("code")
        rows = max(1, round(math.sqrt(len(group))))
        miny, maxy = parents[code].bounds[1], parents[code].bounds[3]
        height = (maxy - miny) / rows
        keys = [(min(rows - 1, int((maxy - c.y) / height)), c.x) for c in shapely.centroid(group.geometry.values)]
        assert keys == sorted(keys), f"the children of {code} are not numbered west→east, north→south"


def test_names(demo):
    assert list(demo["street"].name[:3]) == ["长虹街道", "鼓楼街道", "兴南街道"]
    assert demo["street"].name.is_unique and demo["street"].name.str.endswith("街道").all()
    assert demo["community"].name.is_unique and demo["community"].name.str.endswith("社区").all()
    communities = demo["community"].set_index("code").name
    grids = demo["grid"]
    for grid in grids[grids.kind == "综合"].itertuples():
        assert grid.name == f"{communities[grid.parent_code].removesuffix('社区')}第{int(grid.code[-3:])}网格"
    dedicated = grids[grids.kind == "专属"]
    assert dedicated.name.str.endswith("专属网格").all() and dedicated.name.is_unique
    assert "南开大学专属网格" in set(dedicated.name)


def test_households_population_and_staff(demo):
    grids = demo["grid"]
    assert set(grids.kind) == {"综合", "专属"}
    assert (grids.kind == "专属").sum() == 44  # 3 %
    comprehensive = grids[grids.kind == "综合"]
    assert (comprehensive.households < 300).sum() == (comprehensive.households > 500).sum() == 71  # 5 % each
    assert comprehensive.households.between(150, 750).all()
    assert grids[grids.kind == "专属"].households.between(0, 150).all()
    # population = households × 2.3–2.9, rounded to a whole person
    assert (grids.population >= np.floor(grids.households * 2.3)).all()
    assert (grids.population <= np.ceil(grids.households * 2.9)).all()
    assert set(grids.staff) == {1, 2, 3, 4}


def test_regenerating_gives_the_committed_bytes(tmp_path):
    # Also shows generation is deterministic: the committed files were written by another process.
    written = write_district(tmp_path)
    assert {level: path.name for level, path in written.items()} == FILES
    write_gazetteer(tmp_path)
    for name in [*FILES.values(), GAZETTEER_FILE]:
        assert (tmp_path / name).read_bytes() == (demo_boundary_dir() / name).read_bytes(), name


# ---- the checker and the repairs, on hand-drawn shapes --------------------------------------------------------
def _tiny_district(grids=GRIDS):
    base = ["code", "name", "parent_code", "level"]
    outline = box(*STREET["geometry"].bounds)
    district = [{"code": "120104", "name": "南开区", "parent_code": "", "level": "district", "geometry": outline}]
    streets = [dict(STREET, parent_code="120104", level="street")]
    communities = [dict(c, level="community") for c in COMMUNITIES]
    cells = [dict(g, level="grid") for g in grids]
    grid_columns = [*base, "kind", "households", "population", "staff", "geometry"]
    return {
        "district": gpd.GeoDataFrame(district, columns=[*base, "geometry"], crs="EPSG:4326"),
        "street": gpd.GeoDataFrame(streets, columns=[*base, "geometry"], crs="EPSG:4326"),
        "community": gpd.GeoDataFrame(communities, columns=[*base, "geometry"], crs="EPSG:4326"),
        "grid": gpd.GeoDataFrame(cells, columns=grid_columns, crs="EPSG:4326"),
    }


def test_check_district_accepts_an_exact_tiling():
    check_district(_tiny_district(), where="tiny")


def test_check_district_names_a_gap():
    with pytest.raises(GridmapError, match="tiny: the grid areas of community 120104001002 do not tile it exactly"):
        check_district(_tiny_district(GRIDS[:3]), where="tiny")


def test_check_district_names_an_overlap():
    grown = dict(GRIDS[0], geometry=GRIDS[0]["geometry"].buffer(0.001, join_style="mitre"))
    with pytest.raises(GridmapError, match="tiny: the grid coverage is invalid"):
        check_district(_tiny_district([grown, *GRIDS[1:]]), where="tiny")


def test_allocate_splits_in_proportion_and_sums_exactly():
    assert _allocate(10, [1, 1, 2]) == [3, 2, 5]  # 2.5, 2.5, 5: the first remainder wins the spare one
    assert _allocate(175, [122] * 12) == [15] * 7 + [14] * 5
    assert _allocate(3, [100, 1, 1]) == [1, 1, 1]  # everybody keeps at least one


def test_make_contiguous_hands_a_stray_piece_to_its_longest_neighbour():
    # A strip of four unit squares 0-1-2-3: cluster A = {0, 2, 3} is in two pieces; {0} is the small one and
    # touches only cluster B (cell 1), so it joins B. Cells outside `labels` (cell 4) are left alone.
    neighbours = [{1: 1.0}, {0: 1.0, 2: 1.0}, {1: 1.0, 3: 1.0}, {2: 1.0, 4: 1.0}, {3: 1.0}]
    assert _make_contiguous({0: 0, 1: 1, 2: 0, 3: 0}, neighbours) == {0: 1, 1: 1, 2: 0, 3: 0}


def test_absorb_fragments_gives_a_cut_off_piece_to_its_neighbour():
    # A U-shaped parent; the cell of seed 0 spans both arms, so clipping leaves it in two pieces.
    parent = shapely.Polygon([(0, 0), (3, 0), (3, 2), (2, 2), (2, 1), (1, 1), (1, 2), (0, 2)])
    below = shapely.Polygon([(0, 0), (3, 0), (3, 1), (2, 1), (1, 1), (0, 1)])  # shares the vertices above it
    cells = np.array([shapely.intersection(box(0, 1, 3, 2), parent), below], dtype=object)
    seeds = np.array([[0.5, 1.5], [1.5, 0.5]])
    mended = _absorb_fragments(cells, seeds)
    assert mended[0].equals(box(0, 1, 1, 2))
    assert mended[1].area == 4 and shapely.coverage_is_valid(mended)


def test_demo_command_loads_the_district_once(database_url):
    with (demo_boundary_dir() / GAZETTEER_FILE).open(encoding="utf-8", newline="") as handle:
        addresses = sum(1 for _ in csv.DictReader(handle))
    import re

    from gridmap import people
    from gridmap.store import Store

    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--cases", "30", "--closed-cases", "5", "--db", database_url])
    assert first.exit_code == 0, first.output
    assert "12 streets, 175 communities, 1464 grids" in first.output
    assert f"loaded the demo gazetteer: {addresses} addresses" in first.output
    password = re.search(r"created the admin user 'demo' with password (\S+) ", first.output).group(1)
    again = runner.invoke(main, ["demo", "--if-empty", "--cases", "30", "--db", database_url])
    assert again.exit_code == 0 and "demo not loaded" in again.output
    store = Store.open(database_url)
    try:
        assert people.user_for_password(store, "demo", password).role == "admin"
        cases = store.list_incidents(limit=None)
        assert len(cases) == 35  # the second, --if-empty run added none
        assert sum(c["status"] == "closed" for c in cases) == 5
        assert all(c["grid_code"] and c["deadline"] > c["reported_at"] for c in cases)
    finally:
        store.close()


def test_generated_cases_lie_in_their_grids_with_deadlines_after_the_report():
    import datetime as dt

    from geodata import GRIDS

    from gridmap.demo.cases import generate_cases

    grids = gpd.GeoDataFrame(GRIDS, geometry="geometry", crs="EPSG:4326")
    categories = [{"code": "0101", "name": "私搭乱建"}, {"code": "0102", "name": "暴露垃圾"}]
    now = dt.datetime(2026, 11, 20, 10, 0)
    rows = generate_cases(
        grids, categories, 200, closed=20, now=now, deadline_for=lambda code, at: at + dt.timedelta(days=2)
    )
    assert len(rows) == 220 and len({r["source_id"] for r in rows}) == 220
    district = shapely.union_all(list(grids.geometry))
    assert all(district.covers(shapely.Point(r["lon"], r["lat"])) for r in rows)
    assert {r["status"] for r in rows[:200]} <= {"reported", "registered", "dispatched", "in_progress", "resolved"}
    assert all(r["status"] == "closed" and r["closed_at"] <= now for r in rows[200:])
    assert all(r["reported_at"] < now < r["reported_at"] + dt.timedelta(days=31) for r in rows)
    assert all(r["deadline"] > r["reported_at"] for r in rows)
    # Households weight the draw: the 510-household grid gets more cases than the 35-household one.
    south_east, north_east = GRIDS[3]["geometry"], GRIDS[2]["geometry"]
    in_grid = lambda g: sum(g.contains(shapely.Point(r["lon"], r["lat"])) for r in rows)  # noqa: E731
    assert in_grid(south_east) > 3 * in_grid(north_east)
