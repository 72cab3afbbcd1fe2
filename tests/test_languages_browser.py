"""Every page in a real browser, in Chinese and in English, with nothing of the other language on it; and a phone.

Pages are found in the app's url_map (every GET route outside /api and /static that answers HTML), so a page
another change adds is walked as soon as it is merged; a route with a path argument this module cannot fill
fails the walk by name. Text is read from the DOM (text, titles, placeholders, labels, SVG titles), leaving
out what is marked translate="no" (names, addresses, the language switch), <code> and the proper names of
the fixture. Every request that does not go to 127.0.0.1 is blocked and fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from conftest import skip_or_fail
from test_maps import GRID_A, load_map_data

from gridmap import assets, drafts
from gridmap.config import PROJECT_DIR, Settings
from gridmap.store import Store

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "languages"
PHONE = {"width": 390, "height": 844}
DRAFT = "plan-b"
# Values for path arguments, by argument name; a new route with another argument must add its own here.
SAMPLES = {
    "incident_id": "{incident}",
    "name": DRAFT,
    "code": GRID_A,
    "collection_id": "grids",
    "feature_id": GRID_A,
}
QUERIES = {"/compare": f"?a=main&b={DRAFT}"}
SKIP = {"/logout", "/favicon.ico"}
# Latin words a Chinese page may show: file formats and units.
# MB is written so on Chinese pages too ("每张不超过 10 MB"), as km and m² are.
LATIN_OK = {"JSON", "CSV", "Excel", "XLSX", "km", "m²", "MB", "WGS", "Shift"}  # formats, units, a key
READY = (
    "(window.__mapReady === true || window.__dashboardReady === true || window.__editorReady === true"
    " || !!window.__dashboardError || !!window.__mapError || document.body.dataset.static === 'yes')"
)
STATIC_FLAG = (
    "document.body.dataset.static = document.querySelector('.folium-map, #dashboard-config, #editor') ? 'no' : 'yes'"
)
VIEW = (
    "(() => { const b = window.__gridmap.map.getBounds();"
    " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
)
TEXT_OF_PAGE = """() => {
  const parts = [document.title];
  const walk = (node) => {
    if (node.nodeType === 3) { parts.push(node.textContent); return; }
    if (node.nodeType !== 1) return;
    if (node.getAttribute("translate") === "no") return;
    const tag = node.tagName.toLowerCase();
    if (["script", "style", "noscript", "code", "datalist"].includes(tag)) return;
    for (const attr of ["title", "placeholder", "aria-label", "alt"]) {
      const value = node.getAttribute(attr);
      if (value) parts.push(value);
    }
    if (tag === "input" && ["submit", "button"].includes(node.type)) parts.push(node.value);
    for (const child of node.childNodes) walk(child);
  };
  walk(document.body);
  return parts.join("\\n");
}"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, spatialite_template):
    """A live server on SpatiaLite (language does not depend on the backend) with cases, users and a draft."""
    import waitress.server

    from gridmap.web import create_app

    try:
        assets.require_installed()
    except assets.AssetsMissing as exc:
        skip_or_fail(exc.message)
    folder = tmp_path_factory.mktemp("languages")
    shutil.copy(spatialite_template, folder / "db.sqlite")
    url = f"sqlite:///{folder / 'db.sqlite'}"
    store = Store.open(url)
    load_map_data(store, folder)
    drafts.create_draft(store, DRAFT, source="current")
    names = {a["name"] for a in store.area_attributes("main")}
    incidents = store.list_incidents(limit=None)
    names |= {i["title"] for i in incidents} | {"admin1", "worker1", "main", DRAFT}
    incident = incidents[0]["id"]
    store.close()
    app = create_app(Settings(database_url=url, secret_key="test-secret"))
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    yield {"base": base, "app": app, "names": names, "incident": incident}
    server.close()
    thread.join(timeout=5)
    app.extensions["gridmap"].store.close()


def page_paths(app, incident: int) -> list[str]:
    """Every HTML page of the app: GET routes outside /api, /static and Open311 (XML/JSON for programs), path
    arguments filled from SAMPLES."""
    paths, unknown = [], []
    for rule in app.url_map.iter_rules():
        if (
            "GET" not in (rule.methods or ())
            or rule.rule.startswith(("/api/", "/static", "/open311/"))
            or rule.rule in SKIP
        ):
            continue
        if rule.rule.endswith("/export"):
            continue  # downloads: tested in test_exports.py
        missing = [a for a in rule.arguments if a not in SAMPLES]
        if missing:
            unknown.append(f"{rule.rule} ({', '.join(missing)})")
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = re.sub(rf"<(?:[a-z]+:)?{argument}>", SAMPLES[argument].format(incident=incident), path)
        paths.append(path + QUERIES.get(rule.rule, ""))
    assert not unknown, f"add sample values to SAMPLES for: {unknown}"
    return [*sorted(paths), "/0000", "/cases/99999999"]


class Tab:
    """A signed-in browser tab that records requests leaving 127.0.0.1 and script errors."""

    def __init__(self, browser, base: str, *, viewport=None, user=("admin1", "admin-pass-1")) -> None:
        self.base = base
        phone = viewport is not None and viewport["width"] < 700
        self.context = browser.new_context(
            viewport=viewport or {"width": 1280, "height": 900}, locale="zh-CN", has_touch=phone, is_mobile=phone
        )
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", self._console)
        if user:
            self.page.goto(f"{base}/login")
            self.page.fill("input[name=name]", user[0])
            self.page.fill("input[name=password]", user[1])
            self.page.click("button[type=submit]")
            self.page.wait_for_load_state()

    def _console(self, message) -> None:
        # The walk opens two pages that answer 404 on purpose; the browser logs each.
        if message.type == "error" and "404" not in message.text:
            self.errors.append(message.text)

    def _route(self, route) -> None:
        if route.request.url.startswith(self.base + "/"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.evaluate(STATIC_FLAG)
        self.page.wait_for_function(READY, timeout=20_000)
        if path.startswith("/map"):
            self.page.evaluate(f"window.__gridmap.openPanel({GRID_A!r})")
            self.page.wait_for_selector("#gm-panel.gm-open table")

    def text(self) -> str:
        return self.page.evaluate(TEXT_OF_PAGE)


def foreign_text(text: str, lang: str, names: set[str]) -> list[str]:
    """Return what in `text` belongs to the other language (proper names of the fixture removed)."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    if lang == "en":
        return re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+", text)
    words = re.findall(r"[A-Za-z][A-Za-z²]+", text)
    return [w for w in words if w not in LATIN_OK]


def test_the_foreign_text_check_can_fail():
    assert foreign_text("案件 Cases", "zh", set()) == ["Cases"]
    assert foreign_text("Cases 案件", "en", set()) == ["案件"]
    assert foreign_text("南开区 Cases", "en", {"南开区"}) == []
    assert foreign_text("导出 Excel", "zh", set()) == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_is_in_one_language(browser, site, lang):
    tab = Tab(browser, site["base"])
    found: dict[str, list[str]] = {}
    try:
        tab.open(f"/?lang={lang}")  # the session remembers the choice for every page after
        for path in page_paths(site["app"], site["incident"]):
            tab.open(path)
            bad = foreign_text(tab.text(), lang, site["names"])
            if bad:
                found[path] = sorted(set(bad))[:12]
        anonymous = Tab(browser, site["base"], user=None)
        try:
            anonymous.open(f"/login?lang={lang}")
            bad = foreign_text(anonymous.text(), lang, site["names"])
            if bad:
                found["/login (signed out)"] = sorted(set(bad))
        finally:
            anonymous.context.close()
    finally:
        tab.context.close()
    assert found == {}
    assert tab.outside == [] and tab.errors == []


def test_the_language_choice_is_remembered_and_switched_from_the_header(browser, site):
    tab = Tab(browser, site["base"])
    try:
        tab.open("/cases?lang=en")
        assert tab.page.inner_text("h1") == "Cases"
        tab.open("/dashboard")
        assert tab.page.inner_text("h1").startswith("Dashboard")
        tab.page.click(".lang-switch a[hreflang=zh]")
        tab.page.wait_for_function(READY)
        assert tab.page.inner_text("h1").startswith("指挥看板")
        assert tab.page.evaluate("document.documentElement.lang") == "zh-CN"
    finally:
        tab.context.close()


# ---- a phone in the field -------------------------------------------------------------------------------------
def test_a_phone_gets_every_page_without_sideways_scrolling(browser, site):
    tab = Tab(browser, site["base"], viewport=PHONE)
    wide = {}
    try:
        for path in page_paths(site["app"], site["incident"]):
            tab.open(path)
            width = tab.page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"] + 1:
                wide[path] = width
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.open("/cases")
        tab.page.screenshot(path=str(ARTIFACTS / "phone-cases.png"), full_page=True)
    finally:
        tab.context.close()
    assert wide == {}


def test_the_case_list_is_cards_on_a_phone_with_touch_sized_controls(browser, site):
    tab = Tab(browser, site["base"], viewport=PHONE)
    try:
        tab.open("/cases")
        cards = tab.page.locator("tr.case")
        assert cards.count() >= 5
        first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
        assert first["width"] > 300, "a card spans the screen"
        assert second["y"] >= first["y"] + first["height"], "cards stack, one under another"
        assert tab.page.locator("tr.head").is_hidden()
        for selector in ("form.filters select", "form.filters button", "header nav a"):
            for box in (e.bounding_box() for e in tab.page.locator(selector).all()):
                assert box["height"] >= 44, f"{selector} is {box['height']} px high"
        tab.open("/cases?lang=zh")
        label = tab.page.evaluate(
            "getComputedStyle(document.querySelector('tr.case td[data-label]:not(.title)'), '::before').content"
        )
        assert "：" in label
    finally:
        tab.context.close()


def test_the_map_on_a_phone_opens_on_the_workers_grid_with_folded_filters(browser, site):
    tab = Tab(browser, site["base"], viewport=PHONE, user=("worker1", "worker-pass-1"))
    try:
        tab.page.goto(site["base"] + "/map")
        tab.page.wait_for_function("window.__mapReady === true", timeout=20_000)
        assert tab.page.locator("#gm-controls").is_hidden(), "the filters start folded on a phone"
        toggle = tab.page.locator("#gm-filters-toggle")
        assert toggle.bounding_box()["height"] >= 44
        toggle.click()
        assert tab.page.locator("#gm-controls").is_visible()
        toggle.click()
        assert tab.page.locator("#gm-controls").is_hidden()
        view = tab.page.evaluate(VIEW)
        store = Store.open(site["app"].extensions["gridmap"].settings.database_url)
        try:
            grids = store.areas("main", "grid")
        finally:
            store.close()
        mine = grids[grids.code == GRID_A].geometry.iloc[0]
        whole = grids.geometry.union_all()
        west, south, east, north = view
        assert west <= mine.bounds[0] and east >= mine.bounds[2] and south <= mine.bounds[1] and north >= mine.bounds[3]
        centre = ((west + east) / 2, (south + north) / 2)
        # Grid A is the district's north-west quarter: the view is centred on it, not on the district.
        assert abs(centre[0] - mine.centroid.x) < 0.001 and abs(centre[1] - mine.centroid.y) < 0.001
        assert abs(centre[0] - whole.centroid.x) > 0.003
        tab.page.screenshot(path=str(ARTIFACTS / "phone-map.png"))
        for box in (e.bounding_box() for e in tab.page.locator(".leaflet-control-zoom a").all()):
            assert box["height"] >= 44
    finally:
        tab.context.close()
    assert tab.outside == []
