"""The cases JSON API and pages on both databases: the loop, bad input, permissions, paging, OpenAPI, i18n."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from geodata import GRIDS, load_district

from gridmap import cases, people
from gridmap.config import Settings
from gridmap.store import Store
from gridmap.web import case_views, create_app, i18n

NW, SW, NE, SE = (g["code"] for g in GRIDS)
WEST = "120104001001"
NW_POINT = {"lon": 117.105, "lat": 39.115}
NE_POINT = {"lon": 117.115, "lat": 39.115}
GOOD = {
    "title": "暴露垃圾",
    "description": "路边垃圾",
    "category": "0102",
    "reporter_name": "王小明",
    "reporter_phone": "13812341234",
    "source": "patrol",
    **NW_POINT,
}


def _tokens(store) -> dict[str, str]:
    return {
        "admin": people.add_user(store, "管理员", role="admin"),
        "supervisor": people.add_user(store, "书记", role="supervisor", areas=[WEST]),
        "worker": people.add_user(store, "网格员", role="grid_worker", areas=[NW]),
        "viewer": people.add_user(store, "观察员", role="viewer"),
    }


@pytest.fixture
def api(database_url, tmp_path):
    """Call the app in-process (Flask test client) as one of the users; returns (status, JSON, headers)."""
    app = create_app(Settings(database_url=database_url, secret_key="test-secret"))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    tokens = _tokens(store)
    client = app.test_client()

    def call(method: str, path: str, body=None, who: str | None = "admin", raw: bytes | None = None):
        headers = {"Accept": "application/json"}
        if who:
            headers["Authorization"] = f"Bearer {tokens[who]}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        response = client.open(path, method=method, data=data, headers=headers, content_type="application/json")
        return response.status_code, response.get_json(silent=True), response.headers

    call.app, call.store, call.tokens, call.client = app, store, tokens, client
    yield call
    store.close()


def _count(api) -> tuple[int, int]:
    counts = api.store.table_counts()
    return counts["incidents"], counts["incident_history"]


# ---- over a real server ----------------------------------------------------------------------------------
def test_the_full_loop_through_the_http_api(live_server, database_url, tmp_path):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    tokens = _tokens(store)
    store.close()

    def call(method, path, body=None, who="admin"):
        request = urllib.request.Request(
            live_server + path, data=None if body is None else json.dumps(body).encode(), method=method
        )
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {tokens[who]}")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, created = call("POST", "/api/incidents", GOOD, who="worker")
    assert status == 201 and created["grid_code"] == NW and created["status"] == "reported"
    assert created["light"] == "green" and created["deadline"] is not None
    path = f"/api/incidents/{created['id']}/actions"
    for who, body, expected in [
        ("supervisor", {"action": "register"}, "registered"),
        ("supervisor", {"action": "dispatch", "assignee": "网格员"}, "dispatched"),
        ("worker", {"action": "start"}, "in_progress"),
        ("worker", {"action": "resolve", "note": "已清理"}, "resolved"),
        ("supervisor", {"action": "rework", "note": "未清理干净"}, "in_progress"),
        ("worker", {"action": "resolve", "note": "清理完毕"}, "resolved"),
        ("supervisor", {"action": "close", "note": "核查通过"}, "closed"),
    ]:
        status, answer = call("POST", path, body, who=who)
        assert (status, answer["status"]) == (200, expected), answer
    status, closed = call("GET", f"/api/incidents/{created['id']}", who="worker")
    assert status == 200 and [h["action"] for h in closed["history"]] == [
        "report", "register", "dispatch", "start", "resolve", "rework", "resolve", "close",
    ]  # fmt: skip
    assert closed["light"] is None and closed["actions"] == []
    status, refused = call("POST", path, {"action": "close"}, who="supervisor")
    assert status == 409 and "cannot close a case that is closed" in refused["error"]
    status, figures = call("GET", "/api/stats?by=grid", who="supervisor")
    assert status == 200 and figures["total"]["closed"] == 1 and figures["total"]["rework_rate"] == 100.0
    assert figures["groups"][0]["key"] == NW


# ---- reporting --------------------------------------------------------------------------------------------
def test_report_answers_201_with_id_grid_and_status(api):
    status, created, headers = api("POST", "/api/incidents", GOOD, who="worker")
    assert status == 201 and headers["Location"] == f"/api/incidents/{created['id']}"
    assert (created["grid_code"], created["community_code"], created["status"]) == (NW, WEST, "reported")
    assert created["category_name"] == "暴露垃圾" and created["reporter_phone"] == "138****1234"
    assert created["history"][0]["actor"] == "网格员"


def test_report_by_address_is_geocoded(api):
    api.store.replace_gazetteer([{"kind": "estate", "name": "翠澜新村", "lon": 117.115, "lat": 39.115, "aliases": ""}])
    body = {k: v for k, v in GOOD.items() if k not in ("lon", "lat")} | {"address": "翠澜新村"}
    status, created, _ = api("POST", "/api/incidents", body)
    assert status == 201 and created["grid_code"] == NE and created["geocode_level"] == "estate"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"category": "9999"}, "unknown category"),
        ({"category": 102}, "category is required"),
        ({"lon": None, "lat": None}, "give the place"),
        ({"title": "长" * 201}, "at most 200"),
        ({"description": "x" * 5001}, "at most 5000"),
        ({"title": None}, "title is required"),
        ({"title": ["a"]}, "title must be text"),
        ({"lat": "north"}, "is not a number"),
        ({"lon": 200}, "lon"),
        ({"unexpected": 1}, "unknown field"),
    ],
)
def test_bad_reports_get_a_clear_400_and_write_nothing(api, change, message):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    status, answer, _ = api("POST", "/api/incidents", body)
    assert status == 400 and message in answer["error"], answer
    assert _count(api) == (0, 0)


def test_well_formed_reports_the_data_refuses_are_422_and_write_nothing(api):
    body = {k: v for k, v in GOOD.items() if k not in ("lon", "lat")}
    status, answer, _ = api("POST", "/api/incidents", body | {"address": "火星路1号"})
    assert status == 422 and "was not found" in answer["error"], answer
    status, answer, _ = api("POST", "/api/incidents", body | {"lon": 117.2, "lat": 39.2})
    assert status == 422 and "lies in no grid" in answer["error"], answer
    assert _count(api) == (0, 0)


def test_a_body_that_is_not_json_is_400_and_anonymous_is_401(api):
    status, answer, _ = api("POST", "/api/incidents", raw=b"title=x")
    assert status == 400 and "JSON object" in answer["error"]
    status, answer, _ = api("POST", "/api/incidents", GOOD, who=None)
    assert status == 401
    status, _answer, _ = api("GET", "/api/incidents", who=None)
    assert status == 401
    assert _count(api) == (0, 0)


# ---- workflow and permissions over the API ----------------------------------------------------------------
def test_illegal_steps_are_409_and_wrong_roles_403(api):
    _, created, _ = api("POST", "/api/incidents", GOOD, who="worker")
    path = f"/api/incidents/{created['id']}/actions"
    status, answer, _ = api("POST", path, {"action": "close"})
    assert (
        status == 409 and answer["error"] == "cannot close a case that is reported; close needs a case that is resolved"
    )
    assert answer["current"] == {"status": "reported", "version": 1}
    status, answer, _ = api("POST", path, {"action": "register"}, who="worker")
    assert status == 403 and "grid_worker may not register" in answer["error"]
    status, answer, _ = api("POST", path, {"action": "register"}, who="viewer")
    assert status == 403
    status, answer, _ = api("POST", path, {"action": "explode"})
    assert status == 400 and "action must be one of" in answer["error"]
    status, answer, _ = api("POST", path, {"action": "register", "version": 7})
    assert status == 409 and "version" in answer["error"]
    status, answer, _ = api("POST", path, {"action": "register", "version": "1"})
    assert status == 400
    status, answer, _ = api("POST", path, {"action": "reject"})
    assert status == 400 and "needs a note" in answer["error"]
    assert api.store.get_incident(created["id"])["version"] == 1 and _count(api) == (1, 1)
    status, answer, _ = api("POST", path, {"action": "reject", "note": "重复上报"}, who="supervisor")
    assert status == 200 and answer["status"] == "rejected"


def test_another_grids_case_is_404_to_a_grid_worker_and_phones_are_masked(api):
    _, mine, _ = api("POST", "/api/incidents", GOOD)
    _, other, _ = api("POST", "/api/incidents", {**GOOD, **NE_POINT})
    status, answer, _ = api("GET", f"/api/incidents/{other['id']}", who="worker")
    assert status == 404 and answer["error"] == f"no incident {other['id']}"
    status, _answer, _ = api("POST", f"/api/incidents/{other['id']}/actions", {"action": "start"}, who="worker")
    assert status == 404
    status, _answer, _ = api("GET", f"/api/incidents/{other['id']}", who="supervisor")
    assert status == 404
    status, listed, _ = api("GET", "/api/incidents", who="worker")
    assert [i["id"] for i in listed["items"]] == [mine["id"]]
    phones = {who: api("GET", f"/api/incidents/{mine['id']}", who=who)[1]["reporter_phone"] for who in api.tokens}
    assert phones == {
        "admin": "13812341234",
        "supervisor": "13812341234",
        "worker": "138****1234",
        "viewer": "138****1234",
    }
    status, _answer, _ = api("POST", "/api/incidents", GOOD, who="viewer")
    assert status == 403


# ---- listing --------------------------------------------------------------------------------------------
def test_paging_follows_next_links_to_the_end(api):
    ids = [api("POST", "/api/incidents", {**GOOD, "title": f"第{i}件"})[1]["id"] for i in range(5)]
    seen, url, pages = [], "/api/incidents?limit=2&grid=" + NW, 0
    while url:
        status, page, _ = api("GET", url)
        assert status == 200 and page["count"] == len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        url, pages = page["next"], pages + 1
        assert url is None or "grid=" + NW in url
    assert seen == ids and pages == 3


def test_filters_and_their_errors(api):
    _, first, _ = api("POST", "/api/incidents", GOOD)
    _, second, _ = api("POST", "/api/incidents", {**GOOD, **NE_POINT, "category": "1101"})
    api("POST", f"/api/incidents/{first['id']}/actions", {"action": "register"})

    def ids(query):
        status, page, _ = api("GET", "/api/incidents?" + query)
        assert status == 200, page
        return [i["id"] for i in page["items"]]

    assert ids("status=registered") == [first["id"]]
    assert ids("status=reported,registered") == [first["id"], second["id"]]
    assert ids("category=1101") == [second["id"]]
    assert ids(f"community={WEST}") == [first["id"]]
    assert ids("bbox=117.11,39.11,117.12,39.12") == [second["id"]]
    assert ids("overdue=true") == []
    assert ids("from=2000-01-01&to=2999-12-31") == [first["id"], second["id"]]
    assert ids("to=2000-01-01") == []
    for query, message in [
        ("status=lost", "status must be one of"),
        ("category=0000", "unknown category"),
        ("from=yesterday", "is not a day"),
        ("bbox=1,2,3", "bbox must be four decimal numbers"),
        ("limit=0", "limit must be between"),
        ("limit=many", "not a whole number"),
    ]:
        status, answer, _ = api("GET", "/api/incidents?" + query)
        assert status == 400 and message in answer["error"], query


def test_overdue_filter_and_light(api):
    _, created, _ = api("POST", "/api/incidents", GOOD)
    incident = api.store.get_incident(created["id"])
    past = incident["reported_at"].replace(year=incident["reported_at"].year - 1)
    api.store.change_incident(
        created["id"],
        version=1,
        changes={"deadline": past, "reported_at": past.replace(month=1, day=1)},
        history={"at": past, "actor": "test", "action": "extend", "from_status": "reported", "to_status": "reported"},
    )
    status, page, _ = api("GET", "/api/incidents?overdue=1")
    assert status == 200 and [i["id"] for i in page["items"]] == [created["id"]]
    assert page["items"][0]["light"] == "red" and page["items"][0]["overdue"] is True


def test_categories_and_stats_endpoints(api):
    status, table, _ = api("GET", "/api/categories", who=None)
    assert status == 200 and {"code": "0102", "deadline": "4工作小时"}.items() <= table[1].items()
    status, figures, _ = api("GET", "/api/stats?by=worker")
    assert status == 200 and figures["total"]["received"] == 0
    status, answer, _ = api("GET", "/api/stats?by=planet")
    assert status == 400 and "by must be one of" in answer["error"]
    status, _answer, _ = api("GET", "/api/stats", who=None)
    assert status == 401


# ---- OpenAPI ----------------------------------------------------------------------------------------------
def test_openapi_covers_every_api_route(api):
    status, document, _ = api("GET", "/api/openapi.json", who=None)
    assert status == 200 and document["openapi"].startswith("3.")
    for rule in api.app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert method.lower() in document["paths"].get(path, {}), (path, method)
    for needed in ("/api/locate", "/api/editions", "/api/health", "/api/incidents/{incident_id}/actions"):
        assert needed in document["paths"]
    assert document["paths"]["/api/locate"]["get"]["parameters"][0]["name"] == "lon"
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document)))
    assert refs and refs <= set(document["components"]["schemas"])


# ---- pages ------------------------------------------------------------------------------------------------
def _page(api, path: str, who: str = "admin") -> tuple[int, str]:
    response = api.client.get(path, headers={"Authorization": f"Bearer {api.tokens[who]}"})
    return response.status_code, response.get_data(as_text=True)


def test_pages_are_chinese_by_default_with_an_english_switch(api):
    api("POST", "/api/incidents", GOOD)
    status, body = _page(api, "/cases")
    assert status == 200 and "<h1>案件</h1>" in body and "已上报" in body and "English" in body
    status, body = _page(api, "/cases?lang=en")
    assert status == 200 and "<h1>Cases</h1>" in body and "Reported" in body and "已上报" not in body


def test_the_language_choice_is_kept_in_the_session(api):
    client = api.client
    with client.session_transaction(base_url="https://localhost") as session:
        session["user"] = "管理员"
    assert "<h1>Cases</h1>" in client.get("/cases?lang=en", base_url="https://localhost").get_data(as_text=True)
    assert "<h1>Cases</h1>" in client.get("/cases", base_url="https://localhost").get_data(as_text=True)
    assert "<h1>案件</h1>" in client.get("/cases?lang=zh", base_url="https://localhost").get_data(as_text=True)


def test_script_in_any_text_is_stored_as_text_and_shown_escaped(api):
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    status, created, _ = api("POST", "/api/incidents", {**GOOD, "title": payload, "description": payload})
    assert status == 201 and created["title"] == payload
    api("POST", f"/api/incidents/{created['id']}/actions", {"action": "reject", "note": payload})
    for path in (f"/cases/{created['id']}", "/cases"):
        status, body = _page(api, path)
        assert status == 200 and "<script>alert" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


def test_case_page_shows_history_and_the_users_buttons(api):
    _, created, _ = api("POST", "/api/incidents", GOOD)
    status, body = _page(api, f"/cases/{created['id']}", who="supervisor")
    assert status == 200 and 'data-action="register"' in body and 'data-action="reject"' in body
    assert 'data-action="start"' not in body and body.count('class="step"') == 1
    status, body = _page(api, f"/cases/{created['id']}", who="viewer")
    assert status == 200 and "data-action=" not in body and "138****1234" in body
    status, body = _page(api, f"/cases/{created['id']}", who="worker")
    assert status == 200 and re.findall(r'data-action="(\w+)"', body) == ["escalate"]  # no work before dispatch


def test_the_action_form_needs_csrf_with_a_session_and_then_works(api):
    _, created, _ = api("POST", "/api/incidents", GOOD)
    client, https = api.client, "https://localhost"
    with client.session_transaction(base_url=https) as session:
        session["user"] = "书记"
    path = f"/cases/{created['id']}/actions"
    refused = client.post(path, data={"action": "register"}, base_url=https)
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    page = client.get(f"/cases/{created['id']}", base_url=https).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    # Over https Flask-WTF also checks that the form came from this site (the Referer).
    referer = {"Referer": f"{https}/cases/{created['id']}"}
    form = {"action": "register", "version": "1", "csrf_token": token}
    done = client.post(path, data=form, headers=referer, base_url=https)
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/cases/{created['id']}")
    assert api.store.get_incident(created["id"])["status"] == "registered"
    stale = client.post(path, data={**form, "action": "dispatch", "assignee": "x"}, headers=referer, base_url=https)
    assert stale.status_code == 409 and "第 1 版" in stale.get_data(as_text=True)  # the page speaks Chinese


def test_pages_need_a_user(api):
    response = api.client.get("/cases")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_every_message_of_the_case_pages_has_a_chinese_translation():
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    root = Path(case_views.__file__).resolve().parents[2]
    wanted = set()
    for template in ("cases.html", "case.html"):
        wanted |= {m[1] for m in extract_from_file("jinja2", root / "templates" / template)}
    keywords = {"_l": None, "_": None}
    wanted |= {m[1] for m in extract_from_file("python", case_views.__file__, keywords=keywords)}
    assert len(wanted) > 40
    with (i18n.TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    missing = sorted(m for m in wanted if not (catalogue.get(m) and catalogue.get(m).string))
    assert missing == []


# ---- in a real browser ------------------------------------------------------------------------------------
@pytest.mark.browser
def test_a_supervisor_works_a_case_in_a_real_browser(live_server, database_url, tmp_path):
    import shutil

    from conftest import skip_or_fail

    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        skip_or_fail("Debian's chromium is not installed (make test installs it)")
    store = Store.open(database_url)
    load_district(store, tmp_path)
    people.add_user(store, "书记", role="supervisor", areas=[WEST], password="correct horse battery")
    payload = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    supervisor = people.find_user(store, "书记")
    incident = cases.report(store, user=supervisor, title=payload, category_code="0102", **NW_POINT)
    store.close()
    dialogs, errors = [], []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        tab = browser.new_page()
        tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{live_server}/login?next=/cases")
        tab.fill("input[name=name]", "书记")
        tab.fill("input[name=password]", "correct horse battery")
        tab.click("button[type=submit]")
        tab.wait_for_selector("#cases")
        assert tab.inner_text("h1") == "案件"
        tab.click(f"tr.case[data-id='{incident['id']}'] td:nth-child(2) a")
        tab.wait_for_selector("#history")
        assert tab.text_content("#title") == f"#{incident['id']} {payload}"
        assert tab.evaluate("window.__pwned") is None and dialogs == []
        tab.click("form[data-action=register] button")
        tab.wait_for_selector("#status[data-status=registered]")
        assert tab.inner_text("#status").startswith("已立案")
        assert tab.locator("tr.step").count() == 2
        tab.click("text=English")
        tab.wait_for_selector("text=Registered")
        assert "Dispatch" in tab.inner_text("form[data-action=dispatch] button")
        browser.close()
    assert errors == []
