"""The JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from gridmap import assign, crs
from gridmap.errors import InvalidInput
from gridmap.store import Store
from gridmap.web.access import anonymous_if_allowed, public, visible_edition, visible_editions
from gridmap.web.openapi import DATE, ERRORS, OK, choice, json_response, openapi_document, query

blueprint = Blueprint("api", __name__)


def _store() -> Store:
    return current_app.extensions["gridmap"].store


@blueprint.get("/editions")
@anonymous_if_allowed
def list_editions():
    """List the editions the caller may see (drafts only to planners, admins and supervisors) with area counts."""
    store = _store()
    return jsonify([{**e.to_dict(), "areas": store.area_counts(e.name)} for e in visible_editions(store)])


@blueprint.get("/health")
@public
def health():
    """Say the service is up and which schema revision the database is at."""
    return jsonify({"status": "ok", "schema": _store().schema_revision()})


def _number(name: str) -> float:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        raise InvalidInput(f"missing query parameter {name!r}")
    return crs.parse_number(raw, name)


@blueprint.get("/locate")
@anonymous_if_allowed
def locate():
    """Find the grid of a point: ?lon=&lat=[&crs=wgs84|cgcs2000|gcj02|bd09][&edition=]."""
    lon, lat = _number("lon"), _number("lat")
    name = request.args.get("edition") or None
    if name is not None:
        name = visible_edition(_store(), name).name  # a draft only for those who may see it: 404 for the rest
    # The current edition is found by the index keeper with the one revision row it reads anyway.
    result = assign.locate(_store(), lon=lon, lat=lat, crs=request.args.get("crs") or "wgs84", edition=name)
    return jsonify(result)


@blueprint.get("/openapi.json")
@public
def openapi():
    """Return the OpenAPI 3.1 document of every /api endpoint."""
    return jsonify(openapi_document(current_app))


# ---- OpenAPI ---------------------------------------------------------------------------------------------
_CRS = ("wgs84", "cgcs2000", "gcj02", "bd09")
OPENAPI_PATHS: dict[str, dict] = {
    "/api/health": {
        "get": {
            "summary": "Say the service is up and give the schema revision",
            "responses": {"200": json_response("#/components/schemas/Health")},
        }
    },
    "/api/editions": {
        "get": {
            "summary": "List the boundary editions the caller may see, with status and area counts",
            "description": "Drafts only for planners, admins and supervisors. Anonymous callers get 401 unless "
            "GRIDMAP_ANONYMOUS_ACCESS=names, which shows them the current edition only.",
            "responses": {"200": json_response("#/components/schemas/EditionList")},
        },
    },
    "/api/locate": {
        "get": {
            "summary": "Find the grid of a point",
            "description": "Anonymous callers get 401 unless GRIDMAP_ANONYMOUS_ACCESS=names. A point that looks "
            "wrong (0, 0; latitude and longitude swapped) is 422.",
            "parameters": [
                query("lon", "Longitude", {"type": "number", "minimum": -180, "maximum": 180}, required=True),
                query("lat", "Latitude", {"type": "number", "minimum": -90, "maximum": 90}, required=True),
                query("crs", "wgs84 (default), cgcs2000, gcj02 or bd09", choice(_CRS)),
                query("edition", "Edition name (default: the current one)"),
            ],
            "responses": {"200": json_response("#/components/schemas/Location"), "422": ERRORS["422"]},
        }
    },
    "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": OK}}},
}

OPENAPI_SCHEMAS: dict[str, dict] = {
    "Health": {
        "type": "object",
        "required": ["status", "schema"],
        "properties": {"status": {"const": "ok"}, "schema": {"type": ["string", "null"]}},
    },
    "EditionList": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name", "status", "valid_from", "valid_to", "areas"],
            "properties": {
                "name": {"type": "string"},
                "status": {"enum": ["draft", "current", "retired"]},
                "valid_from": DATE,
                "valid_to": DATE,
                "areas": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            },
        },
    },
    "Location": {
        "type": "object",
        "required": ["grid_code", "community_code", "street_code", "ambiguous", "candidates", "edition", "lon", "lat"],
        "properties": {
            "grid_code": {"type": ["string", "null"]},
            "grid_name": {"type": ["string", "null"]},
            "community_code": {"type": ["string", "null"]},
            "street_code": {"type": ["string", "null"]},
            "ambiguous": {"type": "boolean"},
            "candidates": {"type": "array", "items": {"type": "string"}},
            "nearest_code": {"type": ["string", "null"]},
            "nearest_distance_m": {"type": ["number", "null"]},
            "edition": {"type": "string"},
            "lon": {"type": "number", "description": "the point in WGS84"},
            "lat": {"type": "number"},
            "crs": {"enum": list(_CRS)},
        },
    },
}
