"""The command dashboard: its figures (equal to /api/stats for the same filters), its periods and scope, and the
page in a real Chromium on both backends (numbers on the page equal /api/stats, filters in the URL, the wall
screen, print, screenshots in both languages under test-artifacts/dashboard/)."""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from pathlib import Path

import pytest
from conftest import skip_or_fail
from hypothesis import given, settings
from hypothesis import strategies as st
from test_maps import GRID_A, GRID_D, load_map_data

from gridmap import assets, cases, casestats, dashboard, people
from gridmap.config import PROJECT_DIR, Settings
from gridmap.errors import InvalidInput
from gridmap.store import Store
from gridmap.web import create_app

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "dashboard"
NOW = dt.datetime(2026, 11, 18, 15, 0)  # a Wednesday
HEADLINE = ("received", "closed", "resolution_rate", "on_time_rate", "overdue", "median_hours_to_close")


# ---- periods and figures -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("today", "2026-11-18", "2026-11-19"),
        ("week", "2026-11-16", "2026-11-19"),
        ("month", "2026-11-01", "2026-11-19"),
        ("30d", "2026-10-20", "2026-11-19"),
    ],
)
def test_named_periods_end_today(period, first, last):
    start, end = dashboard.period_window(period, today=NOW.date())
    assert (start.date().isoformat(), end.date().isoformat()) == (first, last)


def test_a_chosen_range_includes_both_days_and_is_checked():
    start, end = dashboard.period_window("range", today=NOW.date(), start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 5))
    assert (start, end) == (dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 6))
    with pytest.raises(InvalidInput, match="to is before from"):
        dashboard.period_window("range", today=NOW.date(), start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 4))
    with pytest.raises(InvalidInput, match="needs both from and to"):
        dashboard.period_window("range", today=NOW.date(), start=dt.date(2026, 1, 5))
    with pytest.raises(InvalidInput, match="period must be one of"):
        dashboard.period_window("year", today=NOW.date())


def fact(n, *, status="reported", reported, closed=None, deadline=None, grid=GRID_A, category="0101"):
    return {
        "id": n, "status": status, "grid_code": grid, "community_code": grid[:12], "street_code": grid[:9],
        "category_code": category, "source": "patrol", "assignee": None, "rework_count": 0,
        "reported_at": reported, "closed_at": closed, "deadline": deadline,
    }  # fmt: skip


def test_figures_count_the_period_and_the_daily_chart_counts_flows():
    day = dt.timedelta(days=1)
    rows = [
        fact(1, status="closed", reported=NOW - 3 * day, closed=NOW - 2 * day, deadline=NOW - day),  # on time, 24 h
        fact(2, status="closed", reported=NOW - 40 * day, closed=NOW - day, deadline=NOW - 39 * day),  # late, old
        fact(3, reported=NOW - day, deadline=NOW - dt.timedelta(hours=1), grid=GRID_D, category="0102"),  # overdue
        fact(4, reported=NOW - dt.timedelta(hours=2), deadline=NOW + 5 * day),
        fact(5, status="rejected", reported=NOW - 2 * day),
    ]
    start, end = dashboard.period_window("30d", today=NOW.date())
    result = dashboard.build(rows, start=start, end=end, now=NOW, names={GRID_A[:9]: "长虹街道"})
    cohort = [r for r in rows if start <= r["reported_at"] < end]
    assert result["headline"] == casestats.indicators(cohort, now=NOW)
    assert result["headline"]["received"] == 4 and result["headline"]["closed"] == 1
    flows = zip(result["daily"]["received"], result["daily"]["closed"], strict=True)
    daily = dict(zip(result["daily"]["days"], flows, strict=True))
    assert daily["2026-11-15"] == (1, 0)
    assert daily["2026-11-16"] == (1, 1)  # case 5 received, case 1 closed
    assert daily["2026-11-17"] == (1, 1)  # case 3 received, case 2 (reported in October) closed
    assert daily["2026-11-18"] == (1, 0)
    assert result["close_hours"]["counts"][3] == 1 and sum(result["close_hours"]["counts"]) == 1  # 24 h: 1–3 d
    assert result["lights"]["red"] == 1 and result["lights"]["green"] + result["lights"]["yellow"] == 1
    assert result["grids"] == {GRID_A: 1, GRID_D: 1}
    assert [s["overdue"] for s in result["streets"]] == [1] and result["streets"][0]["name"] == "长虹街道"
    assert result["communities"][0]["code"] == GRID_D[:12], "the community with an overdue case ranks first"
    assert [c["code"] for c in result["categories"]] == ["0101", "0102"]


def test_select_keeps_the_scope_and_the_filters():
    rows = [fact(1, reported=NOW), fact(2, reported=NOW, grid=GRID_D), fact(3, reported=NOW, category="0102")]
    worker = people.User("w", "grid_worker", (GRID_A,))
    assert [r["id"] for r in dashboard.select(rows, user=worker)] == [1, 3]
    admin = people.User("a", "admin")
    assert [r["id"] for r in dashboard.select(rows, user=admin, category_code="0102")] == [3]
    assert [r["id"] for r in dashboard.select(rows, user=admin, community_code=GRID_D[:12])] == [2]


def test_filter_choices_follow_the_scope():
    areas = [
        {"code": "S1", "name": "甲街道", "level": "street", "parent_code": None},
        {"code": "C1", "name": "甲社区", "level": "community", "parent_code": "S1"},
        {"code": "C2", "name": "乙社区", "level": "community", "parent_code": "S1"},
        {"code": "G1", "name": "网格1", "level": "grid", "parent_code": "C1"},
    ]
    worker = dashboard.filter_choices(areas, user=people.User("w", "grid_worker", ("G1",)))
    assert [c["code"] for c in worker["communities"]] == ["C1"] and [s["code"] for s in worker["streets"]] == ["S1"]
    street = dashboard.filter_choices(areas, user=people.User("s", "supervisor", ("S1",)))
    assert [c["code"] for c in street["communities"]] == ["C1", "C2"]


# ---- the JSON equals /api/stats -------------------------------------------------------------------------------
@pytest.fixture
def api(database_url, tmp_path):
    store = Store.open(database_url)
    tokens = load_map_data(store, tmp_path)
    store.close()
    app = create_app(Settings(database_url=database_url, secret_key="k"))
    client = app.test_client()

    def get(path, who="admin"):
        response = client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
        return response.status_code, response.get_json()

    yield get
    app.extensions["gridmap"].store.close()


@pytest.mark.parametrize(
    "query",
    [
        "period=30d",
        "period=today",
        "period=range&from=2025-01-01&to=2027-12-31&street=120104001",
        "period=range&from=2025-01-01&to=2027-12-31&community=120104001002&source=hotline",
        "period=month&category=0201",
    ],
)
def test_the_dashboard_equals_api_stats_for_the_same_filters(api, query):
    status, board = api(f"/api/dashboard?{query}")
    assert status == 200, board
    args = dict(urllib.parse.parse_qsl(query))
    args.pop("period")
    args["from"], args["to"] = board["from"][:10], (dt.date.fromisoformat(board["to"][:10]) - dt.timedelta(days=1))
    status, stats = api(f"/api/stats?{urllib.parse.urlencode(args)}")
    assert status == 200
    assert {k: board["headline"][k] for k in HEADLINE} == {k: stats["total"][k] for k in HEADLINE}
    # The charts count by the same rules: weeks and streets as /api/stats?by=week and by=street.
    _, weeks = api(f"/api/stats?{urllib.parse.urlencode({**args, 'by': 'week'})}")
    assert board["weekly"]["weeks"] == [g["key"] for g in weeks["groups"]]
    assert board["weekly"]["resolution_rate"] == [g["resolution_rate"] for g in weeks["groups"]]
    assert board["weekly"]["on_time_rate"] == [g["on_time_rate"] for g in weeks["groups"]]
    _, streets = api(f"/api/stats?{urllib.parse.urlencode({**args, 'by': 'street'})}")
    expected = {g["key"]: (g["open"], g["overdue"]) for g in streets["groups"] if g["key"]}
    assert {s["code"]: (s["open"], s["overdue"]) for s in board["streets"]} == expected


def test_a_grid_worker_sees_only_their_grid(api):
    _, admin = api("/api/dashboard?period=range&from=2025-01-01&to=2027-12-31")
    _, worker = api("/api/dashboard?period=range&from=2025-01-01&to=2027-12-31", who="worker")
    assert set(worker["grids"]) == {GRID_A} and set(admin["grids"]) > {GRID_A}
    assert worker["headline"]["received"] == 3 < admin["headline"]["received"]


def test_bad_dashboard_requests_say_what_is_wrong(api):
    status, body = api("/api/dashboard?period=year")
    assert status == 400 and "period must be one of" in body["error"]
    status, body = api("/api/dashboard?from=2026-02-30&to=2026-03-01")
    assert status == 400 and "from='2026-02-30' is not a date" in body["error"]
    status, body = api("/api/dashboard?category=9999")
    assert status == 400 and "unknown category" in body["error"]


# ---- the page in a real browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def tab(browser, live_server, database_url, tmp_path):
    """A signed-in admin's tab on the tiny district; requests leaving 127.0.0.1 are blocked and recorded."""
    try:
        assets.require_installed()
    except assets.AssetsMissing as exc:
        skip_or_fail(exc.message)
    store = Store.open(database_url)
    load_map_data(store, tmp_path)
    admin = people.find_user(store, "admin1")
    for title, category in (("街头散发广告", "0204"), ("违章搭建", "0301"), ("楼道堆物", "0102")):
        done = cases.report(store, user=admin, title=title, category_code=category, lon=117.1021, lat=39.1181)
        for action in ("register", "dispatch", "start", "resolve", "close"):
            done = cases.act(store, done["id"], user=admin, action=action, assignee="张三")
    store.close()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    outside, errors = [], []

    def guard(route):
        if route.request.url.startswith(live_server + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/login")
    page.fill("input[name=name]", "admin1")
    page.fill("input[name=password]", "admin-pass-1")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.base, page.outside, page.errors = live_server, outside, errors
    yield page
    context.close()
    assert outside == [] and errors == []


READY = "window.__dashboardReady === true"


def tiles(page) -> dict:
    values = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#tiles .tile')]"
        ".map((t) => [t.dataset.key, t.querySelector('.value').dataset.value]))"
    )
    return {k: (None if v == "" else float(v)) for k, v in values.items()}


def stats_in_page(page, query: str) -> dict:
    total = page.evaluate(
        "(q) => fetch('/api/stats?' + q, {headers: {Accept: 'application/json'}}).then((r) => r.json())", query
    )["total"]
    return {k: None if total[k] is None else float(total[k]) for k in HEADLINE}


def test_the_numbers_on_the_page_equal_api_stats(tab):
    tab.goto(tab.base + "/dashboard")
    tab.wait_for_function(READY, timeout=30_000)
    today = dt.date.today()
    window = f"from={(today - dt.timedelta(days=29)).isoformat()}&to={today.isoformat()}"
    assert tiles(tab) == stats_in_page(tab, window)
    # Six of the seven fixture cases were reported in the last 30 days, plus three closed today.
    assert tiles(tab)["received"] == 9 and tiles(tab)["closed"] == 4
    shown = tab.inner_text("#tiles .tile[data-key=resolution_rate] .value")
    assert shown == f"{100 * 4 / 9:.1f}%"
    # Every chart is drawn as SVG, the map too (one path per grid at least).
    for chart in ("daily", "weekly", "lights", "streets", "communities", "categories", "hours", "map"):
        assert tab.locator(f"#chart-{chart} svg").count() == 1, chart
    assert tab.locator("#chart-map svg path").count() >= 4
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-zh.png"), full_page=True)
    tab.goto(tab.base + "/dashboard?lang=en")
    tab.wait_for_function(READY, timeout=30_000)
    assert tab.inner_text("h1").startswith("Dashboard")
    assert tab.inner_text("#tiles .tile[data-key=received] .label") == "Received"
    tab.screenshot(path=str(ARTIFACTS / "dashboard-en.png"), full_page=True)


def test_filters_live_in_the_url_and_the_numbers_follow_them(tab):
    tab.goto(tab.base + "/dashboard?period=range&from=2025-01-01&to=2027-12-31&community=120104001002")
    tab.wait_for_function(READY, timeout=30_000)
    assert tab.input_value("#f-community") == "120104001002"
    query = "from=2025-01-01&to=2027-12-31&community=120104001002"
    assert tiles(tab) == stats_in_page(tab, query)
    tab.evaluate("window.__dashboardReady = false")
    tab.select_option("#f-source", "hotline")
    tab.wait_for_function(READY, timeout=30_000)
    assert "source=hotline" in tab.url and "community=120104001002" in tab.url
    assert tiles(tab) == stats_in_page(tab, query + "&source=hotline")
    assert tiles(tab)["received"] == 1
    # The shared link opens the same view.
    tab.goto(tab.url)
    tab.wait_for_function(READY, timeout=30_000)
    assert tiles(tab)["received"] == 1
    export = tab.get_attribute("#export-xlsx", "href")
    assert "source=hotline" in export and "community=120104001002" in export and "format=xlsx" in export


def test_the_wall_screen_refreshes_itself_and_print_hides_the_controls(tab):
    tab.goto(tab.base + "/dashboard?screen=1&refresh=5")
    tab.wait_for_function(READY, timeout=30_000)
    assert tab.evaluate("document.body.classList.contains('screen')")
    assert tab.locator("header").is_hidden() and tab.locator("#filters").is_hidden()
    assert tab.inner_text("#clock") != ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "dashboard-screen-zh.png"))
    with tab.expect_request(lambda request: "/api/dashboard" in request.url, timeout=15_000):
        pass  # the next fetch of the figures comes by itself, without a reload
    assert tab.evaluate("performance.getEntriesByType('navigation').length") == 1
    tab.goto(tab.base + "/dashboard")
    tab.wait_for_function(READY, timeout=30_000)
    tab.emulate_media(media="print")
    assert tab.locator("#filters").is_hidden() and tab.locator(".tools").is_hidden()
    assert tab.locator("#tiles").is_visible() and tab.locator("#chart-daily svg").is_visible()
    tab.emulate_media(media="screen")
    assert tab.locator("#filters").is_visible()


# ---- traffic lights of many cases at once equal the one-case rule ------------------------------------------------

MOMENTS = st.datetimes(min_value=dt.datetime(2026, 9, 20), max_value=dt.datetime(2026, 11, 10))


@settings(max_examples=60, deadline=None)
@given(
    cases_=st.lists(st.tuples(MOMENTS, st.one_of(st.none(), MOMENTS)), min_size=1, max_size=30),
    now=MOMENTS,
    holidays=st.lists(st.dates(min_value=dt.date(2026, 9, 20), max_value=dt.date(2026, 11, 10)), max_size=6),
    workdays=st.lists(st.dates(min_value=dt.date(2026, 9, 20), max_value=dt.date(2026, 11, 10)), max_size=3),
)
def test_traffic_lights_of_many_cases_equal_the_rule_for_one(cases_, now, holidays, workdays):
    calendar = cases.WorkingCalendar(holidays=holidays, workdays=workdays)
    reported = [r for r, _ in cases_]
    deadlines = [d for _, d in cases_]
    expected = [
        None if d is None else cases.traffic_light(reported_at=r, deadline=d, now=now, calendar=calendar)
        for r, d in cases_
    ]
    assert cases.traffic_lights_many(reported, deadlines, now=now, calendar=calendar) == expected
    starts = cases._microseconds(reported)
    ends = cases._microseconds(d or now for d in deadlines)
    many = calendar.working_time_us_many(starts, ends).tolist()
    one = [calendar.working_time(r, d or now) // dt.timedelta(microseconds=1) for r, d in cases_]
    assert many == one
