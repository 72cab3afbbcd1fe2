"""The JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from gridmap import assign, crs
from gridmap.errors import InvalidInput, NotFound
from gridmap.store import Store
from gridmap.web.access import anonymous_if_allowed, public, visible_edition, visible_editions
from gridmap.web.openapi import ERRORS, OK, json_response, openapi_document, query

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
    edition = visible_edition(_store(), request.args.get("edition") or None)
    if edition is None:
        raise NotFound("there is no current edition: load boundaries first")
    result = assign.locate(_store(), lon=lon, lat=lat, crs=request.args.get("crs", "wgs84"), edition=edition.name)
    return jsonify(result)


@blueprint.get("/openapi.json")
@public
def openapi():
    """Return the OpenAPI 3.1 document of every /api endpoint."""
    return jsonify(openapi_document(current_app))


# ---- OpenAPI ---------------------------------------------------------------------------------------------
OPENAPI_PATHS: dict[str, dict] = {
    "/api/health": {
        "get": {
            "summary": "Say the service is up and give the schema revision",
            "security": [],
            "responses": {"200": OK},
        }
    },
    "/api/editions": {
        "get": {"summary": "List the boundary editions with status and area counts", "responses": {"200": OK}},
    },
    "/api/locate": {
        "get": {
            "summary": "Find the grid of a point",
            "parameters": [
                query("lon", "Longitude", {"type": "number"}, required=True),
                query("lat", "Latitude", {"type": "number"}, required=True),
                query("crs", "wgs84 (default), cgcs2000, gcj02 or bd09"),
                query("edition", "Edition name (default: the current one)"),
            ],
            "responses": {"200": json_response("#/components/schemas/Location"), "400": ERRORS["400"]},
        }
    },
    "/api/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": OK}}},
}

OPENAPI_SCHEMAS: dict[str, dict] = {
    "Location": {
        "type": "object",
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
        },
    },
}
