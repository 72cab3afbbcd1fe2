"""The coverage audit report (/audit) and its JSON (/api/audit); the plan comparison (/compare, /api/compare).

Reports are kept in memory per (edition, its revision, the incidents revision, the day, the thresholds): the
editor asks for the audit after every edit, and an unchanged draft is not audited twice. The revisions are one
indexed row each, so a change made by any process is seen on the next request.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict

from flask import Blueprint, current_app, jsonify, render_template, request

from gridmap import audit, people
from gridmap.errors import InvalidInput
from gridmap.web.auth import current_user, require_user

blueprint = Blueprint("audit", __name__)


def _state():
    return current_app.extensions["gridmap"]


def _number(name: str, kind: type):
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a {'whole number' if kind is int else 'number'}, not {raw!r}") from None


def _options() -> dict:
    """Thresholds from the query string, falling back to the settings."""
    settings = _state().settings
    options = {"households_min": settings.households_min, "households_max": settings.households_max}
    given = {
        "households_min": _number("households_min", int),
        "households_max": _number("households_max", int),
        "area_tolerance_m2": _number("tolerance", float),
    }
    options.update({k: v for k, v in given.items() if v is not None})
    return options


_KEEP = 16
_lock = threading.Lock()


def _cached(kind: str, editions: tuple, options: dict, compute):
    """Return a report from memory when nothing it depends on has changed, else compute and keep it."""
    store = _state().store
    # Every edition's name, status and revision (one small query): a report also lists the editions to pick from.
    states = tuple((e.name, e.status, e.revision, str(e.created_at)) for e in store.list_editions())
    key = (
        kind,
        store.url,
        editions,
        states,
        store.incidents_revision(),
        dt.date.today(),
        tuple(sorted(options.items())),
    )
    reports = current_app.extensions.setdefault("gridmap_audit_cache", OrderedDict())
    with _lock:
        if key in reports:
            reports.move_to_end(key)
            return reports[key]
    value = compute(*editions)
    with _lock:
        reports[key] = value
        while len(reports) > _KEEP:
            reports.popitem(last=False)
    return value


def _scoped(report: dict) -> dict:
    """Keep only the incidents the signed-in user may see (a grid worker: their own grids)."""
    user = current_user()
    if user is None or user.sees_all_areas:
        return report
    report = dict(report)  # the cached report is shared: scope a copy
    lists = report["incidents"]
    report["incidents"] = {
        # An incident in no grid belongs to nobody's patch: only district-wide roles see it.
        "unassigned": [],
        "ambiguous": [
            i
            for i in lists["ambiguous"]
            if user.covers(grid_code=i["grid_code"], community_code=i["community_code"], street_code=i["street_code"])
        ],
    }
    return report


def _pair() -> tuple[str, str]:
    a, b = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    if not a or not b:
        raise InvalidInput("name the two editions to compare: ?a=OLD&b=NEW")
    return a, b


@blueprint.get("/audit")
@require_user()
def audit_report():
    """Show the coverage audit of an edition (?edition=, default the current one) as an HTML report."""
    options = _options()
    page = _cached(
        "page",
        (request.args.get("edition") or None,),
        options,
        lambda e: audit.audit_page(_state().store, e, **options),
    )
    page = {**page, "report": _scoped(page["report"])}
    return render_template("audit.html", **page)


@blueprint.get("/api/audit")
@require_user()
def audit_json():
    """Return the coverage audit of an edition as JSON."""
    options = _options()
    edition = request.args.get("edition") or None
    report = _cached("json", (edition,), options, lambda e: audit.audit_edition(_state().store, e, **options))
    return jsonify(_scoped(report))


@blueprint.get("/compare")
@require_user(*people.SEES_EVERYTHING)  # the moved cases span every grid: district-wide roles only
def compare_report():
    """Show what edition b changes against edition a (?a=&b=) as an HTML report."""
    a, b = _pair()
    options = _options()
    page = _cached("compare-page", (a, b), options, lambda x, y: audit.compare_page(_state().store, x, y, **options))
    return render_template("compare.html", **page)


@blueprint.get("/api/compare")
@require_user(*people.SEES_EVERYTHING)
def compare_json():
    """Return the comparison of editions a and b as JSON."""
    a, b = _pair()
    options = _options()
    report = _cached("compare", (a, b), options, lambda x, y: audit.compare_editions(_state().store, x, y, **options))
    return jsonify(report)
