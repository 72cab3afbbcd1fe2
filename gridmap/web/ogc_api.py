"""What /ogc promises: its conformance classes, its CRSs and its OpenAPI 3.0 definition (served at /ogc/api)."""

from __future__ import annotations

from gridmap import cases, features

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# URI → the name pyproj knows. EPSG:4326 and EPSG:4490 are latitude first (Part 2 keeps each CRS's axis order).
CRS_NAMES = {
    CRS84: "OGC:CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326": "EPSG:4326",
    "http://www.opengis.net/def/crs/EPSG/0/4490": "EPSG:4490",
    "http://www.opengis.net/def/crs/EPSG/0/3857": "EPSG:3857",
}
_FEATURES = "http://www.opengis.net/spec/ogcapi-features-{part}/1.0/conf/{name}"
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/{name}"
CONFORMANCE = [
    *(_FEATURES.format(part=1, name=n) for n in ("core", "geojson", "html", "oas30")),
    _FEATURES.format(part=2, name="crs"),
    *(
        _FEATURES.format(part=3, name=n)
        for n in ("queryables", "queryables-query-parameters", "filter", "features-filter")
    ),
    *(
        _CQL2.format(name=n)
        for n in (
            "cql2-text",
            "cql2-json",
            "basic-cql2",
            "advanced-comparison-operators",
            "case-insensitive-comparison",
            "accent-insensitive-comparison",
            "basic-spatial-functions",
            "basic-spatial-functions-plus",
            "spatial-functions",
            "property-property",
            "arithmetic",
        )
    ),
]


def _param(name: str, description: str, schema: dict, *, where: str = "query", required: bool = False, **extra) -> dict:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": False,
        **extra,
    }


_F = _param("f", "Format: json (default) or html", {"type": "string", "enum": ["json", "html"]})
_CRS_LIST = {"type": "string", "format": "uri", "enum": list(CRS_NAMES)}
_ITEM_PARAMETERS = [
    _param(
        "limit",
        "Features per page (default 10, at most 10000)",
        {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10},
    ),
    _param("offset", "Features to skip (the next link sets it)", {"type": "integer", "minimum": 0, "default": 0}),
    _param(
        "bbox",
        "west,south,east,north in CRS84 (or in bbox-crs and its axis order)",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
    ),
    _param("bbox-crs", "CRS of bbox", _CRS_LIST),
    _param(
        "datetime",
        "An instant or interval (RFC 3339, `..` for open): cases by report time, areas by their edition's validity",
        {"type": "string"},
    ),
    _param("crs", "CRS of the response geometries", _CRS_LIST),
    _param("filter", "A CQL2 text filter over the queryables", {"type": "string"}),
    # cql-text is the name Part 3's drafts gave CQL2 text; GDAL (up to 3.12 at least) looks for it and sends it.
    _param(
        "filter-lang",
        "Filter language: cql2-text or cql2-json (cql-text is taken as cql2-text)",
        {"type": "string", "enum": ["cql2-text", "cql2-json", "cql-text"], "default": "cql2-text"},
    ),
    _param("filter-crs", "CRS of geometry literals in the filter", _CRS_LIST),
    _F,
]
_JSON = {"application/json": {"schema": {"type": "object"}}}
_GEOJSON = {"application/geo+json": {"schema": {"type": "object"}}, "text/html": {"schema": {"type": "string"}}}
_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}},
}


def _get(summary: str, operation_id: str, parameters: list, content: dict, *, secured: bool = False) -> dict:
    operation = {
        "summary": summary,
        "operationId": operation_id,
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": content}, "400": _ERROR, "404": _ERROR},
    }
    if secured:
        operation["security"] = [{"bearer": []}, {"session": []}]
        operation["responses"]["401"] = _ERROR
    return {"get": operation}


def _property_parameters(collection_id: str) -> list[dict]:
    base, _edition = features.parse_collection(collection_id)
    props = features.INCIDENT_PROPERTIES if base == features.INCIDENTS else features.AREA_PROPERTIES
    kinds = {"date-time": {"type": "string", "format": "date-time"}}
    return [
        _param(name, f"Only features whose {name} equals this", kinds.get(kind, {"type": kind}))
        for name, (kind, _t) in props.items()
    ]


def openapi_document(base_url: str, collection_ids: list[str]) -> dict:
    """Return the OpenAPI 3.0 definition of /ogc, listing the items path of each collection the caller may read."""
    collection_id = _param(
        "collectionId", "Collection id, e.g. grids or grids@EDITION", {"type": "string"}, where="path", required=True
    )
    paths = {
        "/": _get("Landing page", "getLandingPage", [_F], _JSON),
        "/conformance": _get("Conformance classes", "getConformance", [_F], _JSON),
        "/api": _get(
            "This API definition",
            "getApi",
            [_F],
            {"application/vnd.oai.openapi+json;version=3.0": {"schema": {"type": "object"}}},
        ),
        "/collections": _get("The collections", "getCollections", [_F], _JSON),
        "/collections/{collectionId}": _get("One collection", "describeCollection", [collection_id, _F], _JSON),
        "/collections/{collectionId}/items": _get(
            "Features of a collection", "getFeatures", [collection_id, *_ITEM_PARAMETERS], _GEOJSON
        ),
        "/collections/{collectionId}/items/{featureId}": _get(
            "One feature",
            "getFeature",
            [
                collection_id,
                _param("featureId", "Feature id", {"type": "string"}, where="path", required=True),
                _param("crs", "CRS of the geometry", _CRS_LIST),
                _F,
            ],
            _GEOJSON,
        ),
        "/collections/{collectionId}/queryables": _get(
            "Queryables (JSON Schema)",
            "getQueryables",
            [collection_id, _F],
            {"application/schema+json": {"schema": {"type": "object"}}},
        ),
        "/collections/{collectionId}/schema": _get(
            "Schema of the features (JSON Schema)",
            "getSchema",
            [collection_id, _F],
            {"application/schema+json": {"schema": {"type": "object"}}},
        ),
    }
    for cid in collection_ids:
        # Spelled out per collection too: older GDAL versions learn the queryable properties from here.
        secured = cid == features.INCIDENTS
        paths[f"/collections/{cid}/items"] = _get(
            f"Features of {cid}",
            f"getFeatures_{cid}",
            [*_ITEM_PARAMETERS, *_property_parameters(cid)],
            _GEOJSON,
            secured=secured,
        )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "gridmap OGC API – Features",
            "version": "1.0.0",
            "description": "Grids, communities, streets (per boundary edition) and cases. Case statuses: "
            + ", ".join(cases.STATUSES),
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {
                "exception": {
                    "type": "object",
                    "required": ["code"],
                    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
                }
            },
        },
    }
