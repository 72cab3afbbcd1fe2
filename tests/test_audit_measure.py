"""The audit measures lon/lat pieces as lon/lat polygons: no phantom gaps beside long edges, true areas of real ones.

Expected areas come from pyproj's geodesic area of the piece densified to 1e-4° (an independent measure), never
from the audit's own measure.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fixtures.tilings import add_collinear_vertices, cut_tiles, false_gap_district, geodesic_area_m2, lerp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from gridmap import audit
from gridmap.crs import local_metric_crs

AS_OF = dt.datetime(2026, 11, 20, 12, 0)
NO_SLIVERS = {"sliver_compactness": 0.0, "sliver_area_m2": 0.0}
COMMUNITY = "120104001001"


def geodesic_m2(geometry) -> float:
    """The WGS84 geodesic area of a lon/lat polygon whose edges are straight in lon/lat (densified first)."""
    return geodesic_area_m2(geometry)


def findings(report: dict) -> dict[str, int]:
    return {kind: len(report[kind]) for kind in audit.FINDING_KINDS}


NONE = {kind: 0 for kind in audit.FINDING_KINDS}


def run(rows: list[dict], **options) -> dict:
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    return audit.audit_areas(frame, options=audit.AuditOptions(as_of=AS_OF, **options))


# ---- the district of the issue ---------------------------------------------------------------------------------
def test_the_false_gap_district_tiles_exactly_in_lonlat():
    rows = false_gap_district()
    levels = {r["code"]: r for r in rows}
    for parent in rows:
        children = [r["geometry"] for r in rows if r["parent_code"] == parent["code"]]
        if children:
            rest = parent["geometry"].difference(shapely.union_all(children))
            assert rest.area < 1e-15  # square degrees: what the issue describes
    assert len(levels) == len(rows) == 1 + 6 + 72 + 756


def test_the_false_gap_district_gives_zero_findings():
    report = run(false_gap_district())
    assert findings(report) == NONE
    dust = report["summary"]["below_tolerance"]
    assert sum(v["area_m2"] for v in dust.values()) < 0.01


def test_projecting_only_the_vertices_would_invent_gaps_here():
    """Why the audit does not project vertices: the same lon/lat dust, projected so, measures hundreds of m²."""
    rows = false_gap_district()
    streets = [r for r in rows if r["level"] == "street"]
    communities = [r for r in rows if r["level"] == "community"]
    metric = Transformer.from_crs("EPSG:4326", local_metric_crs(lon=117.165, lat=39.09), always_xy=True)

    def vertexwise(geometry):
        return shapely.transform(geometry, lambda xy: np.column_stack(metric.transform(xy[:, 0], xy[:, 1]))).area

    largest_chord, largest_true = 0.0, 0.0
    for street in streets:
        union = shapely.union_all([c["geometry"] for c in communities if c["parent_code"] == street["code"]])
        for piece in shapely.get_parts(street["geometry"].difference(union)):
            if piece.geom_type == "Polygon":
                largest_chord = max(largest_chord, vertexwise(piece))
                largest_true = max(largest_true, geodesic_m2(piece))
    assert largest_chord > 100 and largest_true < 0.01


# ---- hypothesis: long two-vertex edges beside sides split differently -------------------------------------------
# A community of about 20 km × 20 km with only its four corners.
OUTLINE = [(117.0, 39.0), (117.23, 39.004), (117.226, 39.18), (116.998, 39.177)]
FRACTIONS = st.sampled_from([0.0005, 0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.9995]) | st.floats(0.0005, 0.9995)


@st.composite
def tilings(draw):
    """Guillotine tilings with cuts anywhere (pieces from 10 m to 20 km) and extra vertices on one side only."""
    cuts = draw(
        st.lists(
            st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), FRACTIONS, FRACTIONS),
            min_size=1,
            max_size=7,
        )
    )
    tiles = cut_tiles(OUTLINE, cuts)
    inserts = draw(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), FRACTIONS), max_size=8))
    for tile, side, f in inserts:
        k = tile % len(tiles)
        tiles[k] = add_collinear_vertices(tiles[k], [(side, f)])
    polygons = [shapely.Polygon(t) for t in tiles]
    assume(all(p.is_valid and p.area > 0 for p in polygons))
    return tiles


def tiling_rows(tiles: list[list[tuple[float, float]]]) -> list[dict]:
    community = {
        "code": COMMUNITY,
        "name": "长边社区",
        "level": "community",
        "parent_code": "120104001",  # its street is not in these tests
        "geometry": shapely.Polygon(OUTLINE),
    }
    grids = [
        {
            "code": f"{COMMUNITY}{k + 1:03d}",
            "name": f"第{k + 1}网格",
            "level": "grid",
            "parent_code": COMMUNITY,
            "households": 400,
            "geometry": shapely.Polygon(tile),
        }
        for k, tile in enumerate(tiles)
    ]
    return [community, *grids]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tilings())
def test_property_long_edges_split_differently_on_each_side_give_no_findings(tiles):
    report = run(tiling_rows(tiles), **NO_SLIVERS)
    assert findings(report) == NONE
    assert sum(v["area_m2"] for v in report["summary"]["below_tolerance"].values()) < 0.1


def _on_outline_side(point, side: int = 0) -> bool:
    a, b = OUTLINE[side], OUTLINE[(side + 1) % len(OUTLINE)]
    cross = (b[0] - a[0]) * (point[1] - a[1]) - (b[1] - a[1]) * (point[0] - a[0])
    return abs(cross) < 1e-12


def _notch(tile: list, edge: int, towards) -> tuple[list, shapely.Polygon]:
    """Return the tile with a triangle cut out of (towards = inside) or added to its side `edge`, and the triangle."""
    u, v = tile[edge], tile[(edge + 1) % len(tile)]
    b1, b2 = lerp(u, v, 0.3), lerp(u, v, 0.7)
    apex = lerp(lerp(u, v, 0.5), towards, 0.4)
    return [*tile[: edge + 1], b1, apex, b2, *tile[edge + 1 :]], shapely.Polygon([b1, apex, b2])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tilings(), st.integers(0, 100))
def test_property_a_gap_beside_the_long_edge_is_found_once_with_its_geodesic_area(tiles, pick):
    sides = [(k, e, tile[e], tile[(e + 1) % len(tile)]) for k, tile in enumerate(tiles) for e in range(len(tile))]
    candidates = [(k, e) for k, e, u, v in sides if u != v and _on_outline_side(u) and _on_outline_side(v)]
    assume(candidates)
    k, e = candidates[pick % len(candidates)]
    centre = shapely.Polygon(tiles[k]).centroid
    notched, hole = _notch(tiles[k], e, (centre.x, centre.y))
    expected = geodesic_m2(hole)
    assume(expected > 5.0 and shapely.Polygon(notched).is_valid)
    tiles = [*tiles[:k], notched, *tiles[k + 1 :]]
    report = run(tiling_rows(tiles), **NO_SLIVERS)
    assert findings(report) == {**NONE, "gaps": 1}
    (gap,) = report["gaps"]
    assert gap["codes"][0] == COMMUNITY and gap["names"][0] == "长边社区"
    assert gap["area_m2"] == pytest.approx(expected, rel=0.01)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tilings(), st.integers(0, 100))
def test_property_an_overlap_across_a_shared_side_is_found_once_with_its_geodesic_area(tiles, pick):
    sides = {}
    for k, tile in enumerate(tiles):
        for e in range(len(tile)):
            sides[(tile[e], tile[(e + 1) % len(tile)])] = (k, e)
    shared = [(k, e, sides[(v, u)][0]) for (u, v), (k, e) in sides.items() if (v, u) in sides and u != v]
    assume(shared)
    k, e, other = shared[pick % len(shared)]
    centre = shapely.Polygon(tiles[other]).centroid
    grown, tongue = _notch(tiles[k], e, (centre.x, centre.y))
    expected = geodesic_m2(tongue)
    assume(expected > 5.0 and shapely.Polygon(grown).is_valid)
    tiles = [*tiles[:k], grown, *tiles[k + 1 :]]
    report = run(tiling_rows(tiles), **NO_SLIVERS)
    assert findings(report) == {**NONE, "overlaps": 1}
    (overlap,) = report["overlaps"]
    assert sorted(overlap["codes"]) == sorted([f"{COMMUNITY}{k + 1:03d}", f"{COMMUNITY}{other + 1:03d}"])
    assert overlap["area_m2"] == pytest.approx(expected, rel=0.01)


# ---- a zero tolerance ----------------------------------------------------------------------------------------
# Two grids along a 9 km side split differently on each side: their interiors meet by a hair (the DE-9IM
# relation says so) but the overlay of the two has no polygonal part, only lines. Found by a random search.
HAIR_A = shapely.Polygon(
    [
        (117.05622656627804, 39.015006226330534),
        (117.05370355476968, 39.021346497171486),
        (117.05094987521689, 39.028266431589564),
        (117.04769513982727, 39.03644550798986),
        (117.04702305889643, 39.03813443216419),
        (117.04319148726474, 39.04776308499074),
        (117.042752724439, 39.04886568604544),
        (117.03936677846751, 39.04751830186154),
        (117.05284062030655, 39.01365884214663),
    ]
)
HAIR_B = shapely.Polygon(
    [
        (117.05622656627804, 39.015006226330534),
        (117.0515651469876, 39.0267202675494),
        (117.04934054418085, 39.03231064407427),
        (117.042752724439, 39.04886568604544),
        (117.04613867041049, 39.05021307022934),
        (117.05961251224953, 39.016353610514436),
    ]
)


def test_zero_tolerance_works_where_interiors_meet_without_a_polygonal_intersection():
    assert shapely.relate_pattern(HAIR_A, HAIR_B, "2********")
    assert not [p for p in shapely.get_parts(shapely.intersection(HAIR_A, HAIR_B)) if p.geom_type == "Polygon"]
    both = shapely.union(HAIR_A, HAIR_B)
    rows = [
        {"code": COMMUNITY, "name": "发丝社区", "level": "community", "parent_code": "120104001", "geometry": both},
        {"code": f"{COMMUNITY}001", "name": "甲", "level": "grid", "parent_code": COMMUNITY, "geometry": HAIR_A},
        {"code": f"{COMMUNITY}002", "name": "乙", "level": "grid", "parent_code": COMMUNITY, "geometry": HAIR_B},
    ]
    report = run(rows, area_tolerance_m2=0.0, **NO_SLIVERS)
    assert report["overlaps"] == []  # nothing with an area to list
    assert report["summary"]["below_tolerance"]["overlaps"]["count"] == 1
    for kind in ("gaps", "outside_parent"):
        assert all(f["area_m2"] > 0 for f in report[kind])


def test_zero_tolerance_lists_every_piece_with_an_area_in_the_compare_too():
    rows = false_gap_district()
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    report = audit.audit_areas(frame, options=audit.AuditOptions(area_tolerance_m2=0.0, as_of=AS_OF))
    assert all(f["area_m2"] > 0 for kind in ("gaps", "overlaps", "outside_parent") for f in report[kind])
    compared = audit.compare_areas(frame, frame, options=audit.AuditOptions(area_tolerance_m2=0.0, as_of=AS_OF))
    # Against itself every grid is unchanged and takes its land from itself; from a neighbour only rounding dust.
    assert compared["summary"]["unchanged"] == 756 and compared["summary"]["changed"] == 0
    for grid in compared["grids"]:
        assert grid["sources"][0]["code"] == grid["code"]
        assert all(0 < s["area_m2"] < 0.001 for s in grid["sources"][1:])


def test_gridmap_audit_tolerance_0_through_the_cli(store, database_url):
    import json

    from click.testing import CliRunner

    from gridmap.cli import main
    from gridmap.store import AreaRecord

    both = shapely.union(HAIR_A, HAIR_B)
    store.add_areas(
        "hair",
        [
            AreaRecord(code=COMMUNITY, name="发丝社区", level="community", parent_code="120104001", geometry=both),
            AreaRecord(code=f"{COMMUNITY}001", name="甲", level="grid", parent_code=COMMUNITY, geometry=HAIR_A),
            AreaRecord(code=f"{COMMUNITY}002", name="乙", level="grid", parent_code=COMMUNITY, geometry=HAIR_B),
        ],
        create_edition_status="current",
    )
    result = CliRunner().invoke(main, ["audit", "--tolerance", "0", "--json", "--db", database_url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["overlaps"] == [] and report["summary"]["options"]["area_tolerance_m2"] == 0
