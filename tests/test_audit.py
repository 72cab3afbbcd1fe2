"""Coverage audit and plan comparison: one planted defect at a time, through the core, the CLI and HTTP.

Every tiling is the tiny district of geodata.py (one street, two communities, four grids of 0.01° × 0.01°)
with exactly one thing broken. Expected areas come from pyproj's geodesic polygon area on the WGS84 ellipsoid,
an independent measure from the audit's own integration along the lon/lat edges.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner
from geodata import COMMUNITIES, GRIDS, MID_LAT, MID_LON, STREET, E, N, S, W, load_district
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import Polygon, box

from gridmap import audit, people
from gridmap.cli import main
from gridmap.errors import InvalidInput
from gridmap.store import AreaRecord

NW, SW, NE, SE = (g["code"] for g in GRIDS)
WEST, EAST = (c["code"] for c in COMMUNITIES)
TOP_KEYS = {"gaps", "overlaps", "outside_parent", "invalid", "slivers", "codes", "balance", "incidents", "summary"}
GEOD = Geod(ellps="WGS84")
AS_OF = dt.datetime(2026, 11, 20, 12, 0)


def geodesic_m2(geometry) -> float:
    return abs(GEOD.geometry_area_perimeter(geometry)[0])


def rows(grids: list[dict] | None = None, communities: list[dict] | None = None) -> list[dict]:
    return [
        {**STREET, "level": "street"},
        *({**c, "level": "community"} for c in (communities or COMMUNITIES)),
        *({**g, "level": "grid"} for g in (grids if grids is not None else GRIDS)),
    ]


def frame(grids: list[dict] | None = None, communities: list[dict] | None = None) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows(grids, communities), geometry="geometry", crs="EPSG:4326")


def with_grid(which: str, **changes) -> list[dict]:
    """The four grids with one of them changed."""
    return [{**g, **changes} if g["code"] == which else dict(g) for g in GRIDS]


def run(grids=None, incidents=(), communities=None, **options) -> dict:
    report = audit.audit_areas(frame(grids, communities), incidents, options=audit.AuditOptions(as_of=AS_OF, **options))
    json.dumps(report)  # always JSON-ready as it is
    return report


def listed(report: dict) -> dict[str, int]:
    return {kind: len(report[kind]) for kind in audit.FINDING_KINDS}


def only(report: dict, kind: str, count: int = 1) -> list[dict]:
    """Assert that `kind` has exactly `count` findings and every other kind none; return them."""
    expected = {k: 0 for k in audit.FINDING_KINDS}
    expected[kind] = count
    assert listed(report) == expected
    return report[kind]


def close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= 0.01 * expected


# ---- one defect at a time -----------------------------------------------------------------------------
def test_a_clean_tiling_has_no_findings():
    report = run()
    assert set(report) == TOP_KEYS
    assert listed(report) == {k: 0 for k in audit.FINDING_KINDS}
    assert report["summary"]["clean"] is True
    assert all(v == {"count": 0, "area_m2": 0} for v in report["summary"]["below_tolerance"].values())
    assert report["summary"]["areas"] == {"district": 0, "street": 1, "community": 2, "grid": 4}
    json.dumps(report)  # JSON-ready as it is


def test_a_gap_of_known_area_is_found_once_and_measured_in_metres():
    shrunk = box(W, MID_LAT, MID_LON - 0.001, N)
    report = run(with_grid(NW, geometry=shrunk))
    (gap,) = only(report, "gaps")
    hole = box(MID_LON - 0.001, MID_LAT, MID_LON, N)
    assert gap["codes"][0] == WEST and set(gap["codes"][1:]) == {NW, SW}
    assert close(gap["area_m2"], geodesic_m2(hole))
    assert 95_000 < gap["area_m2"] < 97_000  # 0.001° × 0.01° at 39.1° N: 86.4 m × 1,111 m
    assert shapely.Point(gap["point"]).within(hole)
    assert close(shapely.geometry.shape(gap["geometry"]).area, hole.area)


def test_an_overlap_of_known_area_is_found_once():
    grown = box(W, S, MID_LON, MID_LAT + 0.002)
    (overlap,) = only(run(with_grid(SW, geometry=grown)), "overlaps")
    shared = box(W, MID_LAT, MID_LON, MID_LAT + 0.002)
    assert overlap["kind"] == "overlap" and sorted(overlap["codes"]) == [NW, SW]
    assert close(overlap["area_m2"], geodesic_m2(shared))
    assert shapely.Point(overlap["point"]).within(shared)


def test_a_duplicate_and_a_contained_grid_are_overlaps_with_their_kind():
    twin = {**GRIDS[0], "code": "120104001001003", "name": "重复"}
    (duplicate,) = only(run([*GRIDS, twin]), "overlaps")
    assert duplicate["kind"] == "duplicate" and sorted(duplicate["codes"]) == [NW, twin["code"]]
    assert close(duplicate["area_m2"], geodesic_m2(GRIDS[0]["geometry"]))
    inner = {**GRIDS[3], "code": "120104001002003", "geometry": box(117.112, 39.102, 117.114, 39.104)}
    (contained,) = only(run([*GRIDS, inner]), "overlaps")
    assert contained["kind"] == "containment"
    assert contained["detail"] == f"grid {SE} 翠澜第2网格 contains grid {inner['code']} 翠澜第2网格"
    assert contained["names"] == ["翠澜第2网格", "翠澜第2网格"]
    assert close(contained["area_m2"], geodesic_m2(inner["geometry"]))


def test_a_grid_poking_out_of_its_community_is_found_with_its_share():
    grown = box(MID_LON, MID_LAT, E + 0.001, N)
    (outside,) = only(run(with_grid(NE, geometry=grown)), "outside_parent")
    beyond = box(E, MID_LAT, E + 0.001, N)
    assert outside["codes"] == [NE, EAST] and outside["across"] == []
    assert close(outside["area_m2"], geodesic_m2(beyond))
    assert outside["percent_of_area"] == pytest.approx(100 / 11, rel=0.01)


def test_a_grid_lying_across_two_communities_names_both():
    grown = box(W, S, MID_LON + 0.001, MID_LAT)
    report = run(with_grid(SW, geometry=grown))
    assert listed(report) == {**{k: 0 for k in audit.FINDING_KINDS}, "outside_parent": 1, "overlaps": 1}
    (outside,) = report["outside_parent"]
    strip = box(MID_LON, S, MID_LON + 0.001, MID_LAT)
    assert outside["codes"] == [SW, WEST, EAST]
    assert [a["code"] for a in outside["across"]] == [EAST] and close(
        outside["across"][0]["area_m2"], geodesic_m2(strip)
    )
    assert sorted(report["overlaps"][0]["codes"]) == [SW, SE]


def test_a_bow_tie_is_invalid_once_and_the_rest_of_the_audit_still_runs():
    bowtie = Polygon([(MID_LON, S), (E, MID_LAT), (E, S), (MID_LON, MID_LAT)])
    report = run(with_grid(SE, geometry=bowtie))
    (invalid,) = report["invalid"]
    triangles = shapely.union(
        Polygon([(MID_LON, S), (E, S), ((MID_LON + E) / 2, (S + MID_LAT) / 2)]),
        Polygon([(MID_LON, MID_LAT), (E, MID_LAT), ((MID_LON + E) / 2, (S + MID_LAT) / 2)]),
    )
    assert invalid["codes"] == [SE] and "Self-intersection" in invalid["detail"]
    assert close(invalid["area_m2"], geodesic_m2(triangles))
    assert invalid["point"] == pytest.approx([(MID_LON + E) / 2, (S + MID_LAT) / 2], abs=1e-6)
    # The repaired bow-tie covers half its square: the other two triangles are the community's gaps.
    assert len(report["gaps"]) == 2 and all(g["codes"][0] == EAST for g in report["gaps"])
    assert close(sum(g["area_m2"] for g in report["gaps"]), geodesic_m2(triangles))
    assert report["overlaps"] == report["outside_parent"] == report["slivers"] == report["codes"] == []


def test_a_thin_strip_is_a_sliver():
    strip = {**GRIDS[0], "code": "120104001001003", "name": "细条", "geometry": box(W, MID_LAT, W + 0.0001, N)}
    rest = box(W + 0.0001, MID_LAT, MID_LON, N)
    (sliver,) = only(run([*with_grid(NW, geometry=rest), strip]), "slivers")
    assert sliver["codes"] == ["120104001001003"] and sliver["compactness"] < 0.05
    assert close(sliver["area_m2"], geodesic_m2(strip["geometry"]))
    tiny = {**GRIDS[3], "code": "120104001002003", "geometry": box(117.112, 39.102, 117.11205, 39.10205)}
    grids = [*with_grid(SE, geometry=shapely.difference(GRIDS[3]["geometry"], tiny["geometry"])), tiny]
    (small,) = only(run(grids), "slivers")
    assert small["codes"] == [tiny["code"]] and "below 100 m²" in small["detail"]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("120104001009002", "parent_prefix"),
        ("12010400100202", "length"),
        ("1201040010020X2", "not_digits"),
    ],
)
def test_a_bad_code_is_found_once(code, kind):
    (finding,) = only(run(with_grid(SE, code=code)), "codes")
    assert finding["kind"] == kind and finding["codes"] == [code, EAST]


def test_a_duplicated_code_is_found_once():
    again = {**GRIDS[3], "geometry": box(E, S, E + 0.001, S + 0.001)}  # elsewhere, so only the code clashes
    report = run([*GRIDS, again])
    duplicates = [f for f in report["codes"] if f["kind"] == "duplicate"]
    assert len(duplicates) == 1 and duplicates[0]["codes"][0] == SE and "2 areas" in duplicates[0]["detail"]


def test_a_grid_with_an_unknown_parent_is_flagged():
    report = run(with_grid(SE, parent_code="120104001003", code="120104001003002"))
    # Its community lost the grid, so it also has a gap where the grid lies.
    assert listed(report) == {**{k: 0 for k in audit.FINDING_KINDS}, "codes": 1, "gaps": 1}
    assert report["codes"][0]["kind"] == "unknown_parent" and report["gaps"][0]["codes"] == [EAST, NE]


def test_pieces_below_the_tolerance_are_counted_not_listed():
    shrunk = box(W, MID_LAT, MID_LON - 5e-9, N)  # a gap about 0.4 mm wide: about 0.5 m²
    report = run(with_grid(NW, geometry=shrunk))
    assert report["gaps"] == []
    small = report["summary"]["below_tolerance"]["gaps"]
    assert small["count"] == 1 and small["area_m2"] == pytest.approx(
        geodesic_m2(box(MID_LON - 5e-9, MID_LAT, MID_LON, N)), rel=0.01
    )
    (gap,) = run(with_grid(NW, geometry=shrunk), area_tolerance_m2=0.1)["gaps"]
    assert gap["area_m2"] == pytest.approx(small["area_m2"], abs=0.01)


def test_a_street_gap_when_a_community_is_missing():
    report = run(communities=[COMMUNITIES[0]], grids=GRIDS[:2])
    (gap,) = only(report, "gaps")
    assert gap["codes"] == [STREET["code"], WEST] and gap["level"] == "street"
    assert close(gap["area_m2"], geodesic_m2(COMMUNITIES[1]["geometry"]))


def test_options_are_checked():
    with pytest.raises(InvalidInput, match="min ≤ max"):
        audit.AuditOptions(households_min=600, households_max=500)
    with pytest.raises(InvalidInput, match="unknown audit option"):
        audit.AuditOptions.from_values(households=3)
    with pytest.raises(InvalidInput, match="unknown kind"):
        audit.parse_kinds("gaps,holes")
    assert audit.parse_kinds("all") == list(audit.FINDING_KINDS)


# ---- balance and incidents ----------------------------------------------------------------------------
def incident(number: int, lon: float, lat: float, status: str = "reported", days_ago: int = 1) -> dict:
    return {"id": number, "lon": lon, "lat": lat, "status": status, "reported_at": AS_OF - dt.timedelta(days=days_ago)}


def test_balance_counts_households_cases_and_staff_per_grid_and_community():
    incidents = [
        incident(1, 117.105, 39.115),  # NW, open, recent
        incident(2, 117.106, 39.116, status="closed"),  # NW, closed, recent
        incident(3, 117.107, 39.117, days_ago=200),  # NW, open, old
        incident(4, 117.115, 39.105),  # SE
    ]
    balance = run(incidents=incidents)["balance"]
    grids = {g["code"]: g for g in balance["grids"]}
    assert (grids[NW]["open_cases"], grids[NW]["recent_cases"]) == (2, 2)
    assert (grids[SE]["open_cases"], grids[SE]["recent_cases"]) == (1, 1)
    assert grids[NW]["staff"] == 2 and balance["staff_note"] is None
    assert grids[NW]["compactness"] == pytest.approx(0.77, abs=0.02)  # 0.01° square: 867 m × 1112 m
    # 510 households is above 300–500; the 专属 grid with 35 is outside the guideline's scope.
    assert balance["outside_range"] == [{"code": SE, "households": 510, "flag": "above"}]
    west, east = balance["communities"]
    assert (west["code"], west["households"], west["max_min_ratio"], west["cv"]) == (WEST, 800, 1.105, 0.05)
    assert (east["households"], east["staff"], east["open_cases"], east["outside_range"]) == (545, 4, 1, 1)
    assert balance["totals"]["households"] == 1345 and balance["totals"]["staff"] == 7
    narrower = run(households_min=390, households_max=600)["balance"]["outside_range"]
    assert narrower == [{"code": SW, "households": 380, "flag": "below"}]


def test_staff_is_null_with_a_note_when_none_is_stored():
    balance = run([{**g, "staff": None} for g in GRIDS])["balance"]
    assert all(g["staff"] is None for g in balance["grids"]) and balance["totals"]["staff"] is None
    assert "no staff" in balance["staff_note"]


def test_incidents_in_no_grid_and_on_a_shared_edge_are_listed():
    report = run(incidents=[incident(1, 117.13, 39.115), incident(2, MID_LON, 39.115), incident(3, 117.105, 39.105)])
    (lost,) = report["incidents"]["unassigned"]
    assert lost["id"] == 1 and lost["nearest_code"] == NE and lost["nearest_distance_m"] == pytest.approx(863, rel=0.01)
    (edge,) = report["incidents"]["ambiguous"]
    assert edge["id"] == 2 and edge["grid_code"] == NW and edge["candidates"] == [NW, NE]
    assert report["summary"]["incidents"] == {"located": 3, "open": 3, "unassigned": 1, "ambiguous": 1}


# ---- a property: any guillotine tiling is clean, and losing a tile is one gap of the tile's area --------
@st.composite
def tilings(draw):
    """Cut the street box again and again along lines of a 0.001° lattice: T-junctions everywhere."""
    tiles = [(0, 0, 20, 20)]  # in 0.001° steps over the street
    for _ in range(draw(st.integers(1, 7))):
        k = draw(st.integers(0, len(tiles) - 1))
        x0, y0, x1, y1 = tiles[k]
        vertical = draw(st.booleans())
        low, high = (x0, x1) if vertical else (y0, y1)
        if high - low < 2:
            continue
        cut = draw(st.integers(low + 1, high - 1))
        tiles[k : k + 1] = (
            [(x0, y0, cut, y1), (cut, y0, x1, y1)] if vertical else [(x0, y0, x1, cut), (x0, cut, x1, y1)]
        )
    boxes = [box(W + x0 * 0.001, S + y0 * 0.001, W + x1 * 0.001, S + y1 * 0.001) for x0, y0, x1, y1 in tiles]
    return boxes, draw(st.integers(0, 100))  # which tile to take away


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tilings())
def test_property_tilings_are_clean_and_a_missing_tile_is_one_gap_of_its_area(drawn):
    tiles, pick = drawn
    community = {**COMMUNITIES[0], "geometry": STREET["geometry"]}
    grids = [
        {"code": f"{WEST}{k + 1:03d}", "name": f"g{k}", "parent_code": WEST, "households": 400, "geometry": t}
        for k, t in enumerate(tiles)
    ]
    frame_ = gpd.GeoDataFrame(rows(grids, [community]), geometry="geometry", crs="EPSG:4326")
    options = audit.AuditOptions(sliver_compactness=0.0, sliver_area_m2=0.0, as_of=AS_OF)
    report = audit.audit_areas(frame_, options=options)
    assert listed(report) == {k: 0 for k in audit.FINDING_KINDS}
    if len(grids) < 2:
        return
    missing = pick % len(grids)
    holed = gpd.GeoDataFrame(
        rows([g for k, g in enumerate(grids) if k != missing], [community]), geometry="geometry", crs="EPSG:4326"
    )
    (gap,) = audit.audit_areas(holed, options=options)["gaps"]
    assert close(gap["area_m2"], geodesic_m2(tiles[missing]))


# ---- through the store, the CLI and HTTP (SpatiaLite and PostGIS) ----------------------------------------
def records(grids: list[dict], communities: list[dict] | None = None) -> list[AreaRecord]:
    fields = ("code", "name", "parent_code", "kind", "households", "population", "staff")
    return [
        AreaRecord(level=r["level"], geometry=r["geometry"], **{f: r.get(f) for f in fields})
        for r in rows(grids, communities)
    ]


def add_incidents(store) -> None:
    when = dt.datetime.now().replace(microsecond=0) - dt.timedelta(days=3)
    base = {"source": "hotline", "reported_at": when}
    store.add_incidents(
        [
            {**base, "title": "drain", "lon": 117.102, "lat": 39.115, "grid_code": NW, "status": "reported"},
            {**base, "title": "noise", "lon": 117.108, "lat": 39.105, "grid_code": SW, "status": "reported"},
            {**base, "title": "old", "lon": 117.101, "lat": 39.101, "grid_code": SW, "status": "closed"},
            {**base, "title": "east", "lon": 117.115, "lat": 39.115, "grid_code": NE, "status": "reported"},
            {**base, "title": "lost", "lon": 117.13, "lat": 39.115, "grid_code": None, "status": "reported"},
        ]
    )


# The plan: the west community's two grids (north, south) redrawn as west and east halves.
PLAN_GRIDS = [
    {
        **GRIDS[0],
        "code": "120104001001003",
        "name": "百合西网格",
        "households": None,
        "geometry": box(W, S, 117.105, N),
    },
    {
        **GRIDS[0],
        "code": "120104001001004",
        "name": "百合东网格",
        "households": None,
        "geometry": box(117.105, S, MID_LON, N),
    },
    GRIDS[2],
    GRIDS[3],
]


@pytest.fixture
def district(store, tmp_path):
    load_district(store, tmp_path)
    add_incidents(store)
    store.add_areas("plan", records(PLAN_GRIDS), create_edition_status="draft")
    store.add_areas(
        "broken", records(with_grid(SW, geometry=box(W, S, MID_LON, MID_LAT + 0.002))), create_edition_status="draft"
    )
    return store


def test_audit_edition_reads_the_store(district):
    report = audit.audit_edition(district)
    assert set(report) == TOP_KEYS and report["summary"]["edition"] == "main" and report["summary"]["clean"]
    assert report["summary"]["incidents"] == {"located": 5, "open": 4, "unassigned": 1, "ambiguous": 0}
    grids = {g["code"]: g for g in report["balance"]["grids"]}
    assert (grids[SW]["open_cases"], grids[SW]["recent_cases"]) == (1, 2)
    (overlap,) = audit.audit_edition(district, "broken")["overlaps"]
    assert sorted(overlap["codes"]) == [NW, SW]
    assert close(overlap["area_m2"], geodesic_m2(box(W, MID_LAT, MID_LON, MID_LAT + 0.002)))


def test_compare_counts_the_land_households_and_cases_that_move(district):
    report = audit.compare_editions(district, "main", "plan")
    assert report["summary"]["new"] == 2 and report["summary"]["unchanged"] == 2 and report["summary"]["retired"] == 2
    grids = {g["code"]: g for g in report["grids"]}
    west = grids["120104001001003"]
    assert west["status"] == "new" and [s["code"] for s in sorted(west["sources"], key=lambda s: s["code"])] == [NW, SW]
    by_code = {s["code"]: s for s in west["sources"]}
    assert by_code[NW]["share_of_old"] == pytest.approx(0.5, abs=0.001)
    assert by_code[NW]["households_estimated"] == pytest.approx(210, abs=0.5)
    assert by_code[SW]["households_estimated"] == pytest.approx(190, abs=0.5)
    assert close(by_code[NW]["area_m2"], geodesic_m2(box(W, MID_LAT, 117.105, N)))
    assert west["households_estimated"] == 400
    assert grids[NE]["status"] == "unchanged" and grids[NE]["sources"][0]["code"] == NE
    # All 800 households of the west community change grid; the east's 545 stay.
    assert report["households"]["moving"] == 800 and report["households"]["left_uncovered"] == 0
    # Open cases in NW and SW change grid; the closed one in SW moves too; the east one and the lost one stay.
    assert report["cases"]["open_moving"] == 2 and report["cases"]["moving"] == 3
    assert {(c["from"], c["to"]) for c in report["cases"]["moved"]} == {
        (NW, "120104001001003"),
        (SW, "120104001001004"),
        (SW, "120104001001003"),
    }
    before, after = report["balance"]["a"], report["balance"]["b"]
    assert before["totals"]["cv"] != after["totals"]["cv"]
    assert [g["households"] for g in after["grids"] if g["code"].startswith(WEST)] == [400, 400]
    communities = {c["code"]: c for c in report["balance"]["communities"]}
    assert communities[WEST]["cv_a"] == 0.05 and communities[WEST]["cv_b"] == 0.0


@pytest.fixture
def cli(database_url):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, [*args, "--db", database_url], catch_exceptions=False)

    return invoke


def test_cli_audit_json_fail_on_and_html(district, cli, tmp_path):
    result = cli("audit", "--json")
    assert result.exit_code == 0 and set(json.loads(result.output)) == TOP_KEYS
    assert cli("audit", "--fail-on", "gaps,overlaps").exit_code == 0
    failed = cli("audit", "--edition", "broken", "--fail-on", "overlaps")
    assert failed.exit_code == 1 and "audit failed on 1 overlaps" in failed.output
    assert cli("audit", "--edition", "broken", "--fail-on", "gaps").exit_code == 0
    assert cli("audit", "--fail-on", "unassigned").exit_code == 1  # the incident east of the district
    wrong = cli("audit", "--fail-on", "holes")
    assert wrong.exit_code == 1 and "unknown kind(s) holes" in wrong.output
    text = cli("audit", "--edition", "broken").output
    assert "overlaps: 1" in text and f"overlap {NW} 百合第1网格 {SW} 百合第2网格" in text
    out = tmp_path / "report.html"
    assert cli("audit", "--html", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert "<svg" in html and 'id="map"' in html and "<script" not in html and "http://" not in html
    assert cli("audit", "--edition", "nope").exit_code == 1


def test_cli_compare_json_and_html(district, cli, tmp_path):
    result = cli("compare", "main", "plan", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["cases"]["open_moving"] == 2
    assert "open cases changing grid: 2 (all cases: 3)" in cli("compare", "main", "plan").output
    out = tmp_path / "compare.html"
    assert cli("compare", "main", "plan", "--html", str(out)).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert 'data-count="open_cases_moving">2<' in html
    assert 'class="s-new"' in html and "<script" not in html


def fetch(url: str, token: str | None = None, accept: str = "application/json") -> tuple[int, str, str]:
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_api_audit_and_compare_over_http(live_server, database_url, tmp_path):
    from gridmap.store import Store

    store = Store.open(database_url)
    load_district(store, tmp_path)
    add_incidents(store)
    store.add_areas("plan", records(PLAN_GRIDS), create_edition_status="draft")
    named = with_grid(NE, name="<script>alert(1)</script>")
    store.add_areas("xss", records(named), create_edition_status="draft")
    admin = people.add_user(store, "auditor", role="planner")
    worker = people.add_user(store, "worker", role="grid_worker", areas=[NE])
    store.close()

    status, _, body = fetch(live_server + "/api/audit")
    assert status == 401
    status, content_type, body = fetch(live_server + "/api/audit", admin)
    assert status == 200 and content_type == "application/json"
    report = json.loads(body)
    assert set(report) == TOP_KEYS and report["summary"]["clean"] and len(report["incidents"]["unassigned"]) == 1
    status, _, body = fetch(live_server + "/api/audit?households_min=390&households_max=600", admin)
    assert [r["code"] for r in json.loads(body)["balance"]["outside_range"]] == [SW]
    status, _, body = fetch(live_server + "/api/audit?households_min=lots", admin)
    assert status == 400 and "whole number" in json.loads(body)["error"]
    # A grid worker sees the audit but not incidents outside their patch.
    status, _, body = fetch(live_server + "/api/audit", worker)
    assert status == 200 and json.loads(body)["incidents"]["unassigned"] == []

    status, _, body = fetch(live_server + "/audit?edition=xss", admin, accept="text/html")
    assert status == 200 and "<svg" in body and 'id="histogram"' in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body

    status, _, body = fetch(live_server + "/api/compare?a=main&b=plan", admin)
    assert status == 200 and json.loads(body)["summary"]["open_cases_moving"] == 2
    status, _, body = fetch(live_server + "/compare?a=main&b=plan", admin, accept="text/html")
    assert status == 200 and 'data-count="open_cases_moving">2<' in body
    status, _, body = fetch(live_server + "/api/compare?a=main", admin)
    assert status == 400 and "?a=OLD&b=NEW" in json.loads(body)["error"]
    status, _, body = fetch(live_server + "/api/compare?a=main&b=nope", admin)
    assert status == 404
    # Drafts are not shown to grid workers (access rules: tests/test_access.py).
    assert fetch(live_server + "/api/compare?a=main&b=plan", worker)[0] == 404


def test_floating_point_noise_along_a_shared_edge_is_counted_not_listed():
    # NW's southern edge gets an extra vertex a hair (about 0.01 mm) north and south of SW's straight edge.
    noisy = Polygon(
        [(W, MID_LAT), (117.103, MID_LAT + 1e-10), (117.107, MID_LAT - 1e-10), (MID_LON, MID_LAT), (MID_LON, N), (W, N)]
    )
    report = run(with_grid(NW, geometry=noisy))
    assert listed(report) == {k: 0 for k in audit.FINDING_KINDS}
    small = report["summary"]["below_tolerance"]
    assert small["gaps"]["count"] >= 1 and small["overlaps"]["count"] == 1
    assert 0 < small["gaps"]["area_m2"] < 1 and 0 < small["overlaps"]["area_m2"] < 1
