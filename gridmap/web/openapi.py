"""The OpenAPI document of every /api endpoint, gathered from the blueprints that serve them.

Each views module that serves /api routes declares `OPENAPI_PATHS` (path → method → operation) and may
declare `OPENAPI_SCHEMAS` (name → schema) beside its routes, so a route and its description change
together. What every operation shares is added here from the app itself, so it cannot drift: its security
comes from the route's access rule (web/access), its path parameters from the route's converters, and the
error responses it can give (400 bad input, 401/403 from the access rule, 404, 413 for JSON bodies, 422
well-formed but unusable input, 503 busy with Retry-After). A route found in the app but described nowhere
still appears (summary from its docstring), and tests/test_openapi.py fails naming it.

Times are ISO 8601 with an offset, in China Standard Time (Asia/Shanghai, +08:00); see gridmap.clock.
"""

from __future__ import annotations

import copy
import re
import sys

from flask import Flask

from gridmap.web import access, inputs

NO_NUL = "^[^\\u0000]*$"  # no NUL character: no value has one and PostgreSQL cannot store one
TEXT = {"type": "string", "pattern": NO_NUL}
BLANK = ""  # an empty query parameter is the same as leaving it out


def query(name: str, description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    """Describe a query parameter (text without NUL unless a schema is given)."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or dict(TEXT),
    }


def choice(values, *, blank: bool = True) -> dict:
    """A string that is one of `values` (or empty, meaning "not given", when `blank`)."""
    return {"type": "string", "enum": [*values, *([BLANK] if blank else [])]}


def path_param(name: str, kind: str = "string") -> dict:
    """Describe a path parameter."""
    schema = {"type": "integer", "minimum": 1, "maximum": inputs.MAX_ID} if kind == "integer" else _PATH_TEXT
    return {"name": name, "in": "path", "required": True, "schema": dict(schema)}


_PATH_TEXT = {"type": "string", "minLength": 1, "pattern": "^[^/\\u0000]+$"}


def json_response(schema_ref: str, description: str = "OK") -> dict:
    """Describe a JSON response whose body is the named component schema."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def json_body(schema: dict, *, required: bool = True) -> dict:
    """Describe a JSON request body."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return json_response("#/components/schemas/Error", description)


ERRORS = {
    "400": _error("Malformed: the request does not match this description; nothing was written"),
    "401": _error("No session and no API token"),
    "403": _error("The caller's role or area does not allow this"),
    "404": _error("Not found, or outside the caller's area"),
    "409": _error("Clashes with the current state (status, version)"),
    "413": _error(f"The JSON body is larger than {inputs.MAX_JSON_BYTES:,} bytes"),
    "422": _error("Well-formed, but unusable against the data (a point in no grid, an unknown address)"),
    "503": {
        **_error("The database is busy with another write (a large import); try again after Retry-After"),
        "headers": {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    },
}
OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
DATE_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 with offset, Asia/Shanghai time"}
OPTIONAL_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
DATE = {"type": ["string", "null"], "format": "date"}

BASE_COMPONENTS = {
    "securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"},
        "session": {"type": "apiKey", "in": "cookie", "name": "session"},
    },
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error", "status"],
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
        },
        "FeatureCollection": {
            "type": "object",
            "required": ["type", "features"],
            "properties": {
                "type": {"const": "FeatureCollection"},
                "features": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "geometry", "properties"],
                        "properties": {
                            "type": {"const": "Feature"},
                            "geometry": {"type": ["object", "null"]},
                            "properties": {"type": "object"},
                        },
                    },
                },
            },
        },
    },
}
SIGNED_IN = [{"bearer": []}, {"session": []}]


_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")  # <int:incident_id> → ("int", "incident_id")


def _openapi_path(rule: str) -> str:
    path = rule
    while "<" in path:
        start, end = path.index("<"), path.index(">")
        name = path[start + 1 : end].split(":")[-1]
        path = f"{path[:start]}{{{name}}}{path[end + 1 :]}"
    return path


def _declared(app: Flask) -> tuple[dict, dict]:
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = copy.deepcopy(BASE_COMPONENTS["schemas"])
    modules = {sys.modules.get(bp.import_name) for bp in app.blueprints.values()}
    for module in sorted(filter(None, modules), key=lambda m: m.__name__):
        for path, methods in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(copy.deepcopy(methods))
        schemas.update(copy.deepcopy(getattr(module, "OPENAPI_SCHEMAS", {})))
    return paths, schemas


def _security(rule: access.Rule | None, anonymous_access: str) -> list[dict]:
    if rule is None:
        return SIGNED_IN  # undeclared routes are refused to everyone; never describe them as open
    if rule.kind == "public":
        return []
    if rule.allows_anonymous(anonymous_access):
        return [{}, *SIGNED_IN]  # {}: no credentials needed (GRIDMAP_ANONYMOUS_ACCESS allows it)
    return SIGNED_IN


def _complete(operation: dict, access_rule: access.Rule | None, arguments: dict[str, str], anonymous: str) -> None:
    """Add what the app itself knows: security, path parameters, and the errors every operation can give."""
    operation["security"] = _security(access_rule, anonymous)
    declared = {(p["name"], p["in"]) for p in operation.get("parameters", [])}
    for name, kind in sorted(arguments.items()):
        if (name, "path") not in declared:
            operation.setdefault("parameters", []).append(path_param(name, kind))
    responses = operation.setdefault("responses", {"200": OK})
    codes = {"400", "503"}  # any parameter can be malformed; any database call can meet a busy database
    if operation["security"]:
        codes.add("401")
        if access_rule is None or access_rule.roles or access_rule.kind == "signed_in":
            codes.add("403")
    if operation.get("parameters"):  # a path or query parameter can name something that does not exist
        codes.add("404")
    if "requestBody" in operation:
        codes.add("413")
    for code in sorted(codes):
        responses.setdefault(code, ERRORS[code])


def openapi_document(app: Flask) -> dict:
    """Build the OpenAPI document: what the blueprints declare, completed from each route's rules."""
    paths, schemas = _declared(app)
    anonymous_access = app.extensions["gridmap"].settings.anonymous_access
    described: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = _openapi_path(rule.rule)
        view = app.view_functions.get(rule.endpoint)
        summary = ((view.__doc__ or "").strip().splitlines() or [rule.endpoint])[0]
        arguments = {
            name: "integer" if converter == "int" else "string" for converter, name in _ARGUMENT.findall(rule.rule)
        }
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = paths.get(path, {}).get(method.lower()) or {"summary": summary, "responses": {"200": OK}}
            _complete(operation, access.rule_of(app, rule.endpoint), arguments, anonymous_access)
            described.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridmap API",
            "version": "0.1.0",
            "description": (
                "网格地图: grids, cases and maps. Times are ISO 8601 with their offset, in China Standard Time "
                "(Asia/Shanghai, +08:00); times sent without an offset are taken as Shanghai time. 400 means the "
                "request does not match this description; 422 that it does, but cannot be used against the data."
            ),
        },
        "security": SIGNED_IN,
        "paths": dict(sorted(described.items())),
        "components": {**BASE_COMPONENTS, "schemas": schemas},
    }
