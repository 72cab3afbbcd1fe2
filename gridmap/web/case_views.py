"""Case pages, and the cases, categories and stats JSON API.

Every case route needs a signed-in user (session or Bearer token); `gridmap.cases` decides what each role
may see and do. Pages are Chinese by default; `?lang=en` switches to English for the session (Flask-Babel,
catalogues in gridmap/translations compiled from their .po files at start-up, so no binary .mo is committed).
"""

from __future__ import annotations

import datetime as dt
import math
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
from gridmap.errors import InvalidInput
from gridmap.store import Store
from gridmap.web import inputs
from gridmap.web.access import public
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, OK, json_response, path_param, query

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
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            # A day given as the end of a period includes that whole day.
            return dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time())
        # A time with an offset is converted to Shanghai time, the time every stored case is in.
        return clock.local(dt.datetime.fromisoformat(raw))
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{name}={raw[:40]!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM[+08:00])"
        ) from None


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    return inputs.int_arg(name, default, low=low, high=high)


def _bbox() -> tuple[float, float, float, float] | None:
    raw = (request.args.get("bbox") or "").strip()
    if not raw:
        return None
    try:
        west, south, east, north = (float(v) for v in raw.split(","))
    except ValueError:
        raise InvalidInput("bbox must be four numbers west,south,east,north (WGS84)") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise InvalidInput("bbox must be four finite numbers west,south,east,north (WGS84)")
    if west > east or south > north:
        raise InvalidInput("bbox must be west,south,east,north with west ≤ east and south ≤ north")
    return west, south, east, north


def _filters() -> dict:
    """Read the case-list filters shared by the API and the list page."""
    statuses = [s for s in (request.args.get("status") or "").split(",") if s.strip()]
    return {
        "statuses": [s.strip() for s in statuses] or None,
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
    after = _int_arg("after", 0, low=0, high=2**62)
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
_CASE_FILTERS = [
    query("status", "Comma-separated statuses: " + ", ".join(cases.STATUSES)),
    query("grid", "Grid code"),
    query("community", "Community code"),
    query("category", "4-digit category code"),
    query("source", "Source: " + ", ".join(cases.SOURCES)),
    query("from", "Reported on or after (YYYY-MM-DD or YYYY-MM-DDTHH:MM)"),
    query("to", "Reported before (a date includes that whole day)"),
    query("bbox", "west,south,east,north in WGS84"),
    query("overdue", "true: only open cases past their deadline", {"type": "boolean"}),
    query("limit", f"Page size, 1–{MAX_PAGE} (default 50)", {"type": "integer"}),
    query("after", "Return cases with an id above this (the `next` link sets it)", {"type": "integer"}),
]

OPENAPI_PATHS: dict[str, dict] = {
    "/api/incidents": {
        "get": {
            "summary": "List the cases in the caller's scope",
            "parameters": _CASE_FILTERS,
            "responses": {"200": json_response("#/components/schemas/IncidentPage"), **ERRORS},
        },
        "post": {
            "summary": "Report a case (lon/lat or address); geocoded and assigned at once",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewIncident"}}},
            },
            "responses": {"201": json_response("#/components/schemas/Incident", "Created"), **ERRORS},
        },
    },
    "/api/incidents/{incident_id}": {
        "get": {
            "summary": "One case with its history and the actions the caller may take",
            "parameters": [path_param("incident_id", "integer")],
            "responses": {"200": json_response("#/components/schemas/Incident"), **ERRORS},
        }
    },
    "/api/incidents/{incident_id}/actions": {
        "post": {
            "summary": "Take a workflow step; an illegal step is 409",
            "parameters": [path_param("incident_id", "integer")],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Action"}}},
            },
            "responses": {"200": json_response("#/components/schemas/Incident"), **ERRORS},
        }
    },
    "/api/categories": {
        "get": {
            "summary": "The category table (2+2-digit codes) with deadlines in working hours or days",
            "security": [],
            "responses": {"200": OK},
        }
    },
    "/api/stats": {
        "get": {
            "summary": "Indicators: received, registered, closed, resolution, on-time and rework rates, overdue",
            "parameters": [
                query("by", "Group by: " + ", ".join(cases.GROUPS)),
                query("from", "Reported on or after"),
                query("to", "Reported before (a date includes that day)"),
            ],
            "responses": {"200": OK, **ERRORS},
        }
    },
}

OPENAPI_SCHEMAS: dict[str, dict] = {
    "NewIncident": {
        "type": "object",
        "required": ["title", "category"],
        "properties": {
            "title": {"type": "string", "maxLength": cases.MAX_TITLE},
            "description": {"type": "string", "maxLength": cases.MAX_DESCRIPTION},
            "category": {"type": "string", "pattern": "^[0-9]{4}$"},
            "lon": {"type": "number"},
            "lat": {"type": "number"},
            "crs": {"type": "string", "enum": ["wgs84", "cgcs2000", "gcj02", "bd09"]},
            "address": {"type": "string", "maxLength": cases.MAX_ADDRESS},
            "reporter_name": {"type": "string", "maxLength": cases.MAX_NAME},
            "reporter_phone": {"type": "string", "maxLength": cases.MAX_PHONE},
            "source": {"type": "string", "enum": list(cases.SOURCES)},
        },
    },
    "Action": {
        "type": "object",
        "required": ["action"],
        "properties": {
            "action": {"type": "string", "enum": list(cases.ACTIONS)},
            "note": {"type": "string", "maxLength": cases.MAX_NOTE},
            "assignee": {"type": "string", "maxLength": cases.MAX_NAME},
            "hours": {"type": "number", "description": "extend: working hours to add"},
            "days": {"type": "number", "description": "extend: working days to add"},
            "version": {"type": "integer", "description": "the version the caller saw (409 when stale)"},
        },
    },
    "Incident": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "status": {"type": "string", "enum": list(cases.STATUSES)},
            "handling_level": {"type": "string", "enum": list(cases.LEVELS)},
            "grid_code": {"type": ["string", "null"]},
            "category_code": {"type": ["string", "null"]},
            "deadline": {"type": ["string", "null"], "format": "date-time"},
            "light": {"type": ["string", "null"], "enum": ["green", "yellow", "red", None]},
            "reporter_phone": {"type": ["string", "null"], "description": "masked unless admin or supervisor"},
            "actions": {"type": "array", "items": {"type": "string"}},
            "history": {"type": "array", "items": {"type": "object"}},
            "version": {"type": "integer"},
        },
    },
    "IncidentPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"]},
        },
    },
}
