"""CQL2 filters (OGC API – Features Part 3): parsed by cql2 (text or JSON), evaluated here over a whole table.

The cql2 package (cql2-rs, a complete CQL2 parser) turns CQL2 text into CQL2 JSON; this module checks every
property against the collection's queryables and evaluates the JSON on columns at once (numpy arrays,
shapely's vectorised predicates), with SQL's three-valued logic: a comparison with a missing value is
unknown, NOT unknown is unknown, and only rows whose filter is true are selected.

Why not pygeofilter's parser (the usual choice in Python): its 0.4 cql2-text grammar gives AND and OR the
same precedence (`a = 1 OR b = 2 AND c = 3` comes out as `(a OR b) AND c`), refuses `NOT (x AND y)` — which
GDAL sends for NOT BETWEEN — and reads neither `''` inside strings nor BBOX literals the right way round.

Supported: comparisons, LIKE (% and _), BETWEEN, IN, IS NULL, arithmetic (+ - * / %), property-property
comparisons, CASEI and ACCENTI, S_INTERSECTS/S_DISJOINT/S_CONTAINS/S_WITHIN/S_TOUCHES/S_CROSSES/S_OVERLAPS/
S_EQUALS with WKT or BBOX(...) literals, and TIMESTAMP/DATE literals compared with date-time properties.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from gridmap.errors import InvalidInput

KINDS = ("string", "integer", "number", "boolean", "date-time", "geometry")
MAX_FILTER = 4000  # characters: a filter is a query, not a data transfer


@dataclass
class Column:
    """One property over every row: values (fillers where missing), a missing-value mask and a kind."""

    values: np.ndarray
    null: np.ndarray
    kind: str


@dataclass
class Table:
    """The rows a filter runs over: property values per row and one geometry per row (lon/lat, or None)."""

    rows: Sequence[Mapping]
    kinds: Mapping[str, str]
    geometry: np.ndarray
    geometry_name: str = "geometry"
    _columns: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> Column:
        """Return a property's column, built on first use (a filter reads only the properties it names)."""
        if name not in self._columns:
            self._columns[name] = make_column([row.get(name) for row in self.rows], self.kinds[name])
        return self._columns[name]


def make_column(raw: Sequence, kind: str) -> Column:
    """Build a typed column from Python values (None for missing)."""
    null = np.fromiter((v is None for v in raw), dtype=bool, count=len(raw))
    if kind in ("integer", "number"):
        values = np.array([0.0 if v is None else float(v) for v in raw], dtype=float)
        return Column(values, null | np.isnan(values), "number")
    if kind == "boolean":
        return Column(np.array([bool(v) for v in raw], dtype=bool), null, "boolean")
    if kind == "date-time":
        values = np.array([np.datetime64(v, "us") if v is not None else np.datetime64("NaT") for v in raw])
        return Column(values.astype("datetime64[us]"), null, "date-time")
    values = np.empty(len(raw), dtype=object)
    values[:] = ["" if v is None else str(v) for v in raw]
    return Column(values, null, "string")


@dataclass
class _Truth:
    """A predicate's result: `true` holds where `known`; elsewhere the answer is unknown (a null took part)."""

    true: np.ndarray
    known: np.ndarray


def parse(text: str, queryables: Mapping[str, str], *, language: str = "cql2-text"):
    """Parse a CQL2 filter (text, or JSON with language cql2-json), check its property names; return its JSON."""
    import cql2

    text = (text or "").strip()
    if not text:
        raise InvalidInput("filter is empty: give a CQL2 text expression such as households > 400")
    if len(text) > MAX_FILTER:
        raise InvalidInput(f"filter has {len(text)} characters; at most {MAX_FILTER} are allowed")
    try:
        tree = cql2.parse_text(text).to_json() if language == "cql2-text" else cql2.parse_json(text).to_json()
    except Exception as exc:  # cql2 raises its ParseError, ValueError for bad JSON
        where = re.search(r"-->\s*\d+:(\d+)", str(exc))
        if where:
            column = int(where.group(1))
            raise InvalidInput(
                f"filter is not valid CQL2 text at column {column} (near {text[max(column - 11, 0) : column + 9]!r})"
            ) from None
        raise InvalidInput(f"filter is not valid {language}: {str(exc).strip().splitlines()[0][:200]}") from None
    names = sorted({node["property"] for node in _walk(tree) if isinstance(node, dict) and "property" in node})
    unknown = [n for n in names if n not in queryables]
    if unknown:
        raise InvalidInput(
            f"filter names {', '.join(unknown)}, which cannot be filtered on; the queryables are "
            f"{', '.join(sorted(queryables))}"
        )
    return tree


def equals(name: str, value) -> dict:
    """Return the CQL2 JSON of `name = value` (for the property=value query parameters)."""
    if isinstance(value, dt.datetime):
        value = {"timestamp": value.isoformat()}
    return {"op": "=", "args": [{"property": name}, value]}


def both(first: dict | None, second: dict) -> dict:
    """Return the CQL2 JSON of `first AND second` (just `second` when there is no first)."""
    return second if first is None else {"op": "and", "args": [first, second]}


def _walk(node):
    yield node
    if isinstance(node, dict):
        for child in node.get("args", ()):
            yield from _walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from _walk(child)


def evaluate(tree, table: Table, *, tz: dt.tzinfo, to_lonlat: Callable | None = None) -> np.ndarray:
    """Return a boolean mask of the rows the filter selects (unknown counts as not selected)."""
    result = _Evaluator(table, tz, to_lonlat or (lambda g: g)).predicate(tree)
    return result.true & result.known


_COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
_SPATIAL = {
    "s_intersects": shapely.intersects,
    "s_disjoint": shapely.disjoint,
    "s_contains": shapely.contains,
    "s_within": shapely.within,
    "s_touches": shapely.touches,
    "s_crosses": shapely.crosses,
    "s_overlaps": shapely.overlaps,
    "s_equals": shapely.equals,
}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.mod, "div": np.floor_divide}
_GEOJSON_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)


class _Evaluator:
    def __init__(self, table: Table, tz: dt.tzinfo, to_lonlat: Callable) -> None:
        self.table, self.tz, self.to_lonlat = table, tz, to_lonlat
        self.n = len(table)

    def _truth(self, true, known) -> _Truth:
        shape = (self.n,)
        return _Truth(
            np.broadcast_to(np.asarray(true, dtype=bool), shape).copy(),
            np.broadcast_to(np.asarray(known, dtype=bool), shape).copy(),
        )

    # ---- predicates ------------------------------------------------------------------------------------
    def predicate(self, node) -> _Truth:
        if isinstance(node, bool):
            return self._truth(node, True)
        if isinstance(node, dict) and "property" in node:
            column = self.value(node)
            if column.kind != "boolean":
                raise InvalidInput(f"filter: {node['property']} is not true/false, so it is not a condition")
            return self._truth(column.values, ~column.null)
        op, args = self._op(node)
        if op in ("and", "or"):
            parts = [self.predicate(a) for a in args]
            result = parts[0]
            for part in parts[1:]:
                if op == "and":
                    false_a, false_b = result.known & ~result.true, part.known & ~part.true
                    result = _Truth(result.true & part.true, (result.known & part.known) | false_a | false_b)
                else:
                    true_a, true_b = result.known & result.true, part.known & part.true
                    result = _Truth(true_a | true_b, (result.known & part.known) | true_a | true_b)
            return result
        if op == "not":
            inner = self.predicate(args[0])
            return _Truth(~inner.true, inner.known)
        if op in _COMPARISONS:
            return self.compare(op, self.value(args[0]), self.value(args[1]))
        if op == "between":
            value = self.value(args[0])
            low, high = self.compare(">=", value, self.value(args[1])), self.compare("<=", value, self.value(args[2]))
            return _Truth(low.true & high.true, low.known & high.known)
        if op == "like":
            return self.like(self.value(args[0]), self.value(args[1]))
        if op == "in":
            value = self.value(args[0])
            options = args[1] if isinstance(args[1], list) else [args[1]]
            found = self._truth(False, ~value.null)
            for option in options:
                hit = self.compare("=", value, self.value(option))
                found = _Truth(found.true | (hit.true & hit.known), found.known)
            return found
        if op == "isnull":
            return self._truth(self.value(args[0]).null, True)
        if op in _SPATIAL:
            lhs, rhs = self.geometry(args[0]), self.geometry(args[1])
            known = ~(shapely.is_missing(lhs) | shapely.is_missing(rhs))
            return self._truth(_SPATIAL[op](lhs, rhs), known)
        if op.startswith("t_"):
            raise InvalidInput("temporal functions (T_AFTER, …) are not supported: compare with <, > or BETWEEN")
        if op.startswith("a_"):
            raise InvalidInput("array functions (A_CONTAINS, …) are not supported: no property is an array")
        raise InvalidInput(f"filter: {op} is not a condition (true or false)")

    @staticmethod
    def _op(node) -> tuple[str, list]:
        if not isinstance(node, dict) or "op" not in node:
            raise InvalidInput(f"filter: {_describe(node)} is not a condition (true or false)")
        return str(node["op"]).lower(), list(node.get("args") or [])

    def compare(self, op: str, lhs: Column, rhs: Column) -> _Truth:
        if lhs.kind != rhs.kind and "null" not in (lhs.kind, rhs.kind):
            raise InvalidInput(f"filter compares a {lhs.kind} with a {rhs.kind}; compare like with like")
        if "geometry" in (lhs.kind, rhs.kind):
            raise InvalidInput("filter: compare geometries with S_EQUALS or S_INTERSECTS, not with = or <")
        if lhs.kind == "boolean" and op not in ("=", "<>"):
            raise InvalidInput(f"filter: true/false values cannot be compared with {op}")
        known = ~(lhs.null | rhs.null)
        if "null" in (lhs.kind, rhs.kind):
            return self._truth(False, False)  # a comparison with NULL is unknown, as in SQL
        a, b = lhs.values, rhs.values
        with np.errstate(invalid="ignore"):
            result = {
                "=": lambda: a == b,
                "<>": lambda: a != b,
                "<": lambda: a < b,
                "<=": lambda: a <= b,
                ">": lambda: a > b,
                ">=": lambda: a >= b,
            }[op]()
        return self._truth(result, known)

    def like(self, value: Column, pattern: Column) -> _Truth:
        if value.kind != "string":
            raise InvalidInput(f"filter: LIKE needs text, not a {value.kind}")
        if pattern.kind != "string" or pattern.values.shape[0] != 1:
            raise InvalidInput("filter: the pattern of LIKE must be a text literal such as '%街道%'")
        regex = like_regex(str(pattern.values[0]))
        matched = np.fromiter((regex.fullmatch(v) is not None for v in value.values), dtype=bool, count=self.n)
        return self._truth(matched, ~value.null)

    # ---- values -------------------------------------------------------------------------------------------
    def value(self, node) -> Column:
        one = np.zeros(1, dtype=bool)
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            if self.table.kinds[name] == "geometry":
                return Column(self.table.geometry, shapely.is_missing(self.table.geometry), "geometry")
            return self.table.column(name)
        if node is None:
            return Column(np.zeros(1), np.ones(1, dtype=bool), "null")
        if isinstance(node, bool):
            return Column(np.array([node]), one, "boolean")
        if isinstance(node, int | float):
            return Column(np.array([float(node)]), one, "number")
        if isinstance(node, str):
            return Column(np.array([node], dtype=object), one, "string")
        if isinstance(node, dict) and ("timestamp" in node or "date" in node):
            return Column(np.array([self._moment(node)]), one, "date-time")
        if isinstance(node, dict) and (node.get("type") in _GEOJSON_TYPES or "bbox" in node):
            raise InvalidInput("filter: compare geometries with S_INTERSECTS and the other spatial functions")
        if isinstance(node, dict) and "op" in node:
            op, args = self._op(node)
            if op in _ARITHMETIC:
                return self.arithmetic(op, self.value(args[0]), self.value(args[1]))
            if op in ("casei", "accenti") and len(args) == 1:
                return self.fold(op, self.value(args[0]))
            raise InvalidInput(f"filter: unknown function {op}(…); the functions are CASEI and ACCENTI")
        raise InvalidInput(f"filter: {_describe(node)} is not supported here")

    def _moment(self, node: dict) -> np.datetime64:
        raw = node.get("timestamp") or node.get("date")
        try:
            if "date" in node:
                # A date stands for the start of that day where the cases are (local time).
                return np.datetime64(dt.datetime.combine(dt.date.fromisoformat(raw), dt.time()), "us")
            moment = dt.datetime.fromisoformat(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"filter: {raw!r} is not a date or timestamp") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(self.tz).replace(tzinfo=None)
        return np.datetime64(moment, "us")

    def arithmetic(self, op: str, lhs: Column, rhs: Column) -> Column:
        if lhs.kind != "number" or rhs.kind != "number":
            raise InvalidInput(f"filter: arithmetic ({op}) needs numbers, not {lhs.kind} and {rhs.kind}")
        with np.errstate(divide="ignore", invalid="ignore"):
            result = _ARITHMETIC[op](lhs.values, rhs.values)
        null = np.broadcast_to(lhs.null | rhs.null, result.shape) | ~np.isfinite(result)
        return Column(result, null, "number")

    def fold(self, op: str, inner: Column) -> Column:
        if inner.kind != "string":
            raise InvalidInput(f"filter: {op.upper()} needs text, not a {inner.kind}")
        fold = _casefold if op == "casei" else _strip_accents
        values = np.empty(inner.values.shape[0], dtype=object)
        values[:] = [fold(v) for v in inner.values]
        return Column(values, inner.null, "string")

    def geometry(self, node):
        if isinstance(node, dict) and "property" in node:
            if self.table.kinds[node["property"]] != "geometry":
                raise InvalidInput(f"filter: {node['property']} is not a geometry; spatial functions need one")
            return self.table.geometry
        if isinstance(node, dict) and "bbox" in node:
            numbers = node["bbox"]
            if len(numbers) not in (4, 6):
                raise InvalidInput("filter: BBOX needs 4 numbers: west, south, east, north")
            # Six numbers are a 3-D box (west, south, low, east, north, high): the heights do not matter here.
            west, south, east, north = [numbers[i] for i in ((0, 1, 3, 4) if len(numbers) == 6 else (0, 1, 2, 3))]
            return self.to_lonlat(shapely.box(west, south, east, north))
        if isinstance(node, dict) and node.get("type") in _GEOJSON_TYPES:
            try:
                shape = shapely.geometry.shape(node)
            except Exception:
                raise InvalidInput("filter: a geometry literal is not valid") from None
            return self.to_lonlat(shapely.force_2d(shape))
        raise InvalidInput(f"filter: {_describe(node)} is not a geometry")


def like_regex(pattern: str) -> re.Pattern:
    """Translate a CQL2 LIKE pattern (% any run, _ one character, backslash escapes) into a regex."""
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def _casefold(text: str) -> str:
    return text.casefold()


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _describe(node) -> str:
    text = str(node)
    return text if len(text) <= 60 else text[:57] + "…"
