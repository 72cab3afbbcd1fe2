"""The case map in a real headless Chromium (Debian's chromium, driven by Playwright) against a real server.

Every request that does not go to 127.0.0.1 is blocked and recorded, and each test asserts there were none;
console errors and uncaught exceptions fail the test. Screenshots go to test-artifacts/maps/.
Waiting is on the page's own `window.__mapReady` flag, never on timers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import skip_or_fail
from test_maps import GRID_A, GRID_D, OPEN_LOCATED, XSS, load_map_data

from gridmap import assets
from gridmap.config import PROJECT_DIR
from gridmap.store import Store

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "maps"
READY = "window.__mapReady === true"


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; never a downloaded browser."""
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox cannot start as root, which is how CI containers run.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def site(live_server, database_url, tmp_path):
    """The live server with the tiny district, seven cases, an admin and a grid worker of grid A."""
    try:
        assets.require_installed()
    except assets.AssetsMissing as exc:
        skip_or_fail(exc.message)
    store = Store.open(database_url)
    load_map_data(store, tmp_path)
    grid_count = store.area_counts(store.current_edition().name)["grid"]
    store.close()
    return live_server, grid_count


class Watched:
    """A page with everything that must not happen recorded: outside requests, console errors, dialogs."""

    def __init__(self, browser, base: str, name: str) -> None:
        self.base = base
        self.name = name
        self.context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)

    def _route(self, route) -> None:
        if route.request.url.startswith(self.base + "/"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sign_in(self, name: str, password: str) -> None:
        self.page.goto(self.base + "/login?next=/map")
        self.page.fill("input[name=name]", name)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/map$"))
        self.page.wait_for_function(READY, timeout=30_000)

    def screen_point(self, lon: float, lat: float) -> tuple[float, float]:
        """Return the page pixel of a lon/lat on the map (Leaflet takes lat first)."""
        x, y = self.page.evaluate(
            """([lon, lat]) => {
                const map = window.__gridmap.map, box = map.getContainer().getBoundingClientRect();
                const p = map.latLngToContainerPoint([lat, lon]);
                return [box.left + p.x, box.top + p.y];
            }""",
            [lon, lat],
        )
        return x, y

    def grid_label(self, code: str) -> tuple[float, float]:
        lon, lat = self.page.evaluate(
            """(code) => {
                let found = null;
                window.__gridmap.gridLayer.eachLayer((l) => { if (l.feature.properties.code === code) found = l; });
                return found.feature.properties.label;
            }""",
            code,
        )
        return lon, lat

    def screenshot(self, label: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"))

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests left 127.0.0.1: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.dialogs == [], f"dialogs fired: {self.dialogs}"
        assert self.page.evaluate("window.__mapError || null") is None

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, site, request):
    base, _grid_count = site
    backend = request.node.callspec.params.get("database_url", "db")
    opened = Watched(browser, base, f"{request.node.originalname}-{backend}")
    yield opened
    opened.close()


def test_anonymous_visitors_are_sent_to_the_login_page(watched):
    watched.page.goto(watched.base + "/map")
    assert "/login" in watched.page.url
    assert watched.page.locator("input[name=password]").count() == 1
    assert watched.outside == []


def test_the_map_draws_every_grid_and_case_without_the_internet(watched, site):
    _base, grid_count = site
    watched.sign_in("admin1", "admin-pass-1")
    assert watched.page.evaluate("window.__gridmap.drawnGridCount()") == grid_count == 4
    assert watched.page.evaluate("window.__gridmap.caseCount()") == OPEN_LOCATED
    assert watched.page.locator("#gm-count").inner_text().startswith(f"{OPEN_LOCATED} ")
    assert watched.page.locator(".gm-legend").is_visible()
    watched.screenshot("ready")
    watched.assert_clean()


def test_clicking_a_grid_opens_its_panel(watched):
    watched.sign_in("admin1", "admin-pass-1")
    watched.page.mouse.click(*watched.screen_point(*watched.grid_label(GRID_A)))
    panel = watched.page.locator("#gm-panel.gm-open")
    panel.wait_for()
    assert panel.get_attribute("data-code") == GRID_A
    text = panel.inner_text()
    assert GRID_A in text and "百合第1网格" in text and "420" in text and "worker1" in text
    watched.screenshot("panel")
    watched.assert_clean()


def test_a_status_filter_refetches_and_changes_the_visible_cases(watched):
    watched.sign_in("admin1", "admin-pass-1")
    requests_before = watched.page.evaluate("performance.getEntriesByType('resource').length")
    watched.page.select_option("#gm-status", "registered")
    watched.page.wait_for_function(READY)
    assert watched.page.evaluate("window.__gridmap.caseCount()") == 1
    assert watched.page.locator("#gm-count").inner_text().startswith("1 ")
    fetched = watched.page.evaluate(
        "performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('status=registered'))"
    )
    assert len(fetched) == 1 and watched.page.evaluate("performance.getEntriesByType('resource').length") > (
        requests_before
    )
    watched.page.select_option("#gm-status", "")
    watched.page.wait_for_function(READY)
    assert watched.page.evaluate("window.__gridmap.caseCount()") == OPEN_LOCATED
    watched.assert_clean()


def test_a_case_title_with_html_shows_as_text_and_runs_nothing(watched):
    watched.sign_in("admin1", "admin-pass-1")
    lon, lat = 117.1023, 39.1122  # the case titled XSS (see test_maps.case_rows)
    watched.page.evaluate(
        "([lon, lat]) => window.__gridmap.map.setView([lat, lon], 18, { animate: false })", [lon, lat]
    )
    watched.page.mouse.click(*watched.screen_point(lon, lat))
    title = watched.page.locator(".leaflet-popup-content .gm-popup-title")
    title.wait_for()
    assert title.inner_text() == XSS
    assert watched.page.locator(".leaflet-popup-content img").count() == 0
    assert watched.page.locator("img[src=x]").count() == 0
    watched.screenshot("xss-popup")
    watched.assert_clean()


def test_search_measure_and_heat_map_controls(watched):
    watched.sign_in("admin1", "admin-pass-1")
    watched.page.fill("#gm-search", GRID_D)
    watched.page.press("#gm-search", "Enter")
    watched.page.locator("#gm-panel.gm-open").wait_for()
    assert watched.page.locator("#gm-panel").get_attribute("data-code") == GRID_D
    watched.page.select_option("#gm-measure", "households")
    assert "户数" in watched.page.locator(".gm-legend").inner_text()  # the page is Chinese by default
    watched.page.hover(".leaflet-control-layers")
    watched.page.get_by_text("热力图").click()
    assert watched.page.locator("canvas.leaflet-heatmap-layer").count() == 1
    watched.screenshot("heat")
    watched.assert_clean()


def test_a_grid_worker_sees_only_their_grids_cases(watched):
    watched.sign_in("worker1", "worker-pass-1")
    assert watched.page.evaluate("window.__gridmap.drawnGridCount()") == 4  # outlines are not personal
    assert watched.page.evaluate("window.__gridmap.caseCount()") == 3  # the three cases of grid A
    # The map opens on the worker's own grid; show the whole district to reach another grid.
    watched.page.evaluate("window.__gridmap.map.fitBounds(window.__gridmap.gridLayer.getBounds(), {animate: false})")
    watched.page.mouse.click(*watched.screen_point(*watched.grid_label(GRID_D)))
    panel = watched.page.locator("#gm-panel.gm-open")
    panel.wait_for()
    assert panel.get_attribute("data-code") == GRID_D
    assert "案件列表" not in panel.inner_text()  # no case-list link for a grid that is not theirs
    assert "null" not in panel.inner_text() and "—" in panel.inner_text()
    watched.screenshot("worker")
    watched.assert_clean()


def test_the_exported_file_works_with_no_server(browser, site, database_url, tmp_path):
    from click.testing import CliRunner

    from gridmap.cli import main

    out = tmp_path / "map.html"
    result = CliRunner().invoke(main, ["map", str(out), "--db", database_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Nothing is served at all: every http(s) request is blocked, only the file itself loads.
    page = Watched(browser, "file://", "export")
    try:
        page.page.goto(out.as_uri())
        page.page.wait_for_function(READY, timeout=30_000)
        assert page.page.evaluate("window.__gridmap.drawnGridCount()") == 4
        assert page.page.evaluate("window.__gridmap.caseCount()") == OPEN_LOCATED
        page.page.select_option("#gm-source", "hotline")
        page.page.wait_for_function(READY)
        assert page.page.evaluate("window.__gridmap.caseCount()") == 2
        page.page.mouse.click(*page.screen_point(*page.grid_label(GRID_A)))
        page.page.locator("#gm-panel.gm-open").wait_for()
        assert GRID_A in page.page.locator("#gm-panel").inner_text()
        page.screenshot("standalone")
        page.assert_clean()
    finally:
        page.close()
