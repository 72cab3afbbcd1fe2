"""The planner's editor in a real headless Chromium against a real server: drag a shared vertex."""

from __future__ import annotations

import shutil

import pytest
import shapely
from geodata import GRIDS, MID_LAT, MID_LON, STREET, write_geojson

from gridmap import boundaries, drafts, people
from gridmap.store import Store

# One community holding the four grids, so their common corner is inside it and free to move.
COMMUNITY = {"code": "120104001001", "name": "百合社区", "parent_code": "120104001", "geometry": STREET["geometry"]}
FOUR_GRIDS = [{**g, "code": f"120104001001{i:03d}", "parent_code": COMMUNITY["code"]} for i, g in enumerate(GRIDS, 1)]


def load_four_grids(store, directory) -> None:
    files = {
        "street": write_geojson(directory / "s.geojson", [STREET]),
        "community": write_geojson(directory / "c.geojson", [COMMUNITY]),
        "grid": write_geojson(directory / "g.geojson", FOUR_GRIDS),
    }
    for level in ("street", "community", "grid"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level))


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def page(live_server, database_url, tmp_path):
    from conftest import skip_or_fail

    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        skip_or_fail("Debian's chromium is not installed (make test installs it)")
    store = Store.open(database_url)
    load_four_grids(store, tmp_path)
    drafts.create_draft(store, "plan-2027")
    people.add_user(store, "planner", role="planner", password="correct horse battery")
    store.close()
    outside, errors = [], []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})

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
        tab.goto(f"{live_server}/login?next=/plans/plan-2027/edit%3Flang%3Den")
        tab.fill("input[name=name]", "planner")
        tab.fill("input[name=password]", "correct horse battery")
        tab.click("button[type=submit]")
        tab.wait_for_function("window.__editorReady === true", timeout=20_000)
        tab.outside, tab.errors, tab.database_url = outside, errors, database_url
        yield tab
        context.close()
        browser.close()


def pixel(page, lon: float, lat: float) -> tuple[float, float]:
    box = page.locator("#map").bounding_box()
    point = page.evaluate(
        f"(() => {{ const p = window.__editorMap.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()"
    )
    return box["x"] + point[0], box["y"] + point[1]


def test_dragging_a_shared_vertex_moves_it_in_all_four_grids(page):
    assert page.locator("path.leaflet-interactive").count() == 4
    x, y = pixel(page, MID_LON - 0.004, MID_LAT + 0.004)  # inside the north-west grid
    page.mouse.click(x, y)
    page.click("#tool-vertices")
    audits_before = page.evaluate("window.__auditFresh")
    x, y = pixel(page, MID_LON, MID_LAT)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y + 12, steps=8)
    page.mouse.up()
    page.wait_for_function(f"window.__auditFresh > {audits_before} && window.__editorBusy === 0", timeout=20_000)
    store = Store.open(page.database_url)
    try:
        features = {f["properties"]["code"]: f for f in drafts.draft_features(store, "plan-2027")["features"]}
    finally:
        store.close()
    assert all(f["properties"]["version"] == 2 for f in features.values()), "every grid holding the vertex moved"
    shapes = [shapely.geometry.shape(f["geometry"]) for f in features.values()]
    union = shapely.union_all(shapes)
    assert union.equals(shapely.box(117.10, 39.10, 117.12, 39.12)), "no gap opened"
    assert sum(s.area for s in shapes) == pytest.approx(union.area, rel=1e-9), "no overlap"
    centre = shapely.get_coordinates(shapes[0])
    assert not any((abs(c[0] - MID_LON) < 1e-9 and abs(c[1] - MID_LAT) < 1e-9) for c in centre)
    assert page.locator("#audit [data-kind=gaps]").get_attribute("data-count") == "0"
    assert page.locator("#audit [data-kind=overlaps]").get_attribute("data-count") == "0"
    assert page.outside == [] and page.errors == []
    # The comparison with the current edition refreshes after the audit: four grids changed, none new.
    page.wait_for_function("document.getElementById('compare').textContent.includes('changed 4')", timeout=20_000)
    assert "new 0" in page.locator("#compare").inner_text()


def test_a_grid_name_with_markup_is_shown_as_text(page):
    x, y = pixel(page, MID_LON + 0.004, MID_LAT + 0.004)
    page.mouse.click(x, y)
    page.fill("#attributes input[name=name]", "<img src=x onerror=alert(1)>")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("#attributes button[type=submit]")
    page.wait_for_function("document.getElementById('message').textContent.startsWith('saved')", timeout=20_000)
    page.mouse.move(x, y)
    page.mouse.move(x + 3, y + 3)
    tooltips = page.locator(".leaflet-tooltip")
    assert tooltips.last.inner_text().startswith("<img src=x onerror=alert(1)>")
    assert page.locator(".leaflet-tooltip img").count() == 0
    assert dialogs == [] and page.errors == []
