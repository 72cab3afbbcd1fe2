"""Buildings and redivision proposals over HTTP: the map's buildings layer and `propose` on a draft plan.

`POST /api/editions/<draft>/propose` is for planners and admins, like every other edit of a draft; the editor
page calls it and then shows the audit and the comparison as after any edit. `GET /api/map/buildings` is the
optional buildings layer of /map: single buildings for roles that may see them (inside their area), counts
per grid for everyone else.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from gridmap import buildings, maps
from gridmap import propose as proposals
from gridmap.errors import Conflict, InvalidInput
from gridmap.store import Store
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, OK, path_param, query

blueprint = Blueprint("buildings", __name__)
EDITORS = ("admin", "planner")


def _store() -> Store:
    return current_app.extensions["gridmap"].store


@blueprint.post("/api/editions/<name>/propose")
@require_user(*EDITORS)
def propose(name: str):
    """Propose grids for a community, a street or everything of a draft: {"community"|"street"|"all", …}."""
    store = _store()
    if store.get_edition(name).status != "draft":
        raise Conflict(f"edition {name!r} is not a draft; propose into a draft plan")
    body = request.get_json(silent=True)
    scope, options, barriers = proposals.request_options(body, current_app.extensions["gridmap"].settings)
    return jsonify(proposals.propose(store, into=name, options=options, barriers=barriers, **scope))


@blueprint.get("/api/map/buildings")
@require_user()
def map_buildings():
    """The buildings layer of an edition (?edition=, default current) as GeoJSON points, as the caller may see it."""
    store = _store()
    name = request.args.get("edition") or None
    edition = store.get_edition(name).name if name else _current(store)
    frame = store.areas(edition, "grid")
    labels = dict(zip(frame["code"], maps.label_points(frame.geometry.values), strict=True)) if len(frame) else {}
    crs = (request.args.get("crs") or "wgs84").lower()
    if crs not in ("wgs84", "gcj02"):
        raise InvalidInput(f"crs must be wgs84 or gcj02, not {crs!r}")
    layer = buildings.map_layer(store, edition, current_user(), grid_labels=labels, to_gcj02=crs == "gcj02")
    return jsonify(layer)


def _current(store: Store) -> str:
    from gridmap.errors import NotFound

    current = store.current_edition()
    if current is None:
        raise NotFound("no current edition: load boundaries or run `gridmap demo`")
    return current.name


# ---- OpenAPI ---------------------------------------------------------------------------------------------
OPENAPI_PATHS: dict[str, dict] = {
    "/api/editions/{name}/propose": {
        "post": {
            "summary": "Propose a balanced division of a community, a street or all of a draft (planner, admin)",
            "parameters": [path_param("name")],
            "requestBody": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProposeRequest"}}}
            },
            "responses": {
                "200": {
                    "description": "The draft now holds the proposal; the report says what changed",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProposeReport"}}},
                },
                **ERRORS,
            },
        }
    },
    "/api/map/buildings": {
        "get": {
            "summary": "The map's buildings layer: buildings (or counts per grid for roles that may not see them)",
            "parameters": [
                query("edition", "Edition name (default: the current one)"),
                query("crs", "wgs84 (default) or gcj02 (shifted for an Amap basemap)"),
            ],
            "responses": {"200": OK, "401": ERRORS["401"], "404": ERRORS["404"]},
        }
    },
}

OPENAPI_SCHEMAS: dict[str, dict] = {
    "ProposeRequest": {
        "type": "object",
        "description": "Exactly one of community, street or all.",
        "properties": {
            "community": {"type": "string"},
            "street": {"type": "string"},
            "all": {"type": "boolean"},
            "min": {"type": "integer", "description": "Fewest households per grid (default: the setting)"},
            "max": {"type": "integer", "description": "Most households per grid (default: the setting)"},
            "target": {"type": "number", "description": "Households a grid aims at (default: mid-range)"},
            "keep_good": {"type": "boolean", "default": True},
            "seed": {"type": "integer", "minimum": 0, "default": 0},
            "method": {"type": "string", "enum": list(proposals.METHODS), "default": "repair"},
            "barriers": {"type": "object", "description": "GeoJSON lines (roads, rivers) to follow"},
        },
    },
    "ProposeReport": {
        "type": "object",
        "properties": {
            "edition": {"type": "string"},
            "from": {"type": "string"},
            "options": {"type": "object"},
            "communities": {"type": "array", "items": {"type": "object"}},
            "exceptions": {"type": "array", "items": {"type": "object"}},
            "figures": {"type": "object"},
            "seconds": {"type": "number"},
        },
    },
}
