"""The case map without a browser: offline assets, GeoJSON layers, filters, scope and the standalone export."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import urllib.error
import urllib.request

import folium
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from conftest import skip_or_fail
from geodata import GRIDS, MID_LAT, MID_LON, load_district
from shapely.geometry import Polygon, box

from gridmap import assets, maps, people
from gridmap.errors import InvalidInput
from gridmap.store import Store

GRID_A, GRID_B, GRID_C, GRID_D = (g["code"] for g in GRIDS)  # NW, SW, NE, SE
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def vendor():
    """The installed map assets (setup runs `python -m gridmap.assets install`)."""
    try:
        assets.require_installed()
    except assets.AssetsMissing as exc:
        skip_or_fail(exc.message)
    return assets.VENDOR_DIR


# ---- a tiny district with a handful of cases ----------------------------------------------------------------
def case_rows(now: dt.datetime) -> list[dict]:
    """Seven cases: five open and located (three in grid A), one closed, one without a location."""

    def row(title, *, grid, lon, lat, status, age_hours, deadline_hours, source="patrol", category="0101"):
        community = grid[:12]
        return {
            "source": source,
            "title": title,
            "category_code": category,
            "reported_at": now - dt.timedelta(hours=age_hours),
            "lon": lon,
            "lat": lat,
            "grid_code": grid if lon is not None else None,
            "original_grid_code": grid if lon is not None else None,
            "community_code": community if lon is not None else None,
            "street_code": community[:9] if lon is not None else None,
            "edition": "main",
            "original_edition": "main",
            "status": status,
            "deadline": None if deadline_hours is None else now + dt.timedelta(hours=deadline_hours),
        }

    # Points keep away from each grid's centre, where the browser test clicks to open the grid's panel.
    return [
        row("路灯不亮", grid=GRID_A, lon=117.1021, lat=39.1181, status="reported", age_hours=2, deadline_hours=240),
        row("垃圾堆放", grid=GRID_A, lon=117.1082, lat=39.1183, status="registered", age_hours=120, deadline_hours=-24),
        row(XSS, grid=GRID_A, lon=117.1023, lat=39.1122, status="in_progress", age_hours=30, deadline_hours=48,
            source="hotline", category="0201"),
        row("噪音扰民", grid=GRID_B, lon=117.1024, lat=39.1021, status="reported", age_hours=800, deadline_hours=None),
        row("占道经营", grid=GRID_D, lon=117.1181, lat=39.1022, status="dispatched", age_hours=216, deadline_hours=24,
            source="hotline"),
        row("已结案件", grid=GRID_D, lon=117.1183, lat=39.1024, status="closed", age_hours=300, deadline_hours=-100),
        row("无坐标", grid=GRID_C, lon=None, lat=None, status="reported", age_hours=1, deadline_hours=10),
    ]  # fmt: skip


OPEN_LOCATED = 5


def load_map_data(store: Store, tmp_path, now: dt.datetime | None = None) -> dict[str, str]:
    """Load the district and the cases; add users; return their API tokens by role."""
    load_district(store, tmp_path)
    store.add_incidents(case_rows(now or dt.datetime.now().replace(microsecond=0)))
    return {
        "admin": people.add_user(store, "admin1", role="admin", password="admin-pass-1"),
        "worker": people.add_user(store, "worker1", role="grid_worker", areas=[GRID_A], password="worker-pass-1"),
    }


def get(base: str, path: str, token: str | None = None, *, gzip_ok: bool = False):
    """GET a URL; return (status, headers, decoded JSON or text)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if gzip_ok:
        headers["Accept-Encoding"] = "gzip"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(base + path, headers=headers), timeout=30) as response:
            status, head, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, head, body = error.code, error.headers, error.read()
    if head.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    text = body.decode()
    return status, head, json.loads(text) if head.get("Content-Type", "").startswith("application/json") else text


# ---- assets ----------------------------------------------------------------------------------------------------
def test_folium_asset_lists_are_local_and_keep_folium_names():
    js, css = assets.folium_assets("/static/vendor/")
    names = [name for name, _ in folium.Map.default_js]
    assert {"leaflet", "jquery"} <= {name for name, _ in js} <= set(names)
    assert all(url.startswith("/static/vendor/") for _, url in js + css)
    assert "leaflet_css" in {name for name, _ in css}


def test_a_plain_folium_map_renders_offline_after_use_local_assets():
    saved = (folium.Map.default_js, folium.Map.default_css)
    try:
        # Other tests (any app start) already pointed folium at the local files: put back a CDN entry as folium
        # ships it, so this test does not depend on the order tests run in.
        folium.Map.default_js = [("leaflet", "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js")]
        with pytest.raises(assets.OnlineAssetError, match=r"cdn\.jsdelivr\.net"):
            assets.check_offline(folium.Map(tiles=None).get_root().render())
        assets.use_local_assets()
        html = assets.check_offline(folium.Map(tiles=None).get_root().render())
        assert '<script src="/static/vendor/leaflet/dist/leaflet.js"></script>' in html
    finally:
        folium.Map.default_js, folium.Map.default_css = saved


@pytest.mark.parametrize(
    "html",
    [
        '<script src="https://unpkg.com/x.js"></script>',
        "<script defer src=//cdn.example.com/x.js></script>",
        '<link rel="stylesheet" href="http://cdn.example.com/x.css">',
        "<style>@import url('https://fonts.example.com/a.css');</style>",
    ],
)
def test_check_offline_refuses_every_remote_script_or_stylesheet(html):
    with pytest.raises(assets.OnlineAssetError):
        assets.check_offline(f"<html><head>{html}</head></html>")


def test_check_offline_lets_links_and_local_files_pass():
    html = '<a href="https://leafletjs.com">Leaflet</a><script src="/static/vendor/a.js"></script>'
    assert assets.check_offline(html) == html


def test_inline_assets_embeds_scripts_styles_and_their_images(vendor):
    html = (
        '<script src="/static/vendor/leaflet/dist/leaflet.js"></script>'
        '<link rel="stylesheet" href="/static/vendor/leaflet/dist/leaflet.css"/>'
    )
    inlined = assets.inline_assets(html)
    assert "/static/vendor/" not in inlined and "<script>" in inlined and "<style>" in inlined
    assert "url(data:image/png;base64," in inlined  # layers.png from leaflet.css
    assert "</script" not in inlined[len("<script>") : inlined.index("</script>")].lower()


def test_inline_assets_refuses_a_file_that_is_not_installed(vendor):
    with pytest.raises(assets.AssetsMissing, match=r"gridmap\.assets install"):
        assets.inline_assets('<script src="/static/vendor/nothing/here.js"></script>')


def test_lock_file_records_no_download_addresses():
    lock = json.loads((assets.REPO_DIR / "package-lock.json").read_text())
    assert not any("resolved" in entry for entry in lock["packages"].values())
    packages = {path.split("/")[0] if not path.startswith("@") else "/".join(path.split("/")[:2])
                for path in assets.VENDOR_FILES}  # fmt: skip
    assert packages <= set(json.loads((assets.REPO_DIR / "package.json").read_text())["dependencies"])


# ---- geometry --------------------------------------------------------------------------------------------------
def _jagged_pair() -> list[Polygon]:
    """Two polygons of the unit square sharing a jagged edge of 201 vertices; the left ring starts mid-edge."""
    rng = np.random.default_rng(1)
    ys = np.linspace(0, 1, 201)
    xs = 0.5 + 0.03 * rng.standard_normal(201)
    xs[0] = xs[-1] = 0.5
    edge = list(zip(xs, ys, strict=True))
    left = [(0, 0), *edge, (0, 1)]
    # Starting the ring elsewhere makes Douglas-Peucker pick different vertices on the two sides of the edge.
    return [Polygon(left[77:] + left[:77]), Polygon([*edge, (1, 1), (1, 0)])]


def test_coverage_simplification_keeps_neighbours_gap_free_where_per_polygon_simplification_does_not():
    pair = _jagged_pair()
    simplified = maps.shape_areas(pair, tolerance=0.01)
    assert sum(shapely.get_num_coordinates(simplified)) < 0.8 * sum(shapely.get_num_coordinates(pair))
    assert shapely.coverage_is_valid(simplified)
    assert shapely.union_all(simplified).area == pytest.approx(1.0, abs=1e-9)
    assert sum(g.area for g in simplified) == pytest.approx(1.0, abs=1e-9)
    # The check can fail: simplifying each polygon on its own opens slivers between them.
    each = shapely.simplify(np.array(pair, dtype=object), 0.01)
    union = shapely.union_all(each).area
    assert abs(sum(g.area for g in each) - union) > 1e-6 or union < 1 - 1e-6


def test_simplification_follows_the_zoom_and_stops_at_street_level():
    assert maps.simplify_level(9) == 11 and maps.simplify_level(12) == 13 and maps.simplify_level(15) == 15
    assert maps.simplify_level(None) is None and maps.simplify_level(18) is None
    assert maps.simplify_tolerance(11) > maps.simplify_tolerance(15) > 0 == maps.simplify_tolerance(None)


def test_area_geometry_is_rounded_to_six_decimals_and_can_be_shifted_to_gcj02():
    import geopandas as gpd

    frame = gpd.GeoDataFrame({"code": ["a"]}, geometry=[box(117.1000004, 39.1, 117.1234567891, 39.11)], crs=4326)
    (text,) = maps.area_geometry_json(frame)
    numbers = re.findall(r"-?\d+\.\d+", text)
    assert numbers and all(len(n.split(".")[1]) <= 6 for n in numbers)
    assert "117.123457" in text and "117.1," in text
    (shifted,) = maps.area_geometry_json(frame, to_gcj02=True)
    west = min(x for x, _y in json.loads(shifted)["coordinates"][0])
    assert 0.002 < west - 117.1 < 0.01  # GCJ-02 moves Tianjin a few hundred metres east


# ---- cases -----------------------------------------------------------------------------------------------------
def test_traffic_lights_red_past_the_deadline_none_without_one_or_when_closed():
    now = dt.datetime(2026, 6, 1, 10, 0)
    rows = [
        {"status": "reported", "reported_at": now - dt.timedelta(days=3), "deadline": now - dt.timedelta(hours=1)},
        {"status": "reported", "reported_at": now - dt.timedelta(hours=1), "deadline": None},
        {"status": "closed", "reported_at": now - dt.timedelta(days=3), "deadline": now - dt.timedelta(hours=1)},
        {"status": "reported", "reported_at": now - dt.timedelta(minutes=1), "deadline": now + dt.timedelta(days=30)},
    ]
    assert maps.traffic_lights(rows, now=now) == ["red", None, None, "green"]


def test_age_filter_windows():
    now = dt.datetime(2026, 6, 10, 12, 0)
    assert maps.age_window(None, now=now) == (None, None)
    assert maps.age_window("1d", now=now) == (now - dt.timedelta(days=1), None)
    assert maps.age_window("7d", now=now) == (now - dt.timedelta(days=7), now - dt.timedelta(days=3))
    assert maps.age_window("older", now=now) == (None, now - dt.timedelta(days=30))
    with pytest.raises(InvalidInput, match="age must be one of"):
        maps.age_window("forever", now=now)


def test_grid_measures_count_open_and_overdue_and_hide_grids_outside_the_scope():
    now = dt.datetime.now().replace(microsecond=0)
    rows = case_rows(now)
    grids = [{"code": g["code"], "households": g["households"]} for g in GRIDS]
    measures = maps.grid_measures(grids, rows, now=now, visible=lambda code: code != GRID_D)
    assert measures[GRID_A] == {
        "open": 3,
        "overdue": 1,
        "by_status": {"reported": 1, "registered": 1, "in_progress": 1},
        "households": 420,
        "per100": round(300 / 420, 2),
    }
    assert measures[GRID_B]["open"] == 1 and measures[GRID_B]["overdue"] == 0
    assert measures[GRID_C]["open"] == 0  # its only case has no location, but it is still its case
    assert measures[GRID_D]["open"] is None and measures[GRID_D]["households"] == 510


def test_incident_collection_is_geojson_with_rounded_points_and_small_properties():
    now = dt.datetime.now().replace(microsecond=0)
    rows = [dict(r, id=i) for i, r in enumerate(case_rows(now), 1)]
    rows[0]["lon"] = 117.10212345678
    collection = json.loads(maps.incident_collection(rows, lights=maps.traffic_lights(rows, now=now), count=6))
    assert collection["type"] == "FeatureCollection" and collection["count"] == 6
    assert len(collection["features"]) == 6  # the unlocated case is left out
    first = collection["features"][0]
    assert first["geometry"] == {"type": "Point", "coordinates": [117.102123, 39.1181]}
    assert first["properties"] == {"id": 1, "light": "green", "status": "reported"}
    detailed = json.loads(maps.incident_collection(rows[2:3], lights=[None], detail=True))
    assert detailed["features"][0]["properties"]["title"] == XSS


def test_basemap_presets_need_their_key_and_mark_amap_as_gcj02():
    with pytest.raises(InvalidInput, match="needs a key"):
        maps.basemap_layers(["tianditu"])
    (tianditu,) = maps.basemap_layers(["tianditu"], tianditu_key="K123")
    assert "tk=K123" in tianditu["url"] and "cva_w" in tianditu["labels_url"]
    assert maps.basemap_layers(["amap"])[0]["crs"] == "gcj02"
    assert maps.basemap_layers(["none", ""]) == []
    with pytest.raises(InvalidInput, match="basemap must be"):
        maps.basemap_layers(["google"])


def test_build_map_is_offline_and_escapes_config_strings(vendor):
    html = maps.build_map(bounds=[117.1, 39.1, 117.12, 39.12], config={"api": "/api/map"}, title="</script><b>x")
    assert assets.check_offline(html) == html
    assert "</script><b>" not in html and "\\u003c/script\\u003e\\u003cb\\u003ex" in html
    assert "window.__gridmapStart(" in html and "https://" not in re.sub(r'href="https://[^"]*"', "", html)


# ---- over HTTP --------------------------------------------------------------------------------------------------
@pytest.fixture
def served(live_server, database_url, tmp_path, vendor):
    store = Store.open(database_url)
    tokens = load_map_data(store, tmp_path)
    store.close()
    return live_server, tokens


def test_anonymous_callers_are_sent_to_login_or_refused(served):
    base, _tokens = served
    status, headers, _ = get(base, "/map")
    assert status == 302 and "/login" in headers["Location"]
    for path in ("/api/map/grids", "/api/map/incidents", f"/api/map/grids/{GRID_A}", "/api/map/incidents/1"):
        status, _headers, body = get(base, path)
        assert status == 401 and body["status"] == 401, path


def test_map_page_is_folium_with_local_assets_only(served):
    base, tokens = served
    status, headers, html = get(base, "/map", tokens["admin"])
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert assets.check_offline(html) == html
    assert "/static/vendor/leaflet/dist/leaflet.js" in html and "folium" in html.lower()
    status, _headers, body = get(base, "/static/vendor/leaflet/dist/leaflet.js", tokens["admin"])
    assert status == 200 and "Leaflet" in body[:2000]


def test_grids_layer_has_every_grid_with_counts_and_rounded_coordinates(served):
    base, tokens = served
    status, _headers, grids = get(base, "/api/map/grids?zoom=14", tokens["admin"], gzip_ok=True)
    assert status == 200 and grids["type"] == "FeatureCollection" and grids["edition"] == "main"
    by_code = {f["properties"]["code"]: f["properties"] for f in grids["features"]}
    assert set(by_code) == {g["code"] for g in GRIDS}
    assert (by_code[GRID_A]["open"], by_code[GRID_A]["overdue"]) == (3, 1)
    assert by_code[GRID_D]["open"] == 1 and by_code[GRID_A]["community"] == "百合社区"
    assert by_code[GRID_A]["label"] == pytest.approx([(117.10 + MID_LON) / 2, (MID_LAT + 39.12) / 2])
    text = json.dumps(grids["features"][0]["geometry"])
    assert all(len(n.split(".")[1]) <= 6 for n in re.findall(r"\d+\.\d+", text))
    for level, count in (("community", 2), ("street", 1)):
        _status, _headers, outlines = get(base, f"/api/map/grids?level={level}&zoom=12", tokens["admin"])
        assert len(outlines["features"]) == count


def test_large_answers_are_gzipped_when_the_client_accepts_it(served):
    base, tokens = served
    _status, headers, body = get(base, "/api/map/grids", tokens["admin"], gzip_ok=True)
    assert len(json.dumps(body)) > 1024
    assert headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in headers["Vary"]
    _status, headers, _body = get(base, "/api/map/grids", tokens["admin"])
    assert headers.get("Content-Encoding") is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", OPEN_LOCATED),
        ("?status=registered", 1),
        ("?status=closed", 0),  # closed cases are not on the map
        ("?source=hotline", 2),
        ("?category=0201", 1),
        ("?age=1d", 1),
        ("?age=older", 1),
        ("?light=red", 1),
        ("?light=none", 1),
        ("?status=reported&source=patrol", 2),
    ],
)
def test_incident_filters(served, query, expected):
    base, tokens = served
    status, _headers, cases = get(base, "/api/map/incidents" + query, tokens["admin"])
    assert status == 200 and len(cases["features"]) == expected == cases["count"]


@pytest.mark.parametrize("query", ["?age=forever", "?light=blue", "?crs=bd09", "?zoom=x"])
def test_bad_filters_are_400(served, query):
    base, tokens = served
    path = "/api/map/grids" if "zoom" in query else "/api/map/incidents"
    status, _headers, body = get(base, path + query, tokens["admin"])
    assert status == 400 and body["status"] == 400


def test_a_grid_worker_sees_only_their_grids_cases(served):
    base, tokens = served
    _status, _headers, cases = get(base, "/api/map/incidents", tokens["worker"])
    assert len(cases["features"]) == 3
    titles = []
    for feature in cases["features"]:
        status, _headers, detail = get(base, f"/api/map/incidents/{feature['properties']['id']}", tokens["worker"])
        assert status == 200 and detail["grid_code"] == GRID_A
        titles.append(detail["title"])
    assert XSS in titles
    _status, _headers, everything = get(base, "/api/map/incidents", tokens["admin"])
    other = next(f for f in everything["features"] if f["geometry"]["coordinates"][0] > MID_LON)
    status, _headers, _body = get(base, f"/api/map/incidents/{other['properties']['id']}", tokens["worker"])
    assert status == 404
    _status, _headers, grids = get(base, "/api/map/grids", tokens["worker"])
    counts = {f["properties"]["code"]: f["properties"]["open"] for f in grids["features"]}
    assert counts == {GRID_A: 3, GRID_B: None, GRID_C: None, GRID_D: None}


def test_grid_panel(served):
    base, tokens = served
    status, _headers, panel = get(base, f"/api/map/grids/{GRID_A}", tokens["admin"])
    assert status == 200
    assert panel["name"] == "百合第1网格" and panel["community"] == "百合社区" and panel["street"] == "长虹街道"
    assert panel["households"] == 420 and panel["workers"] == ["worker1"]
    assert panel["by_status"] == {"reported": 1, "registered": 1, "in_progress": 1}
    assert panel["cases_url"] == f"/cases?grid={GRID_A}"
    _status, _headers, other = get(base, f"/api/map/grids/{GRID_D}", tokens["worker"])
    assert other["open"] is None and other["by_status"] is None and other["cases_url"] is None
    status, _headers, _body = get(base, "/api/map/grids/999", tokens["admin"])
    assert status == 404


def test_map_data_follows_changes_to_cases(served, database_url):
    base, tokens = served
    _status, _headers, before = get(base, "/api/map/incidents", tokens["admin"])
    store = Store.open(database_url)
    store.add_incidents(case_rows(dt.datetime.now().replace(microsecond=0))[:1])
    store.close()
    _status, _headers, after = get(base, "/api/map/incidents", tokens["admin"])
    assert len(after["features"]) == len(before["features"]) + 1


# ---- the standalone export --------------------------------------------------------------------------------------
def test_gridmap_map_writes_one_self_contained_file(store, database_url, tmp_path, vendor):
    load_map_data(store, tmp_path)
    out = tmp_path / "map.html"
    from gridmap.cli import main

    result = CliRunner().invoke(main, ["map", str(out), "--db", database_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "4 grids, 5 open cases" in result.output
    html = out.read_text(encoding="utf-8")
    assert assets.check_offline(html) == html
    assert "/static/vendor/" not in html and not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+stylesheet", html)
    assert "百合第1网格" in html and "<img src=x" not in html  # the XSS title is JSON-escaped data
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in html


def test_gridmap_map_refuses_an_unknown_edition(store, database_url, tmp_path):
    load_district(store, tmp_path)
    from gridmap.cli import main

    result = CliRunner().invoke(main, ["map", str(tmp_path / "x.html"), "--edition", "nope", "--db", database_url])
    assert result.exit_code == 1 and "nope" in result.output


def test_basemaps_are_opt_in_and_amap_shifts_overlays_to_gcj02(served):
    base, tokens = served
    _status, _headers, plain = get(base, "/map", tokens["admin"])
    assert "openstreetmap" not in plain and "autonavi" not in plain  # no basemap unless asked for
    status, _headers, html = get(base, "/map?basemap=amap", tokens["admin"])
    assert status == 200 and "autonavi.com" in html and '"crs":"gcj02"' in html
    status, _headers, _html = get(base, "/map?basemap=tianditu", tokens["admin"])
    assert status == 400  # no key configured
    _status, _headers, wgs = get(base, "/api/map/incidents?status=registered", tokens["admin"])
    _status, _headers, gcj = get(base, "/api/map/incidents?status=registered&crs=gcj02", tokens["admin"])
    (x0, y0), (x1, y1) = wgs["features"][0]["geometry"]["coordinates"], gcj["features"][0]["geometry"]["coordinates"]
    assert 0.003 < x1 - x0 < 0.01 and 0 < y1 - y0 < 0.01  # a few hundred metres north-east near Tianjin
