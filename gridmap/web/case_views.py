"""Case pages, and the cases, categories and stats JSON API.

Every case route needs a signed-in user (session or Bearer token); `gridmap.cases` decides what each role
may see and do. Pages are Chinese by default; `?lang=en` switches to English for the session (Flask-Babel,
catalogues in gridmap/translations compiled from their .po files at start-up, so no binary .mo is committed).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlencode

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask_babel import lazy_gettext as _l

from gridmap import cases, clock
from gridmap.errors import InvalidInput, Unprocessable
from gridmap.store import Store
from gridmap.web import inputs
from gridmap.web.access import public
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import (
    DATE_TIME,
    ERRORS,
    OPTIONAL_DATE_TIME,
    choice,
    json_body,
    json_response,
    path_param,
    query,
)

blueprint = Blueprint("case", __name__)
MAX_PAGE = 500
REPORT_FIELDS = (
    "title", "description", "lon", "lat", "crs", "address", "category", "category_code",
    "reporter_name", "reporter_phone", "source",
)  # fmt: skip
ACTION_FIELDS = ("action", "note", "assignee", "hours", "days", "version")

STATUS_NAMES = {
    "reported": _l("Reported"),
    "registered": _l("Registered"),
    "dispatched": _l("Dispatched"),
    "in_progress": _l("In progress"),
    "resolved": _l("Resolved"),
    "closed": _l("Closed"),
    "rejected": _l("Rejected"),
}
ACTION_NAMES = {
    "report": _l("Report"),
    "register": _l("Register"),
    "dispatch": _l("Dispatch"),
    "start": _l("Start work"),
    "resolve": _l("Report back as resolved"),
    "close": _l("Close and archive"),
    "reject": _l("Reject: not a case"),
    "rework": _l("Return for rework"),
    "extend": _l("Extend the deadline"),
    "escalate": _l("Escalate"),
    "hand_back": _l("Hand back down"),
    "supervise": _l("Supervise"),
}
LEVEL_NAMES = {
    "grid": _l("Grid"),
    "community": _l("Community"),
    "street": _l("Street"),
    "district": _l("District"),
}
LIGHT_NAMES = {"green": _l("On time"), "yellow": _l("Due soon"), "red": _l("Overdue")}


# ---- helpers --------------------------------------------------------------------------------------------
def _store() -> Store:
    return current_app.extensions["gridmap"].store


def _calendar() -> cases.WorkingCalendar:
    state = current_app.extensions["gridmap"]
    cached = current_app.extensions.get("gridmap_calendar")
    if cached is None or cached[0] is not state.settings:
        cached = (state.settings, cases.calendar_from_settings(state.settings))
        current_app.extensions["gridmap_calendar"] = cached
    return cached[1]


def _body(allowed: tuple[str, ...]) -> dict:
    return inputs.json_object(allowed)


def _moment(name: str, *, end: bool = False) -> dt.datetime | None:
    return inputs.moment_arg(name, end=end)


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    return inputs.int_arg(name, default, low=low, high=high)


_NUMBER = r"-?[0-9]{1,3}(\.[0-9]+)?"
_BBOX = re.compile(rf"{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}")


def _bbox() -> tuple[float, float, float, float] | None:
    raw = request.args.get("bbox") or ""
    if not raw:
        return None
    if not _BBOX.fullmatch(raw):
        raise InvalidInput("bbox must be four decimal numbers west,south,east,north (WGS84 degrees)")
    west, south, east, north = (float(v) for v in raw.split(","))
    if west > east or south > north:
        raise Unprocessable("bbox must be west,south,east,north with west ≤ east and south ≤ north")
    return west, south, east, north


def _filters() -> dict:
    """Read the case-list filters shared by the API and the list page."""
    raw = request.args.get("status") or ""
    return {
        "statuses": raw.split(",") if raw else None,
        "grid_code": request.args.get("grid") or None,
        "community_code": request.args.get("community") or None,
        "category_code": request.args.get("category") or None,
        "source": request.args.get("source") or None,
        "reported_from": _moment("from"),
        "reported_to": _moment("to", end=True),
        "bbox": _bbox(),
        "overdue": inputs.flag_arg("overdue"),
    }


def _page(now: dt.datetime) -> tuple[list[dict], str | None]:
    limit = _int_arg("limit", 50, low=1, high=MAX_PAGE)
    after = _int_arg("after", 0, low=0, high=inputs.MAX_ID)
    rows = cases.list_cases(_store(), user=current_user(), **_filters(), after_id=after, limit=limit + 1, now=now)
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        args = {k: v for k, v in request.args.items() if k != "after"}
        following = f"{request.path}?{urlencode({**args, 'after': rows[-1]['id']})}"
    return rows, following


# ---- JSON API -------------------------------------------------------------------------------------------
@blueprint.post("/api/incidents")
@require_user()
def create_incident():
    """Report a case at a point or an address; it is geocoded, assigned to its grid and given a deadline."""
    body = _body(REPORT_FIELDS)
    incident = cases.report(
        _store(),
        user=current_user(),
        title=body.get("title"),
        description=body.get("description"),
        lon=body.get("lon"),
        lat=body.get("lat"),
        crs=body.get("crs") or "wgs84",
        address=body.get("address"),
        category_code=body.get("category", body.get("category_code")),
        reporter_name=body.get("reporter_name"),
        reporter_phone=body.get("reporter_phone"),
        source=body.get("source") or "web",
        settings=current_app.extensions["gridmap"].settings,
        calendar=_calendar(),
    )
    shown = cases.present(incident, user=current_user(), calendar=_calendar())
    return jsonify(shown), 201, {"Location": f"/api/incidents/{incident['id']}"}


@blueprint.get("/api/incidents")
@require_user()
def list_incidents():
    """List the cases in the caller's scope, filtered, by id, with a `next` link while there are more."""
    now = clock.now()
    rows, following = _page(now)
    user = current_user()
    items = [cases.present(r, user=user, now=now, calendar=_calendar()) for r in rows]
    return jsonify({"items": items, "count": len(items), "next": following})


@blueprint.get("/api/incidents/<int:incident_id>")
@require_user()
def get_incident(incident_id: int):
    """Return one case with its history and the actions the caller may take."""
    incident = cases.get_case(_store(), incident_id, user=current_user())
    return jsonify(cases.present(incident, user=current_user(), calendar=_calendar()))


@blueprint.post("/api/incidents/<int:incident_id>/actions")
@require_user()
def act_on_incident(incident_id: int):
    """Take one workflow step: register, dispatch, start, resolve, close, reject, rework, extend, escalate, …"""
    body = _body(ACTION_FIELDS)
    incident = cases.act(
        _store(),
        incident_id,
        user=current_user(),
        action=body.get("action"),
        note=body.get("note"),
        assignee=body.get("assignee"),
        hours=body.get("hours"),
        days=body.get("days"),
        version=body.get("version"),
        calendar=_calendar(),
    )
    return jsonify(cases.present(incident, user=current_user(), calendar=_calendar()))


@blueprint.get("/api/categories")
@public
def list_categories():
    """Return the category table with each category's deadline."""
    return jsonify(cases.load_categories())


@blueprint.get("/api/stats")
@require_user()
def get_stats():
    """Return the indicators of the cases in the caller's scope: ?by=grid|community|…&from=&to=."""
    result = cases.stats(
        _store(),
        user=current_user(),
        by=request.args.get("by") or "total",
        reported_from=_moment("from"),
        reported_to=_moment("to", end=True),
    )
    return jsonify(result)


# ---- pages ----------------------------------------------------------------------------------------------
@blueprint.get("/cases")
@require_user()
def case_list():
    """Show the cases in the user's scope with filters."""
    now = clock.now()
    rows, following = _page(now)
    user = current_user()
    return render_template(
        "cases.html",
        items=[cases.present(r, user=user, now=now, calendar=_calendar()) for r in rows],
        next_url=following,
        args=request.args,
        statuses=cases.STATUSES,
        categories=cases.load_categories(),
        names=_names(),
    )


@blueprint.get("/cases/<int:incident_id>")
@require_user()
def case_page(incident_id: int):
    """Show one case with its history and the buttons of the actions the user may take."""
    incident = cases.get_case(_store(), incident_id, user=current_user())
    return render_template(
        "case.html",
        case=cases.present(incident, user=current_user(), calendar=_calendar()),
        names=_names(),
    )


@blueprint.post("/cases/<int:incident_id>/actions")
@require_user()
def case_action(incident_id: int):
    """Take a workflow step from the case page's form (CSRF-protected), then show the case again."""
    form = request.form
    version = (form.get("version") or "").strip()
    if version and not (version.isascii() and version.isdigit() and len(version) <= 9):
        raise InvalidInput(f"version {version[:20]!r} is not a whole number")
    cases.act(
        _store(),
        incident_id,
        user=current_user(),
        action=form.get("action"),
        note=form.get("note"),
        assignee=form.get("assignee"),
        hours=form.get("hours") or None,
        days=form.get("days") or None,
        version=int(version) if version.isdigit() else None,
        calendar=_calendar(),
    )
    return redirect(f"/cases/{incident_id}", code=303)


def _names() -> dict:
    return {"status": STATUS_NAMES, "action": ACTION_NAMES, "level": LEVEL_NAMES, "light": LIGHT_NAMES}


# ---- OpenAPI: the case endpoints ----------------------------------------------------------------------
_STATUS_LIST = "|".join(cases.STATUSES)
# Tab and line breaks allowed; other control characters and non-characters are refused (so are lone
# surrogates, which JSON text cannot carry as characters anyway).
_TEXT_LINE = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff]*$"


def _text(limit: int, *, required: bool = False) -> dict:
    """A text field: at most `limit` characters, no control characters (not blank when `required`; an
    optional one may be null, the same as leaving it out)."""
    schema: dict = {"type": "string" if required else ["string", "null"], "maxLength": limit, "pattern": _TEXT_LINE}
    if required:
        schema["allOf"] = [{"pattern": "\\S"}]
    return schema


def _category_codes() -> list[str]:
    return [row["code"] for row in cases.load_categories()]


_CASE_FILTERS = [
    query(
        "status",
        "Comma-separated statuses: " + ", ".join(cases.STATUSES),
        {"type": "string", "pattern": f"^$|^({_STATUS_LIST})(,({_STATUS_LIST}))*$"},
    ),
    query("grid", "Grid code"),
    query("community", "Community code"),
    query("category", "4-digit category code", choice(_category_codes())),
    query("source", "Source: " + ", ".join(cases.SOURCES), choice(cases.SOURCES)),
    query("from", "Reported on or after: a day or a date-time with offset", inputs.MOMENT_SCHEMA),
    query("to", "Reported before (a day includes that whole day)", inputs.MOMENT_SCHEMA),
    query(
        "bbox",
        "west,south,east,north in WGS84 degrees (decimal numbers)",
        {"type": "string", "pattern": f"^$|^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"},
    ),
    query("overdue", "true (or 1): only open cases past their deadline", inputs.FLAG_SCHEMA),
    query("limit", f"Page size, 1–{MAX_PAGE} (default 50)", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
    query(
        "after",
        "Return cases with an id above this (the `next` link sets it)",
        {"type": "integer", "minimum": 0, "maximum": inputs.MAX_ID},
    ),
]
_ID = [path_param("incident_id", "integer")]

OPENAPI_PATHS: dict[str, dict] = {
    "/api/incidents": {
        "get": {
            "summary": "List the cases in the caller's scope",
            "parameters": _CASE_FILTERS,
            "responses": {"200": json_response("#/components/schemas/IncidentPage"), "422": ERRORS["422"]},
        },
        "post": {
            "summary": "Report a case (lon/lat or address); geocoded and assigned at once",
            "description": "A grid worker or supervisor reports only inside their own area (403 otherwise). "
            "A point in no grid or an address not in the gazetteer is 422.",
            "requestBody": json_body({"$ref": "#/components/schemas/NewIncident"}),
            "responses": {
                "201": {
                    **json_response("#/components/schemas/Incident", "Created"),
                    "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                },
                "422": ERRORS["422"],
            },
        },
    },
    "/api/incidents/{incident_id}": {
        "get": {
            "summary": "One case with its history and the actions the caller may take",
            "parameters": _ID,
            "responses": {"200": json_response("#/components/schemas/Incident")},
        }
    },
    "/api/incidents/{incident_id}/actions": {
        "post": {
            "summary": "Take a workflow step; an illegal step is 409",
            "parameters": _ID,
            "requestBody": json_body({"$ref": "#/components/schemas/Action"}),
            "responses": {"200": json_response("#/components/schemas/Incident"), "409": ERRORS["409"]},
        }
    },
    "/api/categories": {
        "get": {
            "summary": "The category table (2+2-digit codes) with deadlines in working hours or days",
            "responses": {"200": json_response("#/components/schemas/CategoryList")},
        }
    },
    "/api/stats": {
        "get": {
            "summary": "Indicators: received, registered, closed, resolution, on-time and rework rates, overdue",
            "parameters": [
                query("by", "Group by: " + ", ".join(cases.GROUPS), choice(cases.GROUPS)),
                query("from", "Reported on or after: a day or a date-time with offset", inputs.MOMENT_SCHEMA),
                query("to", "Reported before (a day includes that whole day)", inputs.MOMENT_SCHEMA),
            ],
            "responses": {"200": json_response("#/components/schemas/Stats")},
        }
    },
}

_INDICATORS = {
    "type": "object",
    "required": ["received", "registered", "rejected", "open", "closed", "resolution_rate", "due", "overdue"],
    "properties": {
        **{
            k: {"type": "integer", "minimum": 0}
            for k in ("received", "registered", "rejected", "open", "closed", "due", "closed_on_time", "reworked")
        },
        "overdue": {"type": "integer", "minimum": 0},
        **{k: {"type": ["number", "null"]} for k in ("resolution_rate", "on_time_rate", "rework_rate")},
        "median_hours_to_close": {"type": ["number", "null"]},
    },
}
_NEW_INCIDENT_PLACE = [
    {"required": ["lon", "lat"], "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}}},
    {
        "required": ["address"],
        "properties": {"address": {"type": "string", "pattern": "\\S"}},
        # lon without lat (or lat without lon) is refused even with an address: one of them is a mistake
        "not": {
            "anyOf": [
                {"required": ["lon"], "properties": {"lon": {"type": "number"}}},
                {"required": ["lat"], "properties": {"lat": {"type": "number"}}},
            ]
        },
    },
]

OPENAPI_SCHEMAS: dict[str, dict] = {
    "NewIncident": {
        "type": "object",
        "description": "Give the place as lon and lat (in `crs`, default WGS84) or as an address.",
        "required": ["title"],
        "additionalProperties": False,
        "allOf": [
            {"anyOf": _NEW_INCIDENT_PLACE},
            {"anyOf": [{"required": ["category"]}, {"required": ["category_code"]}]},
        ],
        "properties": {
            "title": _text(cases.MAX_TITLE, required=True),
            "description": _text(cases.MAX_DESCRIPTION),
            "category": {"type": "string", "enum": _category_codes()},
            "category_code": {"type": "string", "enum": _category_codes(), "description": "same as category"},
            "lon": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
            "lat": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
            "crs": {"enum": ["wgs84", "cgcs2000", "gcj02", "bd09", None]},
            "address": _text(cases.MAX_ADDRESS),
            "reporter_name": _text(cases.MAX_NAME),
            "reporter_phone": {
                "type": ["string", "null"],
                "pattern": "^ *$|^ *[0-9+()\\-][0-9+() \\-]{1,38}[0-9+()\\-] *$",
            },
            "source": {"enum": [*cases.SOURCES, None]},
        },
    },
    "Action": {
        "type": "object",
        "required": ["action"],
        "additionalProperties": False,
        "properties": {
            "action": {"type": "string", "enum": list(cases.ACTIONS)},
            "note": _text(cases.MAX_NOTE),
            "assignee": _text(cases.MAX_NAME),
            "hours": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": 10000,
                "description": "extend: working hours",
            },
            "days": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": 10000,
                "description": "extend: working days",
            },
            "version": {"type": ["integer", "null"], "description": "the version the caller saw (409 when stale)"},
        },
        "allOf": [
            *(
                {
                    "if": {"properties": {"action": {"const": name}}},
                    "then": {
                        "required": list(step.needs),
                        "properties": {field: {"type": "string", "pattern": "\\S"} for field in step.needs},
                    },
                }
                for name, step in cases.ACTIONS.items()
                if step.needs
            ),
            {
                "if": {"properties": {"action": {"const": "extend"}}},
                "then": {
                    "oneOf": [
                        {"required": ["hours"], "properties": {"hours": {"type": "number"}}},
                        {"required": ["days"], "properties": {"days": {"type": "number"}}},
                    ]
                },
            },
        ],
    },
    "Incident": {
        "type": "object",
        "required": [
            "id",
            "title",
            "description",
            "status",
            "handling_level",
            "category_code",
            "category_name",
            "grid_code",
            "community_code",
            "street_code",
            "reported_at",
            "deadline",
            "light",
            "overdue",
            "reporter_name",
            "reporter_phone",
            "actions",
            "version",
            "lon",
            "lat",
        ],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "status": {"type": "string", "enum": list(cases.STATUSES)},
            "handling_level": {"type": "string", "enum": list(cases.LEVELS)},
            "assignee": {"type": ["string", "null"]},
            "category_code": {"type": ["string", "null"]},
            "category_name": {"type": ["string", "null"]},
            "grid_code": {"type": ["string", "null"]},
            "community_code": {"type": ["string", "null"]},
            "street_code": {"type": ["string", "null"]},
            "original_grid_code": {"type": ["string", "null"]},
            "edition": {"type": ["string", "null"]},
            "ambiguous": {"type": "boolean"},
            "address": {"type": ["string", "null"]},
            "lon": {"type": ["number", "null"]},
            "lat": {"type": ["number", "null"]},
            "geocode_level": {"type": ["string", "null"]},
            "geocode_confidence": {"type": ["number", "null"]},
            "source": {"type": "string", "enum": list(cases.SOURCES)},
            "source_id": {"type": ["string", "null"]},
            "supervised": {"type": "boolean"},
            "rework_count": {"type": "integer", "minimum": 0},
            "version": {"type": "integer", "minimum": 1},
            "reporter_name": {"type": ["string", "null"], "description": "masked unless admin or supervisor"},
            "reporter_phone": {"type": ["string", "null"], "description": "masked unless admin or supervisor"},
            "reported_at": DATE_TIME,
            "deadline": OPTIONAL_DATE_TIME,
            "resolved_at": OPTIONAL_DATE_TIME,
            "closed_at": OPTIONAL_DATE_TIME,
            "light": {"enum": ["green", "yellow", "red", None]},
            "overdue": {"type": "boolean"},
            "actions": {"type": "array", "items": {"type": "string", "enum": list(cases.ACTIONS)}},
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "actor", "action", "from", "to", "note"],
                    "properties": {
                        "at": DATE_TIME,
                        "actor": {"type": "string"},
                        "action": {"type": "string"},
                        "from": {"type": ["string", "null"]},
                        "to": {"type": "string"},
                        "note": {"type": "string"},
                    },
                },
            },
        },
    },
    "IncidentPage": {
        "type": "object",
        "required": ["items", "count", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
            "count": {"type": "integer", "minimum": 0},
            "next": {"type": ["string", "null"]},
        },
    },
    "CategoryList": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["code", "class_code", "class_name", "name", "name_en", "limit", "unit", "deadline"],
            "properties": {
                "code": {"type": "string", "pattern": "^[0-9]{4}$"},
                "class_code": {"type": "string", "pattern": "^[0-9]{2}$"},
                "class_name": {"type": "string"},
                "class_name_en": {"type": "string"},
                "name": {"type": "string"},
                "name_en": {"type": "string"},
                "deadline": {"type": "string"},
                "deadline_en": {"type": "string"},
                "limit": {"type": "number", "exclusiveMinimum": 0},
                "unit": {"enum": ["hours", "days"]},
                "limit_working_hours": {"type": "number"},
            },
        },
    },
    "Stats": {
        "type": "object",
        "required": ["by", "from", "to", "as_of", "total", "groups"],
        "properties": {
            "by": {"type": "string", "enum": list(cases.GROUPS)},
            "from": OPTIONAL_DATE_TIME,
            "to": OPTIONAL_DATE_TIME,
            "as_of": DATE_TIME,
            "total": _INDICATORS,
            "groups": {
                "type": "array",
                "items": {
                    "allOf": [_INDICATORS, {"required": ["key"], "properties": {"key": {"type": ["string", "null"]}}}]
                },
            },
        },
    },
}
