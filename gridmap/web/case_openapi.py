"""The OpenAPI description of the case endpoints (web/case_views): parameters, bodies and answers.

Kept beside the views module, which re-exports it, so web/openapi gathers it with the routes it describes.
"""

from __future__ import annotations

from gridmap import cases
from gridmap.web import inputs
from gridmap.web.openapi import (
    DATE_TIME,
    ERRORS,
    OPTIONAL_DATE_TIME,
    choice,
    json_response,
    path_param,
    query,
)

MAX_PAGE = 500
_NUMBER = r"-?[0-9]{1,3}(\.[0-9]+)?"
BBOX_PATTERN = rf"{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}"

# ---- OpenAPI: the case endpoints ----------------------------------------------------------------------
_STATUS_LIST = "|".join(cases.STATUSES)
# Tab and line breaks allowed; other control characters and non-characters are refused (so are lone
# surrogates, which JSON text cannot carry as characters anyway).
_TEXT_LINE = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f\\ufffe\\uffff]*$"


def _text(limit: int, *, required: bool = False) -> dict:
    """A text field: at most `limit` characters, no control characters (not blank when `required`; an
    optional one may be null, the same as leaving it out)."""
    schema: dict = {"type": "string" if required else ["string", "null"], "maxLength": limit, "pattern": _TEXT_LINE}
    if required:
        schema["allOf"] = [{"pattern": "\\S"}]
    return schema


def _category_codes() -> list[str]:
    return [row["code"] for row in cases.load_categories()]


_CASE_FILTERS = [
    query(
        "status",
        "Comma-separated statuses: " + ", ".join(cases.STATUSES),
        {"type": "string", "pattern": f"^$|^({_STATUS_LIST})(,({_STATUS_LIST}))*$"},
    ),
    query("grid", "Grid code"),
    query("community", "Community code"),
    query("street", "Street code"),
    query("category", "4-digit category code", choice(_category_codes())),
    query("source", "Source: " + ", ".join(cases.SOURCES), choice(cases.SOURCES)),
    query("from", "Reported on or after: a day or a date-time with offset", inputs.MOMENT_SCHEMA),
    query("to", "Reported before (a day includes that whole day)", inputs.MOMENT_SCHEMA),
    query(
        "bbox",
        "west,south,east,north in WGS84 degrees (decimal numbers)",
        {"type": "string", "pattern": f"^$|^{BBOX_PATTERN}$"},
    ),
    query("overdue", "true (or 1): only open cases past their deadline", inputs.FLAG_SCHEMA),
    query("review", "true (or 1): only cases whose geocoded point a person should check", inputs.FLAG_SCHEMA),
    query("limit", f"Page size, 1–{MAX_PAGE} (default 50)", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
    query(
        "after",
        "Return cases with an id above this (the `next` link sets it)",
        {"type": "integer", "minimum": 0, "maximum": inputs.MAX_ID},
    ),
]
_ID = [path_param("incident_id", "integer")]
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")
TOO_LARGE = {"413": json_response("#/components/schemas/Error", "A photo or the request is over its size limit")}


def _json_or_form(name: str) -> dict:
    """A body as JSON, or as multipart/form-data with photos (the form schema is NAME + "Form")."""
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}},
            "multipart/form-data": {
                "schema": {"$ref": f"#/components/schemas/{name}Form"},
                # Each photo must be one of these images (read from its bytes, not its name): 400 otherwise.
                "encoding": {
                    "photos": {
                        "contentType": ", ".join(PHOTO_TYPES),
                        "headers": {
                            "Content-Disposition": {
                                "description": "Each photo is a file part: it has a filename",
                                "required": True,
                                "schema": {
                                    "type": "string",
                                    "example": 'form-data; name="photos"; filename="photo.jpg"',
                                },
                            }
                        },
                    }
                },
            },
        },
    }


OPENAPI_PATHS: dict[str, dict] = {
    "/api/incidents": {
        "get": {
            "summary": "List the cases in the caller's scope",
            "parameters": _CASE_FILTERS,
            "responses": {"200": json_response("#/components/schemas/IncidentPage"), "422": ERRORS["422"]},
        },
        "post": {
            "summary": "Report a case (lon/lat or address); geocoded and assigned at once",
            "description": "A grid worker or supervisor reports only inside their own area (403 otherwise). "
            "A point in no grid or an address not in the gazetteer is 422.",
            "requestBody": _json_or_form("NewIncident"),
            "responses": {
                "201": {
                    **json_response("#/components/schemas/Incident", "Created"),
                    "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                },
                "422": ERRORS["422"],
                **TOO_LARGE,
            },
        },
    },
    "/api/incidents/{incident_id}": {
        "get": {
            "summary": "One case with its history and the actions the caller may take",
            "parameters": _ID,
            "responses": {"200": json_response("#/components/schemas/Incident")},
        }
    },
    "/api/incidents/{incident_id}/actions": {
        "post": {
            "summary": "Take a workflow step (with photos as multipart); an illegal step is 409",
            "parameters": _ID,
            "requestBody": _json_or_form("Action"),
            "responses": {"200": json_response("#/components/schemas/Incident"), "409": ERRORS["409"], **TOO_LARGE},
        }
    },
    "/api/categories": {
        "get": {
            "summary": "The category table (2+2-digit codes) with deadlines in working hours or days",
            "responses": {"200": json_response("#/components/schemas/CategoryList")},
        }
    },
    "/api/stats": {
        "get": {
            "summary": "Indicators: received, registered, closed, resolution, on-time and rework rates, overdue",
            "parameters": [
                query("by", "Group by: " + ", ".join(cases.GROUPS), choice(cases.GROUPS)),
                query("from", "Reported on or after: a day or a date-time with offset", inputs.MOMENT_SCHEMA),
                query("to", "Reported before (a day includes that whole day)", inputs.MOMENT_SCHEMA),
                query("grid", "Grid code"),
                query("community", "Community code"),
                query("street", "Street code"),
                query("category", "4-digit category code", choice(_category_codes())),
                query("source", "Source: " + ", ".join(cases.SOURCES), choice(cases.SOURCES)),
            ],
            "responses": {"200": json_response("#/components/schemas/Stats")},
        }
    },
}

_INDICATORS = {
    "type": "object",
    "required": ["received", "registered", "rejected", "open", "closed", "resolution_rate", "due", "overdue"],
    "properties": {
        **{
            k: {"type": "integer", "minimum": 0}
            for k in ("received", "registered", "rejected", "open", "closed", "due", "closed_on_time", "reworked")
        },
        "overdue": {"type": "integer", "minimum": 0},
        **{k: {"type": ["number", "null"]} for k in ("resolution_rate", "on_time_rate", "rework_rate")},
        "median_hours_to_close": {"type": ["number", "null"]},
    },
}
PLACE = [
    {"required": ["lon", "lat"], "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}}},
    {
        "required": ["address"],
        "properties": {"address": {"type": "string", "pattern": "\\S"}},
        # lon without lat (or lat without lon) is refused even with an address: one of them is a mistake
        "not": {
            "anyOf": [
                {"required": ["lon"], "properties": {"lon": {"type": "number"}}},
                {"required": ["lat"], "properties": {"lat": {"type": "number"}}},
            ]
        },
    },
]

OPENAPI_SCHEMAS: dict[str, dict] = {
    "Indicators": _INDICATORS,  # cases.indicators: /api/stats and the dashboard's headline
    "NewIncident": {
        "type": "object",
        "description": "Give the place as lon and lat (in `crs`, default WGS84) or as an address.",
        "required": ["title"],
        "additionalProperties": False,
        "allOf": [
            {"anyOf": PLACE},
            {"anyOf": [{"required": ["category"]}, {"required": ["category_code"]}]},
        ],
        "properties": {
            "title": _text(cases.MAX_TITLE, required=True),
            "description": _text(cases.MAX_DESCRIPTION),
            "category": {"type": "string", "enum": _category_codes()},
            "category_code": {"type": "string", "enum": _category_codes(), "description": "same as category"},
            "lon": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
            "lat": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
            "crs": {"enum": ["wgs84", "cgcs2000", "gcj02", "bd09", None]},
            "address": _text(cases.MAX_ADDRESS),
            "reporter_name": _text(cases.MAX_NAME),
            "reporter_phone": {
                "type": ["string", "null"],
                "pattern": "^ *$|^ *[0-9+()\\-][0-9+() \\-]{1,38}[0-9+()\\-] *$",
            },
            "source": {"enum": [*cases.SOURCES, None]},
        },
    },
    "Action": {
        "type": "object",
        "required": ["action"],
        "additionalProperties": False,
        "properties": {
            "action": {"type": "string", "enum": list(cases.ACTIONS)},
            "note": _text(cases.MAX_NOTE),
            "assignee": _text(cases.MAX_NAME),
            "hours": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": 10000,
                "description": "extend: working hours",
            },
            "days": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": 10000,
                "description": "extend: working days",
            },
            "version": {"type": ["integer", "null"], "description": "the version the caller saw (409 when stale)"},
        },
        "allOf": [
            *(
                {
                    "if": {"properties": {"action": {"const": name}}},
                    "then": {
                        "required": list(step.needs),
                        "properties": {field: {"type": "string", "pattern": "\\S"} for field in step.needs},
                    },
                }
                for name, step in cases.ACTIONS.items()
                if step.needs
            ),
            {
                "if": {"properties": {"action": {"const": "extend"}}},
                "then": {
                    "oneOf": [
                        {"required": ["hours"], "properties": {"hours": {"type": "number"}}},
                        {"required": ["days"], "properties": {"days": {"type": "number"}}},
                    ]
                },
            },
        ],
    },
    "Incident": {
        "type": "object",
        "required": [
            "id",
            "title",
            "description",
            "status",
            "handling_level",
            "category_code",
            "category_name",
            "grid_code",
            "community_code",
            "street_code",
            "reported_at",
            "deadline",
            "light",
            "overdue",
            "reporter_name",
            "reporter_phone",
            "actions",
            "version",
            "lon",
            "lat",
        ],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "status": {"type": "string", "enum": list(cases.STATUSES)},
            "handling_level": {"type": "string", "enum": list(cases.LEVELS)},
            "assignee": {"type": ["string", "null"]},
            "category_code": {"type": ["string", "null"]},
            "category_name": {"type": ["string", "null"]},
            "grid_code": {"type": ["string", "null"]},
            "community_code": {"type": ["string", "null"]},
            "street_code": {"type": ["string", "null"]},
            "original_grid_code": {"type": ["string", "null"]},
            "edition": {"type": ["string", "null"]},
            "ambiguous": {"type": "boolean"},
            "address": {"type": ["string", "null"]},
            "lon": {"type": ["number", "null"]},
            "lat": {"type": ["number", "null"]},
            "geocode_level": {"type": ["string", "null"]},
            "geocode_confidence": {"type": ["number", "null"]},
            "geocode_review": {"type": "boolean", "description": "low-confidence geocode: a person should check"},
            "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
            "source": {"type": "string", "enum": list(cases.SOURCES)},
            "source_id": {"type": ["string", "null"]},
            "supervised": {"type": "boolean"},
            "rework_count": {"type": "integer", "minimum": 0},
            "version": {"type": "integer", "minimum": 1},
            "reporter_name": {"type": ["string", "null"], "description": "masked unless admin or supervisor"},
            "reporter_phone": {"type": ["string", "null"], "description": "masked unless admin or supervisor"},
            "reported_at": DATE_TIME,
            "deadline": OPTIONAL_DATE_TIME,
            "resolved_at": OPTIONAL_DATE_TIME,
            "closed_at": OPTIONAL_DATE_TIME,
            "light": {"enum": ["green", "yellow", "red", None]},
            "overdue": {"type": "boolean"},
            "actions": {"type": "array", "items": {"type": "string", "enum": list(cases.ACTIONS)}},
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["at", "actor", "action", "from", "to", "note"],
                    "properties": {
                        "at": DATE_TIME,
                        "actor": {"type": "string"},
                        "action": {"type": "string"},
                        "from": {"type": ["string", "null"]},
                        "to": {"type": "string"},
                        "note": {"type": "string"},
                    },
                },
            },
        },
    },
    "IncidentPage": {
        "type": "object",
        "required": ["items", "count", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
            "count": {"type": "integer", "minimum": 0},
            "next": {"type": ["string", "null"]},
        },
    },
    "CategoryList": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["code", "class_code", "class_name", "name", "name_en", "limit", "unit", "deadline"],
            "properties": {
                "code": {"type": "string", "pattern": "^[0-9]{4}$"},
                "class_code": {"type": "string", "pattern": "^[0-9]{2}$"},
                "class_name": {"type": "string"},
                "class_name_en": {"type": "string"},
                "name": {"type": "string"},
                "name_en": {"type": "string"},
                "deadline": {"type": "string"},
                "deadline_en": {"type": "string"},
                "limit": {"type": "number", "exclusiveMinimum": 0},
                "unit": {"enum": ["hours", "days"]},
                "limit_working_hours": {"type": "number"},
            },
        },
    },
    "Stats": {
        "type": "object",
        "required": ["by", "from", "to", "as_of", "total", "groups"],
        "properties": {
            "by": {"type": "string", "enum": list(cases.GROUPS)},
            "from": OPTIONAL_DATE_TIME,
            "to": OPTIONAL_DATE_TIME,
            "as_of": DATE_TIME,
            "total": _INDICATORS,
            "groups": {
                "type": "array",
                "items": {
                    "allOf": [_INDICATORS, {"required": ["key"], "properties": {"key": {"type": ["string", "null"]}}}]
                },
            },
        },
    },
}
