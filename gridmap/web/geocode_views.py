"""Geocoding over HTTP: an address's point (GET /api/geocode), and a case's point set by hand after review.

The answers are those of `gridmap geocode --json`; a case's point is moved by `gridmap.geocode.review`.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, request

from gridmap import cases, geocode
from gridmap.errors import InvalidInput
from gridmap.geocode import review
from gridmap.store import Store
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, json_response, path_param, query

blueprint = Blueprint("geocode", __name__)
MAX_ADDRESS = 300
LOCATION_FIELDS = ("lon", "lat", "crs", "note", "version")


def _store() -> Store:
    return current_app.extensions["gridmap"].store


def _settings():
    return current_app.extensions["gridmap"].settings


@blueprint.get("/api/geocode")
@require_user()
def geocode_address():
    """Find the point of an address: ?address=…[&locate=true]; not found is a 200 with suggestions."""
    address = request.args.get("address")
    if address is None:
        raise InvalidInput("missing query parameter 'address'")
    if len(address) > MAX_ADDRESS:
        raise InvalidInput(f"address is longer than {MAX_ADDRESS} characters")
    locate = (request.args.get("locate") or "").lower() in ("1", "true", "yes", "on")
    return jsonify(geocode.geocode_address(_store(), address, settings=_settings(), locate=locate))


@blueprint.post("/api/incidents/<int:incident_id>/location")
@require_user(*cases.ACTING_ROLES)  # the roles the case rules let move a case
def relocate_incident(incident_id: int):
    """Put a case at the point a person picked (after a low-confidence geocode): its grid follows, review clears."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("send a JSON object (Content-Type: application/json)")
    unknown = sorted(set(body) - set(LOCATION_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(LOCATION_FIELDS)}")
    if "lon" not in body or "lat" not in body:
        raise InvalidInput("give lon and lat of the point")
    incident = review.relocate(
        _store(),
        incident_id,
        user=current_user(),
        lon=body["lon"],
        lat=body["lat"],
        crs=body.get("crs") or "wgs84",
        note=body.get("note"),
        version=body.get("version"),
    )
    calendar = cases.calendar_from_settings(_settings())
    return jsonify(cases.present(incident, user=current_user(), calendar=calendar))


@blueprint.post("/cases/<int:incident_id>/location")
@require_user(*cases.ACTING_ROLES)  # the roles the case rules let move a case
def relocate_from_page(incident_id: int):
    """Set a case's point from the case page's form (CSRF-protected), then show the case again."""
    version = (request.form.get("version") or "").strip()
    review.relocate(
        _store(),
        incident_id,
        user=current_user(),
        lon=(request.form.get("lon") or "").strip(),
        lat=(request.form.get("lat") or "").strip(),
        note=request.form.get("note") or None,
        version=int(version) if version.isdigit() else None,
    )
    return redirect(f"/cases/{incident_id}", code=303)


# ---- OpenAPI ---------------------------------------------------------------------------------------------
OPENAPI_PATHS: dict[str, dict] = {
    "/api/geocode": {
        "get": {
            "summary": "Find the point of an address (offline gazetteer; Nominatim too when configured)",
            "parameters": [
                query(
                    "address",
                    "The address as written, e.g. 南开区卫津路99号 or 黄河道与卫津路交叉口东150米",
                    required=True,
                ),
                query("locate", "true: also give the grid of the point", {"type": "boolean"}),
            ],
            "responses": {"200": json_response("#/components/schemas/Geocode"), **ERRORS},
        }
    },
    "/api/incidents/{incident_id}/location": {
        "post": {
            "summary": "Set a case's point by hand (the review of a low-confidence geocode); its grid follows",
            "parameters": [path_param("incident_id", "integer")],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CasePoint"}}},
            },
            "responses": {"200": json_response("#/components/schemas/Incident"), **ERRORS},
        }
    },
}

_CANDIDATE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "district": {"type": ["string", "null"]},
        "street": {"type": ["string", "null"]},
        "lon": {"type": "number"},
        "lat": {"type": "number"},
    },
}
OPENAPI_SCHEMAS: dict[str, dict] = {
    "Geocode": {
        "type": "object",
        "required": ["found", "level", "confidence", "matched", "district", "review", "candidates", "suggestions"],
        "properties": {
            "found": {"type": "boolean", "description": "false when nothing matched or several places fit equally"},
            "lon": {"type": ["number", "null"]},
            "lat": {"type": ["number", "null"]},
            "level": {
                "type": ["string", "null"],
                "enum": [*geocode.LEVELS, None],
                "description": "what the point is: a building, POI, estate, door (or lane), junction, road, community",
            },
            "confidence": {"type": "number", "description": "0–1; at 0.85 or more, answers land within 300 m"},
            "matched": {"type": ["string", "null"], "description": "what the point stands for, e.g. 卫津路16号"},
            "district": {"type": ["string", "null"]},
            "street": {"type": ["string", "null"]},
            "review": {"type": "boolean", "description": "below the review threshold: a person should check"},
            "note": {"type": ["string", "null"], "description": "why: interpolated, ambiguous, outside the area"},
            "normalized": {"type": "string"},
            "suggestions": {"type": "array", "items": {"type": "string"}},
            "candidates": {"type": "array", "items": _CANDIDATE},
            "grid": {"$ref": "#/components/schemas/Location"},
        },
    },
    "CasePoint": {
        "type": "object",
        "required": ["lon", "lat"],
        "properties": {
            "lon": {"type": "number"},
            "lat": {"type": "number"},
            "crs": {"type": "string", "enum": ["wgs84", "cgcs2000", "gcj02", "bd09"]},
            "note": {"type": "string", "maxLength": review.MAX_NOTE},
            "version": {"type": "integer", "description": "the version the caller saw (409 when stale)"},
        },
    },
}
