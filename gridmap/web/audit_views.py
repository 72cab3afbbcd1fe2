"""The coverage audit report (/audit) and its JSON (/api/audit); the plan comparison (/compare, /api/compare)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from gridmap import audit
from gridmap.errors import InvalidInput
from gridmap.web.access import visible_edition, visible_editions
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


def _pair() -> tuple[str, str]:
    a, b = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    if not a or not b:
        raise InvalidInput("name the two editions to compare: ?a=OLD&b=NEW")
    return _edition(a), _edition(b)


def _edition(name: str | None) -> str | None:
    """The named edition if the caller may see it (drafts: planners, admins, supervisors), else 404."""
    edition = visible_edition(_state().store, name) if name else None
    return edition.name if edition else None


@blueprint.get("/audit")
@require_user()
def audit_report():
    """Show the coverage audit of an edition (?edition=, default the current one) as an HTML report.

    A supervisor or grid worker sees it cut to their own area (gridmap.audit.scope)."""
    store = _state().store
    page = audit.audit_page(store, _edition(request.args.get("edition")), user=current_user(), **_options())
    page["editions"] = [e.to_dict() for e in visible_editions(store)]
    return render_template("audit.html", **page)


@blueprint.get("/api/audit")
@require_user()
def audit_json():
    """Return the coverage audit of an edition as JSON (cut to a scoped caller's area)."""
    edition = _edition(request.args.get("edition"))
    return jsonify(audit.audit_edition(_state().store, edition, user=current_user(), **_options()))


@blueprint.get("/compare")
@require_user()
def compare_report():
    """Show what edition b changes against edition a (?a=&b=) as an HTML report (cut to a scoped user's area)."""
    a, b = _pair()
    store = _state().store
    page = audit.compare_page(store, a, b, user=current_user(), **_options())
    page["editions"] = [e.to_dict() for e in visible_editions(store)]
    return render_template("compare.html", **page)


@blueprint.get("/api/compare")
@require_user()
def compare_json():
    """Return the comparison of editions a and b as JSON (cut to a scoped caller's area)."""
    a, b = _pair()
    return jsonify(audit.compare_editions(_state().store, a, b, user=current_user(), **_options()))
