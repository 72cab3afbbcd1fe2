"""The command dashboard (指挥中心): /dashboard and the JSON it draws, /api/dashboard.

Every signed-in role sees it, scoped to their area (`cases.scope_of`). The page is drawn in the browser by
Apache ECharts (served from gridmap/static/vendor like Leaflet) from one JSON answer; its filters live in the
URL so a view can be shared, `?screen=1` is the full-screen 大屏 mode that refreshes itself.

All incidents are read once per change of the case table (the map's fingerprint, at most once a second) with
only the columns indicators need; every filter and scope then works on that snapshot in memory.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from flask import Blueprint, current_app, render_template, request

from gridmap import assets, cases, clock, dashboard, maps
from gridmap.web import case_openapi, map_views
from gridmap.web.auth import current_user, require_user
from gridmap.web.case_views import stat_filters
from gridmap.web.i18n import current_language, script_text
from gridmap.web.openapi import DATE_TIME, ERRORS, choice, json_response, query

blueprint = Blueprint("dashboard", __name__)
log = logging.getLogger(__name__)
MIN_REFRESH_S, DEFAULT_REFRESH_S = 5, 60
# Every string the dashboard's script shows, as English msgids (translated into the page's language).
SCRIPT_TEXT = (
    "Received",
    "Closed",
    "Resolution rate",
    "On-time rate",
    "Overdue",
    "Median hours to close",
    "Received per day",
    "Closed per day",
    "Resolution and on-time rate per week",
    "Open cases",
    "Overdue cases",
    "By street",
    "By community",
    "Top categories",
    "Time to close",
    "Traffic lights",
    "On time",
    "Due soon",
    "No deadline",
    "Open cases per grid",
    "cases",
    "hours",
    "h",
    "d",
    "more than",
    "Updated",
    "No cases in this period.",
    "Loading…",
    "The dashboard could not be loaded",
    "Full screen",
    "Exit full screen",
)


def _store():
    return current_app.extensions["gridmap"].store


def _day(name: str) -> dt.date | None:
    from gridmap.errors import InvalidInput

    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from None


def _window(now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    start, end = _day("from"), _day("to")
    period = request.args.get("period") or None
    if period is None:
        period = "range" if (start or end) else dashboard.DEFAULT_PERIOD
    first, last = dashboard.period_window(period, today=now.date(), start=start, end=end)
    return period, first, last


def _facts(revision: int | None = None) -> list[dict]:
    """Every incident's indicator columns, read once per change of the case table."""
    store = _store()
    key = ("dashboard-facts", store.describe(), store.incidents_revision() if revision is None else revision)
    return map_views._cache().get(key, store.incident_facts)


def _area_names() -> dict[str, str]:
    store = _store()
    edition = store.current_edition()
    if edition is None:
        return {}
    return {r["code"]: r["name"] for r in store.area_attributes(edition.name) if r["level"] != "grid"}


def _category_names() -> dict[str, str]:
    key = "name" if current_language() == "zh" else "name_en"
    return {c["code"]: c[key] for c in cases.load_categories()}


def dashboard_data() -> dict:
    """Compute the dashboard of the signed-in user for the request's filters and period."""
    now = clock.now()
    user = current_user()
    filters = stat_filters()
    cases.check_filters(**{k: v for k, v in filters.items() if v is not None})
    period, start, end = _window(now)
    # The incidents revision (one row) changes with every write to a case: the caches key on it.
    fingerprint = _store().incidents_revision()
    facts = _facts(fingerprint)
    scope = None if user.sees_all_areas else user.areas
    # One answer per snapshot of the cases, scope, filters, period, language and minute: a wall screen
    # refreshing every minute, or a team opening the same view, costs one computation.
    minute = now.replace(second=0)
    key = ("dashboard", _store().describe(), fingerprint, scope, tuple(sorted(filters.items())), start, end)
    key += (current_language(), minute)

    def compute() -> dict:
        rows = dashboard.select(facts, user=user, **filters)
        result = dashboard.build(
            rows,
            start=start,
            end=end,
            now=now,
            names=_area_names(),
            category_names=_category_names(),
            calendar=map_views._calendar(),
        )
        result["period"] = period
        result["filters"] = {k: v for k, v in filters.items() if v is not None}
        return result

    return map_views._cache().get(key, compute)


@blueprint.get("/api/dashboard")
@require_user()
def dashboard_json():
    """Every figure of the dashboard: ?period=today|week|month|30d|range&from=&to=&street=&community=&…"""
    # Gzipped like the map's layers (a year of days and 175 communities shrink ~5×).
    return map_views._json_response(maps.to_json(dashboard_data()))


@blueprint.get("/dashboard")
@require_user()
def dashboard_page():
    """The command dashboard: headline numbers, charts and a small map of open cases per grid."""
    assets.vendor_file("echarts/dist/echarts.min.js")
    user = current_user()
    store = _store()
    edition = store.current_edition()
    areas = store.area_attributes(edition.name) if edition else []
    screen = request.args.get("screen") in ("1", "true", "yes")
    refresh = request.args.get("refresh", "")
    refresh_s = max(MIN_REFRESH_S, int(refresh)) if refresh.isdigit() else DEFAULT_REFRESH_S
    _window(clock.now())  # a wrong period or date is refused on the page, not later in its script
    _warm_up()
    config = {
        "api": "/api/dashboard",
        "grids_api": "/api/map/grids?zoom=10" if edition else None,
        "stats_api": "/api/stats",
        "refresh_s": refresh_s if screen else None,
        "language": current_language(),
        "text": script_text(SCRIPT_TEXT),
    }
    return render_template(
        "dashboard.html",
        config=config,
        screen=screen,
        args=request.args,
        periods=dashboard.PERIODS,
        choices=dashboard.filter_choices(areas, user=user),
        categories=cases.load_categories(),
        sources=cases.SOURCES,
        source_labels=cases.SOURCE_LABELS,
    )


def _warm_up() -> None:
    """Read the cases while the browser loads the page's scripts (most of a cold start)."""
    app = current_app._get_current_object()

    def run() -> None:
        with app.app_context():
            try:
                _facts()
            except Exception:  # the data request meets the same error and reports it
                log.exception("warming the dashboard's cache failed")

    threading.Thread(target=run, name="gridmap-dashboard-warm-up", daemon=True).start()


# ---- OpenAPI ----------------------------------------------------------------------------------------------
_DAY = {"anyOf": [{"type": "string", "format": "date"}, {"const": ""}]}
_COUNTS = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_RATES = {"type": "array", "items": {"type": ["number", "null"]}}
_RANKED = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["code", "name", "open", "overdue"],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "open": {"type": "integer", "minimum": 0},
            "overdue": {"type": "integer", "minimum": 0},
        },
    },
}
OPENAPI_PATHS: dict[str, dict] = {
    "/api/dashboard": {
        "get": {
            "summary": "Every figure of the dashboard for the caller's scope, filters and period",
            "description": "A case counts when it was reported in the period [from, to). A range needs from and "
            "to, to not before from, at most 3 years: otherwise 422.",
            "parameters": [
                query(
                    "period",
                    "today, week, month, 30d (default) or range (default when from or to is given)",
                    choice(dashboard.PERIODS),
                ),
                query("from", "First day of a range (YYYY-MM-DD)", _DAY),
                query("to", "Last day of a range (YYYY-MM-DD, included)", _DAY),
                query("grid", "Grid code"),
                query("community", "Community code"),
                query("street", "Street code"),
                query("category", "4-digit category code", choice(case_openapi._category_codes())),
                query("source", "Source: " + ", ".join(cases.SOURCES), choice(cases.SOURCES)),
            ],
            "responses": {"200": json_response("#/components/schemas/Dashboard"), "422": ERRORS["422"]},
        }
    },
}
OPENAPI_SCHEMAS: dict[str, dict] = {
    "Dashboard": {
        "type": "object",
        "required": [
            "as_of",
            "from",
            "to",
            "period",
            "filters",
            "headline",
            "daily",
            "weekly",
            "streets",
            "communities",
            "categories",
            "close_hours",
            "lights",
            "grids",
        ],
        "properties": {
            "as_of": DATE_TIME,
            "from": {**DATE_TIME, "description": "First moment of the period (Asia/Shanghai)"},
            "to": {**DATE_TIME, "description": "End of the period, excluded (Asia/Shanghai)"},
            "period": {"type": "string", "enum": list(dashboard.PERIODS)},
            "filters": {
                "type": "object",
                "description": "The filters applied (those given)",
                "additionalProperties": {"type": "string"},
            },
            "headline": {"$ref": "#/components/schemas/Indicators"},
            "daily": {
                "type": "object",
                "required": ["days", "received", "closed"],
                "properties": {
                    "days": {"type": "array", "items": {"type": "string", "format": "date"}},
                    "received": _COUNTS,
                    "closed": _COUNTS,
                },
            },
            "weekly": {
                "type": "object",
                "required": ["weeks", "resolution_rate", "on_time_rate", "received"],
                "properties": {
                    "weeks": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"}},
                    "resolution_rate": _RATES,
                    "on_time_rate": _RATES,
                    "received": _COUNTS,
                },
            },
            "streets": _RANKED,
            "communities": _RANKED,
            "categories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "name", "received"],
                    "properties": {
                        "code": {"type": "string"},
                        "name": {"type": "string"},
                        "received": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "close_hours": {
                "type": "object",
                "required": ["edges", "counts"],
                "description": "Histogram of hours to close: counts[i] from edges[i] (the last bin is open)",
                "properties": {"edges": _COUNTS, "counts": _COUNTS},
            },
            "lights": {
                "type": "object",
                "required": ["green", "yellow", "red", "none"],
                "additionalProperties": False,
                "properties": {k: {"type": "integer", "minimum": 0} for k in ("green", "yellow", "red", "none")},
            },
            "grids": {
                "type": "object",
                "description": "Open cases per grid code",
                "additionalProperties": {"type": "integer", "minimum": 1},
            },
        },
    },
}
