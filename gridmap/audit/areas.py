"""The areas of one edition as parallel arrays: codes, names, levels, repaired geometry, metric measures."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable

import numpy as np
import shapely

from gridmap.audit.measure import Metric, repair
from gridmap.audit.options import LEVEL_ORDER


def int_or_none(value) -> int | None:
    """Return a whole number, or None for missing values (None, NaN)."""
    if value is None:
        return None
    try:
        if math.isnan(value):
            return None
    except TypeError:
        return None
    return int(value)


def text_or_none(value) -> str | None:
    """Return stripped text, or None for missing or blank values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def as_datetime(value) -> dt.datetime | None:
    """Return a datetime from a datetime, date or ISO text; None when there is none."""
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def per_level(values: Iterable[str]) -> dict[str, int]:
    """Count values per level, every level present."""
    counts = Counter(values)
    return {level: counts.get(level, 0) for level in LEVEL_ORDER}


class Areas:
    """The areas of one edition as parallel arrays, with repaired geometry and metric measures."""

    def __init__(self, frame, metric: Metric | None = None, *, tolerance: float = 1.0) -> None:
        self.frame = frame
        self.tolerance = tolerance
        n = len(frame)
        column = frame.get
        self.codes = [str(c) for c in frame["code"]] if n else []
        self.names = [text_or_none(v) or "" for v in column("name", [""] * n)]
        self.levels = [str(v) for v in frame["level"]] if n else []
        self.parents = [text_or_none(v) for v in column("parent_code", [None] * n)]
        self.kinds = [text_or_none(v) for v in column("kind", [None] * n)]
        self.households = [int_or_none(v) for v in column("households", [None] * n)]
        self.population = [int_or_none(v) for v in column("population", [None] * n)]
        self.staff = [int_or_none(v) for v in column("staff", [None] * n)]
        self.geoms = np.array(list(frame.geometry), dtype=object) if n else np.array([], dtype=object)
        missing = np.array([g is None for g in self.geoms], dtype=bool)
        self.geoms[missing] = shapely.MultiPolygon()
        self.empty = shapely.is_empty(self.geoms) if n else np.array([], dtype=bool)
        self.valid = shapely.is_valid(self.geoms) if n else np.array([], dtype=bool)
        self.work = self.geoms.copy()
        for i in np.flatnonzero(~self.valid & ~self.empty):
            self.work[i] = repair(self.geoms[i])
        self.usable = ~shapely.is_empty(self.work) if n else np.array([], dtype=bool)
        self.metric = metric or Metric(self.work)
        self.area_m2, self.perimeter_m = self.metric.measure(self.work) if n else (np.array([]), np.array([]))
        with np.errstate(divide="ignore", invalid="ignore"):
            self.compactness = np.where(
                self.perimeter_m > 0, 4 * math.pi * self.area_m2 / np.square(self.perimeter_m), 0.0
            )
        self.by_level: dict[str, np.ndarray] = {
            level: np.array([i for i, lv in enumerate(self.levels) if lv == level], dtype=np.int64)
            for level in LEVEL_ORDER
        }
        # The first area with each code answers lookups; duplicates are reported by the code check.
        self.position: dict[str, int] = {}
        for i, code in enumerate(self.codes):
            self.position.setdefault(code, i)
        self._trees: dict[str, shapely.STRtree] = {}

    def tree(self, level: str) -> shapely.STRtree:
        """Return an STRtree over the usable geometry of one level (positions index `by_level[level]`)."""
        if level not in self._trees:
            self._trees[level] = shapely.STRtree(self.work[self.by_level[level]])
        return self._trees[level]

    def parent_of(self, i: int, level: str) -> int | None:
        """Return the position of the area's parent when it exists at `level`."""
        parent = self.parents[i]
        j = self.position.get(parent) if parent else None
        return j if j is not None and self.levels[j] == level else None

    def name_of(self, i: int) -> str:
        """Return the area's name, or its code when it has none."""
        return self.names[i] or self.codes[i]

    def label(self, i: int) -> str:
        """Return the code with the name beside it ("120104001001001 百合第1网格"), as every message shows it."""
        name = self.names[i]
        return f"{self.codes[i]} {name}" if name and name != self.codes[i] else self.codes[i]

    def name_for(self, code: str | None) -> str | None:
        """Return the name of the first area with this code, or None when the edition has no such area."""
        i = self.position.get(code) if code else None
        return (self.names[i] or None) if i is not None else None


def child_level(level: str) -> str | None:
    """Return the level below `level` (None below grids)."""
    position = LEVEL_ORDER.index(level)
    return LEVEL_ORDER[position + 1] if position + 1 < len(LEVEL_ORDER) else None
