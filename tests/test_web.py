"""Pages and API served by a real WSGI server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from geodata import write_district

from gridmap import boundaries, people
from gridmap.store import Store


def fetch(url: str, accept: str = "text/html", token: str | None = None) -> tuple[int, str, str]:
    headers = {"Accept": accept} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def _token(database_url: str, role: str = "viewer") -> str:
    store = Store.open(database_url)
    try:
        return people.add_user(store, f"web-{role}", role=role)
    finally:
        store.close()


def test_start_page_without_grids_says_how_to_load_them(live_server, database_url):
    status, _type, body = fetch(live_server + "/", token=_token(database_url))
    assert status == 200
    assert "gridmap demo" in body


def test_start_page_lists_streets_communities_and_grids(live_server, database_url, tmp_path):
    store = Store.open(database_url)
    files = write_district(tmp_path)
    for level in ("street", "community", "grid"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level))
    store.close()
    status, content_type, body = fetch(live_server + "/", token=_token(database_url))
    assert status == 200 and content_type.startswith("text/html")
    assert '<span data-count="street">1</span>' in body
    assert '<span data-count="community">2</span>' in body
    assert '<span data-count="grid">4</span>' in body
    assert body.count('<tr class="grid">') == 4
    assert "翠澜第1网格" in body and "1,345 户" in body


def test_api_lists_editions(live_server, database_url, tmp_path):
    store = Store.open(database_url)
    files = write_district(tmp_path)
    boundaries.commit_import(store, boundaries.plan_import(store, files["street"], level="street"))
    store.close()
    status, content_type, body = fetch(live_server + "/api/editions", "application/json", _token(database_url))
    assert status == 200 and content_type == "application/json"
    assert json.loads(body)[0]["name"] == "main" and json.loads(body)[0]["areas"]["street"] == 1


def test_unknown_paths_are_404_in_the_callers_language(live_server):
    status, content_type, body = fetch(live_server + "/api/nothing-here", "application/json")
    assert status == 404 and content_type == "application/json" and json.loads(body)["status"] == 404
    status, content_type, body = fetch(live_server + "/nothing-here")
    assert status == 404 and content_type.startswith("text/html") and "Traceback" not in body
