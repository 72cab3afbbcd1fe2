"""Import, validation and export of boundary files on both backends."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from geodata import COMMUNITIES, GRIDS, STREET, write_district, write_geojson
from shapely.geometry import Polygon, box

from gridmap import boundaries
from gridmap.errors import InvalidInput


def load_district(store, directory, *, edition=None):
    files = write_district(directory)
    for level in ("street", "community", "grid"):
        plan = boundaries.plan_import(store, files[level], level=level, edition=edition)
        boundaries.commit_import(store, plan)
    return files


def test_first_load_creates_a_current_edition_with_every_area(store, tmp_path):
    load_district(store, tmp_path)
    current = store.current_edition()
    assert current.name == "main"
    assert store.area_counts("main") == {"district": 0, "street": 1, "community": 2, "grid": 4}
    grids = store.areas("main", "grid")
    assert list(grids.code) == [g["code"] for g in GRIDS]
    assert list(grids.kind) == ["综合", "综合", "专属", "综合"]
    assert list(grids.households) == [420, 380, 35, 510]
    assert grids.geometry.iloc[0].equals(shapely.MultiPolygon([GRIDS[0]["geometry"]]))


def test_dry_run_writes_nothing(store, tmp_path):
    files = write_district(tmp_path)
    before = store.table_counts()
    plan = boundaries.plan_import(store, files["street"], level="street")
    assert plan.summary()[0].startswith("1 street areas from streets.geojson into new edition 'main'")
    assert store.table_counts() == before


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_export_then_import_round_trips(store, tmp_path, fmt):
    load_district(store, tmp_path)
    store.create_edition("copy")
    for level in ("street", "community", "grid"):
        out = tmp_path / f"out_{level}.{fmt}"
        assert boundaries.export_boundaries(store, out, level=level) == {"street": 1, "community": 2, "grid": 4}[level]
        boundaries.commit_import(store, boundaries.plan_import(store, out, level=level, edition="copy"))
    original, copy = store.areas("main"), store.areas("copy")
    attributes = ["code", "name", "level", "parent_code", "kind", "households", "population", "staff"]
    assert original[attributes].astype(str).values.tolist() == copy[attributes].astype(str).values.tolist()
    for a, b in zip(original.geometry, copy.geometry, strict=True):
        assert a.equals_exact(b, tolerance=1e-9) or shapely.normalize(a).equals_exact(shapely.normalize(b), 1e-9)


def test_draft_edition_is_invisible_until_activated(store, tmp_path):
    load_district(store, tmp_path)
    moved = [dict(g, geometry=shapely.affinity.translate(g["geometry"], xoff=0.05)) for g in GRIDS]
    (tmp_path / "plan").mkdir()
    for level, rows in (
        ("street", [dict(STREET, geometry=box(117.15, 39.10, 117.17, 39.12))]),
        ("community", [dict(c, geometry=shapely.affinity.translate(c["geometry"], xoff=0.05)) for c in COMMUNITIES]),
        ("grid", moved),
    ):
        path = write_geojson(tmp_path / "plan" / f"{level}.geojson", rows)
        boundaries.commit_import(store, boundaries.plan_import(store, path, level=level, edition="plan2027"))
    assert store.get_edition("plan2027").status == "draft"
    assert store.current_edition().name == "main"
    # A point inside a moved grid is seen only through the draft until it is activated.
    point = {"lon": 117.165, "lat": 39.115}
    assert store.grids_covering(**point, edition=store.current_edition().name) == []
    assert store.grids_covering(**point, edition="plan2027") == ["120104001002001"]
    store.activate_edition("plan2027")
    assert store.current_edition().name == "plan2027"
    assert store.get_edition("main").status == "retired"
    assert store.grids_covering(**point, edition=store.current_edition().name) == ["120104001002001"]


def test_shared_edge_point_is_covered_by_both_grids(store, tmp_path):
    load_district(store, tmp_path)
    # On the edge between the two western grids: boundary-inclusive lookups return both candidates.
    assert store.grids_covering(lon=117.105, lat=39.11, edition="main") == ["120104001001001", "120104001001002"]


# ---- refusals: each names the problem and leaves the database unchanged -------------------------------
def _bow_tie(code="120104001001003"):
    return {
        "code": code,
        "name": "蝴蝶",
        "parent_code": "120104001001",
        "geometry": Polygon([(117.10, 39.10), (117.105, 39.105), (117.10, 39.105), (117.105, 39.10)]),
    }


def _raw_polygon(coordinates, code="120104001001009"):
    return {
        "code": code,
        "name": "坏",
        "parent_code": "120104001001",
        "geometry": {"type": "Polygon", "coordinates": coordinates},
    }


BAD_GRID_FILES = {
    "self-intersection": ([_bow_tie()], "Self-intersection"),
    "unclosed ring": (
        [_raw_polygon([[[117.1, 39.1], [117.101, 39.1], [117.101, 39.101], [117.1, 39.101]]])],
        "ring is not closed",
    ),
    "too few points": ([_raw_polygon([[[117.1, 39.1], [117.101, 39.1], [117.1, 39.1]]])], "too few points"),
    "duplicate codes": (
        [dict(GRIDS[0], code="120104001001007"), dict(GRIDS[1], code="120104001001007")],
        "duplicate code 120104001001007",
    ),
    "code already loaded": ([GRIDS[0]], "already exists in edition 'main'"),
    "missing parent": (
        [dict(GRIDS[0], code="120104009009001", parent_code="120104009009")],
        "parent code 120104009009 is not a community",
    ),
    "swapped lat/lon": (
        [
            dict(
                GRIDS[0],
                code="120104001001005",
                geometry=shapely.transform(GRIDS[0]["geometry"], lambda xy: xy[:, ::-1]),
            )
        ],
        "swapped",
    ),
    "projected metres": (
        [dict(GRIDS[0], code="120104001001006", geometry=box(500000, 4330000, 501000, 4331000))],
        "projected",
    ),
    "a point, not a polygon": (
        [dict(GRIDS[0], code="120104001001008", geometry=shapely.Point(117.1, 39.1))],
        "is a Point",
    ),
}


@pytest.mark.parametrize("case", list(BAD_GRID_FILES))
def test_bad_grid_file_is_refused_and_changes_nothing(store, tmp_path, case):
    load_district(store, tmp_path)
    rows, message = BAD_GRID_FILES[case]
    path = write_geojson(tmp_path / "bad.geojson", rows)
    counts, checksum = store.table_counts(), store.edition_checksum("main")
    with pytest.raises(InvalidInput) as raised:
        boundaries.plan_import(store, path, level="grid")
    assert message.lower() in raised.value.message.lower()
    assert "bad.geojson: feature" in raised.value.message or case == "duplicate codes"
    assert store.table_counts() == counts
    assert store.edition_checksum("main") == checksum


BAD_FILES = {
    "malformed JSON": ("bad.geojson", b'{"type": "FeatureCollection", "features": [', "malformed JSON at line 1"),
    "empty file": ("empty.geojson", b"", "the file is empty"),
    "no features": ("none.geojson", b'{"type": "FeatureCollection", "features": []}', "has no features"),
    "not geographic": ("table.csv", b"code,name\n1,a\n", "not a geographic file"),
    "unreadable": ("junk.shp", b"\x00\x01garbage" * 10, "cannot read it"),
    "GeoJSON in GBK": (
        "gbk.geojson",
        '{"type": "FeatureCollection", "features": [{"名": "长虹"}]}'.encode("gbk"),
        "must be UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_unusable_file_is_refused_with_its_reason(store, tmp_path, case):
    name, content, message = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        boundaries.plan_import(store, path, level="street")
    assert store.list_editions() == []


def test_missing_field_lists_the_fields_there_are(store, tmp_path):
    files = write_district(tmp_path)
    with pytest.raises(InvalidInput) as raised:
        boundaries.plan_import(store, files["street"], level="street", code_field="dm")
    assert "has no field 'dm' (--code-field); its fields are: code, name, parent_code" in raised.value.message


def test_fix_invalid_repairs_and_reports_each_area(store, tmp_path):
    load_district(store, tmp_path)
    path = write_geojson(tmp_path / "bowtie.geojson", [_bow_tie()])
    plan = boundaries.plan_import(store, path, level="grid", fix_invalid=True)
    (repair,) = plan.repairs
    assert repair.code == "120104001001003" and repair.name == "蝴蝶" and "Self-intersection" in repair.message
    assert str(repair).startswith("feature 1 (code 120104001001003 蝴蝶): Self-intersection")
    repaired = plan.records[0].geometry
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon" and len(repaired.geoms) == 2
    boundaries.commit_import(store, plan)
    assert "120104001001003" in store.area_codes("main", "grid")


def test_gaps_overlaps_and_codes_are_warnings_not_errors(store, tmp_path):
    files = write_district(tmp_path)
    for level in ("street", "community"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level))
    grids = [
        dict(GRIDS[0], geometry=box(117.10, 39.108, 117.11, 39.12)),  # overlaps the next one by 0.002°
        GRIDS[1],
        dict(GRIDS[2], code="999999999999001"),  # code not under its community
        # GRIDS[3] left out: a gap in community 120104001002
    ]
    plan = boundaries.plan_import(store, write_geojson(tmp_path / "g.geojson", grids), level="grid")
    text = "\n".join(map(str, plan.warnings))
    assert "grids 120104001001001 百合第1网格 and 120104001001002 百合第2网格 overlap" in text
    assert "(code 999999999999001 翠澜第1网格): code does not start with its parent's code 120104001002" in text
    assert "part of community 120104001002 翠澜社区 covered by none of its grids" in text
    assert {w.reason for w in plan.warnings} == {"overlap", "code_prefix", "gap"}
    summary = "\n".join(plan.summary())
    assert "3 warnings:" in summary and "overlap: 1" in summary and "gap: 1" in summary
    assert boundaries.commit_import(store, plan) == 3


def _write_shapefile(directory, rows, *, encoding, cpg):
    frame = gpd.GeoDataFrame(
        [{k: v for k, v in r.items() if k != "geometry"} for r in rows],
        geometry=[r["geometry"] for r in rows],
        crs="EPSG:4326",
    ).rename(columns={"parent_code": "parent_cod"})
    path = directory / "streets.shp"
    frame.to_file(path, engine="pyogrio", encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("encoding,cpg", [("GBK", False), ("GBK", True), ("UTF-8", True), ("UTF-8", False)])
def test_shapefile_attributes_in_gbk_or_utf8(store, tmp_path, encoding, cpg):
    path = _write_shapefile(tmp_path, [STREET], encoding=encoding, cpg=cpg)
    assert (path.with_suffix(".cpg").exists()) == cpg
    boundaries.commit_import(store, boundaries.plan_import(store, path, level="street"))
    assert store.areas("main", "street").name.tolist() == ["长虹街道"]


def test_projected_file_is_reprojected(store, tmp_path):
    frame = gpd.GeoDataFrame(
        [{"code": STREET["code"], "name": STREET["name"]}], geometry=[STREET["geometry"]], crs="EPSG:4326"
    ).to_crs("EPSG:4547")  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
    path = tmp_path / "projected.gpkg"
    frame.to_file(path, engine="pyogrio")
    plan = boundaries.plan_import(store, path, level="street")
    assert "CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547) (the file)" in plan.source
    boundaries.commit_import(store, plan)
    stored = store.areas("main", "street").geometry.iloc[0]
    # The corners come back where they were (a straight side in the Gauss–Krüger plane is followed in 50 m steps,
    # so the sides bow by a few centimetres against the lon/lat box they were made from).
    corners = shapely.points(STREET["geometry"].exterior.coords)
    assert max(shapely.distance(stored, corners)) < 1e-9
    assert stored.hausdorff_distance(STREET["geometry"]) < 1e-6  # about 10 cm


def test_retired_edition_cannot_be_loaded_into(store, tmp_path):
    load_district(store, tmp_path)
    store.retire_edition("main")
    with pytest.raises(InvalidInput, match="retired"):
        boundaries.plan_import(store, tmp_path / "grids.geojson", level="grid", edition="main")


def test_kml_is_read(store, tmp_path):
    path = tmp_path / "streets.kml"
    gpd.GeoDataFrame(
        [{"Name": STREET["name"], "code": STREET["code"]}], geometry=[STREET["geometry"]], crs="EPSG:4326"
    ).to_file(path, driver="KML", engine="pyogrio")
    boundaries.commit_import(store, boundaries.plan_import(store, path, level="street", name_field="Name"))
    assert store.areas("main", "street").code.tolist() == [STREET["code"]]
    assert json.loads(json.dumps(store.list_editions()[0].to_dict()))["status"] == "current"
