"""The OpenAPI description of the map endpoints (web/map_views), which re-exports it for web/openapi."""

from __future__ import annotations

from gridmap import maps
from gridmap.web.openapi import OPTIONAL_DATE_TIME, choice, json_response, path_param, query

LEVELS = ("grid", "community", "street")
_EDITION = query("edition", "Edition name (default: the current one; drafts only for those who may see them)")
_MAP_CRS = query("crs", "wgs84 (default) or gcj02 (shifted for an Amap basemap)", choice(("wgs84", "gcj02")))
OPENAPI_PATHS: dict[str, dict] = {
    "/api/map/grids": {
        "get": {
            "summary": "Areas of one level as GeoJSON, simplified for the zoom; grids with case counts in scope",
            "parameters": [
                query("level", "grid (default), community or street", choice(LEVELS)),
                query(
                    "zoom", "Map zoom 0–25: geometry simplified for it", {"type": "number", "minimum": 0, "maximum": 25}
                ),
                _MAP_CRS,
                _EDITION,
            ],
            "responses": {"200": json_response("#/components/schemas/FeatureCollection")},
        }
    },
    "/api/map/grids/{code}": {
        "get": {
            "summary": "What a grid's panel shows (case counts null outside the caller's scope)",
            "parameters": [path_param("code"), _EDITION],
            "responses": {"200": json_response("#/components/schemas/GridPanel")},
        }
    },
    "/api/map/incidents": {
        "get": {
            "summary": "Open cases in the caller's scope as GeoJSON points with their traffic light",
            "parameters": [
                query("status", "Only cases of this status (another value matches none)"),
                query("category", "Only this category code (another value matches none)"),
                query("source", "Only this source (another value matches none)"),
                query("age", "Reported within: " + ", ".join(maps.AGE_CHOICES), choice(maps.AGE_CHOICES)),
                query("light", "Traffic light", choice((*maps.LIGHTS, "none"))),
                _MAP_CRS,
            ],
            "responses": {"200": json_response("#/components/schemas/FeatureCollection")},
        }
    },
    "/api/map/incidents/{incident_id}": {
        "get": {
            "summary": "What a case's popup shows; a case outside the caller's scope is 404",
            "parameters": [path_param("incident_id", "integer")],
            "responses": {"200": json_response("#/components/schemas/IncidentPopup")},
        }
    },
}
OPENAPI_SCHEMAS: dict[str, dict] = {
    "GridPanel": {
        "type": "object",
        "required": ["code", "name", "community_code", "workers", "open", "overdue", "edition"],
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": ["string", "null"]},
            "community": {"type": ["string", "null"]},
            "community_code": {"type": ["string", "null"]},
            "street": {"type": ["string", "null"]},
            "households": {"type": ["integer", "null"]},
            "population": {"type": ["integer", "null"]},
            "staff": {"type": ["integer", "null"]},
            "workers": {"type": "array", "items": {"type": "string"}},
            "open": {"type": ["integer", "null"]},
            "overdue": {"type": ["integer", "null"]},
            "by_status": {"type": ["object", "null"]},
            "cases_url": {"type": ["string", "null"]},
            "edition": {"type": "string"},
        },
    },
    "IncidentPopup": {
        "type": "object",
        "required": ["id", "title", "status", "reported_at", "deadline", "light", "url"],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": ["string", "null"]},
            "status": {"type": ["string", "null"]},
            "category": {"type": ["string", "null"]},
            "source": {"type": ["string", "null"]},
            "grid_code": {"type": ["string", "null"]},
            "reported_at": OPTIONAL_DATE_TIME,
            "deadline": OPTIONAL_DATE_TIME,
            "light": {"enum": ["green", "yellow", "red", None]},
            "url": {"type": "string"},
            "photos": {"type": "array", "items": {"type": "object"}},
        },
    },
}
