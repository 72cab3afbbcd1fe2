"""/ogc over HTTP in detail, on the tiny hand-drawn district and both databases: links, paging, ETags, access
rules, HTML, errors, datetime and property filters on cases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from geodata import GRIDS, load_district

from gridmap import cases, drafts, people
from gridmap.config import Settings
from gridmap.web import create_app, i18n, ogc, ogc_api, ogc_params

NW, SW, NE, SE = (g["code"] for g in GRIDS)


def _make(database_url, tmp_path, **settings):
    app = create_app(Settings(database_url=database_url, secret_key="test-secret", **settings))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    tokens = {
        "admin": people.add_user(store, "管理员", role="admin"),
        "planner": people.add_user(store, "规划", role="planner"),
        "viewer": people.add_user(store, "观察员", role="viewer"),
        "worker": people.add_user(store, "网格员", role="grid_worker", areas=[NW]),
    }
    return app, store, tokens


@pytest.fixture
def web(database_url, tmp_path):
    """GET /ogc paths as a role (or anonymously); returns the Flask response."""
    app, store, tokens = _make(database_url, tmp_path)
    client = app.test_client()

    def get(path: str, who: str | None = None, **headers):
        if who:
            headers["Authorization"] = f"Bearer {tokens[who]}"
        headers.setdefault("Accept", "application/json")
        return client.get(path, headers=headers)

    get.store, get.tokens, get.client = store, tokens, client
    yield get
    store.close()


def _report(store, *, lon, lat, title="暴露垃圾", phone="13812341234", when=None):
    admin = people.User("管理员", "admin")
    return cases.report(
        store, user=admin, title=title, lon=lon, lat=lat, category_code="0102",
        reporter_name="王小明", reporter_phone=phone, now=when,
    )  # fmt: skip


def test_landing_conformance_and_api_document(web):
    landing = web("/ogc").get_json()
    rels = {link["rel"]: link for link in landing["links"]}
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert rels["conformance"]["href"].endswith("/ogc/conformance") and rels["data"]["href"].endswith("/collections")
    assert set(web("/ogc/conformance").get_json()["conformsTo"]) == set(ogc_api.CONFORMANCE)
    response = web("/ogc/api")
    assert response.headers["Content-Type"] == "application/vnd.oai.openapi+json;version=3.0"
    document = response.get_json()
    assert document["openapi"].startswith("3.0")
    assert "/collections/{collectionId}/items" in document["paths"] and "/collections/grids/items" in document["paths"]
    assert "/collections/incidents/items" not in document["paths"]  # not offered to anonymous callers
    assert "/collections/incidents/items" in web("/ogc/api", "viewer").get_json()["paths"]


def test_items_page_with_next_and_prev_links_and_counts(web):
    first = web("/ogc/collections/grids/items?limit=3").get_json()
    assert (first["numberMatched"], first["numberReturned"]) == (4, 3)
    following = next(link["href"] for link in first["links"] if link["rel"] == "next")
    second = web(following.replace("http://localhost", "")).get_json()
    assert second["numberReturned"] == 1 and not any(link["rel"] == "next" for link in second["links"])
    assert any(link["rel"] == "prev" for link in second["links"])
    assert [f["id"] for f in first["features"] + second["features"]] == [NW, SW, NE, SE]
    feature = web(f"/ogc/collections/grids/items/{NE}").get_json()
    assert feature["properties"]["kind"] == "专属" and feature["geometry"]["type"] == "MultiPolygon"
    assert web("/ogc/collections/grids/items/120104009999999").status_code == 404


def test_property_filters_bbox_and_cql2_json(web):
    def codes(query: str, who=None):
        return [f["id"] for f in web(f"/ogc/collections/grids/items?{query}", who).get_json()["features"]]

    assert codes("kind=专属") == [NE]
    assert codes("households=510", "viewer") == [SE]  # the figures are for signed-in callers
    assert codes("bbox=117.111,39.101,117.119,39.109") == [SE]
    assert codes("bbox=117.11,39.10,117.12,39.11") == [NW, SW, NE, SE]  # touching counts (a corner, an edge)
    filter_json = json.dumps({"op": ">", "args": [{"property": "households"}, 400]})
    assert codes(f"filter={filter_json}&filter-lang=cql2-json", "viewer") == [NW, SE]
    assert codes("filter=households > 400 OR kind = '专属' AND staff > 5", "viewer") == [NW, SE]  # AND binds first
    assert codes("filter=S_INTERSECTS(geometry, POINT(117.105 39.115))") == [NW]
    assert codes("filter=S_INTERSECTS(geometry, POINT(39.115 117.105))&filter-crs=EPSG:4326") == [NW]
    # Anonymous callers filter the masked figures, so a figure cannot be found by searching for it.
    assert codes("households=510") == []
    assert codes(f"filter={filter_json}&filter-lang=cql2-json") == []


def test_anonymous_callers_get_every_grid_without_its_figures(web):
    figures = ("households", "population", "staff")
    anonymous = web("/ogc/collections/grids/items").get_json()["features"]
    signed = web("/ogc/collections/grids/items", "viewer").get_json()["features"]
    assert [f["id"] for f in anonymous] == [f["id"] for f in signed] == [NW, SW, NE, SE]
    for seen, full in zip(anonymous, signed, strict=True):
        assert seen["geometry"] == full["geometry"]
        assert {k: v for k, v in seen["properties"].items() if k not in figures} == {
            k: v for k, v in full["properties"].items() if k not in figures
        }
        assert [seen["properties"][k] for k in figures] == [None, None, None]
        assert all(isinstance(full["properties"][k], int) for k in figures)
    assert {f["id"]: f["properties"]["households"] for f in signed} == {g["code"]: g["households"] for g in GRIDS}
    single = f"/ogc/collections/grids/items/{SE}"
    assert web(single).get_json()["properties"]["households"] is None
    assert web(single, "worker").get_json()["properties"]["households"] == 510  # any signed-in caller


@pytest.mark.parametrize(
    "query,words",
    [
        ("limit=0", "limit must be at least 1"),
        ("limit=ten", "not a whole number"),
        ("bbox=1,2,3", "bbox must be 4 numbers"),
        ("bbox=1,5,3,2", "south ≤ north"),
        ("crs=EPSG:27700", "not offered"),
        ("datetime=yesterday", "RFC 3339"),
        ("datetime=2024-05-02/2024-05-01", "ends before it starts"),
        ("filter=households >", "not valid CQL2 text at column"),
        ("filter=colour = 'red'", "queryables are"),
        ("filter=households = 'many'", "compare like with like"),
        ("filter=x&filter-lang=sql", "cql2-text and cql2-json"),
        ("households=many", "not a integer"),
        ("colour=red", "unknown query parameter"),
        ("f=xml", "formats are json and html"),
    ],
)
def test_bad_parameters_are_400_in_the_ogc_exception_format(web, query, words):
    response = web(f"/ogc/collections/grids/items?{query}")
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == "InvalidParameterValue"
    assert words in body["description"]


def test_unknown_collections_methods_and_paths(web):
    assert web("/ogc/collections/parks").get_json()["code"] == "NotFound"
    assert web("/ogc/collections/incidents@main").status_code == 404
    assert web("/ogc/nothing/here").get_json()["code"] == "NotFound"
    assert web.client.post("/ogc/collections").status_code == 405


def test_etag_answers_304_until_the_edition_changes(web):
    first = web("/ogc/collections/grids/items")
    tag = first.headers["ETag"]
    assert web("/ogc/collections/grids/items", **{"If-None-Match": tag}).status_code == 304
    assert web("/ogc/collections/grids/items?limit=2", **{"If-None-Match": tag}).status_code == 200
    drafts.create_draft(web.store, "plan", source="current")
    draft_url = "/ogc/collections/grids@plan/items"
    before = web(draft_url, "planner").headers["ETag"]
    area = web.store.get_area("plan", NE)
    drafts.save_grid(web.store, "plan", NE, {"version": area["version"], "households": 99})
    after = web(draft_url, "planner", **{"If-None-Match": before})
    assert after.status_code == 200 and after.headers["ETag"] != before
    assert next(f for f in after.get_json()["features"] if f["id"] == NE)["properties"]["households"] == 99


def test_drafts_only_for_planners_and_admins(web):
    drafts.create_draft(web.store, "plan", source="current")
    assert "grids@plan" in [c["id"] for c in web("/ogc/collections", "planner").get_json()["collections"]]
    assert "grids@plan" not in [c["id"] for c in web("/ogc/collections", "viewer").get_json()["collections"]]
    assert web("/ogc/collections/grids@plan/items", "viewer").status_code == 404
    assert web("/ogc/collections/grids@plan/items").status_code == 404
    web.store.retire_edition("plan")
    assert web("/ogc/collections/grids@plan/items").get_json()["numberMatched"] == 4  # retired: public again


def test_boundaries_can_require_a_sign_in(database_url, tmp_path):
    app, store, tokens = _make(database_url, tmp_path, boundaries_access="signed-in")
    client = app.test_client()
    try:
        refused = client.get("/ogc/collections/grids/items")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/ogc/collections").status_code == 401
        assert client.get("/ogc").status_code == 200 and client.get("/ogc/conformance").status_code == 200
        signed = client.get("/ogc/collections/grids/items", headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert signed.status_code == 200 and signed.get_json()["numberMatched"] == 4
        assert signed.headers["Cache-Control"].startswith("private")
    finally:
        store.close()


def test_cases_follow_scope_masking_and_time(web):
    old = _report(web.store, lon=117.105, lat=39.115, when=dt.datetime(2024, 3, 1, 10, 0))
    new = _report(web.store, lon=117.115, lat=39.115, when=dt.datetime(2024, 6, 1, 10, 0))
    assert web("/ogc/collections/incidents/items").status_code == 401
    assert "incidents" not in [c["id"] for c in web("/ogc/collections").get_json()["collections"]]
    everything = web("/ogc/collections/incidents/items", "viewer").get_json()
    assert everything["numberMatched"] == 2
    assert {f["properties"]["reporter_phone"] for f in everything["features"]} == {"138****1234"}
    assert {f["properties"]["reporter_name"] for f in everything["features"]} == {"王**"}
    unmasked = web("/ogc/collections/incidents/items", "admin").get_json()["features"][0]["properties"]
    assert unmasked["reporter_phone"] == "13812341234"
    assert unmasked["reported_at"] == "2024-03-01T10:00:00+08:00"
    mine = web("/ogc/collections/incidents/items", "worker").get_json()
    assert [f["id"] for f in mine["features"]] == [old["id"]]
    assert web(f"/ogc/collections/incidents/items/{new['id']}", "worker").status_code == 404
    assert web(f"/ogc/collections/incidents/items/{old['id']}", "worker").get_json()["geometry"]["coordinates"] == [
        117.105,
        39.115,
    ]

    def ids(query):
        return [f["id"] for f in web(f"/ogc/collections/incidents/items?{query}", "viewer").get_json()["features"]]

    assert ids("datetime=2024-05-01T00:00:00Z/..") == [new["id"]]
    assert ids("datetime=../2024-03-01") == [old["id"]]
    assert ids("datetime=2024-03-01T02:00:00Z") == [old["id"]]  # 10:00 in Beijing is 02:00 UTC
    assert ids("filter=reported_at < TIMESTAMP('2024-04-01T00:00:00%2B08:00')") == [old["id"]]
    assert ids(f"grid_code={NE}") == [new["id"]]
    assert ids("status=reported&filter=overdue = TRUE") == [old["id"], new["id"]]


def test_html_pages_in_one_language_with_escaped_text(web):
    _report(web.store, lon=117.105, lat=39.115, title="<script>alert(1)</script>")
    landing = web("/ogc?f=html")
    assert landing.status_code == 200 and landing.headers["Content-Type"].startswith("text/html")
    text = landing.get_data(as_text=True)
    assert "QGIS" in text and "网格" in text
    english = web("/ogc?f=html&lang=en").get_data(as_text=True)
    # The names of standards and programs are marked translate="no" (they are names in either language).
    assert 'Add this service in <span translate="no">QGIS</span>' in english and "添加" not in english
    browser = web("/ogc/collections/grids/items", Accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser.headers["Content-Type"].startswith("text/html") and "百合第1网格" in browser.get_data(as_text=True)
    page = web("/ogc/collections/incidents/items?f=html", "viewer").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "\\u003cscript\\u003e" in page
    for path in ("/ogc/collections?f=html", "/ogc/conformance?f=html", "/ogc/api?f=html",
                 "/ogc/collections/grids?f=html", "/ogc/collections/grids/queryables?f=html",
                 f"/ogc/collections/grids/items/{NW}?f=html"):  # fmt: skip
        assert web(path).status_code == 200, path


def test_every_message_of_the_ogc_pages_has_a_chinese_translation():
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    root = Path(ogc.__file__).resolve().parents[2]
    wanted = {m[1] for m in extract_from_file("jinja2", root / "templates" / "ogc.html")}
    for module in (ogc, ogc_params):
        wanted |= {m[1] for m in extract_from_file("python", module.__file__, keywords={"_": None})}
    wanted = {m if isinstance(m, str) else m[0] for m in wanted}
    assert len(wanted) > 20
    with (i18n.TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    missing = sorted(m for m in wanted if not (catalogue.get(m) and catalogue.get(m).string))
    assert missing == []


def test_every_route_answers_every_role_without_a_server_error(web):
    case = _report(web.store, lon=117.105, lat=39.115)
    paths = [
        "/ogc", "/ogc/conformance", "/ogc/api", "/ogc/collections", "/ogc/collections/grids",
        "/ogc/collections/grids/items", f"/ogc/collections/grids/items/{NW}", "/ogc/collections/grids/queryables",
        "/ogc/collections/grids/schema", "/ogc/collections/incidents", "/ogc/collections/incidents/items",
        f"/ogc/collections/incidents/items/{case['id']}", "/ogc/collections/incidents/queryables",
        "/ogc/collections/grids@main/items", "/open311/v2/discovery", "/open311/v2/services.xml",
        "/open311/v2/services/0102.json", "/open311/v2/requests.json", f"/open311/v2/requests/{case['id']}.xml",
        "/open311/v2/tokens/abc.json",
    ]  # fmt: skip
    for who, path in ((w, p) for w in (None, "admin", "planner", "viewer", "worker") for p in paths):
        for suffix in ("", "?f=html" if path.startswith("/ogc") else ""):
            response = web(path + suffix, who)
            assert response.status_code in (200, 401, 403, 404), (path, response.status_code)
            if who in ("admin", "viewer") and "tokens" not in path:
                assert response.status_code == 200, (path, response.get_data(as_text=True)[:200])
