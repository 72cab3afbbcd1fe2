"""Reading the query parameters of /ogc: format, limits, CRSs (Part 2), bbox, datetime, property filters.

Also the time zone stored times are in (setting `timezone`), shared with Open311.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from flask import current_app, request

from gridmap import cql, features
from gridmap.errors import ConfigError, InvalidInput
from gridmap.web.ogc_api import CRS84, CRS_NAMES

GEOJSON = "application/geo+json"


@functools.cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:
        raise ConfigError(f"GRIDMAP_TIMEZONE={name!r} is not a time zone such as Asia/Shanghai") from None


def zone() -> ZoneInfo:
    """Return the time zone stored times are in (setting `timezone`)."""
    return _zone(current_app.extensions["gridmap"].settings.timezone)


def output_format() -> str:
    wanted = (request.args.get("f") or "").lower()
    if wanted in ("json", "geojson", "application/json", GEOJSON):
        return "json"
    if wanted in ("html", "text/html"):
        return "html"
    if wanted:
        raise InvalidInput(f"f={wanted!r}: the formats are json and html")
    accept = request.accept_mimetypes
    # Browsers rank text/html above everything else; clients that take anything (*/*) get JSON.
    return "html" if accept["text/html"] > max(accept["application/json"], accept[GEOJSON]) else "json"


def check_params(allowed: set[str]) -> None:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s) {', '.join(unknown)}; this resource takes {', '.join(sorted(allowed))}"
        )


def int_param(name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a whole number") from None
    if value < low:
        raise InvalidInput(f"{name} must be at least {low}")
    return min(value, high) if high is not None else value


def crs_param(name: str) -> str:
    """Return the CRS URI a parameter names (CRS84 when absent); EPSG:4326 style names are accepted too."""
    raw = (request.args.get(name) or "").strip().strip("[]")
    if not raw:
        return CRS84
    for uri, short in CRS_NAMES.items():
        if raw in (uri, short, short.replace(":", "::"), uri.replace("http://", "https://")):
            return uri
    raise InvalidInput(f"{name}={raw!r} is not offered; the CRSs are {', '.join(CRS_NAMES)}")


@functools.cache
def _transformer(source: str, target: str):
    from pyproj import Transformer

    return Transformer.from_crs(CRS_NAMES[source], CRS_NAMES[target])  # authority axis order, as Part 2 asks


def transform(geometries, source: str, target: str):
    """Transform shapely geometries between two offered CRSs, in each CRS's own axis order."""
    if source == target:
        return geometries
    transformer = _transformer(source, target)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, move)


def bbox_param() -> shapely.Geometry | None:
    raw = (request.args.get("bbox") or "").strip()
    if not raw:
        return None
    try:
        numbers = [float(v) for v in raw.split(",")]
    except ValueError:
        raise InvalidInput("bbox must be 4 numbers (or 6 with heights) separated by commas") from None
    if len(numbers) not in (4, 6) or not all(np.isfinite(numbers)):
        raise InvalidInput("bbox must be 4 numbers (or 6 with heights) separated by commas")
    x1, y1, x2, y2 = numbers if len(numbers) == 4 else (numbers[0], numbers[1], numbers[3], numbers[4])
    source = crs_param("bbox-crs")
    if y1 > y2:
        raise InvalidInput("bbox: the second number must not be above the fourth (south ≤ north)")
    if source == CRS84 and x1 > x2:
        # A box across the antimeridian, as Part 1 allows: west of 180° and east of -180°.
        return shapely.union(shapely.box(x1, y1, 180, y2), shapely.box(-180, y1, x2, y2))
    if x1 > x2:
        raise InvalidInput("bbox: the first number must not be above the third")
    return transform(shapely.box(x1, y1, x2, y2), source, CRS84)


def parse_moment(text: str, *, end: bool) -> dt.datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            # A date stands for the whole (local) day.
            return dt.datetime.combine(day, dt.time.max if end else dt.time())
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"datetime: {text!r} is not an RFC 3339 date or date-time (2024-05-01 or 2024-05-01T08:00:00Z)"
        ) from None
    return moment.astimezone(zone()).replace(tzinfo=None) if moment.tzinfo else moment


def period_param() -> tuple[dt.datetime | None, dt.datetime | None] | None:
    raw = (request.args.get("datetime") or "").strip()
    if not raw:
        return None
    if "/" in raw:
        first, _slash, last = raw.partition("/")
        start, end = parse_moment(first, end=False), parse_moment(last, end=True)
        if start is None and end is None:
            raise InvalidInput("datetime: an interval needs at least one end (../2024-05-01 or 2024-05-01/..)")
        if start is not None and end is not None and start > end:
            raise InvalidInput("datetime: the interval ends before it starts")
        return start, end
    if len(raw) == 10:
        return parse_moment(raw, end=False), parse_moment(raw, end=True)
    moment = parse_moment(raw, end=False)
    return moment, moment


def filter_tree(fs: features.FeatureSet):
    """Combine the CQL2 filter and the property=value parameters into one CQL2 JSON tree (or None)."""
    kinds = fs.kinds()
    tree = None
    text = request.args.get("filter")
    if text is not None:
        language = (request.args.get("filter-lang") or "cql2-text").lower()
        if language not in ("cql2-text", "cql-text", "cql2-json"):
            raise InvalidInput(f"filter-lang={language!r}: the filter languages are cql2-text and cql2-json")
        tree = cql.parse(text, kinds, language="cql2-json" if language == "cql2-json" else "cql2-text")
    for name in sorted(set(request.args) & set(fs.properties)):
        tree = cql.both(tree, cql.equals(name, typed(name, request.args[name], kinds[name])))
    return tree


def typed(name: str, raw: str, kind: str):
    try:
        if kind in ("integer", "number"):
            return int(raw) if kind == "integer" else float(raw)
        if kind == "boolean":
            return {"true": True, "false": False}[raw.lower()]
        if kind == "date-time":
            return dt.datetime.fromisoformat(raw)
    except (ValueError, KeyError):
        raise InvalidInput(f"{name}={raw!r} is not a {kind.replace('-', ' ')}") from None
    return raw
