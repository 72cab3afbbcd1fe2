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
from gridmap.web import inputs
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, NO_NUL, choice, json_body, json_response, path_param, query

blueprint = Blueprint("buildings", __name__)
EDITORS = ("admin", "planner")
MAP_CRS = ("wgs84", "gcj02")
PROPOSE_FIELDS = (
    "community",
    "street",
    "all",
    "min",
    "max",
    "target",
    "keep_good",
    "rounding",
    "seed",
    "method",
    "barriers",
)


def _store() -> Store:
    return current_app.extensions["gridmap"].store


@blueprint.post("/api/editions/<name>/propose")
@require_user(*EDITORS)
def propose(name: str):
    """Propose grids for a community, a street or everything of a draft: {"community"|"street"|"all", …}."""
    store = _store()
    if store.get_edition(name).status != "draft":
        raise Conflict(f"edition {name!r} is not a draft; propose into a draft plan")
    body = inputs.json_object(PROPOSE_FIELDS)
    scope, options, barriers = proposals.request_options(body, current_app.extensions["gridmap"].settings)
    return jsonify(proposals.propose(store, into=name, options=options, barriers=barriers, **scope))


@blueprint.get("/api/map/buildings")
@require_user()
def map_buildings():
    """The buildings layer of an edition (?edition=, default current) as GeoJSON points, as the caller may see it."""
    store = _store()
    crs = request.args.get("crs") or "wgs84"
    if crs not in MAP_CRS:
        raise InvalidInput(f"crs must be wgs84 or gcj02, not {crs[:30]!r}")
    name = request.args.get("edition") or None
    edition = store.get_edition(name).name if name else _current(store)
    frame = store.areas(edition, "grid")
    labels = dict(zip(frame["code"], maps.label_points(frame.geometry.values), strict=True)) if len(frame) else {}
    layer = buildings.map_layer(store, edition, current_user(), grid_labels=labels, to_gcj02=crs == "gcj02")
    return jsonify(layer)


def _current(store: Store) -> str:
    from gridmap.errors import NotFound

    current = store.current_edition()
    if current is None:
        raise NotFound("no current edition: load boundaries or run `gridmap demo`")
    return current.name


# ---- OpenAPI ---------------------------------------------------------------------------------------------
_TEXT_CODE = {"type": ["string", "null"], "maxLength": 32, "pattern": NO_NUL}
_POSITION = {
    "type": "array",
    "description": "[lon, lat] in WGS84 degrees",
    "prefixItems": [
        {"type": "number", "minimum": -180, "maximum": 180},
        {"type": "number", "minimum": -90, "maximum": 90},
    ],
    "minItems": 2,
    "maxItems": 2,
}
_LINE = {"type": "array", "items": _POSITION, "minItems": 2}
_LINE_GEOMETRY = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "coordinates"],
            "properties": {"type": {"const": "LineString"}, "coordinates": _LINE},
        },
        {
            "type": "object",
            "required": ["type", "coordinates"],
            "properties": {
                "type": {"const": "MultiLineString"},
                "coordinates": {"type": "array", "items": _LINE, "minItems": 1},
            },
        },
    ]
}
_LINE_FEATURE = {
    "type": "object",
    "required": ["type", "geometry"],
    "properties": {"type": {"const": "Feature"}, "geometry": _LINE_GEOMETRY},
}
OPENAPI_PATHS: dict[str, dict] = {
    "/api/editions/{name}/propose": {
        "post": {
            "summary": "Propose a balanced division of a community, a street or all of a draft (planner, admin)",
            "description": "409 when the edition is not a draft. 422 when the request cannot be used against the "
            "data: an unknown community or street, an empty household register, min above max, a target "
            "outside min–max (min and max default to the deployment's settings).",
            "parameters": [path_param("name")],
            "requestBody": json_body({"$ref": "#/components/schemas/ProposeRequest"}),
            "responses": {
                "200": json_response(
                    "#/components/schemas/ProposeReport",
                    "The draft now holds the proposal; the report says what changed",
                ),
                "409": ERRORS["409"],
                "422": ERRORS["422"],
            },
        }
    },
    "/api/map/buildings": {
        "get": {
            "summary": "The map's buildings layer: buildings (or counts per grid for roles that may not see them)",
            "parameters": [
                query("edition", "Edition name (default: the current one)"),
                query("crs", "wgs84 (default) or gcj02 (shifted for an Amap basemap)", choice(MAP_CRS)),
            ],
            "responses": {"200": json_response("#/components/schemas/BuildingLayer")},
        }
    },
}

OPENAPI_SCHEMAS: dict[str, dict] = {
    "ProposeRequest": {
        "type": "object",
        "description": "Exactly one of community, street (codes) or all (true); an empty code counts as left out.",
        "additionalProperties": False,
        "oneOf": [
            {"required": ["community"], "properties": {"community": {"type": "string", "minLength": 1}}},
            {"required": ["street"], "properties": {"street": {"type": "string", "minLength": 1}}},
            {"required": ["all"], "properties": {"all": {"const": True}}},
        ],
        "properties": {
            "community": _TEXT_CODE,
            "street": _TEXT_CODE,
            "all": {"type": "boolean"},
            "min": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": proposals.MAX_HOUSEHOLDS,
                "description": "Fewest households per grid (default: the setting)",
            },
            "max": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": proposals.MAX_HOUSEHOLDS,
                "description": "Most households per grid (default: the setting)",
            },
            "target": {"type": ["number", "null"], "description": "Households a grid aims at (default: mid-range)"},
            "keep_good": {"type": "boolean", "default": True},
            "rounding": {
                "type": "boolean",
                "default": True,
                "description": "With keep_good: re-cut a pair of grids below the edition's median Polsby–Popper "
                "when one straight cut lifts one of them to it",
            },
            "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": proposals.MAX_SEED, "default": 0},
            "method": {"type": "string", "enum": list(proposals.METHODS), "default": "repair"},
            "barriers": {
                "description": "Roads, rivers to follow: a GeoJSON LineString or MultiLineString, a Feature of one "
                "or a FeatureCollection of such Features",
                "oneOf": [
                    _LINE_GEOMETRY,
                    _LINE_FEATURE,
                    {
                        "type": "object",
                        "required": ["type", "features"],
                        "properties": {
                            "type": {"const": "FeatureCollection"},
                            "features": {"type": "array", "items": _LINE_FEATURE},
                        },
                    },
                    {"type": "null"},
                ],
            },
        },
    },
    "ProposeReport": {
        "type": "object",
        "required": ["edition", "from", "options", "communities", "exceptions", "figures", "seconds"],
        "properties": {
            "edition": {"type": "string"},
            "from": {"type": "string", "description": "the edition the draft started from"},
            "options": {"type": "object"},
            "communities": {"type": "array", "items": {"type": "object"}},
            "exceptions": {"type": "array", "items": {"type": "object"}},
            "figures": {"type": "object"},
            "seconds": {"type": "number", "minimum": 0},
        },
    },
    "BuildingLayer": {
        "type": "object",
        "required": ["type", "edition", "detail", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "edition": {"type": "string"},
            "detail": {"type": "boolean", "description": "whether the caller's role sees single buildings"},
            "features": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "geometry", "properties"],
                    "properties": {
                        "type": {"const": "Feature"},
                        "geometry": {
                            "type": "object",
                            "required": ["type", "coordinates"],
                            "properties": {
                                "type": {"const": "Point"},
                                "coordinates": {"type": "array", "items": {"type": "number"}, "minItems": 2},
                            },
                        },
                        "properties": {
                            "type": "object",
                            "required": ["grid_code"],
                            "description": "A building in the caller's area (code, name, estate, households, "
                            "population, grid_code), or a grid's counts (grid_code, buildings, households)",
                            "properties": {
                                "grid_code": {"type": ["string", "null"]},
                                "code": {"type": "string"},
                                "name": {"type": ["string", "null"]},
                                "estate": {"type": ["string", "null"]},
                                "households": {"type": ["integer", "null"], "minimum": 0},
                                "population": {"type": ["integer", "null"], "minimum": 0},
                                "buildings": {"type": "integer", "minimum": 1},
                            },
                        },
                    },
                },
            },
        },
    },
}
