"""OGC API – Features under /ogc, for QGIS, GDAL/OGR, OWSLib and any other client of the standard.

Part 1 (core, GeoJSON, HTML, OpenAPI 3.0), Part 2 (CRS by reference: CRS84, EPSG:4326, EPSG:4490,
EPSG:3857) and Part 3 (queryables, CQL2 text filters). Collections: `grids`, `communities`, `streets`,
`districts` of the current edition, the same with `@EDITION` for any other edition (`grids@plan2027`), and
`incidents` for signed-in users. Boundaries are public or need a sign-in (setting `boundaries_access`);
drafts are shown to planners and admins only; cases go through `gridmap.features`, i.e. `cases.list_cases`
and `cases.present`, so roles, grid scope and masking are those of /api/incidents. QGIS and GDAL send the
API token as a header (Authorization: Bearer TOKEN).

pygeoapi was tried first (see README): its providers read one table each, its SQLite provider needs a Python
`sqlite3` that can load SpatiaLite (this machine's cannot; gridmap uses sqlean for that reason), collections
come from a YAML file read at start-up while editions come and go at run time, and it has no notion of a
signed-in user, so neither scope nor masking could be expressed. Filters are parsed by the cql2 package and
evaluated by `gridmap.cql` (which says why not pygeofilter).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections import OrderedDict
from urllib.parse import quote, urlencode

import numpy as np
import shapely
from flask import Blueprint, Response, current_app, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _

from gridmap import cases, clock, features
from gridmap.errors import ConfigError, GridmapError, NotFound, Unauthorized
from gridmap.store import Store
from gridmap.web.access import public
from gridmap.web.auth import current_user
from gridmap.web.i18n import message
from gridmap.web.ogc_api import CONFORMANCE, CRS84, CRS_NAMES, openapi_document
from gridmap.web.ogc_params import (
    GEOJSON,
    bbox_param,
    check_params,
    crs_param,
    filter_tree,
    int_param,
    output_format,
    period_param,
    transform,
    zone,
)

blueprint = Blueprint("ogc", __name__, url_prefix="/ogc")
DEFAULT_LIMIT, MAX_LIMIT = 10, 10_000
EDITORS = ("admin", "planner")
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_JSON = "application/schema+json"
_CACHE_SIZE = 8
_CLOCK_TICK_S = 300  # a case's traffic light may be this old; the ETag of the cases changes as often
_COMMON = {"f", "lang"}
_ITEM_PARAMS = _COMMON | {
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "datetime",
    "crs",
    "filter",
    "filter-lang",
    "filter-crs",
}


def _state():
    return current_app.extensions["gridmap"]


def _store() -> Store:
    return _state().store


# ---- caching ---------------------------------------------------------------------------------------------
class _Lru:
    """A few computed feature sets per app, keyed on cheap values that change with every write."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: OrderedDict = OrderedDict()

    def get(self, key, compute, size: int = _CACHE_SIZE):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = compute()
        with self.lock:
            self.items[key] = value
            while len(self.items) > size:
                self.items.popitem(last=False)
        return value


def _cache() -> _Lru:
    return current_app.extensions.setdefault("gridmap_ogc_cache", _Lru())


# ---- who may see what ------------------------------------------------------------------------------------
def _check_boundaries_readable() -> None:
    access = _state().settings.boundaries_access
    if access not in ("public", "signed-in"):
        raise ConfigError(f"GRIDMAP_BOUNDARIES_ACCESS must be public or signed-in, not {access!r}")
    if access == "signed-in" and current_user() is None:
        raise Unauthorized("sign in or send an API token (Authorization: Bearer TOKEN) to read boundaries")


def _edition(name: str | None):
    """Return the edition a collection is of, refusing drafts to all but planners and admins (as not found)."""
    store = _store()
    if name is None:
        edition = store.current_edition()
        if edition is None:
            raise NotFound("no current edition: load boundaries or run `gridmap demo`")
        return edition
    edition = store.find_edition(name)
    user = current_user()
    if edition is None or (edition.status == "draft" and (user is None or user.role not in EDITORS)):
        raise NotFound(f"no edition named {name!r}")
    return edition


def _collection(collection_id: str):
    """Return (base id, edition or None for incidents) of a collection the caller may read."""
    base, edition_name = features.parse_collection(collection_id)
    if base == features.INCIDENTS:
        if current_user() is None:
            raise Unauthorized("cases need a sign-in: send an API token (Authorization: Bearer TOKEN)")
        return base, None
    _check_boundaries_readable()
    return base, _edition(edition_name)


def _visible_collections() -> list[tuple[str, object]]:
    """List (collection id, edition or None) of every collection the caller may read."""
    store, user = _store(), current_user()
    found: list[tuple[str, object]] = []
    if _state().settings.boundaries_access == "public" or user is not None:
        for edition in store.list_editions():
            if edition.status == "draft" and (user is None or user.role not in EDITORS):
                continue
            counts = store.area_counts(edition.name)
            suffix = "" if edition.status == "current" else features.EDITION_MARK + edition.name
            found += [
                (base + suffix, edition) for base, level in features.AREA_COLLECTIONS.items() if counts.get(level)
            ]
        found.sort(key=lambda item: (item[1].status != "current", item[1].name))
    if user is not None:
        found.append((features.INCIDENTS, None))
    return found


# ---- responses -------------------------------------------------------------------------------------------
def _url(path: str, **params) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{request.host_url.rstrip('/')}/ogc{path}" + (f"?{query}" if query else "")


def _link(href: str, rel: str, kind: str, title: str) -> dict:
    return {"href": href, "rel": rel, "type": kind, "title": title}


def _self_links(path: str, json_type: str = "application/json") -> list[dict]:
    fmt = output_format()
    args = {k: v for k, v in request.args.items() if k != "f"}
    here = _link(_url(path, **args, f="json"), "self" if fmt == "json" else "alternate", json_type, _("This document"))
    html = _link(_url(path, **args, f="html"), "self" if fmt == "html" else "alternate", "text/html", _("As HTML"))
    return [here, html]


def _etag(*parts) -> str:
    # Titles follow the page language, which a session may hold: it is part of the version too.
    return hashlib.sha256(repr((str(get_locale()), *parts)).encode()).hexdigest()[:32]


def _respond(body, *, etag_parts=(), media: str = "application/json", template: str | None = None, **page):
    """Send JSON (or the HTML page when asked), with an ETag and Vary so caches keep callers apart."""
    fmt = output_format()
    if fmt == "html":
        response = Response(render_template("ogc.html", doc=body, kind=template, **page), mimetype="text/html")
    else:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        response = Response(text, content_type=f"{media}; charset=utf-8" if "version" not in media else media)
    if etag_parts:
        response.set_etag(_etag(fmt, request.full_path, *etag_parts))
    response.headers["Vary"] = "Accept, Authorization, Cookie"
    response.headers["Cache-Control"] = "private, no-cache" if current_user() is not None else "public, no-cache"
    return response.make_conditional(request)


def _not_modified(parts) -> Response | None:
    """Answer 304 before any work when the caller already has this version."""
    tag = _etag(output_format(), request.full_path, *parts)
    if request.if_none_match and request.if_none_match.contains(tag):
        response = Response(status=304)
        response.set_etag(tag)
        response.headers["Vary"] = "Accept, Authorization, Cookie"
        return response
    return None


def _who() -> tuple:
    user = current_user()
    return (user.name, user.role, user.areas) if user is not None else ("anonymous",)


def _collection_stamp(base: str, edition) -> tuple:
    if base == features.INCIDENTS:
        tick = int(time.time() // _CLOCK_TICK_S)
        return ("incidents", _store().incidents_fingerprint(), tick, _who())
    signed_in = current_user() is not None  # anonymous callers get areas without their figures
    return (base, edition.name, _store().edition_stamp(edition.name), _state().settings.boundaries_access, signed_in)


def error_response(status: int, message: str) -> Response:
    """Format an error as OGC API exceptions are: {"code", "description"} (or the HTML error page)."""
    codes = {400: "InvalidParameterValue", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "NotAllowed"}
    try:
        html = output_format() == "html"
    except GridmapError:
        html = False
    if html:
        return Response(render_template("error.html", status=status, message=message), status, mimetype="text/html")
    body = {"code": codes.get(status, "ServerError"), "description": message, "status": status}
    response = Response(json.dumps(body, ensure_ascii=False), status, content_type="application/json; charset=utf-8")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gridmap"'
    return response


# ---- routes ----------------------------------------------------------------------------------------------
@blueprint.get("")
@blueprint.get("/")
@public
def landing():
    """The landing page: what this service is and where its parts are."""
    check_params(_COMMON)
    body = {
        "title": _("gridmap: grids and cases"),
        "description": _("Boundaries of streets, communities and grids, and the cases in them (OGC API – Features)"),
        "links": [
            *_self_links(""),
            _link(_url("/api"), "service-desc", OPENAPI_JSON, _("The API definition (OpenAPI 3.0)")),
            _link(_url("/api", f="html"), "service-doc", "text/html", _("The API documentation")),
            _link(_url("/conformance"), "conformance", "application/json", _("Conformance classes")),
            _link(
                _url("/conformance"),
                "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                "application/json",
                _("Conformance classes"),
            ),
            _link(_url("/collections"), "data", "application/json", _("Collections")),
            _link(
                _url("/collections"),
                "http://www.opengis.net/def/rel/ogc/1.0/data",
                "application/json",
                _("Collections"),
            ),
        ],
    }
    return _respond(body, template="landing")


@blueprint.get("/conformance")
@public
def conformance():
    """The conformance classes this service implements."""
    check_params(_COMMON)
    return _respond({"conformsTo": CONFORMANCE, "links": _self_links("/conformance")}, template="conformance")


@blueprint.get("/api")
@public
def api():
    """The OpenAPI 3.0 definition of /ogc."""
    check_params(_COMMON)
    document = openapi_document(_url(""), [cid for cid, _edition in _visible_collections()])
    return _respond(document, media=OPENAPI_JSON, template="api", statuses=cases.STATUSES)


@blueprint.get("/collections")
@public
def collections():
    """The collections the caller may read."""
    check_params(_COMMON)
    if current_user() is None:
        _check_boundaries_readable()  # signed-in only: ask for a token rather than list nothing
    found = [_describe(cid, edition) for cid, edition in _visible_collections()]
    body = {"collections": found, "crs": list(CRS_NAMES), "links": _self_links("/collections")}
    return _respond(body, template="collections")


@blueprint.get("/collections/<collection_id>")
@public
def collection(collection_id: str):
    """One collection's description: extent, CRSs, links to its items and queryables."""
    check_params(_COMMON)
    _base, edition = _collection(collection_id)
    return _respond(_describe(collection_id, edition), template="collection")


def _describe(collection_id: str, edition) -> dict:
    base, _name = features.parse_collection(collection_id)
    path = f"/collections/{quote(collection_id, safe='@')}"
    if base == features.INCIDENTS:
        current = _store().current_edition()
        bounds = _store().area_bounds(current.name, "grid") if current else None
        title, description = _("Cases"), _("Cases you may see, with names and phones masked for your role")
        interval = [None, None]
    else:
        level = features.AREA_COLLECTIONS[base]
        bounds = _cached(
            ("bounds", edition.name, _store().edition_stamp(edition.name), level),
            lambda: _store().area_bounds(edition.name, level),
        )
        title = _title(collection_id, edition)
        description = _(
            "%(level)s of edition %(edition)s (%(status)s)",
            level=_level_names()[level],
            edition=edition.name,
            status=message(edition.status),
        )
        interval = [_day(edition.valid_from), _day(edition.valid_to)]
    return {
        "id": collection_id,
        "title": title,
        "description": description,
        "itemType": "feature",
        "extent": {
            "spatial": {"bbox": [list(bounds) if bounds else [-180.0, -90.0, 180.0, 90.0]], "crs": CRS84},
            "temporal": {"interval": [interval], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"},
        },
        "crs": list(CRS_NAMES),
        "storageCrs": CRS84,
        "links": [
            _link(_url(path), "self", "application/json", title),
            _link(_url(path, f="html"), "alternate", "text/html", title),
            _link(_url(f"{path}/items"), "items", GEOJSON, _("Items")),
            _link(_url(f"{path}/items", f="html"), "items", "text/html", _("Items")),
            _link(
                _url(f"{path}/queryables"),
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                SCHEMA_JSON,
                _("Queryables"),
            ),
            _link(_url(f"{path}/schema"), "describedby", SCHEMA_JSON, _("Schema")),
            _link(_url(f"{path}/schema"), "http://www.opengis.net/def/rel/ogc/1.0/schema", SCHEMA_JSON, _("Schema")),
        ],
    }


def _level_names() -> dict[str, str]:
    return {"grid": _("Grids"), "community": _("Communities"), "street": _("Streets"), "district": _("Districts")}


def _title(collection_id: str, edition) -> str:
    """Name a collection for people: "Grids · main", "Cases"."""
    base, _name = features.parse_collection(collection_id)
    if base == features.INCIDENTS:
        return _("Cases")
    return f"{_level_names()[features.AREA_COLLECTIONS[base]]} · {edition.name}"


def _day(value) -> str | None:
    return f"{value.isoformat()}T00:00:00Z" if value else None


def _cached(key, compute, size: int = _CACHE_SIZE):
    return _cache().get((_store().describe(), *key), compute, size)


def _feature_set(base: str, edition, stamp: tuple, *, box=None, period=None) -> features.FeatureSet:
    if base != features.INCIDENTS:
        level = features.AREA_COLLECTIONS[base]
        figures = current_user() is not None
        return _cached(("areas", stamp), lambda: features.area_features(_store(), edition, level, figures=figures))
    now = clock.now()
    # The store pre-selects cases by their lon/lat box and report time; the exact tests follow in select().
    pushed_box = tuple(shapely.bounds(box)) if box is not None else None
    start, end = period or (None, None)
    key = ("incidents", stamp, pushed_box, start, end)
    return _cached(
        key,
        lambda: features.incident_features(
            _store(),
            user=current_user(),
            calendar=cases.calendar_from_settings(_state().settings),
            now=now,
            bbox=pushed_box,
            reported_from=start,
            reported_to=end + dt.timedelta(microseconds=1) if end else None,
        ),
        size=2,  # 50,000 presented cases take tens of MB; keep the last two (paging through one query)
    )


@blueprint.get("/collections/<collection_id>/items")
@public
def items(collection_id: str):
    """The features of a collection: bbox, datetime, property=value, CQL2 filter, crs, limit/offset."""
    base, edition = _collection(collection_id)
    fs_properties = features.INCIDENT_PROPERTIES if base == features.INCIDENTS else features.AREA_PROPERTIES
    check_params(_ITEM_PARAMS | set(fs_properties))
    stamp = _collection_stamp(base, edition)
    cached = _not_modified(stamp)
    if cached is not None:
        return cached
    limit = int_param("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    offset = int_param("offset", 0, low=0)
    target = crs_param("crs")
    filter_crs = crs_param("filter-crs")
    box, period = bbox_param(), period_param()
    fs = _feature_set(
        base,
        edition,
        stamp,
        box=box if base == features.INCIDENTS else None,
        period=period if base == features.INCIDENTS else None,
    )
    tree = filter_tree(fs)
    chosen = features.select(
        fs, box=box, period=period, tree=tree, tz=zone(), to_lonlat=lambda g: transform(g, filter_crs, CRS84)
    )
    shown = features.page(chosen, offset=offset, limit=limit)
    path = f"/collections/{quote(collection_id, safe='@')}/items"
    links = _self_links(path, GEOJSON)
    args = {k: v for k, v in request.args.items() if k not in ("offset", "f")}
    if offset + limit < len(chosen):
        links.append(_link(_url(path, **args, offset=offset + limit), "next", GEOJSON, _("Next page")))
    if offset > 0:
        links.append(_link(_url(path, **args, offset=max(offset - limit, 0)), "prev", GEOJSON, _("Previous page")))
    links.append(
        _link(
            _url(f"/collections/{quote(collection_id, safe='@')}"),
            "collection",
            "application/json",
            _("The collection"),
        )
    )
    head = {
        "type": "FeatureCollection",
        "numberMatched": len(chosen),
        "numberReturned": len(shown),
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    if output_format() == "html":
        # The page's map draws lon/lat whatever crs asks for; crs applies to the GeoJSON.
        rows = [_feature_dict(fs, i, CRS84) for i in shown]
        return _respond(
            {**head, "features": rows},
            etag_parts=stamp,
            template="items",
            collection_id=collection_id,
            title=_title(collection_id, edition),
            properties=list(fs.properties),
        )
    response = _respond(_feature_collection_json(head, fs, shown, target), etag_parts=stamp, media=GEOJSON)
    response.headers["Content-Crs"] = f"<{target}>"
    return response


@blueprint.get("/collections/<collection_id>/items/<feature_id>")
@public
def item(collection_id: str, feature_id: str):
    """One feature by id (a code for areas, a number for cases)."""
    base, edition = _collection(collection_id)
    check_params(_COMMON | {"crs"})
    stamp = _collection_stamp(base, edition)
    cached = _not_modified(stamp)
    if cached is not None:
        return cached
    target = crs_param("crs")
    if base == features.INCIDENTS:
        if not feature_id.isdigit() or len(feature_id) > 15:
            raise NotFound(f"no case {feature_id!r} in {collection_id}")
        fs = features.incident_feature(
            _store(),
            int(feature_id),
            user=current_user(),
            calendar=cases.calendar_from_settings(_state().settings),
            now=clock.now(),
        )
        index = 0
    else:
        fs = _feature_set(base, edition, stamp)
        try:
            index = fs.ids.index(feature_id)
        except ValueError:
            raise NotFound(f"no feature {feature_id!r} in {collection_id}") from None
    html = output_format() == "html"
    feature = _feature_dict(fs, index, CRS84 if html else target)
    path = f"/collections/{quote(collection_id, safe='@')}"
    feature["links"] = [
        *_self_links(f"{path}/items/{quote(feature_id)}", GEOJSON),
        _link(_url(path), "collection", "application/json", _("The collection")),
    ]
    response = _respond(
        feature,
        etag_parts=stamp,
        media=GEOJSON,
        template="item",
        collection_id=collection_id,
        title=_title(collection_id, edition),
    )
    if not html:
        response.headers["Content-Crs"] = f"<{target}>"
    return response


@blueprint.get("/collections/<collection_id>/queryables")
@public
def queryables(collection_id: str):
    """The properties a filter may name, as a JSON Schema (Part 3)."""
    check_params(_COMMON)
    base, edition = _collection(collection_id)
    body = _schema(collection_id, base, "queryables")
    return _respond(body, media=SCHEMA_JSON, template="queryables", title=_title(collection_id, edition))


@blueprint.get("/collections/<collection_id>/schema")
@public
def schema(collection_id: str):
    """The properties of the features, as a JSON Schema (GDAL reads field types from it)."""
    check_params(_COMMON)
    base, edition = _collection(collection_id)
    body = _schema(collection_id, base, "schema")
    return _respond(body, media=SCHEMA_JSON, template="queryables", title=_title(collection_id, edition))


def _schema(collection_id: str, base: str, what: str) -> dict:
    incidents = base == features.INCIDENTS
    props = features.INCIDENT_PROPERTIES if incidents else features.AREA_PROPERTIES
    geometry_kind = "point" if incidents else "multipolygon"
    properties: dict[str, dict] = {
        "geometry": {"format": f"geometry-{geometry_kind}", "x-ogc-role": "primary-geometry", "title": _("Geometry")}
    }
    for name, (kind, title) in props.items():
        entry = {"type": "string", "format": "date-time"} if kind == "date-time" else {"type": kind}
        if not incidents and name in features.AREA_FIGURES:
            entry["type"] = [kind, "null"]  # null for anonymous callers
        # Titles are for people (in the answer's language); the values a property takes are codes, in an enum.
        properties[name] = {**entry, "title": message(title)}
        if name in features.PROPERTY_VALUES:
            properties[name]["enum"] = list(features.PROPERTY_VALUES[name])
    id_name = "id" if incidents else "code"
    properties[id_name]["x-ogc-role"] = "id"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _url(f"/collections/{quote(collection_id, safe='@')}/{what}"),
        "type": "object",
        "title": collection_id,
        "properties": properties,
        "additionalProperties": False,
    }


# ---- GeoJSON ---------------------------------------------------------------------------------------------
def _geometries(fs: features.FeatureSet, indices, target: str):
    chosen = fs.geometry[list(indices)] if len(indices) else np.empty(0, dtype=object)
    return transform(chosen, CRS84, target) if len(chosen) else chosen


def _properties(fs: features.FeatureSet, index: int) -> dict:
    tz = zone()
    return {name: features.json_value(value, tz) for name, value in fs.rows[index].items()}


def _feature_dict(fs: features.FeatureSet, index: int, target: str) -> dict:
    (geometry,) = _geometries(fs, [index], target)
    return {
        "type": "Feature",
        "id": fs.ids[index],
        "geometry": None if geometry is None else json.loads(shapely.to_geojson(geometry)),
        "properties": _properties(fs, index),
    }


def _feature_collection_json(head: dict, fs: features.FeatureSet, indices, target: str) -> str:
    """Write the FeatureCollection as text: geometries go straight from GEOS to JSON, full precision."""
    geometries = _geometries(fs, indices, target)
    texts = shapely.to_geojson(geometries) if len(geometries) else []
    parts = []
    for index, text in zip(indices, texts, strict=True):
        properties = json.dumps(_properties(fs, index), ensure_ascii=False)
        feature_id = json.dumps(fs.ids[index])
        parts.append(f'{{"type":"Feature","id":{feature_id},"geometry":{text or "null"},"properties":{properties}}}')
    opening = json.dumps(head, ensure_ascii=False)[:-1]
    return f'{opening},"features":[{",".join(parts)}]}}'
