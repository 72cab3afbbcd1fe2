"""Access rules: every route of the app × every role × own area / another area × anonymous.

The routes come from the app's url_map, so a route added later is checked without touching this file; it
must declare its access rule (web/access) and, if it takes a path parameter not known here, gets a sample
value in SAMPLES. Every answer is also checked against the OpenAPI document (status documented, body valid).
"""

from __future__ import annotations

import json

import pytest
from flask import Flask
from geodata import GRIDS, load_district
from openapi_check import OpenAPIChecker

from gridmap import cases, people
from gridmap.config import Settings
from gridmap.web import access, create_app

NW, SW, NE, SE = (g["code"] for g in GRIDS)
WEST, EAST = "120104001001", "120104001002"
ROLES = ("admin", "planner", "viewer", "supervisor", "grid_worker")
SCOPED = ("supervisor", "grid_worker")
SECRET = "OTHER-AREA-秘密"  # in the case of the other area: no scoped answer may contain it
SECRET_PHONE = "13900009999"
POINTS = {"own": (117.105, 39.115), "other": (117.115, 39.115)}  # in NW (worker's grid, west) and NE (east)
DRAFT = "plan"


@pytest.fixture
def world(database_url, tmp_path):
    """An app with the tiny district, a draft, one case in each area, and a token per role."""
    app = create_app(Settings(database_url=database_url, secret_key="test"))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    store.copy_edition("main", DRAFT)
    tokens = {
        "admin": people.add_user(store, "管理员", role="admin"),
        "planner": people.add_user(store, "规划员", role="planner"),
        "viewer": people.add_user(store, "观察员", role="viewer"),
        "supervisor": people.add_user(store, "书记", role="supervisor", areas=[WEST]),
        "grid_worker": people.add_user(store, "网格员", role="grid_worker", areas=[NW]),
    }
    admin = people.User("管理员", "admin")
    own = cases.report(store, user=admin, title="井盖缺失", category_code="0403", lon=117.105, lat=39.115)
    other = cases.report(
        store,
        user=admin,
        title=SECRET,
        description=SECRET,
        reporter_name="赵其他",
        reporter_phone=SECRET_PHONE,
        category_code="0403",
        lon=117.115,
        lat=39.115,
    )
    yield app, tokens, {"own": own["id"], "other": other["id"]}
    store.close()


def samples(ids: dict) -> dict[str, dict[str, object]]:
    """Values for each path parameter name, for the own and the other area."""
    return {
        "incident_id": {"own": ids["own"], "other": ids["other"]},
        "code": {"own": NW, "other": NE},
        "name": {"own": DRAFT, "other": DRAFT},
        "filename": {"own": "nothing.css", "other": "nothing.css"},
        "attachment_id": {"own": 1, "other": 2},  # no photos here: 404 for everyone who may ask
        "collection_id": {"own": "grids", "other": "incidents"},
        "feature_id": {"own": NW, "other": str(ids["other"])},
        "fmt": {"own": "json", "other": "xml"},
        "edition": {"own": DRAFT, "other": DRAFT},
    }


def body_for(endpoint: str, area: str, role: str) -> dict | None:
    """A plausible body for the routes that take one (the access rule is checked whatever the body)."""
    lon, lat = POINTS[area]
    return {
        "case.create_incident": {"title": "积水", "category": "0404", "lon": lon, "lat": lat},
        "case.act_on_incident": {"action": "supervise"},
        "plans.create_draft": {"name": f"draft-{role}-{area}"},
        "plans.save_grid": {"version": 1, "name": "改名"},
        "plans.add_grid": {
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[117.2, 39.2], [117.21, 39.2], [117.21, 39.21], [117.2, 39.2]]],
            }
        },
        "plans.split_grid": {"line": {"type": "LineString", "coordinates": [[117.0, 39.0], [117.0, 39.01]]}},
        "plans.merge_grids": {"codes": [NW, SW]},
        "plans.move_vertex": {"from": [117.0, 39.0], "to": [117.0, 39.001]},
        "plans.activate": {"valid_from": "2030-01-01"},
    }.get(endpoint)


def routes(app: Flask):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def call(app, client, rule, method: str, area: str, ids: dict, token: str | None, role: str):
    values = samples(ids)
    missing = [a for a in rule.arguments if a not in values]
    assert not missing, f"{rule.rule}: add a sample value for {missing} to tests/test_access.py SAMPLES"
    path = app.url_map.bind("localhost").build(rule.endpoint, {a: values[a][area] for a in rule.arguments})
    if rule.endpoint == "plans.delete_grid":
        path += "?version=1"
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    body = body_for(rule.endpoint, area, role)
    if method in ("POST", "PUT", "DELETE") and body is None and rule.rule.startswith("/api/"):
        body = {}
    response = client.open(
        path,
        method=method,
        headers=headers,
        data=None if body is None else json.dumps(body),
        content_type="application/json",
    )
    return path, response


def test_every_route_declares_its_access_rule(database_url):
    app = create_app(Settings(database_url=database_url, secret_key="test"))
    assert access.undeclared(app) == []
    app.extensions["gridmap"].store.close()


def test_a_route_that_declares_nothing_is_refused_to_everyone(database_url):
    app = create_app(Settings(database_url=database_url, secret_key="test"))
    store = app.extensions["gridmap"].store
    token = people.add_user(store, "管理员", role="admin")
    app.add_url_rule("/api/forgotten", "forgotten", lambda: {"secret": 1})
    assert access.undeclared(app) == ["forgotten"]
    client = app.test_client()
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        answer = client.get("/api/forgotten", headers=headers)
        assert answer.status_code == 403 and "declares no access rule" in answer.get_json()["error"]
    store.close()


def test_every_route_as_every_role_in_its_own_and_another_area(world):
    app, tokens, ids = world
    client = app.test_client()
    checker = OpenAPIChecker(client.get("/api/openapi.json").get_json())
    problems: list[str] = []
    seen = 0
    for rule, method in routes(app):
        declared = access.rule_of(app, rule.endpoint)
        for who in (None, *ROLES):
            for area in ("own", "other"):
                path, response = call(app, client, rule, method, area, ids, tokens.get(who), who or "anonymous")
                seen += 1
                status = response.status_code
                where = f"{method} {path} as {who or 'anonymous'} ({area})"
                text = response.get_data().decode("utf-8", "replace")  # downloads are XLSX
                if status >= 500:
                    problems.append(f"{where}: {status} {text[:200]}")
                if who is None:
                    if not declared.allows_anonymous("none"):
                        machine = rule.rule.startswith(access.API_PATHS)
                        expected = (401,) if machine else (302, 400)  # 400: CSRF on a form
                        if status not in expected:
                            problems.append(f"{where}: {status}, expected {expected}")
                        if status == 302 and "/login" not in response.headers["Location"]:
                            problems.append(f"{where}: redirected to {response.headers['Location']}")
                elif not declared.allows_role(who):
                    if status != 403:
                        problems.append(f"{where}: {status}, but the rule allows only {declared.roles}")
                elif status in (401, 403) and not _domain_refusal(rule.endpoint, who, area, text):
                    problems.append(f"{where}: {status} {text[:150]}")
                if who in SCOPED and area == "other" and (SECRET in text or SECRET_PHONE in text):
                    problems.append(f"{where}: shows the other area's case")
                own_case = who in SCOPED and area == "own" and status == 200 and "incident_id" in rule.arguments
                own_case = own_case and not rule.rule.endswith("/attachments")  # the photo list names no case
                if own_case and "井盖缺失" not in text:
                    problems.append(f"{where}: does not show the caller's own case")
                if rule.rule.startswith("/api/") and status not in (302,):
                    body = response.get_json(silent=True)
                    problems += [
                        f"{where}: {p}" for p in checker.problems(method, path, status, body, response.content_type)
                    ]
                if status == 405 and "Allow" not in response.headers:
                    problems.append(f"{where}: 405 without Allow")
    assert seen > 200
    assert problems == [], "\n".join(problems[:60])


def _domain_refusal(endpoint: str, role: str, area: str, text: str) -> bool:
    """The refusals the case rules make inside a route's access rule (a viewer may not act on cases, …)."""
    if endpoint in ("case.create_incident",) and role in ("viewer", "planner"):
        return "may not report" in text
    if endpoint == "case.create_incident" and role in SCOPED and area == "other":
        return "only inside their own area" in text
    if endpoint in ("case.act_on_incident", "case.case_action") and role in ("viewer", "planner", "grid_worker"):
        return "may not" in text  # only admins and supervisors supervise; viewers and planners never act
    if endpoint == "auth.login":
        # A failed sign-in (no form fields sent) is 401, said in the page's language.
        return "wrong user name or password" in text or "用户名或密码错误" in text
    return False


# ---- drafts, anonymous callers, audit cut to scope ------------------------------------------------------------
def _get(client, path: str, token: str | None = None):
    headers = {"Accept": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    return client.get(path, headers=headers)


@pytest.mark.parametrize(
    ("role", "sees"),
    [("admin", True), ("planner", True), ("supervisor", True), ("viewer", False), ("grid_worker", False)],
)
def test_drafts_are_invisible_to_those_who_may_not_see_them(world, role, sees):
    app, tokens, _ids = world
    client = app.test_client()
    token = tokens[role]
    names = [e["name"] for e in _get(client, "/api/editions", token).get_json()]
    assert (DRAFT in names) is sees and "main" in names
    for path in (
        f"/api/locate?lon=117.105&lat=39.115&edition={DRAFT}",
        f"/api/map/grids?edition={DRAFT}",
        f"/api/map/grids/{NW}?edition={DRAFT}",
        f"/api/audit?edition={DRAFT}",
        f"/api/compare?a=main&b={DRAFT}",
    ):
        answer = _get(client, path, token)
        assert (answer.status_code == 200) is sees, (path, answer.status_code)
        if not sees:
            assert answer.status_code == 404 and DRAFT not in answer.get_json()["error"].split("(editions:")[-1]
    page = client.get("/", headers={"Authorization": f"Bearer {token}"}).get_data(as_text=True)
    assert (f'<td translate="no">{DRAFT}</td>' in page) is sees


def test_anonymous_callers_see_only_the_sign_in_page_by_default(world):
    app, _tokens, _ids = world
    client = app.test_client()
    start = client.get("/")
    assert start.status_code == 302 and start.headers["Location"].startswith("/login")
    assert client.get("/login").status_code == 200
    for path in ("/api/editions", "/api/locate?lon=117.105&lat=39.115"):
        answer = _get(client, path)
        assert answer.status_code == 401 and "sign in" in answer.get_json()["error"]
    document = client.get("/api/openapi.json").get_json()
    assert document["paths"]["/api/editions"]["get"]["security"] == [{"bearer": []}, {"session": []}]
    assert document["paths"]["/api/health"]["get"]["security"] == []


def test_the_anonymous_access_setting_shows_names_and_locate_only(database_url, tmp_path):
    app = create_app(Settings(database_url=database_url, secret_key="test", anonymous_access="names"))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    store.copy_edition("main", DRAFT)
    client = app.test_client()
    page = client.get("/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "百合第1网格" in text and NW in text
    assert "户 households" not in text and ">420<" not in text and ">1100<" not in text
    assert f'<td translate="no">{DRAFT}</td>' not in text
    assert [e["name"] for e in _get(client, "/api/editions").get_json()] == ["main"]
    located = _get(client, "/api/locate?lon=117.105&lat=39.115")
    assert located.status_code == 200 and located.get_json()["grid_code"] == NW
    assert _get(client, f"/api/locate?lon=117.105&lat=39.115&edition={DRAFT}").status_code == 404
    assert _get(client, "/api/incidents").status_code == 401 and _get(client, "/api/audit").status_code == 401
    security = client.get("/api/openapi.json").get_json()["paths"]["/api/locate"]["get"]["security"]
    assert security[0] == {}
    store.close()


def test_audit_and_compare_are_cut_to_a_scoped_callers_area(world):
    app, tokens, _ids = world
    client = app.test_client()
    full = _get(client, "/api/audit", tokens["admin"]).get_json()
    assert {g["code"] for g in full["balance"]["grids"]} == {NW, SW, NE, SE}
    assert full["balance"]["totals"]["open_cases"] == 2
    worker = _get(client, "/api/audit", tokens["grid_worker"]).get_json()
    assert [g["code"] for g in worker["balance"]["grids"]] == [NW]
    assert worker["balance"]["totals"]["open_cases"] == 1 and worker["balance"]["totals"]["grids"] == 1
    assert worker["balance"]["communities"] == [] and worker["summary"]["scope"] == [NW]
    supervisor = _get(client, "/api/audit", tokens["supervisor"]).get_json()
    assert {g["code"] for g in supervisor["balance"]["grids"]} == {NW, SW}
    assert [c["code"] for c in supervisor["balance"]["communities"]] == [WEST]
    page = client.get("/audit", headers={"Authorization": f"Bearer {tokens['grid_worker']}"}).get_data(as_text=True)
    assert NE not in page.split("<svg")[0] or "open" not in page  # the balance table lists the worker's grid only
    compared = _get(client, f"/api/compare?a=main&b={DRAFT}", tokens["supervisor"]).get_json()
    assert {g["code"] for g in compared["grids"]} == {NW, SW}
    assert {g["code"] for g in compared["balance"]["b"]["grids"]} == {NW, SW}
    assert _get(client, "/api/compare?a=main&b=main", tokens["grid_worker"]).status_code == 200


def test_a_grid_worker_reports_only_inside_their_grids(world):
    app, tokens, _ids = world
    client = app.test_client()
    headers = {"Authorization": f"Bearer {tokens['grid_worker']}"}
    body = {"title": "积水", "category": "0404"}
    inside = client.post("/api/incidents", json={**body, "lon": 117.105, "lat": 39.115}, headers=headers)
    assert inside.status_code == 201 and inside.get_json()["grid_code"] == NW
    outside = client.post("/api/incidents", json={**body, "lon": 117.115, "lat": 39.115}, headers=headers)
    assert outside.status_code == 403
    assert "only inside their own area" in outside.get_json()["error"] and NE in outside.get_json()["error"]
