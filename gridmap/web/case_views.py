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
from gridmap.web import attachment_views, inputs
from gridmap.web.access import public
from gridmap.web.auth import current_user, require_user

# The description of these routes lives beside them in case_openapi; web/openapi gathers it from here.
from gridmap.web.case_openapi import BBOX_PATTERN, MAX_PAGE, OPENAPI_PATHS, OPENAPI_SCHEMAS
from gridmap.web.i18n import current_language

__all__ = ["OPENAPI_PATHS", "OPENAPI_SCHEMAS", "blueprint"]

blueprint = Blueprint("case", __name__)
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
    "relocate": _l("Set the point by hand"),
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
    if attachment_views.is_multipart():
        return attachment_views.form_fields(allowed)
    return inputs.json_object(allowed)


def _moment(name: str, *, end: bool = False) -> dt.datetime | None:
    return inputs.moment_arg(name, end=end)


def _int_arg(name: str, default: int, *, low: int, high: int) -> int:
    return inputs.int_arg(name, default, low=low, high=high)


_BBOX = re.compile(BBOX_PATTERN)


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
        "street_code": request.args.get("street") or None,
        "category_code": request.args.get("category") or None,
        "source": request.args.get("source") or None,
        "reported_from": _moment("from"),
        "reported_to": _moment("to", end=True),
        "bbox": _bbox(),
        "overdue": inputs.flag_arg("overdue"),
        "review": inputs.flag_arg("review"),
    }


def stat_filters() -> dict:
    """Read the filters /api/stats, the dashboard and the indicator export share (besides from/to)."""
    return {
        "grid_code": request.args.get("grid") or None,
        "community_code": request.args.get("community") or None,
        "street_code": request.args.get("street") or None,
        "category_code": request.args.get("category") or None,
        "source": request.args.get("source") or None,
    }


def period() -> tuple[dt.datetime | None, dt.datetime | None]:
    """Read ?from= and ?to= (a date as `to` includes that whole day); refuse a period that ends before it starts."""
    start, end = _moment("from"), _moment("to", end=True)
    if start and end and end <= start:
        raise Unprocessable("to is before from: give a period that ends after it starts")  # each is well-formed
    return start, end


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
    incident = attachment_views.report(
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
    shown = cases.present(incident, user=current_user(), calendar=_calendar()) | attachment_views.listed(incident)
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
    shown = cases.present(incident, user=current_user(), calendar=_calendar()) | attachment_views.listed(incident)
    return jsonify(shown)


@blueprint.post("/api/incidents/<int:incident_id>/actions")
@require_user()
def act_on_incident(incident_id: int):
    """Take one workflow step: register, dispatch, start, resolve, close, reject, rework, extend, escalate, …"""
    body = _body(ACTION_FIELDS)
    incident = attachment_views.act(
        incident_id,
        action=body.get("action"),
        note=body.get("note"),
        assignee=body.get("assignee"),
        hours=body.get("hours"),
        days=body.get("days"),
        version=body.get("version"),
        calendar=_calendar(),
    )
    shown = cases.present(incident, user=current_user(), calendar=_calendar()) | attachment_views.listed(incident)
    return jsonify(shown)


@blueprint.get("/api/categories")
@public
def list_categories():
    """Return the category table with each category's deadline."""
    return jsonify(cases.load_categories())


@blueprint.get("/api/stats")
@require_user()
def get_stats():
    """Return the indicators of the cases in the caller's scope: ?by=&from=&to=&street=&community=&category=&source=."""
    start, end = period()
    result = cases.stats(
        _store(),
        user=current_user(),
        by=request.args.get("by") or "total",
        reported_from=start,
        reported_to=end,
        **stat_filters(),
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
        thumbnails=attachment_views.first_thumbnails([r["id"] for r in rows]),
        next_url=following,
        args=request.args,
        statuses=cases.STATUSES,
        categories=cases.load_categories(),
        names=_names(),
        category_names=category_names(),
    )


@blueprint.get("/cases/<int:incident_id>")
@require_user()
def case_page(incident_id: int):
    """Show one case with its history and the buttons of the actions the user may take."""
    incident = cases.get_case(_store(), incident_id, user=current_user())
    return render_template(
        "case.html",
        case=cases.present(incident, user=current_user(), calendar=_calendar()),
        gallery=attachment_views.gallery(incident),
        after_photo=cases.needs_after_photo(incident.get("category_code")),
        names=_names(),
        category_names=category_names(),
    )


@blueprint.post("/cases/<int:incident_id>/actions")
@require_user()
def case_action(incident_id: int):
    """Take a workflow step from the case page's form (CSRF-protected), then show the case again."""
    form = request.form
    version = (form.get("version") or "").strip()
    if version and not (version.isascii() and version.isdigit() and len(version) <= 9):
        raise InvalidInput(f"version {version[:20]!r} is not a whole number")
    attachment_views.act(
        incident_id,
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


def category_names() -> dict[str, str]:
    """Return code → category name in the page's language."""
    key = "name" if current_language() == "zh" else "name_en"
    return {c["code"]: c[key] for c in cases.load_categories()}
