"""Real boundary files: every refusal at once, Esri JSON with curves, any CRS, GCJ-02, grids-only layers.

The files are built by code in tests/fixtures; expected areas come from independent computations (the Esri
fixture's finely sampled curves, pyproj's geodesic area), never from gridmap's own measure.
"""

from __future__ import annotations

import csv

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from fixtures.esri import COMMUNITY_NAMES, LOCAL_WKT, curved_grids, write_esrijson
from fixtures.files import STREET, STREET_NAME, bow_tie, grids_only, shift_rows, write_frame
from fixtures.tilings import false_gap_district, geodesic_area_m2
from geodata import COMMUNITIES as TINY_COMMUNITIES
from geodata import GRIDS, load_district, write_geojson
from geodata import STREET as TINY_STREET
from pyproj import CRS, Transformer
from shapely.geometry import box

from gridmap import audit, boundaries
from gridmap.cli import main
from gridmap.errors import InvalidInput

GRID_FIELDS = {"code_field": "网格编码", "name_field": "网格名称", "parent_field": "社区编码"}
NONE = {kind: 0 for kind in audit.FINDING_KINDS}


def findings(report: dict) -> dict[str, int]:
    return {kind: len(report[kind]) for kind in audit.FINDING_KINDS}


@pytest.fixture
def cli(database_url):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args, "--db", database_url], catch_exceptions=False)

    return invoke


# ---- every refusal in one run ---------------------------------------------------------------------------------------
def broken_1300(tmp_path):
    """The issue's file: 1,300 grids, an invalid polygon at feature 77, a duplicate code at feature 179."""
    rows = grids_only()
    rows[76] = {**rows[76], "geometry": bow_tie(rows[76]["geometry"])}
    rows[178] = {**rows[178], "网格编码": rows[5]["网格编码"]}
    return rows, write_geojson(tmp_path / "grids_1300.geojson", rows)


def test_a_1300_grid_file_shows_both_refusals_in_one_run_and_writes_nothing(store, tmp_path):
    rows, path = broken_1300(tmp_path)
    before = store.table_counts()
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="grid", create_parents=True, **GRID_FIELDS)
    refusals = raised.value.refusals
    assert [(p.feature, p.reason) for p in refusals] == [(77, "invalid_geometry"), (179, "duplicate_code")]
    assert refusals[0].code == rows[76]["网格编码"] and refusals[0].name == rows[76]["网格名称"]
    assert refusals[1].name == rows[178]["网格名称"] and "also feature 6" in refusals[1].message
    message = raised.value.message
    assert message.startswith("grids_1300.geojson: 2 refusals in 2 features; nothing written:")
    assert "invalid geometry: 1\n  feature 77 (code 120104003001077 学府1社区第77网格): invalid geometry" in message
    assert "duplicate code: 1\n  feature 179 (code 120104003001006 学府2社区第79网格): duplicate code" in message
    assert store.table_counts() == before and store.list_editions() == []


def test_the_cli_lists_both_writes_the_report_and_exits_non_zero(cli, tmp_path):
    _rows, path = broken_1300(tmp_path)
    report = tmp_path / "report.csv"
    args = ["--code-field", "网格编码", "--name-field", "网格名称", "--parent-field", "社区编码"]
    result = cli(
        "load-boundaries", str(path), "--level", "grid", *args, "--create-parents", "--commit", "--report", str(report)
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "feature 77 (code 120104003001077 学府1社区第77网格): invalid geometry: Self-intersection" in result.output
    assert "feature 179 (code 120104003001006 学府2社区第79网格): duplicate code 120104003001006" in result.output
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM: spreadsheet programs then read the Chinese
    with report.open(encoding="utf-8-sig") as handle:
        written = list(csv.DictReader(handle))
    refused = [r for r in written if r["severity"] == "refused"]
    assert [(r["feature"], r["reason"], r["code"]) for r in refused] == [
        ("77", "invalid_geometry", "120104003001077"),
        ("179", "duplicate_code", "120104003001006"),
    ]
    assert {"severity", "reason", "feature", "code", "name", "message"} == set(written[0])
    assert "no editions yet" in cli("editions").output


def test_after_fixing_both_the_file_loads_with_its_communities_and_street(store, tmp_path, cli):
    rows, path = broken_1300(tmp_path)
    rows[178] = grids_only()[178]
    path = write_geojson(tmp_path / "fixed.geojson", rows)
    plan = boundaries.plan_import(
        store,
        path,
        level="grid",
        create_parents=True,
        fix_invalid=True,
        community_name_field="社区名称",
        street_name_field="街道名称",
        **GRID_FIELDS,
    )
    assert plan.counts() == {"street": 1, "community": 13, "grid": 1300}
    assert [p.feature for p in plan.repairs] == [77]
    created = {r.code: r for r in plan.records if r.level != "grid"}
    assert created[STREET].name == STREET_NAME and created[STREET].parent_code is None
    assert created[f"{STREET}001"].name == "学府1社区" and created[f"{STREET}001"].parent_code == STREET
    summary = "\n".join(plan.summary())
    assert "1300 grid areas from fixed.geojson" in summary and "plus 1 street, 13 communities made" in summary
    assert boundaries.commit_import(store, plan) == 1314
    # The repaired bow-tie is two triangles; its community is the union of its grids, so the other two triangles
    # of the square are notches of the community, not gaps.
    assert findings(audit.audit_edition(store)) == NONE
    community = store.areas("main", "community", codes=[f"{STREET}001"]).geometry.iloc[0]
    assert community.area == pytest.approx(0.0001 - 0.5e-6, rel=1e-9)


def test_many_refusals_are_grouped_with_counts_and_the_cli_lists_every_one(cli, store, tmp_path):
    rows = grids_only(communities=1)
    for k in range(60):
        rows[k] = {**rows[k], "网格名称": f"坏\x1b名{k}"}
    for k in range(60, 63):
        rows[k] = {**rows[k], "网格编码": rows[0]["网格编码"]}
    path = write_geojson(tmp_path / "many.geojson", rows)
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="grid", create_parents=True, **GRID_FIELDS)
    message = raised.value.message
    assert "63 refusals in 63 features" in message
    assert "a name that cannot be stored: 60\n" in message and "duplicate code: 3\n" in message
    assert message.index("a name that cannot be stored: 60") < message.index("duplicate code: 3")
    assert "… and 10 more (--report FILE writes every one)" in message
    assert "the name contains a control character (U+001B) at position 2" in message
    args = ["--code-field", "网格编码", "--name-field", "网格名称", "--parent-field", "社区编码", "--create-parents"]
    printed = cli("load-boundaries", str(path), "--level", "grid", *args).output
    assert printed.count("the name contains a control character") == 60 and "more (--report" not in printed


# ---- names and codes that cannot be stored, a world, Germany ---------------------------------------------------------
def test_a_million_character_name_and_odd_characters_are_refused_with_their_reason(store, tmp_path):
    load_district(store, tmp_path)
    base = {**GRIDS[0], "parent_code": "120104001001"}
    rows = [
        {**base, "code": "120104001001011", "name": "长" * 1_000_000},
        {**base, "code": "120104001001012", "name": "百合\u202e社区"},  # a right-to-left override
        {**base, "code": "120104001001013", "name": "百合\ufffd社区"},
        {**base, "code": "1201040010010" + "9" * 30, "name": "长码"},
        {**base, "code": "120104 001001015", "name": "空格"},
    ]
    path = write_geojson(tmp_path / "names.geojson", rows)
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="grid", allow_outside_parent=True)
    by_feature = {p.feature: p for p in raised.value.refusals if p.reason in ("bad_name", "bad_code")}
    assert "the name has 1,000,000 characters; at most 200 fit" in by_feature[1].message
    assert len(by_feature[1].name) <= 40  # the message shows a stub, not the million characters
    assert "an invisible format character (U+202E)" in by_feature[2].message
    assert "replacement character" in by_feature[3].message and "encoding" in by_feature[3].message
    assert "the code has 43 characters; at most 32 fit" in by_feature[4].message
    assert "contains a space" in by_feature[5].message
    assert len(raised.value.message) < 5000


def test_a_world_covering_polygon_is_refused_as_too_large(store, tmp_path):
    world = {**TINY_STREET, "geometry": box(-180, -90, 180, 90)}
    path = write_geojson(tmp_path / "world.geojson", [world])
    with pytest.raises(InvalidInput) as raised:
        boundaries.plan_import(store, path, level="street")
    assert "spans 360° of longitude and 180° of latitude" in raised.value.message
    assert "larger than any Chinese county" in raised.value.message
    assert raised.value.refusals[0].reason == "too_large"


def test_a_grid_in_germany_loaded_into_a_tianjin_community_is_refused_unless_allowed(store, tmp_path):
    load_district(store, tmp_path)
    berlin = {**GRIDS[0], "code": "120104001001099", "name": "柏林网格", "geometry": box(13.40, 52.52, 13.41, 52.53)}
    path = write_geojson(tmp_path / "berlin.geojson", [berlin])
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="grid")
    (problem,) = raised.value.refusals
    assert problem.reason == "far_outside_parent" and problem.name == "柏林网格"
    assert "it lies 7,4" in problem.message and " km from its community 120104001001 百合社区" in problem.message
    assert "--allow-outside-parent" in problem.message
    plan = boundaries.plan_import(store, path, level="grid", allow_outside_parent=True)
    assert [w.reason for w in plan.warnings][:1] == ["far_outside_parent"]
    # A grid reaching a little outside is a warning, as before.
    wider = {**GRIDS[0], "code": "120104001001098", "geometry": box(117.10, 39.11, 117.1105, 39.12)}
    plan = boundaries.plan_import(store, write_geojson(tmp_path / "wider.geojson", [wider]), level="grid")
    assert "outside_parent" in {w.reason for w in plan.warnings}


# ---- encodings ---------------------------------------------------------------------------------------------------
def test_a_gbk_shapefile_whose_cpg_says_utf8_loads_with_the_right_names(store, tmp_path):
    path = write_frame(tmp_path / "streets.shp", [TINY_STREET], encoding="GBK")
    path.with_suffix(".cpg").write_text("UTF-8")
    plan = boundaries.plan_import(store, path, level="street", parent_field="parent_cod")
    (note,) = [w for w in plan.warnings if w.reason == "encoding"]
    assert "streets.cpg says 'UTF-8' but the attributes are GBK/GB18030" in note.message
    boundaries.commit_import(store, plan)
    assert store.areas("main", "street").name.tolist() == ["长虹街道"]


def test_a_shapefile_in_neither_utf8_nor_gbk_is_refused_clearly(store, tmp_path):
    path = write_frame(tmp_path / "streets.shp", [TINY_STREET], encoding="UTF-8")
    dbf = path.with_suffix(".dbf")
    name = TINY_STREET["name"].encode("utf-8")
    dbf.write_bytes(dbf.read_bytes().replace(name, b"\xff" * len(name)))  # bytes no Chinese encoding has
    with pytest.raises(InvalidInput, match=r"streets\.cpg says 'UTF-8' but the attributes of streets\.dbf are neither"):
        boundaries.plan_import(store, path, level="street")


# ---- Esri JSON -----------------------------------------------------------------------------------------------------
ESRI_FIELDS = {"code_field": "WGDM", "name_field": "WGMC", "parent_field": "SQDM"}


def test_esri_json_with_curve_rings_in_a_local_gauss_kruger_crs_loads_within_0_2_percent_of_shape_area(store, tmp_path):
    built = curved_grids()
    path = write_esrijson(tmp_path / "grids.json", built["document"])
    plan = boundaries.plan_import(
        store,
        path,
        level="grid",
        create_parents=True,
        community_name_field="SQMC",
        street_name_field="JDMC",
        **ESRI_FIELDS,
    )
    assert plan.counts() == {"street": 1, "community": 2, "grid": 120}
    assert plan.source.startswith("Tianjin_Local_GK_2000 (the file)")
    assert plan.shape_area["compared"] == 120 and plan.shape_area["within_tolerance"] == 120
    assert plan.shape_area["largest_difference_percent"] < 0.05
    boundaries.commit_import(store, plan)
    stored = store.areas("main", "grid").set_index("code")
    shape_area = {f["attributes"]["WGDM"]: f["attributes"]["Shape_Area"] for f in built["document"]["features"]}
    local = CRS.from_wkt(LOCAL_WKT)
    to_local = Transformer.from_crs("EPSG:4326", local, always_xy=True)
    worst_geodesic = worst_local = 0.0
    for code, geometry in stored.geometry.items():
        worst_geodesic = max(worst_geodesic, abs(geodesic_area_m2(geometry) / shape_area[code] - 1))
        planar = shapely.transform(geometry, lambda xy: np.column_stack(to_local.transform(xy[:, 0], xy[:, 1])))
        worst_local = max(worst_local, abs(planar.area / shape_area[code] - 1))
    assert worst_local < 0.002 and worst_geodesic < 0.002
    (holed,) = [c for c, g in built["exact"].items() if g.geom_type == "Polygon" and g.interiors]
    courtyard = stored.geometry[holed]
    assert len(courtyard.geoms) == 1 and len(courtyard.geoms[0].interiors) == 1
    assert len(stored.geometry[stored.index[stored.name == "两片网格"][0]].geoms) == 2
    communities = store.areas("main", "community").set_index("code")
    assert communities.name.to_dict() == COMMUNITY_NAMES and set(communities.parent_code) == {"120104002"}
    # Curved sides shared by neighbours were densified the same way from both sides: the tiling stays exact.
    report = audit.audit_edition(store)
    assert findings(report) == NONE


def test_esri_json_field_aliases_and_spatial_reference_by_wkid(store, tmp_path):
    document = {
        "geometryType": "esriGeometryPolygon",
        "spatialReference": {"wkid": 102100, "latestWkid": 3857},
        "fields": [{"name": "DM", "alias": "代码"}, {"name": "MC", "alias": "名称"}],
        "features": [],
    }
    to_mercator = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    street = shapely.transform(TINY_STREET["geometry"], lambda xy: np.column_stack(to_mercator.transform(*xy.T)))
    ring = [list(c) for c in reversed(street.exterior.coords)]  # clockwise, as ArcGIS writes outer rings
    document["features"].append({"attributes": {"DM": "120104001", "MC": "长虹街道"}, "geometry": {"rings": [ring]}})
    path = write_esrijson(tmp_path / "street.esrijson", document)
    plan = boundaries.plan_import(store, path, level="street", code_field="代码", name_field="名称")
    assert "EPSG:3857" in plan.source
    (record,) = plan.records
    assert record.name == "长虹街道" and record.geometry.hausdorff_distance(TINY_STREET["geometry"]) < 1e-7


ESRI_BAD = {
    "unknown curve": ({"curveRings": [[[0, 0], [0, 1], {"q": [[1, 1], [1, 0]]}, [0, 0]]]}, "curve", "unknown kind (q)"),
    "malformed arc": ({"curveRings": [[[0, 0], {"c": [[1, 1]]}, [0, 0]]]}, "curve", "a malformed curve"),
    "unclosed ring": ({"rings": [[[0, 0], [0, 1], [1, 1], [1, 0]]]}, "bad_ring", "ring 1 is not closed"),
    "hole outside": (
        {"rings": [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]], [[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]]},
        "bad_ring",
        "ring 2 turns counter-clockwise (a hole in ArcGIS) but lies in no outer ring",
    ),
    "polyline": ({"paths": [[[0, 0], [1, 1]]]}, "not_polygon", "a polyline"),
}


@pytest.mark.parametrize("case", list(ESRI_BAD))
def test_esri_json_features_that_cannot_be_read_are_refused_naming_why(store, tmp_path, case):
    geometry, reason, words = ESRI_BAD[case]
    offset = {"rings", "curveRings"} & set(geometry)
    for key in offset:  # move the unit squares to Nankai (degrees) so only the named problem remains
        geometry = {key: [[_moved(p) for p in ring] for ring in geometry[key]]}
    document = {
        "spatialReference": {"wkid": 4326},
        "features": [
            {"attributes": {"code": "120104009", "name": "坏街道"}, "geometry": geometry},
            {"attributes": {"code": "120104001", "name": "长虹街道"}, "geometry": {"rings": [_clockwise(TINY_STREET)]}},
        ],
    }
    path = write_esrijson(tmp_path / "bad.json", document)
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="street")
    (problem,) = raised.value.refusals
    assert (problem.feature, problem.code, problem.name, problem.reason) == (1, "120104009", "坏街道", reason)
    assert words in problem.message


def _moved(point):
    if isinstance(point, dict):
        return {k: [_moved(p) for p in v] for k, v in point.items()}
    return [117.1 + point[0] * 0.001, 39.1 + point[1] * 0.001]


def _clockwise(row):
    return [list(c) for c in reversed(row["geometry"].exterior.coords)]


def test_esri_json_whole_file_problems(store, tmp_path):
    error = write_esrijson(tmp_path / "error.json", {"error": {"code": 400, "message": "Invalid query parameters"}})
    with pytest.raises(InvalidInput, match=r"an ArcGIS error response \(400: Invalid query parameters\)"):
        boundaries.plan_import(store, error, level="street")
    lines = write_esrijson(tmp_path / "lines.json", {"geometryType": "esriGeometryPolyline", "features": [{}]})
    with pytest.raises(InvalidInput, match="holds esriGeometryPolyline features"):
        boundaries.plan_import(store, lines, level="street")
    counter_clockwise = [list(c) for c in TINY_STREET["geometry"].exterior.coords]
    if shapely.LinearRing(counter_clockwise).is_ccw is False:
        counter_clockwise.reverse()
    truncated = {
        "exceededTransferLimit": True,
        "features": [
            {"attributes": {"code": "120104001", "name": "长虹街道"}, "geometry": {"rings": [counter_clockwise]}}
        ],
    }
    plan = boundaries.plan_import(store, write_esrijson(tmp_path / "part.json", truncated), level="street")
    reasons = {w.reason: w.message for w in plan.warnings}
    assert "resultOffset" in reasons["truncated"] and "read by nesting" in reasons["bad_ring"]
    assert plan.records[0].geometry.area == pytest.approx(TINY_STREET["geometry"].area)


# ---- any CRS a surveyor hands you ---------------------------------------------------------------------------------
def _street_in(crs: str) -> gpd.GeoDataFrame:
    row = {"code": TINY_STREET["code"], "name": TINY_STREET["name"]}
    return gpd.GeoDataFrame([row], geometry=[TINY_STREET["geometry"]], crs="EPSG:4326").to_crs(crs)


@pytest.mark.parametrize(
    "given",
    ["4527", "EPSG:4527", "proj", "wkt", "prj"],
)
def test_crs_as_an_epsg_code_a_proj_string_wkt_or_a_prj_file(store, tmp_path, given):
    # CGCS2000 / 3-degree Gauss–Krüger zone 39 (CM 117E, the zone number in front of the easting).
    path = _bare_geojson(tmp_path, _street_in("EPSG:4527"))
    crs = CRS.from_epsg(4527)
    value = {
        "proj": "+proj=tmerc +lat_0=0 +lon_0=117 +k=1 +x_0=39500000 +y_0=0 +ellps=GRS80 +units=m +no_defs",
        "wkt": crs.to_wkt("WKT1_ESRI"),
        "prj": str(_write(tmp_path / "zone39.prj", crs.to_wkt("WKT1_ESRI"))),
    }.get(given, given)
    plan = boundaries.plan_import(store, path, level="street", crs=value)
    (record,) = plan.records
    assert record.geometry.hausdorff_distance(TINY_STREET["geometry"]) < 1e-6
    assert "densified to ≤ 50 m" in plan.source


def _bare_geojson(tmp_path, frame):
    """A GeoJSON file with projected coordinates that says nothing of its CRS (as many exports do)."""
    columns = zip(frame.code, frame.name, frame.geometry, strict=True)
    rows = [{"code": c, "name": n, "geometry": g} for c, n, g in columns]
    return write_geojson(tmp_path / "street.geojson", rows)


def _write(path, text):
    path.write_text(text)
    return path


def test_shapefile_prj_and_geopackage_crs_are_honoured_for_every_cgcs2000_zone_kind(store, tmp_path):
    for epsg in (4491 + 10, 4507, 4527, 4548):  # 6° zone 20 and CM 117E; 3° zone 39 and CM 117E
        for suffix in ("shp", "gpkg"):
            path = tmp_path / f"street_{epsg}.{suffix}"
            _street_in(f"EPSG:{epsg}").to_file(path, engine="pyogrio")
            (record,) = boundaries.plan_import(store, path, level="street").records
            assert record.geometry.hausdorff_distance(TINY_STREET["geometry"]) < 1e-6, (epsg, suffix)


def test_a_wrong_gauss_kruger_zone_is_refused_with_the_zone_hint(store, tmp_path):
    path = _bare_geojson(tmp_path, _street_in("EPSG:4527"))  # eastings like 39 500 000
    with pytest.raises(InvalidInput) as raised:
        boundaries.plan_import(store, path, level="street", crs="4548")  # the same meridian without the zone number
    assert "most features land outside China" in raised.value.message
    assert "EPSG:4491–4501 (6°) or 4513–4533 (3°)" in raised.value.message


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("EPSG:999999", "is not a coordinate reference system pyproj knows"),
        ("nowhere.prj", "no such .prj file"),
        ("+proj=nonsense", "is not a coordinate reference system"),
    ],
)
def test_a_bad_crs_says_what_is_accepted(store, tmp_path, given, words):
    path = write_geojson(tmp_path / "street.geojson", [TINY_STREET])
    with pytest.raises(InvalidInput) as raised:
        boundaries.plan_import(store, path, level="street", crs=given)
    assert words in raised.value.message and "Traceback" not in raised.value.message


# ---- GCJ-02 and BD-09 ------------------------------------------------------------------------------------------------
def _load_levels(store, tmp_path, rows, *, crs=None, edition=None):
    for level in ("district", "street", "community", "grid"):
        chosen = [r for r in rows if r["level"] == level]
        if not chosen:
            continue
        path = write_geojson(tmp_path / f"{level}.geojson", chosen)
        plan = boundaries.plan_import(store, path, level=level, crs=crs, edition=edition)
        boundaries.commit_import(store, plan)


def test_a_gcj02_tiling_converted_back_loads_gap_free_and_where_it_was(store, tmp_path):
    original = false_gap_district(streets=(2, 1))  # 2 streets of 10 km, 24 communities, 252 grids
    shifted = shift_rows(original, "gcj02")
    # In GCJ-02 the district lies hundreds of metres away from where it is.
    moved = shapely.distance(shapely.Point(original[0]["geometry"].exterior.coords[0]), shifted[0]["geometry"])
    assert moved > 1e-3
    _load_levels(store, tmp_path, shifted, crs="gcj02")
    assert findings(audit.audit_edition(store)) == NONE
    # Not even a tenth of a square metre anywhere: shared sides were densified and moved alike.
    assert findings(audit.audit_edition(store, area_tolerance_m2=0.1)) == NONE
    # Every original corner is back within a centimetre (the iterative inverse).
    stored = store.areas("main").set_index("code").geometry
    worst = 0.0
    for row in original:
        corners = shapely.points(np.asarray(row["geometry"].exterior.coords))
        worst = max(worst, float(np.max(shapely.distance(stored[row["code"]], corners))))
    assert worst < 1e-7  # degrees: about a centimetre


def test_bd09_boundaries_are_converted_too(store, tmp_path):
    rows = [{**TINY_STREET, "level": "street"}, *({**c, "level": "community"} for c in TINY_COMMUNITIES)]
    rows += [{**g, "level": "grid"} for g in GRIDS]
    _load_levels(store, tmp_path, shift_rows(rows, "bd09"), crs="bd09")
    assert findings(audit.audit_edition(store)) == NONE
    stored = store.areas("main", "street").geometry.iloc[0]
    assert stored.hausdorff_distance(TINY_STREET["geometry"]) < 1e-7


def test_a_gcj02_file_loaded_as_wgs84_is_refused_with_a_hint(store, tmp_path):
    load_district(store, tmp_path)
    grids = shift_rows([{**g, "code": g["code"][:-1] + "9"} for g in GRIDS[:1]], "gcj02")
    path = write_geojson(tmp_path / "amap.geojson", grids)
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="grid")
    (problem,) = raised.value.refusals
    assert "is the file in GCJ-02? then pass --crs gcj02" in problem.message


# ---- grids-only files --------------------------------------------------------------------------------------------
def test_create_parents_uses_existing_parents_and_warns_about_names(store, tmp_path):
    rows = grids_only(communities=3, per_side=2)
    rows[4] = {**rows[4], "社区名称": "别名社区"}  # one grid names its community differently
    first = write_geojson(tmp_path / "first.geojson", rows[:8])
    plan = boundaries.plan_import(
        store, first, level="grid", create_parents=True, community_name_field="社区名称", **GRID_FIELDS
    )
    assert plan.counts() == {"street": 1, "community": 2, "grid": 8}
    names = {r.code: r.name for r in plan.records}
    assert names[STREET] == STREET and names[f"{STREET}002"] == "学府2社区"
    reasons = [w.reason for w in plan.warnings]
    assert reasons.count("created_parent") == 3 and reasons.count("parent_name") == 2
    boundaries.commit_import(store, plan)
    rest = write_geojson(tmp_path / "rest.geojson", rows[8:])
    plan = boundaries.plan_import(store, rest, level="grid", create_parents=True, **GRID_FIELDS)
    assert plan.counts() == {"community": 1, "grid": 4}  # the street exists now
    assert [r.parent_code for r in plan.records if r.level == "community"] == [STREET]


def test_create_parents_needs_codes_it_can_read(store, tmp_path):
    rows = grids_only(communities=1, per_side=1)
    rows = [{**rows[0], "网格编码": "G-01", "社区编码": None}]
    path = write_geojson(tmp_path / "odd.geojson", rows)
    with pytest.raises(boundaries.ImportRefused, match="cannot tell its community: the code is not a 15-digit code"):
        boundaries.plan_import(store, path, level="grid", create_parents=True, **GRID_FIELDS)
    with pytest.raises(InvalidInput, match="use it with --level grid or --level community"):
        boundaries.plan_import(store, path, level="street", create_parents=True)


def test_create_parents_from_the_cli_and_the_audit_names_what_it_finds(cli, tmp_path, database_url):
    rows = grids_only(communities=2, per_side=3)
    del rows[4]  # a grid left out: its community is made from the grids there are
    path = write_geojson(tmp_path / "grids.geojson", rows)
    args = ["--code-field", "网格编码", "--name-field", "网格名称", "--parent-field", "社区编码"]
    names = ["--community-name-field", "社区名称", "--street-name-field", "街道名称"]
    report = tmp_path / "loaded.csv"
    result = cli(
        "load-boundaries",
        str(path),
        "--level",
        "grid",
        *args,
        "--create-parents",
        *names,
        "--report",
        str(report),
        "--commit",
    )
    assert result.exit_code == 0, result.output
    with report.open(encoding="utf-8-sig") as handle:
        rows_written = list(csv.DictReader(handle))
    assert [(r["reason"], r["code"], r["name"]) for r in rows_written] == [
        ("created_parent", "120104003001", "学府1社区"),
        ("created_parent", "120104003002", "学府2社区"),
        ("created_parent", "120104003", STREET_NAME),
    ]
    assert "plus 1 street, 2 communities made from their children" in result.output
    assert "written: 1 street, 2 communities, 17 grids (20 areas) into edition 'main'" in result.output
    audit_text = cli("audit").output
    assert "gaps: 0" in audit_text  # a community made from its grids has no gap where a grid is missing


# ---- curves, one at a time ------------------------------------------------------------------------------------------
def _turns(ring) -> float:
    """The largest angle (degrees) between consecutive chords of a ring."""
    xy = np.asarray(ring.coords)
    legs = np.diff(xy, axis=0)
    angles = np.degrees(np.arctan2(legs[:, 1], legs[:, 0]))
    return float(np.max(np.abs((np.diff(angles) + 180) % 360 - 180)))


def test_a_circle_of_two_arcs_is_densified_in_steps_under_5_degrees_and_keeps_its_area():
    from gridmap.boundaries.esrijson import polygon_from_esri

    r = 1000.0
    ring = [[r, 0, 7.5], {"c": [[-r, 0, 7.5], [0, -r]]}, {"c": [[r, 0, 7.5], [0, r]]}]  # clockwise, with z values
    polygon, note = polygon_from_esri({"curveRings": [ring]})
    assert note is None and polygon.is_valid and not shapely.has_z(polygon)
    # Chords of 5° inscribed in a circle lose (2π/72)²/6 = 0.127 % of its area.
    assert polygon.area == pytest.approx(np.pi * r * r * (1 - 0.00127), rel=2e-5)
    assert _turns(polygon.exterior) <= 5.0 + 1e-9
    fine, _ = polygon_from_esri({"curveRings": [ring]}, deviation=0.01)
    assert fine.area == pytest.approx(np.pi * r * r, rel=2e-5) and _turns(fine.exterior) < 1.0  # 1 cm off at most


def test_a_shared_arc_gets_the_same_vertices_from_both_sides():
    from gridmap.boundaries.esrijson import polygon_from_esri

    west = {"curveRings": [[[0, 0], [0, 100], [50, 100], {"c": [[50, 0], [70, 50]]}, [0, 0]]]}
    east = {"curveRings": [[[50, 0], {"c": [[50, 100], [70, 50]]}, [100, 100], [100, 0], [50, 0]]]}
    a, _ = polygon_from_esri(west, deviation=0.01)
    b, _ = polygon_from_esri(east, deviation=0.01)
    shared = set(a.exterior.coords) & set(b.exterior.coords)
    assert len(shared) > 10  # every densified vertex of the arc, bit for bit
    assert shapely.intersection(a, b).area == 0 and shapely.union(a, b).area == pytest.approx(10_000)


def test_elliptic_arcs_centre_form_arcs_and_beziers():
    from gridmap.boundaries.esrijson import polygon_from_esri

    # Half an ellipse (semi-axes 100 and 30) closing a straight side: area π·100·30/2.
    half = {"curveRings": [[[100, 0], [-100, 0], {"a": [[100, 0], [0, 0], 0, 1, 0.0, 100, 0.3]}]]}
    polygon, _ = polygon_from_esri(half, deviation=0.01)
    assert polygon.area == pytest.approx(np.pi * 100 * 30 / 2, rel=2e-4) and polygon.bounds[3] == pytest.approx(30)
    # A quarter circle in centre form (radius 100 about the origin), clockwise from (0, 100) to (100, 0).
    quarter = {"curveRings": [[[0, 0], [0, 100], {"a": [[100, 0], [0, 0], 1, 1]}, [0, 0]]]}
    polygon, _ = polygon_from_esri(quarter, deviation=0.01)
    assert polygon.area == pytest.approx(np.pi * 100**2 / 4, rel=2e-4)  # 1 cm chords of a 100 m radius
    # A Bézier whose control points lie on its chord is the straight segment; a bent one adds its exact area.
    straight = {"curveRings": [[[0, 0], [0, 10], {"b": [[10, 10], [3, 10], [6, 10]]}, [10, 0], [0, 0]]]}
    assert polygon_from_esri(straight)[0].area == pytest.approx(100)
    bent = {"curveRings": [[[0, 0], [0, 10], {"b": [[10, 10], [3, 16], [6, 16]]}, [10, 0], [0, 0]]]}
    # The area under a cubic Bézier with these control heights is 10·(10 + 6·(3/20 + 3/20))... computed exactly:
    t = np.linspace(0, 1, 200_001)
    x = 3 * (1 - t) ** 2 * t * 3 + 3 * (1 - t) * t**2 * 6 + t**3 * 10
    y = 10 * (1 - t) ** 3 + 3 * (1 - t) ** 2 * t * 16 + 3 * (1 - t) * t**2 * 16 + t**3 * 10
    exact = float(np.trapezoid(y, x))
    assert polygon_from_esri(bent)[0].area == pytest.approx(exact, rel=2e-3)


def test_esri_json_in_cgcs2000_by_wkid_keeps_longitude_first(store, tmp_path):
    document = {
        "spatialReference": {"wkid": 4490},
        "features": [
            {"attributes": {"code": "120104001", "name": "长虹街道"}, "geometry": {"rings": [_clockwise(TINY_STREET)]}}
        ],
    }
    plan = boundaries.plan_import(store, write_esrijson(tmp_path / "s.json", document), level="street")
    assert "EPSG:4490" in plan.source
    assert plan.records[0].geometry.equals(shapely.MultiPolygon([TINY_STREET["geometry"]]))


def test_parent_codes_are_checked_before_anything_is_made_from_them(store, tmp_path):
    load_district(store, tmp_path)
    rows = [
        {**GRIDS[0], "code": "120104001009001", "parent_code": "120104001"},  # a street's code as its community
        {**GRIDS[1], "code": "120104001009002", "parent_code": "1" * 40},
    ]
    path = write_geojson(tmp_path / "parents.geojson", rows)
    with pytest.raises(boundaries.ImportRefused) as raised:
        boundaries.plan_import(store, path, level="grid", create_parents=True)
    messages = [p.message for p in raised.value.refusals]
    assert messages == [
        "parent code 120104001 is a street, not a community",
        "the parent code has 40 characters; at most 32 fit ('11111111111111111111'…)",
    ]
