"""Open311 GeoReport v2 under /open311/v2, for city platforms and 12345 hotline systems that exchange cases.

`discovery`, `services` (the category table: code, Chinese name, deadline), `services/{code}` (definitions
with the optional attributes `title` and `source`), `requests` GET and POST, `requests/{id}` and
`tokens/{token}`, each as `.json` or `.xml` (JSON without a suffix), errors in the spec's format. Reading
and creating cases needs an API token (`api_key` parameter or `Authorization: Bearer`); what a key may see
and do is decided by `gridmap.cases`, as for /api/incidents. gridmap's seven statuses map onto Open311's
two: closed and rejected are `closed`, the rest `open`; the detailed status goes into `status_notes`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import xml.etree.ElementTree as ET

from flask import Blueprint, Response, current_app, request

from gridmap import cases, clock
from gridmap.errors import GridmapError, InvalidInput, NotFound, Unauthorized
from gridmap.store import Store
from gridmap.web.access import public, require_user
from gridmap.web.auth import current_user
from gridmap.web.ogc import zone

blueprint = Blueprint("open311", __name__, url_prefix="/open311/v2")
SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-01-01T00:00:00Z"  # when this endpoint's behaviour last changed (discovery asks for it)
MAX_REQUESTS, DEFAULT_DAYS = 1000, 90  # the spec's defaults for GET requests without a date range
TOKEN_PREFIX = "open311:"
STATUS_NOTES = {
    "reported": "已上报",
    "registered": "已立案",
    "dispatched": "已派遣",
    "in_progress": "处置中",
    "resolved": "已反馈待结案",
    "closed": "已结案",
    "rejected": "不予立案",
}
LEVEL_NAMES = {"grid": "网格", "community": "社区", "street": "街道", "district": "区"}
SOURCE_NAMES = {
    "patrol": "巡查",
    "visit": "走访",
    "chat": "群聊",
    "hotline": "12345热线",
    "video": "视频",
    "higher": "上级交办",
    "import": "导入",
    "web": "网上",
}
POST_FIELDS = {
    "service_code", "lat", "long", "address_string", "address_id", "email", "device_id", "account_id",
    "first_name", "last_name", "phone", "description", "media_url", "jurisdiction_id", "api_key",
    "attribute[title]", "attribute[source]",
}  # fmt: skip
GET_FIELDS = {"service_request_id", "service_code", "start_date", "end_date", "status", "jurisdiction_id", "api_key"}


def _store() -> Store:
    return current_app.extensions["gridmap"].store


# ---- formats ---------------------------------------------------------------------------------------------
def _split(name: str) -> tuple[str, str]:
    """Split `0102.json` into ('0102', 'json'); without a suffix the format follows Accept (JSON by default)."""
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix in ("json", "xml"):
        return stem, suffix
    if dot and suffix.isalpha() and len(suffix) <= 5:
        raise InvalidInput(f"format {suffix!r} is not offered: use .json or .xml")
    return name, _negotiated()


def _negotiated() -> str:
    best = request.accept_mimetypes.best_match(["application/json", "text/xml", "application/xml"])
    return "xml" if best in ("text/xml", "application/xml") else "json"


def _format_of_path() -> str:
    last = request.path.rsplit("/", 1)[-1]
    if last.endswith(".xml"):
        return "xml"
    return "json" if last.endswith(".json") else _negotiated()


def _element(tag: str, value) -> ET.Element:
    node = ET.Element(tag)
    if isinstance(value, dict):
        for key, inner in value.items():
            node.append(_element(key, inner))
    elif isinstance(value, list):
        child = {"attributes": "attribute", "values": "value", "formats": "format", "endpoints": "endpoint"}
        for inner in value:
            node.append(_element(child.get(tag, "item"), inner))
    elif value is not None:
        node.text = str(value).lower() if isinstance(value, bool) else str(value)
    return node


def _send(data, fmt: str, *, root: str, item: str | None = None, status: int = 200) -> Response:
    """Send a list of objects (or one object) as the spec's JSON or XML."""
    if fmt == "json":
        return Response(json.dumps(data, ensure_ascii=False), status, content_type="application/json; charset=utf-8")
    top = ET.Element(root)
    for entry in data if isinstance(data, list) else [data]:
        node = _element(item, entry) if item else _element(root, entry)
        if item:
            top.append(node)
        else:
            top = node
    text = ET.tostring(top, encoding="unicode")
    return Response(f'<?xml version="1.0" encoding="utf-8"?>\n{text}', status, content_type="text/xml; charset=utf-8")


def error_response(status: int, message: str) -> Response:
    """Format an error as GeoReport v2 does: a list of {code, description} (XML: <errors><error>…)."""
    try:
        fmt = _format_of_path()
    except GridmapError:
        fmt = "json"
    if status == 422:  # GeoReport v2 knows 400 for a request it cannot use, not 422
        status = 400
    response = _send([{"code": status, "description": message}], fmt, root="errors", item="error", status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gridmap"'
    return response


def _check_params(allowed: set[str]) -> None:
    unknown = sorted(set(request.values) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s) {', '.join(unknown)}; this resource takes {', '.join(sorted(allowed))}"
        )


def _user():
    user = current_user()
    if user is None:
        raise Unauthorized("send an API key: api_key=KEY or Authorization: Bearer KEY (gridmap users add …)")
    return user


# ---- discovery and services ------------------------------------------------------------------------------
@blueprint.get("/discovery")
@blueprint.get("/discovery.<fmt>")
@public
def discovery(fmt: str | None = None):
    """Where this Open311 endpoint is and what it speaks."""
    _check_params({"jurisdiction_id"})
    fmt = _split(f"discovery.{fmt}")[1] if fmt else _negotiated()
    body = {
        "changeset": CHANGESET,
        "contact": "gridmap: " + request.host_url.rstrip("/"),
        "key_service": request.host_url.rstrip("/") + "/login",
        "endpoints": [
            {
                "specification": SPEC,
                "url": request.host_url.rstrip("/") + "/open311/v2",
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return _send(body, fmt, root="discovery")


def _service(row: dict) -> dict:
    return {
        "service_code": row["code"],
        "service_name": row["name"],
        "description": f"{row['class_name']} · {row['name']}，处置时限{row['deadline']}",
        "metadata": True,
        "type": "realtime",
        "keywords": ",".join([row["class_name"], row["name"], row["name_en"]]),
        "group": row["class_name"],
    }


@blueprint.get("/services")
@blueprint.get("/services.<fmt>")
@public
def services(fmt: str | None = None):
    """The case categories as Open311 services, with their Chinese names."""
    _check_params({"jurisdiction_id"})
    fmt = _split(f"services.{fmt}")[1] if fmt else _negotiated()
    return _send([_service(row) for row in cases.load_categories()], fmt, root="services", item="service")


@blueprint.get("/services/<name>")
@public
def service_definition(name: str):
    """One category's definition: the optional attributes a request may carry."""
    _check_params({"jurisdiction_id"})
    code, fmt = _split(name)
    if code not in {row["code"] for row in cases.load_categories()}:
        raise NotFound(f"no service {code!r}: GET /open311/v2/services.json lists them")
    body = {
        "service_code": code,
        "attributes": [
            {
                "variable": True,
                "code": "title",
                "datatype": "string",
                "required": False,
                "datatype_description": f"at most {cases.MAX_TITLE} characters",
                "order": 1,
                "description": "标题 (默认取描述的开头)",
            },
            {
                "variable": True,
                "code": "source",
                "datatype": "singlevaluelist",
                "required": False,
                "datatype_description": "",
                "order": 2,
                "description": "来源 (默认 12345热线)",
                "values": [{"key": key, "name": SOURCE_NAMES[key]} for key in cases.SOURCES],
            },
        ],
    }
    return _send(body, fmt, root="service_definition")


# ---- requests --------------------------------------------------------------------------------------------
def _w3c(moment: dt.datetime | None) -> str | None:
    return moment.replace(tzinfo=zone()).isoformat(timespec="seconds") if moment else None


def _photo_links(incident_ids) -> dict[int, str]:
    """Return each case's first photo as an absolute URL (GeoReport v2 has one media_url per request)."""
    from gridmap import attachments

    base = request.host_url.rstrip("/")
    return {i: base + urls[0] for i, urls in attachments.photo_urls(_store(), incident_ids).items() if urls}


def _request(incident: dict, updated: dt.datetime | None, names: dict, media: dict[int, str]) -> dict:
    """Map a case (as the core returns it) onto a GeoReport v2 service request."""
    status = incident["status"]
    level = incident.get("handling_level") or "grid"
    notes = [f"{STATUS_NOTES.get(status, status)} ({status})"]
    if level != "grid":
        notes.append(f"{LEVEL_NAMES[level]}处置")
    if incident.get("supervised"):
        notes.append("督办")
    if status in cases.OPEN_STATUSES and incident.get("deadline") and clock.now() >= incident["deadline"]:
        notes.append("已逾期")
    area = {
        "grid": incident.get("grid_code"),
        "community": incident.get("community_code"),
        "street": incident.get("street_code"),
        "district": (incident.get("grid_code") or "")[:6] or None,
    }[level]
    agency = " ".join(v for v in (LEVEL_NAMES[level], area, incident.get("assignee")) if v)
    title, text = incident.get("title") or "", incident.get("description") or ""
    category = cases.category(incident["category_code"]) if incident.get("category_code") in names else None
    return {
        "service_request_id": incident["id"],
        "status": "closed" if status in cases.FINISHED_STATUSES else "open",
        "status_notes": "；".join(notes),
        "service_name": names.get(incident.get("category_code")),
        "service_code": incident.get("category_code"),
        "description": f"{title}\n{text}" if text and text != title else title,
        "agency_responsible": agency,
        "service_notice": f"处置时限{category['deadline']}" if category else None,
        "requested_datetime": _w3c(incident["reported_at"]),
        "updated_datetime": _w3c(updated or incident["reported_at"]),
        "expected_datetime": _w3c(incident.get("deadline")),
        "address": incident.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": incident.get("lat"),
        "long": incident.get("lon"),
        "media_url": media.get(incident["id"]),
    }


def _moment(name: str, *, end: bool = False) -> dt.datetime | None:
    raw = (request.values.get(name) or "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            return dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time())
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a W3C date-time such as 2026-05-01T08:00:00+08:00") from None
    return moment.astimezone(zone()).replace(tzinfo=None) if moment.tzinfo else moment


def _statuses() -> list[str] | None:
    raw = [s.strip().lower() for s in (request.values.get("status") or "").split(",") if s.strip()]
    for value in raw:
        if value not in ("open", "closed"):
            raise InvalidInput(f"status={value!r}: Open311 statuses are open and closed")
    chosen = set(raw)
    if not chosen or chosen == {"open", "closed"}:
        return None
    return list(cases.OPEN_STATUSES if "open" in chosen else cases.FINISHED_STATUSES)


def _ids(raw: str) -> list[int]:
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not part.isdigit() or len(part) > 15:
            raise InvalidInput(f"service_request_id {part!r} is not a number")
        ids.append(int(part))
    if len(ids) > MAX_REQUESTS:
        raise InvalidInput(f"at most {MAX_REQUESTS} service_request_id values at once")
    return ids


def _list_requests(user) -> list[dict]:
    wanted = request.values.get("service_request_id")
    if wanted:
        # The spec: a list of ids overrides every other parameter; ids outside the caller's scope are left out.
        found = []
        for incident_id in _ids(wanted):
            try:
                found.append(cases.get_case(_store(), incident_id, user=user))
            except NotFound:
                continue
        return found
    start, end = _moment("start_date"), _moment("end_date", end=True)
    if start is None and end is None:
        start = clock.now() - dt.timedelta(days=DEFAULT_DAYS)
    if start and end and start > end:
        raise InvalidInput("start_date is after end_date")
    code = (request.values.get("service_code") or "").strip() or None
    rows = cases.list_cases(
        _store(), user=user, statuses=_statuses(), category_code=code, reported_from=start, reported_to=end, limit=None
    )
    rows.sort(key=lambda r: (r["reported_at"], r["id"]), reverse=True)  # newest first, as the spec's examples
    return rows[:MAX_REQUESTS]


@blueprint.route("/requests", methods=["GET", "POST"])
@blueprint.route("/requests.<fmt>", methods=["GET", "POST"])
@require_user()
def requests_(fmt: str | None = None):
    """GET: the service requests the key may see (filters of the spec). POST: create one."""
    fmt = _split(f"requests.{fmt}")[1] if fmt else _negotiated()
    if request.method == "POST":
        return _create(fmt)
    _check_params(GET_FIELDS)
    user = _user()
    rows = _list_requests(user)
    updated = _store().last_changes(r["id"] for r in rows)
    names = cases.category_names()
    media = _photo_links([r["id"] for r in rows])
    body = [_request(r, updated.get(r["id"]), names, media) for r in rows]
    return _send(body, fmt, root="service_requests", item="request")


def _reporter_name() -> str | None:
    first = (request.values.get("first_name") or "").strip()
    last = (request.values.get("last_name") or "").strip()
    if not (first or last):
        return None
    chinese = any("\u4e00" <= c <= "\u9fff" for c in first + last)
    return f"{last}{first}" if chinese else " ".join(p for p in (first, last) if p)


def _create(fmt: str) -> Response:
    _check_params(POST_FIELDS)
    user = _user()
    values = request.values
    code = (values.get("service_code") or "").strip()
    if not code:
        raise InvalidInput("service_code is required: a code from GET /open311/v2/services.json")
    lat, lon = values.get("lat"), values.get("long")
    address = (values.get("address_string") or "").strip() or None
    if (lat is None) != (lon is None):
        raise InvalidInput("give both lat and long, or neither and an address_string")
    if lat is None and not address:
        raise InvalidInput("give the place: lat and long, or address_string")
    description = (values.get("description") or "").strip()
    title = (values.get("attribute[title]") or "").strip()
    if not title:
        title = (description.splitlines()[0][:60] if description else "") or cases.category(code)["name"]
    token = uuid.uuid4().hex
    incident = cases.report(
        _store(),
        user=user,
        title=title,
        description=description or None,
        lon=lon,
        lat=lat,
        address=address,
        category_code=code,
        reporter_name=_reporter_name(),
        reporter_phone=(values.get("phone") or "").strip() or None,
        source=(values.get("attribute[source]") or "").strip() or "hotline",
        source_id=TOKEN_PREFIX + token,
        settings=current_app.extensions["gridmap"].settings,
        calendar=cases.calendar_from_settings(current_app.extensions["gridmap"].settings),
    )
    _keep_media(incident, (values.get("media_url") or "").strip() or None)
    deadline = cases.category(code)["deadline"]
    body = [
        {
            "service_request_id": incident["id"],
            "token": token,
            "service_notice": f"已受理，处置时限{deadline}，网格 {incident.get('grid_code') or '-'}",
            "account_id": None,
        }
    ]
    response = _send(body, fmt, root="service_requests", item="request", status=201)
    response.headers["Location"] = f"{request.host_url.rstrip('/')}/open311/v2/requests/{incident['id']}.{fmt}"
    return response


def _keep_media(incident: dict, media_url: str | None) -> None:
    """Keep the photo link of a new case (the seam for case photos: a link is accepted and not stored yet)."""
    return None


@blueprint.get("/requests/<name>")
@require_user()
def request_(name: str):
    """One service request by id (a list of one, as the spec has it)."""
    _check_params({"jurisdiction_id", "api_key"})
    raw, fmt = _split(name)
    if not raw.isdigit() or len(raw) > 15:
        raise NotFound(f"no service request {raw!r}")
    incident = cases.get_case(_store(), int(raw), user=_user())
    history = incident.get("history") or []
    updated = max((h["at"] for h in history), default=None)
    body = [_request(incident, updated, cases.category_names(), _photo_links([incident["id"]]))]
    return _send(body, fmt, root="service_requests", item="request")


@blueprint.get("/tokens/<name>")
@public  # the spec's client asks with the token it was given, no key: it learns only the request's id
def token(name: str):
    """The service request id behind a token that POST requests returned."""
    _check_params({"jurisdiction_id", "api_key"})
    raw, fmt = _split(name)
    incident_id = _store().incident_id_for_source(TOKEN_PREFIX + raw) if len(raw) <= 64 else None
    if incident_id is None:
        raise NotFound(f"no service request for token {raw!r}")
    return _send([{"service_request_id": incident_id, "token": raw}], fmt, root="service_requests", item="request")
