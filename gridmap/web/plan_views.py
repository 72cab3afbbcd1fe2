"""Draft plans over HTTP: the JSON API every edit goes through, and the planner's pages.

Planners and admins edit and activate; a supervisor may look at the drafts' grids in their own area; other
roles get 403. Edits to a current or retired edition are 409: only drafts are editable.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, current_app, jsonify, render_template, request

from gridmap import assign, boundaries, drafts
from gridmap.errors import InvalidInput, NotFound
from gridmap.store import EDITION_NAME_PATTERN, Store
from gridmap.store.editions import MAX_EDITION_NAME
from gridmap.web import inputs
from gridmap.web.auth import current_user, require_user
from gridmap.web.i18n import script_text
from gridmap.web.openapi import DATE, ERRORS, NO_NUL, json_body, json_response, path_param, query

blueprint = Blueprint("plans", __name__)
EDITORS = ("admin", "planner")
# Every string the editor's script shows (static/editor.js), as English msgids.
EDITOR_TEXT = (
    "moved a vertex of {n} grid(s)",
    "saved {code} (version {version})",
    "split {code} into {codes}",
    "a merge cannot be undone: split the grid again",
    "merged into {code}",
    "added {code}",
    "deleted {code}",
    "households outside the range: {n}",
    "grids: {a} → {b} (new {new}, changed {changed}, retired {retired}, unchanged {unchanged})",
    "households changing grid: {n}",
    "open cases changing grid: {n}",
    "households per grid CV: {a} → {b}; max/min: {c} → {d}",
    "grids outside the households range: {a} → {b}",
    "{name} is now current; {n} incident(s) changed grid",
    "{kind} {codes} ({area} m²) — waive because: ",
    "drag a vertex; grids sharing it move with it",
    "select one grid to split",
    "draw a line across the grid, from outside to outside; double-click to finish",
    "shift-click a second, neighbouring grid first",
    "draw the new grid; snap to its neighbours' vertices",
    "select one grid to delete",
    "delete {code}?",
    "select one grid",
    "Zoom in",
    "Zoom out",
    "Gaps",
    "Overlaps",
    "Outside the parent",
    "Invalid shapes",
    "Slivers",
    "Code problems",
    "gap",
    "overlap",
    "duplicate",
    "containment",
    "grid {grid} has {households} households and could not be brought into {min}–{max} with its neighbours",
    "building {building} alone has {households} households (> {max}): a grid of its own",
    "no building of the register stands in {codes}: left as it is",
)
VIEWERS = (*EDITORS, "supervisor")


def _store() -> Store:
    return current_app.extensions["gridmap"].store


def _body(*fields: str) -> dict:
    return inputs.json_object(fields or None)


def _draft(name: str) -> None:
    edition = _store().get_edition(name)
    if edition.status != "draft" and request.method == "GET" and current_user().role == "supervisor":
        raise NotFound(f"no draft named {name!r}")


@blueprint.post("/api/editions")
@require_user(*EDITORS)
def create_draft():
    """Copy an edition into a new draft: {"name": …, "from": "current" | edition name}."""
    body = _body("name", "from")
    created = drafts.create_draft(_store(), body.get("name"), source=body.get("from", "current"))
    return jsonify(created), 201


@blueprint.get("/api/editions/<name>/grids")
@require_user(*VIEWERS)
def draft_grids(name: str):
    """Every grid of an edition with its version (a supervisor sees their area's grids only)."""
    _draft(name)
    collection = drafts.draft_features(_store(), name)
    user = current_user()
    if not user.sees_all_areas:
        collection["features"] = [
            f
            for f in collection["features"]
            if user.covers(
                grid_code=f["properties"]["code"],
                community_code=f["properties"]["parent_code"],
                street_code=f["properties"]["parent_code"][:9],
            )
        ]
    return jsonify(collection)


@blueprint.put("/api/editions/<name>/grids/<code>")
@require_user(*EDITORS)
def save_grid(name: str, code: str):
    """Save a grid's geometry and attributes: {"geometry": GeoJSON, "version": n, …}; stale version → 409."""
    return jsonify(drafts.save_grid(_store(), name, code, _body("geometry", "version", *drafts.EDITABLE_ATTRIBUTES)))


@blueprint.delete("/api/editions/<name>/grids/<code>")
@require_user(*EDITORS)
def delete_grid(name: str, code: str):
    """Delete a grid from a draft: ?version=n."""
    version = inputs.int_arg("version", None, low=1, high=inputs.MAX_ID)
    if version is None:
        raise InvalidInput("give the grid's version: ?version=n")
    drafts.delete_grid(_store(), name, code, version=version)
    return "", 204


@blueprint.post("/api/editions/<name>/grids")
@require_user(*EDITORS)
def add_grid(name: str):
    """Draw a new grid: {"community_code": …, "geometry": GeoJSON, "name"?, "households"?, …}."""
    body = _body("geometry", "community_code", *drafts.EDITABLE_ATTRIBUTES)
    return jsonify(drafts.add_grid(_store(), name, body)), 201


@blueprint.post("/api/editions/<name>/grids/<code>/split")
@require_user(*EDITORS)
def split_grid(name: str, code: str):
    """Split a grid with a line: {"line": GeoJSON LineString} → the two new grids."""
    return jsonify(
        {"type": "FeatureCollection", "features": drafts.split_grid(_store(), name, code, _body("line").get("line"))}
    )


@blueprint.post("/api/editions/<name>/merge")
@require_user(*EDITORS)
def merge_grids(name: str):
    """Merge two adjacent grids of one community: {"codes": [a, b]} → the merged grid."""
    return jsonify(drafts.merge_grids(_store(), name, _body("codes").get("codes") or []))


@blueprint.post("/api/editions/<name>/move-vertex")
@require_user(*EDITORS)
def move_vertex(name: str):
    """Move a vertex in every grid that has it: {"from": [lon, lat], "to": [lon, lat]} → the changed grids."""
    body = _body("from", "to")
    changed = drafts.move_vertex(_store(), name, old=body.get("from"), new=body.get("to"))
    return jsonify({"type": "FeatureCollection", "features": changed})


@blueprint.post("/api/editions/<name>/activate")
@require_user(*EDITORS)
def activate(name: str):
    """Make a draft current: {"valid_from": "YYYY-MM-DD", "waive": [{"finding": id, "reason": …}]}."""
    body = _body("valid_from", "waive")
    valid_from = None
    if body.get("valid_from") is not None:
        raw = body["valid_from"]
        try:
            if not isinstance(raw, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
                raise ValueError(raw)
            valid_from = dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"valid_from={str(raw)[:30]!r} is not a date like 2027-01-01") from None
    waive = body.get("waive") or []
    if not isinstance(waive, list):
        raise InvalidInput("waive must be a list of {finding, reason}")
    activated = drafts.activate_draft(_store(), name, valid_from=valid_from, waive=waive)
    assign.prepare(_store())  # the new current edition's index, built before lookups ask for it
    return jsonify(activated)


@blueprint.get("/plans")
@require_user(*VIEWERS)
def plans_page():
    """List the editions; drafts can be opened in the editor."""
    store = _store()
    editions = [{**e.to_dict(), "areas": store.area_counts(e.name)} for e in store.list_editions()]
    return render_template("plans.html", editions=editions, can_edit=current_user().role in EDITORS)


@blueprint.get("/plans/<name>/edit")
@require_user(*VIEWERS)
def editor_page(name: str):
    """The editor: a map of the draft's grids with editing tools, the audit beside it, and activation."""
    edition = _store().get_edition(name)
    can_edit = current_user().role in EDITORS and edition.status == "draft"
    current = _store().current_edition()
    settings = current_app.extensions["gridmap"].settings
    # The editor's "propose for this street" needs each community's street.
    streets = {r["code"]: r["parent_code"] for r in _store().area_attributes(name, "community")}
    return render_template(
        "editor.html",
        edition=edition,
        can_edit=can_edit,
        current_name=current.name if current else None,
        editor_text=script_text(EDITOR_TEXT),
        streets=streets,
        households_range=(settings.households_min, settings.households_max),
    )


# ---- OpenAPI ---------------------------------------------------------------------------------------------
_NUMBERS = {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "number"}}
_RING = {"type": "array", "minItems": 4, "items": _NUMBERS}
_POLYGON = {
    "type": "object",
    "description": "GeoJSON Polygon or MultiPolygon in WGS84 (type and coordinates only); a self-crossing or "
    "empty one is 422",
    "required": ["type", "coordinates"],
    "properties": {"type": {"enum": ["Polygon", "MultiPolygon"]}, "coordinates": {"type": "array"}},
    "additionalProperties": False,
    "oneOf": [
        {
            "properties": {
                "type": {"const": "Polygon"},
                "coordinates": {"type": "array", "minItems": 1, "items": _RING},
            }
        },
        {
            "properties": {
                "type": {"const": "MultiPolygon"},
                "coordinates": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "array", "minItems": 1, "items": _RING},
                },
            }
        },
    ],
}
_LINE = {
    "type": "object",
    "required": ["type", "coordinates"],
    "additionalProperties": False,
    "properties": {"type": {"const": "LineString"}, "coordinates": {"type": "array", "minItems": 2, "items": _NUMBERS}},
}
_COUNT = {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1}
_ATTRIBUTES = {
    "name": {"type": "string", "maxLength": 200, "pattern": NO_NUL, "allOf": [{"pattern": "\\S"}]},
    "kind": {"type": "string", "enum": list(boundaries.GRID_KINDS)},
    "households": _COUNT,
    "population": _COUNT,
    "staff": _COUNT,
}
_PAIR = {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}
_NAME = [path_param("name")]
_NAME_CODE = [path_param("name"), path_param("code")]
_GRID = json_response("#/components/schemas/GridFeature")
_GRIDS = json_response("#/components/schemas/FeatureCollection")
OPENAPI_PATHS: dict[str, dict] = {
    "/api/editions": {
        "post": {
            "summary": "Create a draft plan copied from an edition (planner, admin)",
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "maxLength": MAX_EDITION_NAME, "pattern": EDITION_NAME_PATTERN},
                        "from": {
                            "type": "string",
                            "minLength": 1,
                            "pattern": NO_NUL,
                            "description": "an edition name or current",
                        },
                    },
                }
            ),
            "responses": {
                "201": json_response("#/components/schemas/DraftEdition", "Created"),
                "404": ERRORS["404"],
                "409": ERRORS["409"],
            },
        },
    },
    "/api/editions/{name}/grids": {
        "get": {
            "summary": "Every grid of an edition with its version (a supervisor sees their area's grids only)",
            "parameters": _NAME,
            "responses": {"200": _GRIDS},
        },
        "post": {
            "summary": "Draw a new grid in a community of a draft; it gets the community's next code",
            "parameters": _NAME,
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["geometry"],
                    "additionalProperties": False,
                    "properties": {
                        "geometry": _POLYGON,
                        "community_code": {"type": "string", "pattern": NO_NUL},
                        **_ATTRIBUTES,
                    },
                }
            ),
            "responses": {"201": {**_GRID, "description": "Created"}, "409": ERRORS["409"], "422": ERRORS["422"]},
        },
    },
    "/api/editions/{name}/grids/{code}": {
        "put": {
            "summary": "Save a grid's geometry and/or attributes at the version the caller saw (stale: 409)",
            "parameters": _NAME_CODE,
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["version"],
                    "additionalProperties": False,
                    "properties": {
                        "version": {"type": "integer"},
                        "geometry": {"anyOf": [_POLYGON, {"type": "null"}]},
                        **_ATTRIBUTES,
                    },
                    "anyOf": [
                        {"required": ["geometry"], "properties": {"geometry": {"type": "object"}}},
                        *({"required": [key]} for key in _ATTRIBUTES),
                    ],
                }
            ),
            "responses": {"200": _GRID, "409": ERRORS["409"], "422": ERRORS["422"]},
        },
        "delete": {
            "summary": "Delete a grid from a draft at the version the caller saw (stale: 409)",
            "parameters": [
                *_NAME_CODE,
                query(
                    "version",
                    "The grid's version",
                    {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                    required=True,
                ),
            ],
            "responses": {"204": {"description": "Deleted"}, "409": ERRORS["409"]},
        },
    },
    "/api/editions/{name}/grids/{code}/split": {
        "post": {
            "summary": "Split a grid with a line crossing it edge to edge into two new grids",
            "parameters": _NAME_CODE,
            "requestBody": json_body(
                {"type": "object", "required": ["line"], "additionalProperties": False, "properties": {"line": _LINE}}
            ),
            "responses": {"200": _GRIDS, "409": ERRORS["409"], "422": ERRORS["422"]},
        }
    },
    "/api/editions/{name}/merge": {
        "post": {
            "summary": "Merge two adjacent grids of one community into one grid with a new code",
            "parameters": _NAME,
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["codes"],
                    "additionalProperties": False,
                    "properties": {
                        "codes": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": 2,
                            "uniqueItems": True,
                            "items": {"type": "string", "pattern": NO_NUL},
                        }
                    },
                }
            ),
            "responses": {"200": _GRID, "409": ERRORS["409"], "422": ERRORS["422"]},
        }
    },
    "/api/editions/{name}/move-vertex": {
        "post": {
            "summary": "Move a vertex in every grid that has it, so neighbours stay joined",
            "parameters": _NAME,
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["from", "to"],
                    "additionalProperties": False,
                    "properties": {"from": _PAIR, "to": _PAIR},
                }
            ),
            "responses": {"200": _GRIDS, "409": ERRORS["409"], "422": ERRORS["422"]},
        }
    },
    "/api/editions/{name}/activate": {
        "post": {
            "summary": "Make a draft current once every gap and overlap is fixed or waived (else 409)",
            "parameters": _NAME,
            "requestBody": json_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "valid_from": {"type": ["string", "null"], "format": "date"},
                        "waive": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["finding", "reason"],
                                "additionalProperties": False,
                                "properties": {
                                    "finding": {"type": "string", "pattern": NO_NUL},
                                    "reason": {"type": "string", "pattern": NO_NUL, "allOf": [{"pattern": "\\S"}]},
                                },
                            },
                        },
                    },
                }
            ),
            "responses": {"200": json_response("#/components/schemas/Activation"), "409": ERRORS["409"]},
        }
    },
}
OPENAPI_SCHEMAS: dict[str, dict] = {
    "GridFeature": {
        "type": "object",
        "required": ["type", "properties", "geometry"],
        "properties": {
            "type": {"const": "Feature"},
            "geometry": {"type": "object"},
            "properties": {
                "type": "object",
                "required": ["code", "name", "parent_code", "version"],
                "properties": {"code": {"type": "string"}, "version": {"type": "integer", "minimum": 1}},
            },
        },
    },
    "DraftEdition": {
        "type": "object",
        "required": ["name", "status", "valid_from", "valid_to"],
        "properties": {"name": {"type": "string"}, "status": {"const": "draft"}, "valid_from": DATE, "valid_to": DATE},
    },
    "Activation": {
        "type": "object",
        "required": ["edition", "waived", "incidents"],
        "properties": {"edition": {"type": "object"}, "waived": {"type": "object"}, "incidents": {"type": "object"}},
    },
}
