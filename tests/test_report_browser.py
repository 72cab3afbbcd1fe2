"""A grid worker reports a case from a phone (390×844, touch, emulated geolocation) with two photos, resolves it
with an after-photo, and a supervisor sees both on the case page and in the map popup — in a real headless
Chromium against a real server. Every request that does not go to 127.0.0.1 is blocked and recorded; console
errors fail the test. Screenshots go to test-artifacts/report/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import skip_or_fail
from geodata import GRIDS, load_district
from photos import heic, jpeg

from gridmap import assets, cases, people
from gridmap.config import PROJECT_DIR
from gridmap.store import Store

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "report"
NW, SW, NE, SE = (g["code"] for g in GRIDS)
HERE = {"latitude": 39.1152, "longitude": 117.1046}  # the phone stands in grid NW
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "geolocation": HERE,
    "permissions": ["geolocation"],
}


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; never a downloaded browser."""
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Phone:
    """A phone-sized page that records what must not happen: outside requests, console errors, dialogs."""

    def __init__(self, browser, base: str, name: str) -> None:
        self.base, self.name = base, name
        self.context = browser.new_context(**PHONE)
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.errors.append("dialog: " + d.message), d.dismiss()))

    def _route(self, route) -> None:
        if route.request.url.startswith(self.base + "/"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def sign_in(self, name: str, password: str, then: str) -> None:
        self.page.goto(f"{self.base}/login?next={then}")
        self.page.fill("input[name=name]", name)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(re.escape(then) + "$"))

    def shot(self, label: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{label}.png"), full_page=True)

    def images_loaded(self, selector: str) -> int:
        """Wait until every image matched has loaded; return how many there are."""
        self.page.wait_for_function(
            "(s) => [...document.querySelectorAll(s)].every((i) => i.complete && i.naturalWidth > 0)", arg=selector
        )
        return self.page.locator(selector).count()

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests left 127.0.0.1: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def site(live_server, database_url, tmp_path):
    try:
        assets.require_installed()
    except assets.AssetsMissing as exc:
        skip_or_fail(exc.message)
    store = Store.open(database_url)
    load_district(store, tmp_path)
    people.add_user(store, "网格员", role="grid_worker", areas=[NW], password="worker-pass-1")
    people.add_user(store, "书记", role="supervisor", areas=["120104001001"], password="boss-pass-1")
    yield live_server, store
    store.close()


def _tap_map(phone: Phone, lon: float, lat: float) -> None:
    x, y = phone.page.evaluate(
        """([lon, lat]) => {
            const map = window.__reportMap;
            if (!map.getBounds().contains([lat, lon])) map.setView([lat, lon], map.getZoom(), { animate: false });
            const box = map.getContainer().getBoundingClientRect(), p = map.latLngToContainerPoint([lat, lon]);
            return [box.left + p.x, box.top + p.y];
        }""",
        [lon, lat],
    )
    phone.page.mouse.click(x, y)


def test_a_worker_reports_from_a_phone_and_a_supervisor_sees_before_and_after(browser, site, tmp_path, request):
    base, store = site
    backend = request.node.callspec.params.get("database_url", "db")
    shots = {"before-1.jpg": jpeg(size=(1200, 900)), "before-2.heic": heic(size=(900, 1200))}
    for name, content in shots.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "after.jpg").write_bytes(jpeg(size=(1200, 900), colour=(220, 220, 220), taken=None))

    worker = Phone(browser, base, f"worker-{backend}")
    try:
        worker.sign_in("网格员", "worker-pass-1", "/cases/new")
        page = worker.page
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
        # The phone's location is used at once, and the grid is shown before anything is sent.
        page.wait_for_selector("#grid-box.ok")
        assert page.get_attribute("#grid-box", "data-grid") == NW
        assert "百合第1网格" in page.inner_text("#grid-box") and "手机定位" in page.inner_text("#place-status")
        # A tap in another grid is refused on the spot with the rule; the send button is off.
        page.evaluate("window.__report.mapReady")
        assert page.evaluate("window.__report.gridCount") == 4  # the grids outlined on the little map
        _tap_map(worker, 117.115, 39.105)
        page.wait_for_selector("#grid-box.bad")
        assert "网格员只能在自己的网格内上报" in page.inner_text("#grid-box") and page.is_disabled("#send")
        worker.shot("refused")
        page.click("#locate-me")
        page.wait_for_selector("#grid-box.ok")
        # Category by search, title, description, two photos from the gallery.
        page.fill("#category-search", "违章")
        assert page.eval_on_selector("#category", "s => s.value") == "0101"
        page.fill("#title", "楼顶违章搭建")
        page.fill("#description", "3栋楼顶新建彩钢房")
        page.set_input_files("#photo-gallery", [str(tmp_path / n) for n in shots])
        page.wait_for_function("document.querySelectorAll('#photo-list .photo').length === 2")
        worker.shot("form")
        page.click("#send")
        page.wait_for_url(re.compile(r".*/cases/\d+$"))
        case_id = int(page.url.rsplit("/", 1)[1])
        assert worker.images_loaded("#gallery [data-stage=before] img") == 2
        worker.shot("reported")
        case = store.get_incident(case_id)
        assert (case["grid_code"], case["category_code"], case["source"]) == (NW, "0101", "patrol")
        assert (round(case["lon"], 4), round(case["lat"], 4)) == (HERE["longitude"], HERE["latitude"])

        # The supervisor registers and dispatches (any front door does; here the core), the worker starts and
        # resolves on the phone with a photo of the result.
        boss = people.find_user(store, "书记")
        cases.act(store, case_id, user=boss, action="register")
        cases.act(store, case_id, user=boss, action="dispatch", assignee="网格员")
        page.reload()
        page.click("form[data-action=start] button")
        page.wait_for_selector("#status[data-status=in_progress]")
        resolve = page.locator("form[data-action=resolve]")
        assert resolve.locator("input[type=file][required]").count() == 1  # this category needs the photo
        resolve.locator("input[name=note]").fill("已拆除")
        resolve.locator("input[type=file]").set_input_files(str(tmp_path / "after.jpg"))
        resolve.locator("button").click()
        page.wait_for_selector("#status[data-status=resolved]")
        assert worker.images_loaded("#gallery img") == 3
        worker.assert_clean()
    finally:
        worker.close()

    supervisor = Phone(browser, base, f"supervisor-{backend}")
    try:
        supervisor.sign_in("书记", "boss-pass-1", f"/cases/{case_id}")
        page = supervisor.page
        assert supervisor.images_loaded("#gallery [data-stage=before] img") == 2
        assert supervisor.images_loaded("#gallery [data-stage=after] img") == 1
        supervisor.shot("case")
        page.goto(f"{base}/map")
        page.wait_for_function("window.__mapReady === true", timeout=30_000)
        lon, lat = HERE["longitude"], HERE["latitude"]
        # The case low on the screen, so its popup opens below the map's control box.
        page.evaluate(
            "([lon, lat]) => window.__gridmap.map.setView([lat, lon], 18, { animate: false })"
            ".panBy([0, -220], { animate: false })",
            [lon, lat],
        )
        x, y = page.evaluate(
            """([lon, lat]) => {
                const map = window.__gridmap.map, box = map.getContainer().getBoundingClientRect();
                const p = map.latLngToContainerPoint([lat, lon]);
                return [box.left + p.x, box.top + p.y];
            }""",
            [lon, lat],
        )
        page.mouse.click(x, y)
        page.wait_for_selector(".leaflet-popup-content .gm-popup-photos")
        assert supervisor.images_loaded(".gm-popup-photos img") == 2
        stages = page.eval_on_selector_all(".gm-popup-photos figure", "fs => fs.map((f) => f.dataset.stage)")
        assert stages == ["before", "after"]
        assert page.inner_text(".gm-popup-title") == "楼顶违章搭建"
        supervisor.shot("map-popup")
        supervisor.assert_clean()
    finally:
        supervisor.close()
