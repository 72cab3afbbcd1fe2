"""The report form, the gallery on the case page, thumbnails in the list and the map popup, served by the app
(Flask test client, signed in with a session as a person would be); translations of everything they show."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from geodata import GRIDS, load_district
from photos import jpeg

from gridmap import people
from gridmap.config import Settings
from gridmap.web import attachment_views, create_app, i18n, report_views

NW, SW, NE, SE = (g["code"] for g in GRIDS)
ROOT = Path(__file__).resolve().parents[1]


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def browser_like(database_url, tmp_path):
    """An app with the tiny district and people who sign in with passwords; yields a sign-in function."""
    app = create_app(
        Settings(database_url=database_url, secret_key="test-secret", attachments=str(tmp_path / "photos"))
    )
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    store.replace_gazetteer([{"kind": "estate", "name": "百合豪庭", "lon": 117.105, "lat": 39.115, "aliases": ""}])
    for name, role, areas in (
        ("worker", "grid_worker", [NW]),
        ("boss", "supervisor", ["120104001001"]),
        ("viewer", "viewer", []),
    ):
        people.add_user(store, name, role=role, areas=areas, password=f"{name}-password")

    def sign_in(name: str):
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        answer = client.post("/login", data={"name": name, "password": f"{name}-password", "csrf_token": _csrf(page)})
        assert answer.status_code == 302
        return client

    sign_in.store = store
    yield sign_in
    store.close()


def test_the_form_is_one_language_per_page_and_lists_the_categories(browser_like):
    client = browser_like("worker")
    chinese = client.get("/cases/new").get_data(as_text=True)
    assert "<h1>上报案件</h1>" in chinese and "提交上报" in chinese and "拍照" in chinese and "从相册选择" in chinese
    assert "Send the report" not in chinese and "Take a photo" not in chinese
    assert 'value="0101"' in chinese and "私搭乱建（违章搭建）" in chinese and 'capture="environment"' in chinese
    config = json.loads(re.search(r'id="report-config">(.*?)</script>', chinese, re.S).group(1))
    assert config["user"] == {"role": "grid_worker", "areas": [NW], "all": False}
    assert config["limits"] == {"max_bytes": 15_000_000, "per_upload": 9}
    assert config["text"]["not_yours"].startswith("此位置属于网格")
    assert not re.search(r"https?://", re.sub(r'"url": "[^"]*"', "", re.split(r"<body[^>]*>", chinese)[1])), "no CDN"
    english = client.get("/cases/new?lang=en").get_data(as_text=True)
    assert "<h1>Report a case</h1>" in english and "Illegal construction" in english and "上报案件" not in english
    assert json.loads(re.search(r'id="report-config">(.*?)</script>', english, re.S).group(1))["text"][
        "not_yours"
    ].startswith("This point lies in grid")


def test_who_may_open_the_form(browser_like):
    assert browser_like("viewer").get("/cases/new").status_code == 403
    assert browser_like("boss").get("/cases/new").status_code == 200
    from_outside = browser_like("worker")
    from_outside.post("/logout", data={"csrf_token": _csrf(from_outside.get("/cases/new").get_data(as_text=True))})
    anonymous = from_outside.get("/cases/new")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_the_form_works_without_javascript_and_shows_what_was_wrong(browser_like):
    client = browser_like("worker")
    token = _csrf(client.get("/cases/new").get_data(as_text=True))
    fields = {"csrf_token": token, "category": "0101", "address": "百合豪庭小区", "source": "visit"}
    refused = client.post("/cases/new", data={**fields, "title": ""}, content_type="multipart/form-data")
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "上报未保存：" in page and "title is required" in page and 'value="百合豪庭小区"' in page
    sent = client.post(
        "/cases/new",
        data={**fields, "title": "楼顶违建", "photos": [(io.BytesIO(jpeg()), "a.jpg"), (io.BytesIO(b""), "")]},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 303
    case_id = int(sent.headers["Location"].rsplit("/", 1)[1])
    case = browser_like.store.get_incident(case_id)
    assert (case["grid_code"], case["source"], case["geocode_level"]) == (NW, "visit", "estate")
    assert len(browser_like.store.attachments_of([case_id])) == 1


def test_the_case_page_shows_before_and_after_and_asks_for_the_after_photo(browser_like):
    worker, boss = browser_like("worker"), browser_like("boss")
    token = _csrf(worker.get("/cases/new").get_data(as_text=True))
    sent = worker.post(
        "/cases/new",
        data={"csrf_token": token, "title": "违建", "category": "0101", "lon": "117.105", "lat": "39.115",
              "photos": [(io.BytesIO(jpeg()), "before-1.jpg"), (io.BytesIO(jpeg()), "before-2.jpg")]},
        content_type="multipart/form-data",
    )  # fmt: skip
    url = sent.headers["Location"]
    for who, action, extra in (
        (boss, "register", {}),
        (boss, "dispatch", {"assignee": "worker"}),
        (worker, "start", {}),
    ):
        page = who.get(url).get_data(as_text=True)
        answer = who.post(url + "/actions", data={"csrf_token": _csrf(page), "action": action, **extra})
        assert answer.status_code == 303, answer.get_data(as_text=True)
    page = worker.get(url).get_data(as_text=True)
    resolve_form = re.search(r'<form[^>]*data-action="resolve".*?</form>', page, re.S).group(0)
    assert 'enctype="multipart/form-data"' in resolve_form and 'type="file" name="photos"' in resolve_form
    assert " required>" in resolve_form and "此类别须上传处置后照片" in resolve_form
    refused = worker.post(url + "/actions", data={"csrf_token": _csrf(page), "action": "resolve"})
    assert refused.status_code == 400 and "needs a photo of the result" in refused.get_data(as_text=True)
    old_photo = [(io.BytesIO(jpeg(taken="2020:01:01 08:00:00")), "after.jpg")]
    form = {"csrf_token": _csrf(page), "action": "resolve", "photos": old_photo}
    done = worker.post(url + "/actions", data=form, content_type="multipart/form-data")
    assert done.status_code == 303
    shown = boss.get(url).get_data(as_text=True)
    stages = re.findall(r'<section class="stage" data-stage="(\w+)">\s*<h3>([^<]+)</h3>', shown)
    assert stages == [("before", "处置前（上报时）"), ("after", "处置后（结果）")]
    assert shown.count('<figure data-id="') == 3 and "拍摄于 2026-11-30 10:12:13" in shown
    assert "拍摄时间早于案件上报时间" in shown  # the after photo says it was taken in 2020
    for thumb in re.findall(r'<img src="(/api/attachments/\d+\?size=thumb)"', shown):
        assert boss.get(thumb).status_code == 200
    # The list shows the first photo's thumbnail; the map popup the first before and the latest after.
    listing = boss.get("/cases").get_data(as_text=True)
    assert re.search(r'<img class="thumb" src="/api/attachments/\d+\?size=thumb"', listing)
    case_id = url.rsplit("/", 1)[1]
    popup = boss.get(f"/api/map/incidents/{case_id}?lang=zh").get_json()
    assert [(p["stage"], p["label"]) for p in popup["photos"]] == [
        ("before", "处置前（上报时）"),
        ("after", "处置后（结果）"),
    ]
    assert all(boss.get(p["thumb_url"]).status_code == 200 for p in popup["photos"])


def test_the_geocode_api_of_the_form(browser_like):
    client = browser_like("worker")
    found = client.get("/api/geocode?address=百合豪庭小区").get_json()
    assert found["found"] and (found["lon"], found["lat"]) == (117.105, 39.115) and found["level"] == "estate"
    missing = client.get("/api/geocode?address=火星基地").get_json()
    assert missing["found"] is False and missing["lon"] is None
    assert client.get("/api/geocode?address=").status_code == 400
    assert client.get("/api/geocode?address=" + "长" * 301).status_code == 400


def test_every_message_of_the_report_form_and_gallery_has_a_chinese_translation():
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    wanted = set()
    for template in ("case_new.html", "case_gallery.html"):
        wanted |= {m[1] for m in extract_from_file("jinja2", ROOT / "templates" / template)}
    for module in (report_views, attachment_views):
        wanted |= {m[1] for m in extract_from_file("python", module.__file__, keywords={"_l": None, "_": None})}
    assert len(wanted) > 50
    with (i18n.TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    missing = sorted(m for m in wanted if not (catalogue.get(m) and catalogue.get(m).string))
    assert missing == []
    # The placeholders the page's script fills in survive translation.
    for message in wanted:
        if "{" in message:
            assert set(re.findall(r"\{\w+\}", message)) == set(re.findall(r"\{\w+\}", catalogue.get(message).string))
