"""Reading request input defensively: ids in URLs, numbers and flags in query strings, JSON bodies.

Everything a caller sends is range-checked here before it reaches the database or the JSON parser, so
hostile input is a 400/404/413 naming the limit, never a 500: an id past the database's integer column, a
number with 5,000 digits, a JSON body nested 100,000 deep or larger than the limit.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
from flask import Flask, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter, ValidationError

from gridmap import clock
from gridmap.errors import InvalidInput

MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32 bits on PostgreSQL
MAX_JSON_BYTES = 5_000_000  # a detailed grid polygon from the editor is well under 1 MB
MAX_JSON_DEPTH = 32  # GeoJSON needs about 8 levels (object, geometry, four levels of coordinate arrays)
_TRUE, _FALSE = ("true", "1"), ("false", "0")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
MOMENT_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}, {"const": ""}],
    "description": "A day (YYYY-MM-DD, Shanghai calendar) or an RFC 3339 date-time with offset",
}
FLAG_SCHEMA = {"type": "string", "enum": ["true", "false", "1", "0", ""]}
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class IdConverter(IntegerConverter):
    """The `int` converter of every route, bounded to the ids the database can hold (1 … 2^31 − 1)."""

    def to_python(self, value: str):
        # Thousands of digits make int() raise ValueError; anything past MAX_ID cannot exist.
        if len(value) > len(str(MAX_ID)) or int(value) > MAX_ID:
            raise NotFound(f"no such id {value[:20]}{'…' if len(value) > 20 else ''}: ids run from 1 to {MAX_ID}")
        try:
            return super().to_python(value)
        except ValueError:
            raise ValidationError() from None


def init_inputs(app: Flask) -> None:
    """Bound the ids of every route and check the query string and every JSON body before a view reads them."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(check_query)
    app.before_request(check_json_body)


def check_query() -> None:
    """Refuse NUL characters in the path and query string: no value has them and PostgreSQL cannot store them."""
    if "\x00" in request.path:
        raise InvalidInput("the path holds a NUL character")
    for name, values in request.args.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            raise InvalidInput(f"the query parameter {name[:30]!r} holds a NUL character")
        if len(values) > 1:  # every parameter takes one value (lists are comma-separated, status=a,b)
            raise InvalidInput(f"the query parameter {name[:30]!r} is given {len(values)} times; give it once")


def check_json_body() -> None:
    """Refuse a JSON body that is too large (413) or nested too deep (400), naming the limit."""
    if not request.is_json or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise _too_large()
    request.max_content_length = MAX_JSON_BYTES  # also bounds a chunked body with no Content-Length
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise _too_large() from None
    if b"\x00" in data or b"\\u0000" in data:
        raise InvalidInput("the JSON body holds a NUL character (\\u0000); no field accepts one")
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"the JSON body is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted")


def _too_large() -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"the JSON body is larger than {MAX_JSON_BYTES:,} bytes, the limit")


def json_depth(data: bytes) -> int:
    """Return how deep arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    if b"[" not in data and b"{" not in data:
        return 0
    bare = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    steps = (bare == ord("[")).astype(np.int64) + (bare == ord("{")) - (bare == ord("]")) - (bare == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


def json_object(allowed: tuple[str, ...] | None = None) -> dict:
    """Return the request's JSON object, refusing anything else and (when given) unknown fields."""
    try:
        body = json.loads(request.get_data(cache=True)) if request.is_json else None
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON: send a JSON object (Content-Type: application/json)") from None
    if not isinstance(body, dict):
        raise InvalidInput("send a JSON object (Content-Type: application/json)")
    if allowed is not None:
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            names = ", ".join(str(u)[:40] for u in unknown[:10])
            raise InvalidInput(f"unknown field(s) {names}; the fields are {', '.join(allowed)}")
    return body


def int_arg(name: str, default: int | None, *, low: int, high: int) -> int | None:
    """Read a whole number from the query string, between low and high."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[+-]?\d{1,19}", raw):
        raise InvalidInput(f"{name}={raw[:30]!r} is not a whole number between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, not {value}")
    return value


def flag_arg(name: str) -> bool:
    """Read a true/false flag from the query string (true, false, 1 or 0; absent or empty is false)."""
    raw = request.args.get(name) or ""
    if not raw or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise InvalidInput(f"{name} must be true or false, not {raw[:30]!r}")


def moment_arg(name: str, *, end: bool = False) -> dt.datetime | None:
    """Read a day or an RFC 3339 date-time from the query string as naive Shanghai time (gridmap.clock).

    A day given as the end of a period (`end`) means the end of that day."""
    raw = request.args.get(name) or ""
    if not raw:
        return None
    try:
        if _DATE.fullmatch(raw):
            day = dt.date.fromisoformat(raw)
            return dt.datetime.combine(day, dt.time()) + dt.timedelta(days=1 if end else 0)
        match = _DATE_TIME.fullmatch(raw)
        if match is None:
            raise ValueError(raw)
        year, month, day, hour, minute, second, fraction, utc, sign, off_h, off_m = match.groups()
        offset = dt.timedelta(0) if utc else dt.timedelta(hours=int(off_h), minutes=int(off_m))
        moment = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),  # 60: a leap second
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=dt.timezone(-offset if sign == "-" else offset),
        )
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{name}={raw[:40]!r} is not a day (YYYY-MM-DD) or a date and time with offset (2026-03-01T09:30:00+08:00)"
        ) from None
    try:
        return clock.local(moment)
    except OverflowError:  # a moment in year 1 or 9999 moved past the calendar's edge by the offset
        return dt.datetime.min if moment.year < 5000 else dt.datetime.max
