"""One language per page: every msgid has its Chinese, finished messages translate, the API follows Accept-Language.

The walk over every page in a real browser, in both languages, is in test_languages_browser.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gridmap import casefields, exports, features, language, maps, people
from gridmap.config import PROJECT_DIR
from gridmap.web import dashboard, ogc_api, plan_views

TEMPLATES = PROJECT_DIR / "templates"
WEB = PROJECT_DIR / "gridmap" / "web"
GETTEXT_NAMES = ("_", "_l", "gettext", "lazy_gettext")


def catalogue():
    """The Chinese catalogue as babel reads it."""
    from babel.messages.pofile import read_po

    with (language.TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle)


def _python_msgids(path: Path) -> set[str]:
    """Strings passed to _() / _l() / gettext() in a Python file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        is_call = isinstance(node, ast.Call) and getattr(node.func, "id", None) in GETTEXT_NAMES
        if is_call and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.add(node.args[0].value)
    return found


def wanted_msgids() -> set[str]:
    """Every msgid a page, a script, an export or a label shows."""
    from babel.messages.extract import extract_from_file

    wanted: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        wanted |= {m[1] if isinstance(m[1], str) else m[1][0] for m in extract_from_file("jinja2", template)}
    for module in WEB.glob("*.py"):
        wanted |= _python_msgids(module)
    wanted |= set(maps.PAGE_TEXT) | set(dashboard.SCRIPT_TEXT) | set(plan_views.EDITOR_TEXT)
    wanted |= set(people.ROLE_LABELS.values()) | set(casefields.SOURCE_LABELS.values())
    wanted |= set(language.KIND_LABELS.values()) | set(exports._SETTING_LABELS.values()) | {"Total", "Yes", "No"}
    # OGC API: property titles (queryables, schema) and the operations the HTML page of the API definition lists.
    wanted |= {title for _kind, title in (*features.AREA_PROPERTIES.values(), *features.INCIDENT_PROPERTIES.values())}
    document = ogc_api.openapi_document("", [])
    wanted |= {document["info"]["title"]} | {item["get"]["summary"] for item in document["paths"].values()}
    for table in (
        exports.STATUS_LABELS,
        exports.LEVEL_LABELS,
        exports.LIGHT_LABELS,
        exports.GROUP_LABELS,
        exports.FINDING_LABELS,
        exports.CHANGE_LABELS,
    ):
        wanted |= set(table.values())
    for tables in (
        [exports.case_table([])],
        exports.stats_tables({"by": "total", "groups": [], "total": {}}),
        exports.audit_tables({}),
        exports.compare_tables({}),
    ):
        for table in tables:
            wanted.add(table.name)
            wanted |= {c.header for c in table.columns}
    return {w for w in wanted if w}


def test_every_message_has_a_chinese_translation():
    wanted = wanted_msgids()
    assert len(wanted) > 300
    have = catalogue()
    missing = sorted(m for m in wanted if not (have.get(m) and have.get(m).string))
    assert missing == []


def test_every_translation_is_chinese_keeping_only_codes_from_the_msgid():
    import re

    allowed = {"JSON", "CSV", "Excel", "XLSX", "API", "Referer", "Polsby", "Popper"}
    for message in catalogue():
        if not message.id or not message.string:
            continue
        assert re.search(r"[\u4e00-\u9fff]", message.string), f"{message.id!r} has no Chinese translation"
        text = re.sub(r"\{[a-z_0-9]+\}|%\([a-z_]+\)s", "", message.string)
        # Latin words left in a translation are codes, keys and formats copied from the msgid (YYYY-MM-DD, GET).
        carried = {w.lower() for w in re.findall(r"[A-Za-z]+", message.id)}
        words = {w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in allowed and w.lower() not in carried}
        assert not words, f"{message.id!r} → {message.string!r} has English {words}"


def test_the_catalogue_checker_can_fail(monkeypatch):
    monkeypatch.setattr(maps, "PAGE_TEXT", (*maps.PAGE_TEXT, "a message nobody translated"))
    have = catalogue()
    assert "a message nobody translated" in {m for m in wanted_msgids() if not have.get(m)}


# ---- finished messages ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("no incident 42", "没有编号为 42 的案件"),
        ("a grid_worker may not do this", "网格员无权进行此操作"),
        ("wrong user name or password", "用户名或密码错误"),
        ("grids 120104001001001 and 120104001001002 overlap", "网格 120104001001001 与 120104001001002 重叠"),
        ("there is nothing at /nowhere", "/nowhere 没有内容"),
        ("from='2026-13-01' is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)",
         "from='2026-13-01' 不是日期（YYYY-MM-DD）或日期时间（YYYY-MM-DDTHH:MM）"),
    ],
)  # fmt: skip
def test_finished_messages_are_translated_with_their_values(english, chinese):
    assert language.translate(english, "zh") == chinese
    assert language.translate(english, "en") == english


def test_an_unknown_message_stays_as_written():
    assert language.translate("something no catalogue knows", "zh") == "something no catalogue knows"
    assert language.translate(None, "zh") is None


def test_a_pattern_with_a_repeated_placeholder_needs_equal_values(tmp_path, monkeypatch):
    po = tmp_path / "zh" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr ""\n\nmsgid "{a} equals {a}"\nmsgstr "{a} 等于 {a}"\n', encoding="utf-8")
    monkeypatch.setattr(language, "TRANSLATIONS", tmp_path)
    language._patterns.cache_clear()
    try:
        assert [p.fullmatch("x equals x") is not None for p, _ in language._patterns("zh")] == [True]
        assert [p.fullmatch("x equals y") is not None for p, _ in language._patterns("zh")] == [False]
    finally:
        language._patterns.cache_clear()


# ---- the API by Accept-Language ------------------------------------------------------------------------------
@pytest.fixture
def client(database_url):
    from gridmap.config import Settings
    from gridmap.web import create_app

    app = create_app(Settings(database_url=database_url, secret_key="k"))
    yield app.test_client()
    app.extensions["gridmap"].store.close()


SIGN_IN_EN = "sign in or send an API token (Authorization: Bearer TOKEN)"


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({}, "", "en"),
        ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, "", "zh"),
        ({"Accept-Language": "en-GB,en;q=0.9"}, "", "en"),
        ({"Accept-Language": "fr-FR"}, "", "en"),
        ({"Accept-Language": "en"}, "?lang=zh", "zh"),
    ],
)
def test_api_errors_follow_accept_language(client, headers, query, expected):
    response = client.get(f"/api/incidents{query}", headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"] == (SIGN_IN_EN if expected == "en" else language.translate(SIGN_IN_EN, "zh"))
    assert response.headers["Content-Language"] == expected
    assert "Accept-Language" in response.headers["Vary"]
    if expected == "zh":
        assert body["error"] != SIGN_IN_EN and "登录" in body["error"]


def test_error_pages_are_chinese_by_default_and_english_when_chosen(client):
    page = client.get("/nowhere").get_data(as_text=True)
    assert "/nowhere 没有内容" in page and "nothing at" not in page
    client.get("/login?lang=en")  # the session remembers the choice
    page = client.get("/nowhere").get_data(as_text=True)
    assert "there is nothing at /nowhere" in page and "没有内容" not in page


def test_a_failed_sign_in_says_so_in_the_page_language(client):
    page = client.post("/login", data={"name": "x", "password": "y"}).get_data(as_text=True)
    # CSRF is checked first: the form without its token is refused, in Chinese.
    assert "CSRF" not in page or "令牌" in page


# ---- standalone files: one language, no navigation --------------------------------------------------------------
def test_standalone_reports_have_no_navigation_and_take_a_language(database_url, tmp_path):
    import re

    from click.testing import CliRunner
    from test_maps import load_map_data

    from gridmap.cli import main
    from gridmap.store import Store

    store = Store.open(database_url)
    load_map_data(store, tmp_path)
    store.close()
    runner = CliRunner()
    for lang, title in (("zh", "覆盖审计"), ("en", "Coverage audit")):
        out = tmp_path / f"audit-{lang}.html"
        result = runner.invoke(main, ["audit", "--html", str(out), "--lang", lang, "--db", database_url])
        assert result.exit_code == 0, result.output
        html = out.read_text(encoding="utf-8")
        assert f"<h1>{title}" in html
        assert "<nav" not in html and "/login" not in html and "/logout" not in html
        assert not re.search(r'href="/', html), "no link into a server the file does not have"
        text = re.sub(r"<[^>]+>", " ", html.split("<body", 1)[1])
        if lang == "en":
            names = {"长虹街道", "百合社区", "翠澜社区", "百合第1网格", "百合第2网格", "翠澜第1网格", "翠澜第2网格"}
            for name in names:
                text = text.replace(name, "")
            assert not re.search(r"[\u4e00-\u9fff]", text)
    out = tmp_path / "map.html"
    result = runner.invoke(main, ["map", str(out), "--lang", "en", "--db", database_url])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert not re.search(r'"(home|cases|dashboard)_url":"', html) and "/login" not in html
    assert '"language":"en"' in html


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.data.startswith(b"<svg")
