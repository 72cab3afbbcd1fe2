"""CQL2 filters evaluated on columns: known answers on a tiny table, and SQL's three-valued logic for all inputs."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap import cql
from gridmap.errors import InvalidInput

TZ = ZoneInfo("Asia/Shanghai")
KINDS = {"code": "string", "households": "integer", "name": "string", "when": "date-time", "flag": "boolean"}
KINDS_G = {**KINDS, "geometry": "geometry"}
ROWS = [
    {"code": "a1", "households": 400, "name": "Ab", "when": dt.datetime(2024, 1, 2, 9), "flag": True},
    {"code": "b2", "households": None, "name": "é", "when": None, "flag": False},
    {"code": "c3", "households": 500, "name": "x_y", "when": dt.datetime(2023, 1, 1), "flag": None},
]
GEOMETRY = np.array([shapely.box(0, 0, 1, 1), None, shapely.box(2, 2, 3, 3)], dtype=object)


def _run(text: str, language: str = "cql2-text") -> list[str]:
    table = cql.Table(ROWS, KINDS_G, GEOMETRY)
    mask = cql.evaluate(cql.parse(text, KINDS_G, language=language), table, tz=TZ)
    return [row["code"] for row, keep in zip(ROWS, mask, strict=True) if keep]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("households > 400", ["c3"]),
        ("NOT (households > 400)", ["a1"]),  # the unknown row stays out
        ("households >= 400 OR code = 'b2'", ["a1", "b2", "c3"]),
        ("code = 'a1' OR code = 'b2' AND households > 1000", ["a1"]),  # AND binds first
        ("NOT ((households >= 300) AND (households <= 450))", ["c3"]),  # what GDAL sends for NOT BETWEEN
        ("households NOT BETWEEN 1 AND 450", ["c3"]),
        ("households IS NULL", ["b2"]),
        ("households IS NOT NULL", ["a1", "c3"]),
        ("households = NULL", []),
        ("CASEI(name) = casei('aB')", ["a1"]),
        ("ACCENTI(name) = 'e'", ["b2"]),
        ("name LIKE 'x\\_%'", ["c3"]),
        ("name LIKE '_'", ["b2"]),
        ("name NOT LIKE 'A%'", ["b2", "c3"]),
        ("code IN ('a1', 'c3')", ["a1", "c3"]),
        ("code NOT IN ('a1')", ["b2", "c3"]),
        ("code = 'it''s'", []),
        ("households + 100 > 550", ["c3"]),
        ("households % 200 = 0", ["a1"]),
        ("households / 0 > 1", []),
        ("flag", ["a1"]),
        ("flag = FALSE", ["b2"]),
        ("when > TIMESTAMP('2024-01-02T00:00:00Z')", ["a1"]),  # 09:00 in Beijing is 01:00 UTC
        ("when > TIMESTAMP('2024-01-02T02:00:00Z')", []),
        ("when < DATE('2023-06-01')", ["c3"]),
        ("S_INTERSECTS(geometry, POINT(0.5 0.5))", ["a1"]),
        ("S_INTERSECTS(geometry, BBOX(1.5, 1.5, 2.5, 2.5))", ["c3"]),
        ("S_WITHIN(geometry, POLYGON((-1 -1, 4 -1, 4 4, -1 4, -1 -1)))", ["a1", "c3"]),
        ("S_DISJOINT(geometry, POINT(0.5 0.5))", ["c3"]),
        ("S_TOUCHES(geometry, POINT(1 1))", ["a1"]),
    ],
)
def test_known_answers(text, expected):
    assert _run(text) == expected


def test_cql2_json_is_read_too():
    assert _run('{"op": "<", "args": [{"property": "households"}, 450]}', "cql2-json") == ["a1"]


@pytest.mark.parametrize(
    "text,words",
    [
        ("", "filter is empty"),
        ("households >", "at column"),
        ("colour = 'red'", "queryables are"),
        ("households = 'many'", "compare like with like"),
        ("foo(name) = 1", "unknown function"),
        ("T_AFTER(when, TIMESTAMP('2024-01-01T00:00:00Z'))", "temporal functions"),
        ("name > 3 + 'x'", "needs numbers"),
        ("S_INTERSECTS(name, POINT(1 1))", "not a geometry"),
        ("geometry = 1", "compare like with like"),
        ("name LIKE name", "text literal"),
        ("code", "not true/false"),
        ("x" * 5000, "at most 4000"),
    ],
)
def test_bad_filters_say_what_is_wrong(text, words):
    with pytest.raises(InvalidInput) as caught:
        _run(text)
    assert words in caught.value.message


def test_a_geometry_literal_goes_through_the_filter_crs():
    table = cql.Table(ROWS, KINDS_G, GEOMETRY)
    shift = lambda g: shapely.transform(g, lambda xy: xy + 2)  # noqa: E731 (a stand-in for a CRS change)
    tree = cql.parse("S_INTERSECTS(geometry, POINT(0.5 0.5))", KINDS_G)
    assert cql.evaluate(tree, table, tz=TZ).tolist() == [True, False, False]
    assert cql.evaluate(tree, table, tz=TZ, to_lonlat=shift).tolist() == [False, False, True]


# ---- three-valued logic, for all inputs ---------------------------------------------------------------------
_value = st.one_of(st.none(), st.integers(-3, 3))
_leaf = st.tuples(st.sampled_from(["<", "=", ">"]), st.integers(-3, 3))


def _tree(depth: int):
    if depth == 0:
        return _leaf
    sub = _tree(depth - 1)
    return st.one_of(_leaf, st.tuples(st.just("not"), sub), st.tuples(st.sampled_from(["and", "or"]), sub, sub))


def _text(node) -> str:
    if node[0] in ("and", "or"):
        return f"({_text(node[1])} {node[0].upper()} {_text(node[2])})"
    if node[0] == "not":
        return f"NOT ({_text(node[1])})"
    return f"households {node[0]} {node[1]}"


def _reference(node, value):
    """SQL's answer for one row: True, False or None (unknown)."""
    if node[0] == "not":
        inner = _reference(node[1], value)
        return None if inner is None else not inner
    if node[0] in ("and", "or"):
        a, b = _reference(node[1], value), _reference(node[2], value)
        if node[0] == "and":
            return False if False in (a, b) else (None if None in (a, b) else True)
        return True if True in (a, b) else (None if None in (a, b) else False)
    if value is None:
        return None
    return {"<": value < node[1], "=": value == node[1], ">": value > node[1]}[node[0]]


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_value, min_size=1, max_size=8), node=_tree(3))
def test_filters_agree_with_sql_three_valued_logic(values, node):
    rows = [{"households": v} for v in values]
    table = cql.Table(rows, {"households": "integer"}, np.full(len(rows), None, dtype=object))
    mask = cql.evaluate(cql.parse(_text(node), {"households": "integer"}), table, tz=TZ)
    assert mask.tolist() == [_reference(node, v) is True for v in values]
