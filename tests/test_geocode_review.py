"""Low-confidence geocodes are assigned but flagged for review: the report API, the import, the case list, the
map (API and the filter panel in a real Chromium), and a person's point that clears the flag — on both databases."""

from __future__ import annotations

import json
import re

import pytest
from conftest import skip_or_fail
from geocode_districts import A_GRID, load_two_districts
from test_map_browser import READY, Watched, browser  # noqa: F401 (browser is a fixture)

from gridmap import assets, incidents, people
from gridmap.config import Settings
from gridmap.store import Store
from gridmap.web import create_app

SURE, UNSURE, AMBIGUOUS = "南开区黄河道21号", "百合小区2栋", "黄河道21号"
NE_GRID = "120104001002001"  # where 百合小区2栋 lies
REPORT = {"title": "井盖缺失", "category": "0102", "source": "hotline"}


@pytest.fixture
def api(database_url, tmp_path):
    """The app in-process (Flask test client) on the two districts; call(method, path, body, who)."""
    app = create_app(Settings(database_url=database_url, secret_key="test-secret"))
    store = app.extensions["gridmap"].store
    load_two_districts(store, tmp_path)
    tokens = {
        "admin": people.add_user(store, "管理员", role="admin"),
        "viewer": people.add_user(store, "观察员", role="viewer"),
        "worker": people.add_user(store, "网格员", role="grid_worker", areas=["120111001001001"]),
    }
    client = app.test_client()

    def call(method: str, path: str, body=None, who: str = "admin", accept: str = "application/json"):
        headers = {"Accept": accept, "Authorization": f"Bearer {tokens[who]}"}
        data = None if body is None else json.dumps(body)
        response = client.open(path, method=method, data=data, headers=headers, content_type="application/json")
        return response.status_code, (response.get_json(silent=True) if "json" in accept else response.text)

    call.store, call.client = store, client
    yield call
    store.close()


def report(api, address: str):
    return api("POST", "/api/incidents", {**REPORT, "address": address})


def test_a_low_confidence_address_is_assigned_and_flagged(api):
    status, sure = report(api, SURE)
    assert status == 201 and sure["geocode_review"] is False and sure["geocode_level"] == "door"
    status, unsure = report(api, UNSURE)
    assert status == 201 and unsure["geocode_review"] is True
    assert (unsure["grid_code"], unsure["geocode_level"], unsure["geocode_confidence"]) == (NE_GRID, "building", 0.8)


def test_an_ambiguous_address_is_refused_with_its_candidates(api):
    status, error = report(api, AMBIGUOUS)
    assert status == 422 and "several districts" in error["error"] and "pick the point on the map" in error["error"]
    assert error["geocode"]["found"] is False and error["geocode"]["suggestions"] == ["黄河道21号"]
    assert {c["district"] for c in error["geocode"]["candidates"]} == {"南开区", "西青区"}
    assert api.store.table_counts()["incidents"] == 0


def test_the_case_list_and_the_map_filter_the_cases_to_check(api):
    report(api, SURE)
    _, unsure = report(api, UNSURE)
    status, page = api("GET", "/api/incidents?review=true")
    assert status == 200 and [i["id"] for i in page["items"]] == [unsure["id"]]
    assert len(api("GET", "/api/incidents")[1]["items"]) == 2
    status, html = api("GET", "/cases?review=1", accept="text/html")
    assert status == 200 and len(re.findall(r'<tr class="case[ "]', html)) == 1 and "位置待核实" in html
    assert 'name="review" value="1" checked' in html
    _, everything = api("GET", "/cases", accept="text/html")
    assert len(re.findall(r'<tr class="case[ "]', everything)) == 2 and everything.count("位置待核实") == 1
    status, features = api("GET", "/api/map/incidents?review=true")
    assert status == 200 and [f["properties"]["id"] for f in features["features"]] == [unsure["id"]]
    assert len(api("GET", "/api/map/incidents")[1]["features"]) == 2
    _, detail = api("GET", f"/api/map/incidents/{unsure['id']}")
    assert detail["review"] is True


def test_the_import_flags_through_the_geocoding_result(api, tmp_path):
    source = tmp_path / "12345.csv"
    source.write_text(
        "工单编号,诉求内容,地址,来电时间\n"
        f"A1,路灯不亮,{SURE},2026-11-30 09:00\nA2,噪音扰民,{UNSURE},2026-11-30 09:10\n"
        f"A3,占道经营,{AMBIGUOUS},2026-11-30 09:20\n",
        encoding="utf-8",
    )
    outcome = incidents.import_incidents(api.store, source, category="0404", allow_partial=True)
    assert [r["source_id"] for r in outcome.rows] == ["A1", "A2"]
    assert [r.row for r in outcome.rejected] == [4]
    stored = {r["source_id"]: r for r in api.store.list_incidents(limit=None)}
    assert (stored["A1"]["geocode_review"], stored["A2"]["geocode_review"]) == (False, True)
    assert stored["A2"]["grid_code"] == NE_GRID
    assert [r["source_id"] for r in api.store.list_incidents(geocode_review=True, limit=None)] == ["A2"]


def test_a_person_sets_the_point_and_the_flag_clears(api):
    _, unsure = report(api, UNSURE)
    path = f"/api/incidents/{unsure['id']}/location"
    status, moved = api("POST", path, {"lon": 117.105, "lat": 39.115, "note": "电话核实：在西门", "version": 1})
    assert status == 200, moved
    assert (moved["geocode_review"], moved["geocode_level"], moved["grid_code"]) == (False, "manual", A_GRID)
    assert (moved["lon"], moved["lat"], moved["version"]) == (117.105, 39.115, 2)
    assert moved["original_grid_code"] == NE_GRID  # where it was first assigned stays on record
    step = moved["history"][-1]
    assert (step["action"], step["actor"], step["note"]) == ("relocate", "管理员", "电话核实：在西门")
    assert api("GET", "/api/incidents?review=true")[1]["items"] == []
    assert "人工确定位置" in api("GET", f"/cases/{unsure['id']}", accept="text/html")[1]


def test_the_case_page_offers_the_point_to_those_who_may_set_it(api):
    _, unsure = report(api, UNSURE)
    path = f"/cases/{unsure['id']}"
    _, page = api("GET", path, accept="text/html")
    assert 'id="review"' in page and 'action="/cases/{}/location"'.format(unsure["id"]) in page
    assert 'id="relocate"' not in api("GET", path, who="viewer", accept="text/html")[1]
    client, https = api.client, "https://localhost"
    with client.session_transaction(base_url=https) as session:
        session["user"] = "管理员"
    page = client.get(path, base_url=https).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"lon": "117.105", "lat": "39.115", "note": "", "version": "1", "csrf_token": token}
    referer = {"Referer": f"{https}{path}"}
    refused = client.post(path + "/location", data={**form, "csrf_token": "x"}, headers=referer, base_url=https)
    assert refused.status_code == 400 and api.store.get_incident(unsure["id"])["geocode_review"] is True
    bad = client.post(path + "/location", data={**form, "lat": "north"}, headers=referer, base_url=https)
    assert bad.status_code == 400 and "lat" in bad.get_data(as_text=True)
    done = client.post(path + "/location", data=form, headers=referer, base_url=https)
    assert done.status_code == 303 and done.headers["Location"].endswith(path)
    moved = api.store.get_incident(unsure["id"])
    assert (moved["geocode_review"], moved["grid_code"], moved["history"][-1]["action"]) == (False, A_GRID, "relocate")
    assert 'id="relocate"' not in client.get(path, base_url=https).get_data(as_text=True)


REFUSALS = [
    ({"lon": 117.105, "lat": 39.115}, "viewer", 403, "may not do this"),  # the route's access rule
    ({"lon": 117.105, "lat": 39.115}, "worker", 404, "no incident"),  # another grid's case
    ({"lon": 116.5, "lat": 39.5}, "admin", 422, "lies in no grid"),
    ({"lon": 117.105, "lat": 39.115, "version": 7}, "admin", 409, "changed by someone else"),
    ({"lon": 117.105}, "admin", 400, "give lon and lat"),
    ({"lon": "east", "lat": 39.115}, "admin", 400, "lon"),
    ({"lon": 117.105, "lat": 39.115, "where": "x"}, "admin", 400, "unknown field(s) where"),
    ({"lon": 39.115, "lat": 117.105}, "admin", 422, "latitude, longitude"),  # well-formed, unusable
    ({"lon": 117.105, "lat": 39.115, "note": 5}, "admin", 400, "note must be text"),
]


def test_setting_the_point_refuses_what_it_must_and_changes_nothing(api):
    _, unsure = report(api, UNSURE)
    for body, who, status, message in REFUSALS:
        answer_status, error = api("POST", f"/api/incidents/{unsure['id']}/location", body, who=who)
        assert answer_status == status and message in error["error"], (body, who, error)
    stored = api.store.get_incident(unsure["id"])
    assert (stored["geocode_review"], stored["version"], len(stored["history"])) == (True, 1, 1)
    assert api("POST", "/api/incidents/999/location", {"lon": 117.105, "lat": 39.115})[0] == 404
    api("POST", f"/api/incidents/{unsure['id']}/actions", {"action": "reject", "note": "重复"})
    status, error = api("POST", f"/api/incidents/{unsure['id']}/location", {"lon": 117.105, "lat": 39.115})
    assert status == 409 and "rejected" in error["error"]


def test_the_openapi_document_describes_the_new_routes(api):
    _, document = api("GET", "/api/openapi.json")
    geocode_get = document["paths"]["/api/geocode"]["get"]
    assert {p["name"] for p in geocode_get["parameters"]} == {"address", "locate"}
    assert "candidates" in document["components"]["schemas"]["Geocode"]["properties"]
    assert "/api/incidents/{incident_id}/location" in document["paths"]
    names = {p["name"] for p in document["paths"]["/api/incidents"]["get"]["parameters"]}
    assert "review" in names


# ---- the map's filter panel in a real Chromium -----------------------------------------------------------------
@pytest.mark.browser
def test_the_map_filter_shows_only_the_cases_to_check(browser, live_server, database_url, tmp_path):  # noqa: F811
    try:
        assets.require_installed()
    except assets.AssetsMissing as exc:
        skip_or_fail(exc.message)
    store = Store.open(database_url)
    load_two_districts(store, tmp_path)
    admin = people.add_user(store, "admin1", role="admin", password="admin-pass-1")
    store.close()
    app = create_app(Settings(database_url=database_url, secret_key="x"))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {admin}"}
    for address in (SURE, UNSURE, "天津市南开区幸福里3栋"):
        client.post("/api/incidents", json={**REPORT, "address": address}, headers=headers)
    app.extensions["gridmap"].store.close()
    watched = Watched(browser, live_server, f"review-filter-{database_url.split(':')[0]}")
    try:
        watched.sign_in("admin1", "admin-pass-1")
        assert watched.page.evaluate("window.__gridmap.caseCount()") == 3
        watched.page.select_option("#gm-review", "1")
        watched.page.wait_for_function(READY)
        assert watched.page.evaluate("window.__gridmap.caseCount()") == 1
        assert re.match(r"^1 ", watched.page.locator("#gm-count").inner_text())
        watched.screenshot("review-filter")
        watched.assert_clean()
    finally:
        watched.close()
