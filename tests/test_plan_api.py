"""The draft-plan API over real HTTP on both databases: roles, versions, bad geometry, split and merge."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from geodata import GRIDS, load_district
from shapely.geometry import box, mapping

from gridmap import people
from gridmap.store import Store

NW, SW, NE, SE = (g["code"] for g in GRIDS)


@pytest.fixture
def api(live_server, database_url, tmp_path):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    tokens = {
        "planner": people.add_user(store, "规划员甲", role="planner"),
        "planner2": people.add_user(store, "规划员乙", role="planner"),
        "worker": people.add_user(store, "网格员", role="grid_worker", areas=[NW]),
        "supervisor": people.add_user(store, "社区书记", role="supervisor", areas=["120104001002"]),
    }
    store.close()

    def call(method: str, path: str, body=None, who: str | None = "planner"):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{live_server}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if who:
            request.add_header("Authorization", f"Bearer {tokens[who]}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return call


def test_a_planner_creates_a_draft_and_edits_it_with_versions(api):
    status, created = api("POST", "/api/editions", {"name": "plan-2027", "from": "current"})
    assert status == 201 and created["status"] == "draft"
    status, grids = api("GET", "/api/editions/plan-2027/grids")
    assert status == 200 and len(grids["features"]) == 4
    shrunk = mapping(box(117.10, 39.11, 117.109, 39.12))
    status, saved = api("PUT", f"/api/editions/plan-2027/grids/{NW}", {"geometry": shrunk, "version": 1})
    assert status == 200 and saved["properties"]["version"] == 2
    # A second planner still holding version 1 is refused and told what is there now.
    status, refused = api("PUT", f"/api/editions/plan-2027/grids/{NW}", {"households": 5, "version": 1}, who="planner2")
    assert status == 409
    assert refused["current"]["properties"]["version"] == 2
    assert refused["current"]["geometry"]["coordinates"][0][0][0][0] == pytest.approx(117.10)


def test_bad_geometry_is_422_and_current_editions_are_409(api):
    api("POST", "/api/editions", {"name": "plan-2027"})
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[117.1, 39.1], [117.11, 39.11], [117.11, 39.1], [117.1, 39.11], [117.1, 39.1]]],
    }
    status, answer = api("PUT", f"/api/editions/plan-2027/grids/{NW}", {"geometry": bowtie, "version": 1})
    assert status == 422 and "Self-intersection" in answer["error"]  # well-formed GeoJSON, unusable polygon
    status, answer = api("PUT", f"/api/editions/main/grids/{NW}", {"households": 1, "version": 1})
    assert status == 409 and "only drafts" in answer["error"]
    status, answer = api("PUT", "/api/editions/plan-2027/grids/999", {"households": 1, "version": 1})
    assert status == 404


def test_split_and_merge_over_http(api):
    api("POST", "/api/editions", {"name": "plan-2027"})
    line = {"type": "LineString", "coordinates": [[117.105, 39.125], [117.105, 39.105]]}
    status, halves = api("POST", f"/api/editions/plan-2027/grids/{NW}/split", {"line": line})
    assert status == 200
    assert [f["properties"]["code"] for f in halves["features"]] == ["120104001001003", "120104001001004"]
    status, answer = api("POST", "/api/editions/plan-2027/merge", {"codes": [NE, SW]})
    assert status == 422 and "different communities" in answer["error"]
    status, merged = api("POST", "/api/editions/plan-2027/merge", {"codes": ["120104001001003", "120104001001004"]})
    assert status == 200 and merged["properties"]["code"] == "120104001001005"


def test_moving_a_shared_vertex_over_http(api):
    api("POST", "/api/editions", {"name": "plan-2027"})
    status, changed = api(
        "POST", "/api/editions/plan-2027/move-vertex", {"from": [117.11, 39.11], "to": [117.111, 39.111]}
    )
    assert status == 200 and len(changed["features"]) == 4


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "expected"),
    [
        (None, "POST", "/api/editions", {"name": "x"}, 401),
        ("worker", "POST", "/api/editions", {"name": "x"}, 403),
        ("supervisor", "POST", "/api/editions", {"name": "x"}, 403),
        ("worker", "GET", "/api/editions/main/grids", None, 403),
        ("supervisor", "PUT", f"/api/editions/main/grids/{NE}", {"version": 1, "households": 1}, 403),
    ],
)
def test_only_planners_and_admins_edit(api, who, method, path, body, expected):
    status, _ = api(method, path, body, who=who)
    assert status == expected


def test_a_supervisor_sees_the_drafts_grids_of_their_area_only(api):
    api("POST", "/api/editions", {"name": "plan-2027"})
    status, grids = api("GET", "/api/editions/plan-2027/grids", who="supervisor")
    assert status == 200
    assert sorted(f["properties"]["code"] for f in grids["features"]) == [NE, SE]
