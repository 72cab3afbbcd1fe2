"""Hostile input never makes a 5xx: huge ids, deep or large JSON, NUL characters, repeated parameters, wrong
methods; edition names are checked; every answer names the limit or the problem."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from geodata import load_district

from gridmap import clock, people
from gridmap.config import Settings
from gridmap.errors import InvalidInput
from gridmap.store import check_edition_name
from gridmap.web import create_app, inputs


@pytest.fixture
def api(database_url, tmp_path):
    app = create_app(Settings(database_url=database_url, secret_key="test"))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    token = people.add_user(store, "管理员", role="admin")
    client = app.test_client()

    def call(method: str, path: str, *, data=None, content_type="application/json", headers=None):
        sent = {"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})}
        return client.open(path, method=method, data=data, content_type=content_type, headers=sent)

    call.app, call.store = app, store
    yield call
    store.close()


HUGE_IDS = [str(2**31), str(2**63), str(2**64 + 1), "9" * 5000]


ID_ROUTES = [
    ("GET", "/api/incidents/{}"),
    ("POST", "/api/incidents/{}/actions"),
    ("GET", "/api/map/incidents/{}"),
    ("GET", "/cases/{}"),
    ("POST", "/cases/{}/actions"),
]
BAD_QUERIES = [
    "after=9223372036854775808",
    "after=99999999999999999999999",
    "limit=" + "9" * 5000,
    "after=-1",
    "overdue=maybe",
    "from=2026-13-01",
    "to=2099-01-01T25:00:00Z",
    "bbox=1,2,3",
    "status=reported,nonsense",
    "grid=%00",
    "limit=5&limit=6",
]


def test_ids_past_the_database_range_are_404_naming_the_range(api):
    for method, template in ID_ROUTES:
        for incident_id in HUGE_IDS:
            answer = api(method, template.format(incident_id), data=json.dumps({"action": "register"}))
            assert answer.status_code == 404, (template, incident_id[:20], answer.get_data(as_text=True)[:300])
            if template.startswith("/api/"):
                assert f"ids run from 1 to {inputs.MAX_ID}" in answer.get_json()["error"]


def test_bad_query_values_are_400_before_the_database(api):
    for query in BAD_QUERIES:
        answer = api("GET", f"/api/incidents?{query}")
        assert answer.status_code == 400, (query[:40], answer.get_data(as_text=True)[:300])
        assert answer.get_json()["error"]


def test_offsets_in_query_times_are_honoured(api):
    created = api(
        "POST", "/api/incidents", data=json.dumps({"title": "x", "category": "0102", "lon": 117.105, "lat": 39.115})
    )
    reported = dt.datetime.fromisoformat(created.get_json()["reported_at"])
    assert reported.utcoffset() == dt.timedelta(hours=8)
    utc = (reported - dt.timedelta(seconds=1)).astimezone(dt.UTC).isoformat()
    later_utc = (reported + dt.timedelta(seconds=1)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    assert api("GET", f"/api/incidents?from={utc.replace('+', '%2B')}").get_json()["count"] == 1
    assert api("GET", f"/api/incidents?from={later_utc}").get_json()["count"] == 0


def test_a_json_body_nested_100000_deep_is_400_naming_the_limit(api):
    body = "[" * 100_000 + "]" * 100_000
    answer = api("POST", "/api/incidents", data=body)
    assert answer.status_code == 400
    assert (
        f"at most {inputs.MAX_JSON_DEPTH}" in answer.get_json()["error"]
        and "100000 levels" in answer.get_json()["error"]
    )
    nested = '{"title": ' + "[" * 40 + "]" * 40 + "}"
    assert "41 levels" in api("POST", "/api/incidents", data=nested).get_json()["error"]  # the object, then 40
    # Brackets inside strings do not count.
    assert inputs.json_depth(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "b": [1, {"c": "}}}"}]}') == 3


def test_a_json_body_over_the_size_limit_is_413_naming_the_limit(api):
    body = json.dumps({"title": "x" * (inputs.MAX_JSON_BYTES + 10)})
    answer = api("POST", "/api/incidents", data=body)
    assert answer.status_code == 413 and f"{inputs.MAX_JSON_BYTES:,} bytes" in answer.get_json()["error"]


BAD_BODIES = [
    '{"title": "井盖\\u0000缺失", "category": "0102", "lon": 117.105, "lat": 39.115}',
    '{"title": "井盖\\u0007缺失", "category": "0102", "lon": 117.105, "lat": 39.115}',
    '{"title": "井盖缺失", "category": "0102", "lon": 117.105, "lat": 39.115, "reporter_phone": "call-me-maybe"}',
    '{"title": "井盖缺失", "category": " 0102", "lon": 117.105, "lat": 39.115}',
    '{"title": "井盖缺失", "category": "0102", "lon": 117.105, "lat": 39.115, "crs": 5}',
    "not json",
    "[1, 2]",
]


def test_bad_bodies_are_400_and_write_nothing(api):
    for body in BAD_BODIES:
        answer = api("POST", "/api/incidents", data=body)
        assert answer.status_code == 400, (body, answer.get_data(as_text=True)[:300])
    assert api.store.table_counts()["incidents"] == 0


def test_a_point_in_no_grid_is_422_and_a_wrong_method_is_405_with_allow(api):
    outside = api(
        "POST", "/api/incidents", data=json.dumps({"title": "x", "category": "0102", "lon": 117.2, "lat": 39.2})
    )
    assert outside.status_code == 422 and "lies in no grid" in outside.get_json()["error"]
    zero = api("GET", "/api/locate?lon=0&lat=0")
    assert zero.status_code == 422
    wrong = api("DELETE", "/api/incidents")
    assert wrong.status_code == 405 and set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert wrong.get_json()["status"] == 405


EDITION_NAMES = [
    ("2027年方案", True),
    ("plan (v2)", True),
    ("main-2026.1", True),
    ("../../etc", False),
    ("-rf", False),
    (".hidden", False),
    ("a/b", False),
    ("tab\there", False),
    (" padded", False),
    ("x" * 101, False),
    ("", False),
]


def test_edition_names_are_checked_in_the_store_for_every_way_in(api):
    for name, fine in EDITION_NAMES:
        if fine:
            assert check_edition_name(name) == name
            api.store.create_edition(name)
            continue
        with pytest.raises(InvalidInput):
            check_edition_name(name)
        with pytest.raises(InvalidInput):
            api.store.create_edition(name)
        answer = api("POST", "/api/editions", data=json.dumps({"name": name}))
        assert answer.status_code == 400, name
        assert name not in [e.name for e in api.store.list_editions()]


def test_stored_times_come_out_with_the_shanghai_offset(api):
    created = api(
        "POST", "/api/incidents", data=json.dumps({"title": "x", "category": "0102", "lon": 117.105, "lat": 39.115})
    )
    answer = created.get_json()
    for key in ("reported_at", "deadline"):
        assert answer[key].endswith("+08:00"), answer[key]
    assert answer["history"][0]["at"].endswith("+08:00")
    stats = api("GET", "/api/stats").get_json()
    assert stats["as_of"].endswith("+08:00")
    assert abs(dt.datetime.fromisoformat(stats["as_of"]) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert clock.iso(dt.datetime(2026, 3, 1, 9, 30)) == "2026-03-01T09:30:00+08:00"
    assert clock.local(dt.datetime(2026, 3, 1, 1, 30, tzinfo=dt.UTC)) == dt.datetime(2026, 3, 1, 9, 30)
