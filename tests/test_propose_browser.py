"""Proposals and buildings in a real headless Chromium against a real server: the editor's propose action, and
the map's buildings layer. Requests leaving 127.0.0.1 are blocked and recorded; console errors fail the test."""

from __future__ import annotations

import shutil

import pytest
from buildingdata import HEIGHT, LAT0, LON0, STRIP, load, strips
from test_map_browser import browser, site, watched  # noqa: F401 - fixtures shared with the map tests

from gridmap import drafts, people
from gridmap.store import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAYOUT = [[40] * 10, [40] * 10, [42] * 10, [70] * 10]  # 400 | 400 | 420 | 700: the east end is too big


@pytest.fixture
def editor(live_server, database_url, tmp_path):
    from conftest import skip_or_fail

    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        skip_or_fail("Debian's chromium is not installed (make test installs it)")
    store = Store.open(database_url)
    grids, community, buildings = strips(LAYOUT)
    load(store, tmp_path, grids, community, buildings)
    drafts.create_draft(store, "plan-b")
    people.add_user(store, "planner", role="planner", password="correct horse battery")
    store.close()
    outside, errors = [], []
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = chromium.new_context(viewport={"width": 1280, "height": 800})

        def guard(route):
            if route.request.url.startswith(live_server):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        tab = context.new_page()
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{live_server}/login?next=/plans/plan-b/edit")
        tab.fill("input[name=name]", "planner")
        tab.fill("input[name=password]", "correct horse battery")
        tab.click("button[type=submit]")
        tab.wait_for_function("window.__editorReady === true", timeout=30_000)
        tab.outside, tab.errors, tab.database_url = outside, errors, database_url
        yield tab
        context.close()
        chromium.close()


def click_lonlat(page, lon: float, lat: float) -> None:
    box = page.locator("#map").bounding_box()
    x, y = page.evaluate(
        f"(() => {{ const p = window.__editorMap.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()"
    )
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_the_editor_proposes_for_the_selected_grids_community_and_shows_audit_and_comparison(editor):
    assert editor.locator("path.leaflet-interactive").count() == 4
    click_lonlat(editor, LON0 + 3.5 * STRIP, LAT0 + HEIGHT / 2)  # the grid of 700 households
    audits = editor.evaluate("window.__auditFresh")
    editor.click("#propose-community")
    editor.wait_for_function(f"window.__auditFresh > {audits} && window.__editorBusy === 0", timeout=60_000)
    result = editor.locator("#propose-result")
    assert "→ 0" in result.inner_text()  # grids out of range: 1 → 0
    assert int(result.get_attribute("data-redrawn")) >= 1
    assert editor.locator("#audit [data-kind=gaps]").get_attribute("data-count") == "0"
    assert editor.locator("#audit [data-kind=overlaps]").get_attribute("data-count") == "0"
    # the comparison is redrawn after the proposal: the redrawn community brings new grids into the draft
    editor.wait_for_function("Number(document.getElementById('compare').dataset.newGrids) >= 1", timeout=20_000)
    store = Store.open(editor.database_url)
    try:
        households = store.areas("plan-b", "grid")["households"].tolist()
    finally:
        store.close()
    assert all(300 <= h <= 500 for h in households)
    assert editor.locator("path.leaflet-interactive").count() == len(households)
    assert editor.outside == [] and editor.errors == []


def test_the_editor_says_the_proposals_exceptions_in_the_pages_language(editor):
    click_lonlat(editor, LON0 + 3.5 * STRIP, LAT0 + HEIGHT / 2)
    editor.fill("#propose input[name=min]", "30")
    editor.fill("#propose input[name=max]", "60")  # every building of the east strip (70 households) is too big
    audits = editor.evaluate("window.__auditFresh")
    editor.click("#propose-community")
    editor.wait_for_function(f"window.__auditFresh > {audits} && window.__editorBusy === 0", timeout=60_000)
    result = editor.locator("#propose-result").inner_text()
    assert "单独就有 70 户（> 60）" in result  # from the exception's fields, not its English detail
    assert "alone" not in result and "undefined" not in result
    assert editor.errors == []


def test_proposing_without_a_selected_grid_says_what_to_do(editor):
    editor.click("#propose-street")
    assert (
        "Select a grid" in editor.locator("#message").inner_text() or "选中" in editor.locator("#message").inner_text()
    )
    assert editor.locator("#message.bad").count() == 1
    assert editor.errors == []


def test_the_map_shows_buildings_when_the_layer_is_switched_on(watched, database_url):  # noqa: F811
    store = Store.open(database_url)
    try:
        store.save_buildings(
            [
                {
                    "code": "M1",
                    "name": "<b>西楼</b>",
                    "households": 100,
                    "population": 250,
                    "lon": 117.104,
                    "lat": 39.115,
                },
                {"code": "M2", "name": "南楼", "households": 70, "population": 150, "lon": 117.104, "lat": 39.104},
            ]
        )
    finally:
        store.close()
    watched.sign_in("admin1", "admin-pass-1")
    assert watched.page.evaluate("window.__buildingsShown || 0") == 0  # not loaded until asked for
    watched.page.hover(".leaflet-control-layers")
    watched.page.locator(".leaflet-control-layers-overlays").get_by_text("楼栋", exact=True).click()  # one language
    watched.page.wait_for_function("window.__buildingsShown === 2", timeout=20_000)
    assert watched.page.locator("b").filter(has_text="西楼").count() == 0  # names are text, never markup
    watched.screenshot("buildings")
    watched.assert_clean()
