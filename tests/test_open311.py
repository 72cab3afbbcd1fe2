"""Open311 GeoReport v2 with a plain client (requests, and lxml for the XML), on both backends.

The Python `open311` package on PyPI (1.1, 2011) is Python 2 only (`from api import API`) and asks for
`service/` instead of `services/`, so the client here is what an integrator writes: HTTP plus an XML parser.
The XML is checked against the element names and order of the spec's examples.
"""

from __future__ import annotations

import csv
import datetime as dt

import pytest
import requests
from conftest import BACKENDS
from lxml import etree
from ogc_server import CLOSED_CASES, start_demo_server
from photos import jpeg

from gridmap import casefields, categories
from gridmap.demo.district import demo_boundary_dir
from gridmap.demo.gazetteer import GAZETTEER_FILE

# Element names of the GeoReport v2 examples, in the order the spec shows them.
SPEC = {
    "discovery": ["changeset", "contact", "key_service", "endpoints"],
    "endpoint": ["specification", "url", "changeset", "type", "formats"],
    "service": ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"],
    "attribute": ["variable", "code", "datatype", "required", "datatype_description", "order", "description"],
    "request": [
        "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
        "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
        "address", "address_id", "zipcode", "lat", "long", "media_url",
    ],
    "created": ["service_request_id", "service_notice", "account_id"],
    "error": ["code", "description"],
}  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from start_demo_server(request, request.param, tmp_path_factory.mktemp(f"open311-{request.param}"))


def _xml(response) -> etree._Element:
    assert response.headers["Content-Type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return etree.fromstring(response.content)


def _in_spec_order(element, names: list[str]) -> None:
    tags = [child.tag for child in element]
    positions = [tags.index(n) for n in names]
    assert positions == sorted(positions), tags


def _url(server, path: str) -> str:
    return f"{server.base}/open311/v2/{path}"


def test_discovery_and_services_in_json_and_xml(server):
    root = _xml(requests.get(_url(server, "discovery.xml"), timeout=30))
    assert root.tag == "discovery"
    _in_spec_order(root, SPEC["discovery"])
    endpoint = root.find("endpoints/endpoint")
    _in_spec_order(endpoint, SPEC["endpoint"])
    assert endpoint.findtext("url") == f"{server.base}/open311/v2"
    assert {f.text for f in endpoint.iterfind("formats/format")} == {"text/xml", "application/json"}
    assert requests.get(_url(server, "discovery"), timeout=30).json()["endpoints"][0]["specification"].endswith("v2")

    table = {row["code"]: row for row in categories.load_categories()}
    services = _xml(requests.get(_url(server, "services.xml"), timeout=30))
    assert services.tag == "services" and len(services) == len(table)
    for service in services:
        _in_spec_order(service, SPEC["service"])
        assert service.findtext("service_name") == table[service.findtext("service_code")]["name"]  # Chinese
        assert service.findtext("metadata") == "true" and service.findtext("type") == "realtime"
    listed = requests.get(_url(server, "services.json"), timeout=30).json()
    assert [s["service_code"] for s in listed] == list(table)

    definition = _xml(requests.get(_url(server, "services/0102.xml"), timeout=30))
    assert definition.tag == "service_definition" and definition.findtext("service_code") == "0102"
    for attribute in definition.iterfind("attributes/attribute"):
        _in_spec_order(attribute, SPEC["attribute"])
    source = requests.get(_url(server, "services/0102.json"), timeout=30).json()["attributes"][1]
    assert [v["key"] for v in source["values"]] == list(casefields.SOURCES)


def test_a_client_creates_and_reads_cases_in_json_and_xml(server):
    key = server.tokens["admin"]
    form = {
        "api_key": key,
        "service_code": "0102",
        "lat": "39.1201",
        "long": "117.1502",
        "description": "小区门口垃圾堆积\n已两天无人清理",
        "first_name": "小明",
        "last_name": "王",
        "phone": "13812345678",
        "attribute[source]": "chat",
    }
    created = requests.post(_url(server, "requests.json"), data=form, timeout=30)
    assert created.status_code == 201, created.text
    (answer,) = created.json()
    request_id, token = answer["service_request_id"], answer["token"]
    assert "处置时限" in answer["service_notice"]

    tokens = requests.get(_url(server, f"tokens/{token}.json"), timeout=30).json()
    assert tokens == [{"service_request_id": request_id, "token": token}]
    (shown,) = requests.get(_url(server, f"requests/{request_id}.json"), params={"api_key": key}, timeout=30).json()
    assert shown["status"] == "open" and shown["service_code"] == "0102"
    assert shown["status_notes"].startswith("已上报 (reported)")
    assert shown["description"].startswith("小区门口垃圾堆积")
    assert abs(shown["lat"] - 39.1201) < 1e-9 and abs(shown["long"] - 117.1502) < 1e-9
    requested = dt.datetime.fromisoformat(shown["requested_datetime"])
    assert requested.utcoffset() == dt.timedelta(hours=8)  # W3C date-time with the service's offset
    assert dt.datetime.fromisoformat(shown["expected_datetime"]) > requested

    # The same in XML, by address, with a Bearer header instead of api_key.
    with (demo_boundary_dir() / GAZETTEER_FILE).open(encoding="utf-8", newline="") as handle:
        estate = next(row for row in csv.DictReader(handle) if row["kind"] == "estate")
    bearer = {"Authorization": f"Bearer {key}"}
    posted = requests.post(
        _url(server, "requests.xml"),
        data={"service_code": "1102", "address_string": estate["name"], "description": "租金纠纷"},
        headers=bearer,
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    root = _xml(posted)
    assert root.tag == "service_requests"
    request_node = root.find("request")
    _in_spec_order(request_node, SPEC["created"])
    new_id = request_node.findtext("service_request_id")
    read = _xml(requests.get(_url(server, f"requests/{new_id}.xml"), headers=bearer, timeout=30))
    node = read.find("request")
    _in_spec_order(node, SPEC["request"])
    assert node.findtext("address") == estate["name"] and node.findtext("service_code") == "1102"
    assert abs(float(node.findtext("lat")) - float(estate["lat"])) < 1e-3

    # The case is the core's case: the JSON API shows it with its reporter (admin sees the phone).
    api = requests.get(f"{server.base}/api/incidents/{request_id}", headers=bearer, timeout=30).json()
    assert api["source"] == "chat" and api["reporter_name"] == "王小明" and api["reporter_phone"] == "13812345678"
    assert shown["media_url"] is None  # no photo yet


def test_media_url_links_the_cases_first_photo(server):
    bearer = {"Authorization": f"Bearer {server.tokens['admin']}"}
    fields = {"title": "路灯不亮", "category": "0102", "lon": "117.1502", "lat": "39.1201"}
    files = [
        ("photos", ("before.jpg", jpeg(), "image/jpeg")),
        ("photos", ("more.jpg", jpeg(colour=(9, 9, 9)), "image/jpeg")),
    ]
    made = requests.post(f"{server.base}/api/incidents", data=fields, files=files, headers=bearer, timeout=60)
    assert made.status_code == 201, made.text
    case = made.json()
    first = min(a["id"] for a in case["attachments"])
    (shown,) = requests.get(_url(server, f"requests/{case['id']}.json"), headers=bearer, timeout=30).json()
    assert shown["media_url"] == f"{server.base}/api/attachments/{first}"
    listed = requests.get(_url(server, "requests.json"), params={"service_request_id": case["id"]}, headers=bearer)
    assert [r["media_url"] for r in listed.json()] == [shown["media_url"]]
    photo = requests.get(shown["media_url"], headers=bearer, timeout=30)
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert requests.get(shown["media_url"], timeout=30).status_code == 401  # the same key is needed


def test_requests_filters_and_status_mapping(server):
    key = {"api_key": server.tokens["admin"]}
    everything = requests.get(_url(server, "requests.json"), params={**key, "start_date": "2000-01-01"}, timeout=30)
    rows = everything.json()
    assert len(rows) >= 500 and len({r["service_request_id"] for r in rows}) == len(rows)
    closed = requests.get(
        _url(server, "requests.json"), params={**key, "status": "closed", "start_date": "2000-01-01"}, timeout=30
    ).json()
    assert len(closed) == CLOSED_CASES and all(r["status"] == "closed" for r in closed)
    assert all(r["status_notes"].startswith("已结案 (closed)") for r in closed)
    code = rows[0]["service_code"]
    same = requests.get(
        _url(server, "requests.xml"), params={**key, "service_code": code, "start_date": "2000-01-01"}, timeout=30
    )
    codes = {n.text for n in _xml(same).iterfind("request/service_code")}
    assert codes == {code}
    ids = [str(r["service_request_id"]) for r in rows[:3]]
    picked = requests.get(
        _url(server, "requests.json"), params={**key, "service_request_id": ",".join(ids)}, timeout=30
    )
    assert sorted(str(r["service_request_id"]) for r in picked.json()) == sorted(ids)
    future = (dt.datetime.now() + dt.timedelta(days=400)).date().isoformat()
    assert requests.get(_url(server, "requests.json"), params={**key, "start_date": future}, timeout=30).json() == []
    newest_first = [r["requested_datetime"] for r in rows]
    assert newest_first == sorted(newest_first, reverse=True)


def test_scope_and_roles_hold_through_open311(server):
    worker = {"api_key": server.tokens["grid_worker"]}
    theirs = requests.get(_url(server, "requests.json"), params={**worker, "start_date": "2000-01-01"}, timeout=30)
    assert theirs.status_code == 200 and theirs.json()
    store = server.store()
    try:
        rows = store.list_incidents(limit=None)
    finally:
        store.close()
    own = {r["id"] for r in rows if r["grid_code"] == server.worker_grid}
    assert {r["service_request_id"] for r in theirs.json()} == own
    other = next(r["id"] for r in rows if r["grid_code"] != server.worker_grid)
    hidden = requests.get(_url(server, f"requests/{other}.xml"), params=worker, timeout=30)
    assert hidden.status_code == 404
    assert _xml(hidden).tag == "errors"
    viewer = requests.post(
        _url(server, "requests.json"),
        data={"api_key": server.tokens["viewer"], "service_code": "0102", "lat": "39.12", "long": "117.15"},
        timeout=30,
    )
    assert viewer.status_code == 403 and viewer.json()[0]["code"] == 403


@pytest.mark.parametrize(
    "path,method,data,status,words",
    [
        ("requests.json", "get", {}, 401, "api_key"),
        ("requests.xml", "post", {"service_code": "0102", "lat": "39.12", "long": "117.15"}, 401, "api_key"),
        ("requests.xml", "post", {"api_key": "wrong"}, 401, "unknown or missing API token"),
        ("requests.json", "post", {"key": "admin", "lat": "39.12", "long": "117.15"}, 400, "service_code"),
        ("requests.json", "post", {"key": "admin", "service_code": "9999", "lat": "39.12", "long": "117.15"}, 400,
         "unknown category"),
        ("requests.xml", "post", {"key": "admin", "service_code": "0102", "lat": "39.12"}, 400, "both lat and long"),
        ("requests.json", "post", {"key": "admin", "service_code": "0102", "lat": "1", "long": "1"}, 400, "no grid"),
        ("requests.json", "post", {"key": "admin", "service_code": "0102", "lat": "x", "long": "117"}, 400, "lat"),
        ("requests.json", "get", {"key": "admin", "status": "pending"}, 400, "open and closed"),
        ("requests.json", "get", {"key": "admin", "start_date": "yesterday"}, 400, "start_date"),
        ("requests.json", "get", {"key": "admin", "colour": "red"}, 400, "unknown parameter"),
        ("requests/abc.xml", "get", {"key": "admin"}, 404, "no service request"),
        ("services/0102.csv", "get", {}, 400, "format"),
        ("tokens/nothing.json", "get", {}, 404, "no service request"),
    ],
)  # fmt: skip
def test_errors_come_in_the_specs_format(server, path, method, data, status, words):
    data = dict(data)
    if data.pop("key", None):
        data["api_key"] = server.tokens["admin"]
    send = {"params": data} if method == "get" else {"data": data}
    response = requests.request(method, _url(server, path), timeout=30, **send)
    assert response.status_code == status, response.text
    if path.endswith(".xml"):
        root = _xml(response)
        assert root.tag == "errors"
        error = root.find("error")
        _in_spec_order(error, SPEC["error"])
        assert error.findtext("code") == str(status) and words in error.findtext("description")
    else:
        (error,) = response.json()
        assert error["code"] == status and words in error["description"]
