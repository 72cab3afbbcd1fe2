"""The coverage audit report (/audit) and its JSON (/api/audit); the plan comparison (/compare, /api/compare).

Reports are kept in memory per (edition, its revision, the incidents revision, the day, the thresholds): the
editor asks for the audit after every edit, and an unchanged draft is not audited twice. The revisions are one
indexed row each, so a change made by any process is seen on the next request.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

from flask import Blueprint, current_app, jsonify, render_template, request

from gridmap import audit, clock
from gridmap.errors import InvalidInput, Unprocessable
from gridmap.web.access import visible_edition, visible_editions
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, NO_NUL, json_response, query

blueprint = Blueprint("audit", __name__)


def _state():
    return current_app.extensions["gridmap"]


def _number(name: str, kind: type):
    raw = request.args.get(name, "")
    if not raw:
        return None
    pattern = r"[0-9]{1,9}" if kind is int else r"[0-9]{1,12}(\.[0-9]+)?"
    if not re.fullmatch(pattern, raw):
        what = "whole number" if kind is int else "number"
        raise InvalidInput(f"{name} must be a {what} ≥ 0 (plain digits), not {raw[:30]!r}")
    return kind(raw)


def audit_options() -> dict:
    """Thresholds from the query string, falling back to the settings."""
    settings = _state().settings
    options = {"households_min": settings.households_min, "households_max": settings.households_max}
    given = {
        "households_min": _number("households_min", int),
        "households_max": _number("households_max", int),
        "area_tolerance_m2": _number("tolerance", float),
    }
    options.update({k: v for k, v in given.items() if v is not None})
    if options["households_min"] > options["households_max"]:
        raise Unprocessable(
            f"households_min ({options['households_min']}) is above households_max ({options['households_max']})"
        )
    return options


_KEEP = 16
_lock = threading.Lock()


def _cached(kind: str, editions: tuple, options: dict, compute):
    """Return a report from memory when nothing it depends on has changed, else compute and keep it.

    A scoped caller's report is cut to their area (gridmap.audit.scope), so their scope is part of the key."""
    store = _state().store
    user = current_user()
    scope = None if user is None or user.sees_all_areas else (user.role, tuple(sorted(user.areas)))
    # Every edition's name, status and revision (one small query): a report also lists the editions to pick from.
    states = tuple((e.name, e.status, e.revision, str(e.created_at)) for e in store.list_editions())
    key = (
        kind,
        store.url,
        editions,
        scope,
        states,
        store.incidents_revision(),
        clock.today(),
        tuple(sorted(options.items())),
    )
    reports = current_app.extensions.setdefault("gridmap_audit_cache", OrderedDict())
    with _lock:
        if key in reports:
            reports.move_to_end(key)
            return reports[key]
    value = compute(*editions, user=user)
    with _lock:
        reports[key] = value
        while len(reports) > _KEEP:
            reports.popitem(last=False)
    return value


def edition_pair() -> tuple[str, str]:
    a, b = request.args.get("a", ""), request.args.get("b", "")
    if not a or not b:
        raise InvalidInput("name the two editions to compare: ?a=OLD&b=NEW")
    return edition_named(a), edition_named(b)


def edition_named(name: str | None) -> str | None:
    """The named edition if the caller may see it (drafts: planners, admins, supervisors), else 404."""
    edition = visible_edition(_state().store, name) if name else None
    return edition.name if edition else None


@blueprint.get("/audit")
@require_user()
def audit_report():
    """Show the coverage audit of an edition (?edition=, default the current one) as an HTML report.

    A supervisor or grid worker sees it cut to their own area (gridmap.audit.scope)."""
    store = _state().store
    options = audit_options()
    edition = edition_named(request.args.get("edition"))
    page = _cached("page", (edition,), options, lambda e, user: audit.audit_page(store, e, user=user, **options))
    page = {**page, "editions": [e.to_dict() for e in visible_editions(store)]}  # the cached page is shared
    return render_template("audit.html", **page)


@blueprint.get("/api/audit")
@require_user()
def audit_json():
    """Return the coverage audit of an edition as JSON (cut to a scoped caller's area)."""
    store = _state().store
    options = audit_options()
    edition = edition_named(request.args.get("edition"))
    report = _cached("json", (edition,), options, lambda e, user: audit.audit_edition(store, e, user=user, **options))
    return jsonify(report)


@blueprint.get("/compare")
@require_user()
def compare_report():
    """Show what edition b changes against edition a (?a=&b=) as an HTML report (cut to a scoped user's area)."""
    a, b = edition_pair()
    store = _state().store
    options = audit_options()
    page = _cached(
        "compare-page", (a, b), options, lambda x, y, user: audit.compare_page(store, x, y, user=user, **options)
    )
    page = {**page, "editions": [e.to_dict() for e in visible_editions(store)]}
    return render_template("compare.html", **page)


@blueprint.get("/api/compare")
@require_user()
def compare_json():
    """Return the comparison of editions a and b as JSON (cut to a scoped caller's area)."""
    a, b = edition_pair()
    store = _state().store
    options = audit_options()
    report = _cached(
        "compare", (a, b), options, lambda x, y, user: audit.compare_editions(store, x, y, user=user, **options)
    )
    return jsonify(report)


# ---- OpenAPI ---------------------------------------------------------------------------------------------
_OPTIONS = [
    query(
        "households_min",
        "Fewest households per grid before it is flagged",
        {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    ),
    query(
        "households_max",
        "Most households per grid before it is flagged",
        {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    ),
    query(
        "tolerance",
        "Area in m² below which gaps and overlaps are only counted",
        {"type": "number", "minimum": 0, "maximum": 999_999_999_999},
    ),
]
_EDITION_NAME = {"type": "string", "minLength": 1, "pattern": NO_NUL}
OPENAPI_PATHS: dict[str, dict] = {
    "/api/audit": {
        "get": {
            "summary": "Coverage audit of an edition: gaps, overlaps, outside parent, invalid, slivers, codes, balance",
            "description": "A supervisor or grid worker gets it cut to their own area. households_min above "
            "households_max is 422.",
            "parameters": [query("edition", "Edition name (default: the current one)"), *_OPTIONS],
            "responses": {"200": json_response("#/components/schemas/Audit"), "422": ERRORS["422"]},
        }
    },
    "/api/compare": {
        "get": {
            "summary": "What edition b changes against edition a: grids, households and cases that move",
            "description": "A supervisor or grid worker gets it cut to their own area.",
            "parameters": [
                query("a", "The edition before", _EDITION_NAME, required=True),
                query("b", "The edition after", _EDITION_NAME, required=True),
                *_OPTIONS,
            ],
            "responses": {"200": json_response("#/components/schemas/Comparison"), "422": ERRORS["422"]},
        }
    },
}
_FINDINGS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["kind", "codes"],
        "properties": {"codes": {"type": "array", "items": {"type": "string"}}},
    },
}
OPENAPI_SCHEMAS: dict[str, dict] = {
    "Audit": {
        "type": "object",
        "required": [*audit.FINDING_KINDS, "balance", "incidents", "summary"],
        "properties": {
            **{kind: _FINDINGS for kind in audit.FINDING_KINDS},
            "balance": {"type": "object", "required": ["grids", "communities", "totals"]},
            "incidents": {"type": "object", "required": ["unassigned", "ambiguous"]},
            "summary": {"type": "object", "required": ["edition", "findings", "clean"]},
        },
    },
    "Comparison": {
        "type": "object",
        "required": ["a", "b", "grids", "retired", "households", "cases", "balance", "summary"],
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "string"},
            "grids": {"type": "array", "items": {"type": "object", "required": ["code", "status", "sources"]}},
            "retired": {"type": "array", "items": {"type": "object", "required": ["code"]}},
            "cases": {"type": "object", "required": ["open_moving", "moving", "moved"]},
            "summary": {"type": "object"},
        },
    },
}
