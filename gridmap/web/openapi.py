"""The OpenAPI document of every /api endpoint, gathered from the blueprints that serve them.

Each views module that serves /api routes declares `OPENAPI_PATHS` (path → method → operation) and may
declare `OPENAPI_SCHEMAS` (name → schema) beside its routes, so a route and its description change
together. A route found in the app but described nowhere still appears (summary from its docstring), so
the document always lists every endpoint.
"""

from __future__ import annotations

import sys

from flask import Flask


def query(name: str, description: str, schema: dict | None = None, *, required: bool = False) -> dict:
    """Describe a query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def path_param(name: str, kind: str = "string") -> dict:
    """Describe a path parameter."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def json_response(schema_ref: str, description: str = "OK") -> dict:
    """Describe a JSON response whose body is the named component schema."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


ERRORS = {
    "400": json_response("#/components/schemas/Error", "Bad input; nothing was written"),
    "401": json_response("#/components/schemas/Error", "No session and no API token"),
    "403": json_response("#/components/schemas/Error", "The caller's role may not do this"),
    "404": json_response("#/components/schemas/Error", "Not found, or outside the caller's area"),
    "409": json_response("#/components/schemas/Error", "Clashes with the current state (status, version)"),
}
OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}

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
    },
}


def _openapi_path(rule: str) -> str:
    path = rule
    while "<" in path:
        start, end = path.index("<"), path.index(">")
        name = path[start + 1 : end].split(":")[-1]
        path = f"{path[:start]}{{{name}}}{path[end + 1 :]}"
    return path


def _declared(app: Flask) -> tuple[dict, dict]:
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = dict(BASE_COMPONENTS["schemas"])
    modules = {sys.modules.get(bp.import_name) for bp in app.blueprints.values()}
    for module in sorted(filter(None, modules), key=lambda m: m.__name__):
        for path, methods in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(methods)
        schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    return paths, schemas


def openapi_document(app: Flask) -> dict:
    """Build the OpenAPI document: what the blueprints declare plus any /api route none of them lists."""
    paths, schemas = _declared(app)
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = _openapi_path(rule.rule)
        view = app.view_functions.get(rule.endpoint)
        summary = ((view.__doc__ or "").strip().splitlines() or [rule.endpoint])[0]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry = paths.setdefault(path, {})
            if method.lower() not in entry:
                parameters = [path_param(a) for a in sorted(rule.arguments)]
                entry[method.lower()] = {
                    "summary": summary,
                    **({"parameters": parameters} if parameters else {}),
                    "responses": {"200": OK, **ERRORS},
                }
    return {
        "openapi": "3.1.0",
        "info": {"title": "gridmap API", "version": "0.1.0", "description": "网格地图: grids, cases and maps"},
        "security": [{"bearer": []}, {"session": []}],
        "paths": dict(sorted(paths.items())),
        "components": {**BASE_COMPONENTS, "schemas": schemas},
    }
