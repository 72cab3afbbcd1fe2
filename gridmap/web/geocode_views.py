"""Geocoding over HTTP: an address's point (GET /api/geocode), and a case's point set by hand after review.

The answers are those of `gridmap geocode --json`; a case's point is moved by `gridmap.geocode.review`.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, request

from gridmap import cases, geocode
from gridmap.errors import InvalidInput, Unprocessable
from gridmap.geocode import normalise, review
from gridmap.store import Store
from gridmap.web import inputs
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, json_body, json_response, path_param, query

blueprint = Blueprint("geocode", __name__)
MAX_ADDRESS = 300
LOCATION_FIELDS = ("lon", "lat", "crs", "note", "version")
POINT_CRS = ("wgs84", "cgcs2000", "gcj02", "bd09")


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
    if not address.strip():
        raise InvalidInput("address is empty")
    locate = inputs.flag_arg("locate")
    try:
        normalise.require_text(address)
    except InvalidInput as error:  # text as described, but nothing in it to look up (only punctuation)
        raise Unprocessable(error.message) from None
    return jsonify(geocode.geocode_address(_store(), address, settings=_settings(), locate=locate))


@blueprint.post("/api/incidents/<int:incident_id>/location")
@require_user(*cases.ACTING_ROLES)  # the roles the case rules let move a case
def relocate_incident(incident_id: int):
    """Put a case at the point a person picked (after a low-confidence geocode): its grid follows, review clears."""
    body = inputs.json_object(LOCATION_FIELDS)
    if "lon" not in body or "lat" not in body:
        raise InvalidInput("give lon and lat of the point")
    for name in ("lon", "lat"):  # JSON numbers here (the case page's form sends text, read by relocate)
        if isinstance(body[name], bool) or not isinstance(body[name], int | float):
            raise InvalidInput(f"{name} must be a number")
    if body.get("crs") not in (None, *POINT_CRS):
        raise InvalidInput(f"crs must be one of {', '.join(POINT_CRS)}, not {str(body['crs'])[:30]!r}")
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
                    "The address as written, e.g. 南开区卫津路99号 or 黄河道与卫津路交叉口东150米 (only "
                    "punctuation: 422)",
                    {"type": "string", "maxLength": MAX_ADDRESS, "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"},
                    required=True,
                ),
                query("locate", "true (or 1): also give the grid of the point", inputs.FLAG_SCHEMA),
            ],
            "responses": {"200": json_response("#/components/schemas/Geocode"), "422": ERRORS["422"]},
        }
    },
    "/api/incidents/{incident_id}/location": {
        "post": {
            "summary": "Set a case's point by hand (the review of a low-confidence geocode); its grid follows",
            "parameters": [path_param("incident_id", "integer")],
            "requestBody": json_body({"$ref": "#/components/schemas/CasePoint"}),
            "description": "A point in no grid of the district is 422; a closed case, or a stale version, 409.",
            "responses": {
                "200": json_response("#/components/schemas/Incident"),
                "409": ERRORS["409"],
                "422": ERRORS["422"],
            },
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
        "additionalProperties": False,
        "properties": {
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "crs": {"enum": [*POINT_CRS, None], "description": "of lon and lat (default wgs84)"},
            "note": {"type": ["string", "null"], "maxLength": review.MAX_NOTE},
            "version": {
                "type": ["integer", "null"],
                "description": "the version the caller saw (409 when stale; null or left out: not checked)",
            },
        },
    },
}
