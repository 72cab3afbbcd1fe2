"""Coverage audit, workload balance and plan-vs-plan comparison.

Every geometric question is asked of the stored lon/lat (EPSG:4326) geometry, where neighbouring grids share
their vertices exactly; only the pieces found (gaps, overlaps, parts outside a parent) and the grids themselves
are then projected into one local transverse Mercator around the data to be measured in metres. Projecting first
would bend straight edges differently on each side of a shared boundary and invent slivers.

The checks are plain shapely so they run on any backend (Debian 12's PostGIS 3.3 has no `ST_Coverage*`):
- gaps: a community minus the union of its grids, a street minus the union of its communities;
- overlaps: pairs of areas of one level whose interiors meet (an STRtree finds the candidates);
- outside_parent: the part of an area outside its parent, and which other parents it lies in;
- invalid: invalid or empty geometries (the rest of the audit works on a repaired copy);
- slivers: grids with a low Polsby–Popper score (4πA/P²) or a tiny area;
- codes: duplicates, wrong lengths, codes that do not start with their parent's code, missing parents.
Pieces below the area tolerance are counted in the summary, not listed: floating-point noise along shared edges
must not drown the real findings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields

import numpy as np
import shapely
from pyproj import Transformer

from gridmap import assign
from gridmap import crs as crs_module
from gridmap.errors import InvalidInput, NotFound

FINDING_KINDS = ("gaps", "overlaps", "outside_parent", "invalid", "slivers", "codes")
# What `--fail-on` accepts: the finding lists, grids outside the households range, and incident problems.
FAIL_KINDS = (*FINDING_KINDS, "balance", "unassigned", "ambiguous")
CLOSED_STATUSES = ("closed", "rejected")  # as Store.incident_points(only_open=True) counts them
DEDICATED_KIND = "专属"  # a dedicated grid (a park, a school): the households guideline does not apply
LEVEL_ORDER = ("district", "street", "community", "grid")
# GB/T 2260 + GB/T 30428.1 lengths; a grid may also carry a 20-digit CJ/T 349 community-service grid code.
CODE_LENGTHS = {"district": (6,), "street": (9,), "community": (12,), "grid": (15, 20)}
_POLYGON = 3  # shapely geometry type id
_CHUNK = 4096  # pairs or groups per worker task


@dataclass(frozen=True)
class AuditOptions:
    """The thresholds of one audit; every one has a default from the guideline or from common sense."""

    area_tolerance_m2: float = 1.0
    sliver_compactness: float = 0.1
    sliver_area_m2: float = 100.0
    households_min: int = 300
    households_max: int = 500
    recent_days: int = 90
    as_of: dt.datetime | None = None

    def __post_init__(self) -> None:
        if not self.area_tolerance_m2 >= 0:
            raise InvalidInput("the area tolerance must be a number of square metres ≥ 0")
        if not 0 <= self.sliver_compactness <= 1:
            raise InvalidInput("the sliver compactness threshold must lie between 0 and 1")
        if not self.sliver_area_m2 >= 0:
            raise InvalidInput("the sliver area must be a number of square metres ≥ 0")
        if not 0 <= self.households_min <= self.households_max:
            raise InvalidInput(
                f"the households range must satisfy 0 ≤ min ≤ max, not {self.households_min}–{self.households_max}"
            )
        if self.recent_days < 1:
            raise InvalidInput("recent_days must be at least 1")

    @classmethod
    def from_values(cls, **values) -> AuditOptions:
        """Build options from keyword values, ignoring None (unset CLI/query options); unknown names are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown audit option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        values = asdict(self)
        values["as_of"] = self.as_of.isoformat(timespec="seconds") if self.as_of else None
        return values


# ---- geometry helpers ------------------------------------------------------------------------------------
def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _parallel(function: Callable, items: Sequence, chunk: int = _CHUNK) -> list:
    """Run `function` over chunks of `items` on a few threads (shapely releases the GIL) and concatenate."""
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    if len(chunks) <= 1 or _workers() == 1:
        return [r for c in chunks for r in function(c)]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        return [r for part in pool.map(function, chunks) for r in part]


def _polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split overlay results into their polygons: (polygons, index of the geometry each came from).

    Intersections and differences of touching shapes come back with lines and points mixed in; those have no
    area and are dropped here.
    """
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    parts, first = shapely.get_parts(geoms, return_index=True)
    parts, second = shapely.get_parts(parts, return_index=True)  # a collection may hold multipolygons
    owner = first[second]
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    return parts[keep], owner[keep]


def _repair(geom: shapely.Geometry) -> shapely.Geometry:
    """Return a valid polygonal version of an invalid geometry (a bow-tie becomes its two triangles)."""
    fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    parts, _ = _polygons(np.array([fixed], dtype=object))
    return shapely.MultiPolygon(list(parts)) if len(parts) else shapely.MultiPolygon()


def _geojson(geom: shapely.Geometry) -> dict:
    # 7 decimals of a degree is about 1 cm: enough to draw and to find the spot, and it halves the JSON.
    rounded = shapely.transform(geom, lambda xy: np.round(xy, 7))
    return json.loads(shapely.to_geojson(rounded))


def _lonlat(point: shapely.Point) -> list[float]:
    return [round(point.x, 7), round(point.y, 7)]


class _Metric:
    """One local transverse Mercator around the data: areas and lengths in metres."""

    def __init__(self, geoms: np.ndarray) -> None:
        present = geoms[~shapely.is_empty(geoms)] if len(geoms) else geoms
        if len(present):
            minx, miny, maxx, maxy = shapely.total_bounds(present)
        else:
            minx = maxx = 117.2
            miny = maxy = 39.1
        self.centre = ((minx + maxx) / 2, (miny + maxy) / 2)
        self.crs = crs_module.local_metric_crs(lon=self.centre[0], lat=self.centre[1])
        # always_xy: EPSG:4326 is latitude-first by definition; our coordinates are lon, lat.
        self._transformer = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    def _xy(self, coords: np.ndarray) -> np.ndarray:
        x, y = self._transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def project(self, geoms):
        """Project lon/lat geometries (one or an array) into metres."""
        return shapely.transform(geoms, self._xy)

    def area(self, geoms) -> np.ndarray:
        """Return areas in square metres."""
        return shapely.area(self.project(geoms))

    def describe(self) -> str:
        """Say which CRS measured the areas."""
        return f"transverse Mercator centred on {self.centre[0]:.5f}, {self.centre[1]:.5f} (WGS84)"


def _finding(
    kind: str, codes: Iterable[str], geometry: shapely.Geometry, area_m2: float, detail: str | None, **extra
) -> dict:
    return {
        "kind": kind,
        "codes": list(codes),
        "area_m2": round(float(area_m2), 2),
        "point": _lonlat(shapely.point_on_surface(geometry)),
        "geometry": _geojson(geometry),
        "detail": detail,
        **extra,
    }


def _int_or_none(value) -> int | None:
    if value is None:
        return None
    try:
        if math.isnan(value):
            return None
    except TypeError:
        return None
    return int(value)


def _text_or_none(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _when(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _per_level(values: Iterable[str]) -> dict[str, int]:
    counts = Counter(values)
    return {level: counts.get(level, 0) for level in LEVEL_ORDER}


# ---- the areas of one edition, as arrays -----------------------------------------------------------------
class _Areas:
    """The areas of one edition as parallel arrays, with repaired geometry and metric measures."""

    def __init__(self, frame, metric: _Metric | None = None, *, tolerance: float = 1.0) -> None:
        self.frame = frame
        self.tolerance = tolerance
        n = len(frame)
        column = frame.get
        self.codes = [str(c) for c in frame["code"]] if n else []
        self.names = [_text_or_none(v) or "" for v in column("name", [""] * n)]
        self.levels = [str(v) for v in frame["level"]] if n else []
        self.parents = [_text_or_none(v) for v in column("parent_code", [None] * n)]
        self.kinds = [_text_or_none(v) for v in column("kind", [None] * n)]
        self.households = [_int_or_none(v) for v in column("households", [None] * n)]
        self.population = [_int_or_none(v) for v in column("population", [None] * n)]
        self.staff = [_int_or_none(v) for v in column("staff", [None] * n)]
        self.geoms = np.array(list(frame.geometry), dtype=object) if n else np.array([], dtype=object)
        missing = np.array([g is None for g in self.geoms], dtype=bool)
        self.geoms[missing] = shapely.MultiPolygon()
        self.empty = shapely.is_empty(self.geoms) if n else np.array([], dtype=bool)
        self.valid = shapely.is_valid(self.geoms) if n else np.array([], dtype=bool)
        self.work = self.geoms.copy()
        for i in np.flatnonzero(~self.valid & ~self.empty):
            self.work[i] = _repair(self.geoms[i])
        self.usable = ~shapely.is_empty(self.work) if n else np.array([], dtype=bool)
        self.metric = metric or _Metric(self.work)
        projected = self.metric.project(self.work) if n else self.work
        self.area_m2 = shapely.area(projected) if n else np.array([])
        self.perimeter_m = shapely.length(projected) if n else np.array([])
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
        return self.names[i] or self.codes[i]


def _child_level(level: str) -> str | None:
    position = LEVEL_ORDER.index(level)
    return LEVEL_ORDER[position + 1] if position + 1 < len(LEVEL_ORDER) else None


# ---- the checks ------------------------------------------------------------------------------------------
class _Tally:
    """Pieces below the area tolerance: counted and summed, not listed."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.areas: Counter = Counter()

    def add(self, kind: str, areas: np.ndarray) -> None:
        self.counts[kind] += len(areas)
        self.areas[kind] += float(np.sum(areas))

    def to_dict(self) -> dict:
        return {
            kind: {"count": self.counts[kind], "area_m2": round(self.areas[kind], 4)}
            for kind in ("gaps", "overlaps", "outside_parent")
        }


def _check_invalid(areas: _Areas) -> list[dict]:
    findings = []
    reasons = shapely.is_valid_reason(areas.geoms) if len(areas.codes) else []
    for i in np.flatnonzero(~areas.valid | areas.empty):
        code = areas.codes[i]
        if areas.empty[i]:
            findings.append(
                {
                    "kind": "empty",
                    "codes": [code],
                    "area_m2": 0.0,
                    "point": None,
                    "geometry": None,
                    "detail": f"{areas.levels[i]} {code} has an empty geometry",
                }
            )
            continue
        reason = str(reasons[i])
        point = None
        if "[" in reason and reason.endswith("]"):
            try:
                x, y = (float(v) for v in reason[reason.rindex("[") + 1 : -1].split()[:2])
                point = [round(x, 7), round(y, 7)]
            except ValueError:
                point = None
        work = areas.work[i]
        finding = _finding(
            "invalid",
            [code],
            work if not work.is_empty else areas.geoms[i].envelope,
            areas.area_m2[i],
            f"{areas.levels[i]} {code}: {reason}; the rest of the audit uses a repaired copy",
        )
        if point is not None:
            finding["point"] = point  # where the geometry breaks is what an editor needs to find
        findings.append(finding)
    return findings


def _interior_pairs(areas: _Areas, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Return position pairs (i < j) of one level whose interiors meet (any area, even a hair)."""
    members = areas.by_level[level]
    members = members[areas.usable[members]]
    if len(members) < 2:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    geoms = areas.work[members]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return left, right

    def interiors_meet(chunk: np.ndarray) -> list[bool]:
        # "2********": the interiors share a 2-D part; touching along an edge or at a corner does not count.
        return list(shapely.relate_pattern(geoms[left[chunk]], geoms[right[chunk]], "2********"))

    hit = np.array(_parallel(interiors_meet, np.arange(len(left))), dtype=bool)
    return members[left[hit]], members[right[hit]]


def _check_overlaps(areas: _Areas, tally: _Tally) -> tuple[list[dict], set[tuple[int, int]]]:
    findings: list[dict] = []
    overlapping: set[tuple[int, int]] = set()
    for level in ("street", "community", "grid"):
        left, right = _interior_pairs(areas, level)
        if not len(left):
            continue
        overlapping.update(zip(left.tolist(), right.tolist(), strict=True))
        shared = shapely.intersection(areas.work[left], areas.work[right])
        parts, owner = _polygons(shared)
        part_area = areas.metric.area(parts) if len(parts) else np.array([])
        per_pair = np.bincount(owner, weights=part_area, minlength=len(left)) if len(parts) else np.zeros(len(left))
        small = per_pair < areas.tolerance
        tally.add("overlaps", per_pair[small])
        for k in np.flatnonzero(~small):
            i, j = int(left[k]), int(right[k])
            a, b = areas.work[i], areas.work[j]
            if shapely.equals(a, b):
                kind, detail = "duplicate", f"{level}s {areas.codes[i]} and {areas.codes[j]} have the same boundary"
            elif shapely.contains(a, b) or shapely.contains(b, a):
                outer, inner = (i, j) if shapely.contains(a, b) else (j, i)
                kind, detail = "containment", f"{level} {areas.codes[outer]} contains {level} {areas.codes[inner]}"
            else:
                kind, detail = "overlap", f"{level}s {areas.codes[i]} and {areas.codes[j]} overlap"
            pieces = parts[owner == k]
            geometry = shapely.MultiPolygon(list(pieces)) if len(pieces) > 1 else pieces[0]
            findings.append(
                _finding(kind, [areas.codes[i], areas.codes[j]], geometry, per_pair[k], detail, level=level)
            )
    return findings, overlapping


def _union(geoms: np.ndarray, exact_coverage: bool) -> shapely.Geometry:
    """Union the children of one parent; the fast coverage union when they are known not to overlap."""
    if exact_coverage:
        try:
            union = shapely.coverage_union_all(geoms)
        except shapely.errors.GEOSException:
            union = None
        # The coverage union trusts that shared edges have the same vertices; when they do not (a vertex of
        # one grid lying on its neighbour's edge) its result is invalid or misses area: do the full union.
        if union is not None and shapely.is_valid(union):
            expected = float(np.sum(shapely.area(geoms)))
            if abs(union.area - expected) <= 1e-9 * max(expected, 1e-12):
                return union
    return shapely.union_all(geoms)


def _check_gaps(areas: _Areas, overlapping: set[tuple[int, int]], tally: _Tally) -> tuple[list[dict], list[str]]:
    """Find the parts of each parent covered by none of its children (street ← communities ← grids)."""
    findings: list[dict] = []
    not_checked: list[str] = []
    children: dict[int, list[int]] = defaultdict(list)
    for level in ("street", "community", "grid"):
        parent_level = LEVEL_ORDER[LEVEL_ORDER.index(level) - 1]
        for i in areas.by_level[level]:
            j = areas.parent_of(int(i), parent_level)
            if j is not None and areas.usable[i]:
                children[j].append(int(i))
    in_overlap = {i for pair in overlapping for i in pair}
    parents: list[int] = []
    for level in ("district", "street", "community"):
        child = _child_level(level)
        if not len(areas.by_level[child]):
            if len(areas.by_level[level]):
                not_checked.append(f"{level} (no {child} areas in this edition)")
            continue
        parents.extend(int(i) for i in areas.by_level[level] if areas.usable[i])

    def uncovered(chunk: Sequence[int]) -> list[shapely.Geometry]:
        out = []
        for p in chunk:
            kids = children.get(p, [])
            if not kids:
                out.append(areas.work[p])
                continue
            exact = all(areas.valid[k] for k in kids) and not any(k in in_overlap for k in kids)
            union = _union(areas.work[kids], exact)
            out.append(shapely.difference(areas.work[p], union))
        return out

    rests = np.array(_parallel(uncovered, parents, chunk=64), dtype=object)
    parts, owner = _polygons(rests)
    if not len(parts):
        return findings, not_checked
    part_area = areas.metric.area(parts)
    small = part_area < areas.tolerance
    tally.add("gaps", part_area[small])
    for k in np.flatnonzero(~small):
        p = parents[owner[k]]
        piece = parts[k]
        kids = children.get(p, [])
        # Name the children around the gap: that is where an editor will have to move a boundary.
        neighbours = sorted(areas.codes[c] for c in kids if shapely.intersects(areas.work[c], piece))
        child = _child_level(areas.levels[p])
        plural = {"community": "communities", "grid": "grids", "street": "streets"}[child]
        detail = (
            f"part of {areas.levels[p]} {areas.name_of(p)} ({areas.codes[p]}) covered by none of its {plural}"
            if kids
            else f"{areas.levels[p]} {areas.name_of(p)} ({areas.codes[p]}) has no {plural} at all"
        )
        findings.append(
            _finding("gap", [areas.codes[p], *neighbours], piece, part_area[k], detail, level=areas.levels[p])
        )
    findings.sort(key=lambda f: (-f["area_m2"], f["codes"]))
    return findings, not_checked


def _check_outside(areas: _Areas, tally: _Tally) -> list[dict]:
    """Find the parts of communities outside their street and of grids outside their community."""
    findings: list[dict] = []
    for level in ("street", "community", "grid"):
        parent_level = LEVEL_ORDER[LEVEL_ORDER.index(level) - 1]
        pairs = [
            (int(i), j)
            for i in areas.by_level[level]
            if areas.usable[i] and (j := areas.parent_of(int(i), parent_level)) is not None and areas.usable[j]
        ]
        if not pairs:
            continue
        child = np.array([c for c, _ in pairs], dtype=np.int64)
        parent = np.array([p for _, p in pairs], dtype=np.int64)
        shapely.prepare(areas.work[parent])
        inside = shapely.covers(areas.work[parent], areas.work[child])
        child, parent = child[~inside], parent[~inside]
        if not len(child):
            continue
        rest = shapely.difference(areas.work[child], areas.work[parent])
        parts, owner = _polygons(rest)
        if not len(parts):
            continue
        part_area = areas.metric.area(parts)
        per_child = np.bincount(owner, weights=part_area, minlength=len(child))
        small = per_child < areas.tolerance
        tally.add("outside_parent", per_child[small & (per_child > 0)])
        siblings = areas.by_level[parent_level]
        tree = areas.tree(parent_level)
        for k in np.flatnonzero(~small):
            i, p = int(child[k]), int(parent[k])
            pieces = parts[owner == k]
            outside = shapely.MultiPolygon(list(pieces)) if len(pieces) > 1 else pieces[0]
            across = []
            for other in tree.query(outside, predicate="intersects"):
                o = int(siblings[other])
                if o == p:
                    continue
                shared, _ = _polygons(np.array([shapely.intersection(areas.work[o], outside)], dtype=object))
                shared_area = float(np.sum(areas.metric.area(shared))) if len(shared) else 0.0
                if shared_area >= areas.tolerance:
                    across.append({"code": areas.codes[o], "area_m2": round(shared_area, 2)})
            percent = 100.0 * per_child[k] / areas.area_m2[i] if areas.area_m2[i] > 0 else 100.0
            where = "; ".join(f"{a['area_m2']:g} m² in {parent_level} {a['code']}" for a in across)
            detail = f"{percent:.1f}% of {level} {areas.codes[i]} lies outside its {parent_level} {areas.codes[p]}" + (
                f" ({where})" if where else ""
            )
            findings.append(
                _finding(
                    "outside_parent",
                    [areas.codes[i], areas.codes[p], *(a["code"] for a in across)],
                    outside,
                    per_child[k],
                    detail,
                    level=level,
                    percent_of_area=round(percent, 2),
                    across=across,
                )
            )
    findings.sort(key=lambda f: (-f["area_m2"], f["codes"]))
    return findings


def _check_slivers(areas: _Areas, options: AuditOptions) -> list[dict]:
    findings = []
    for i in areas.by_level["grid"]:
        if not areas.usable[i]:
            continue
        score, area = float(areas.compactness[i]), float(areas.area_m2[i])
        reasons = []
        if score < options.sliver_compactness:
            reasons.append(f"Polsby–Popper {score:.3f} below {options.sliver_compactness:g}")
        if area < options.sliver_area_m2:
            reasons.append(f"area {area:.1f} m² below {options.sliver_area_m2:g} m²")
        if reasons:
            findings.append(
                _finding(
                    "sliver",
                    [areas.codes[i]],
                    areas.work[i],
                    area,
                    f"grid {areas.codes[i]}: " + "; ".join(reasons),
                    compactness=round(score, 4),
                )
            )
    return findings


def _check_codes(areas: _Areas) -> list[dict]:
    findings = []

    def flag(i: int, kind: str, detail: str) -> None:
        geometry = areas.work[i] if areas.usable[i] else None
        findings.append(
            {
                "kind": kind,
                "codes": [areas.codes[i]] + ([areas.parents[i]] if areas.parents[i] else []),
                "area_m2": round(float(areas.area_m2[i]), 2),
                "point": _lonlat(shapely.point_on_surface(geometry)) if geometry is not None else None,
                "geometry": _geojson(geometry) if geometry is not None else None,
                "detail": detail,
                "level": areas.levels[i],
            }
        )

    counts = Counter(areas.codes)
    reported: set[str] = set()
    present_levels = {lv for lv in LEVEL_ORDER if len(areas.by_level[lv])}
    for i, code in enumerate(areas.codes):
        level, parent = areas.levels[i], areas.parents[i]
        if counts[code] > 1 and code not in reported:
            reported.add(code)
            flag(i, "duplicate", f"code {code} is used by {counts[code]} areas")
        if not code.isdigit():
            flag(i, "not_digits", f"{level} code {code!r} has characters other than digits")
        expected = CODE_LENGTHS.get(level)
        if expected and len(code) not in expected:
            lengths = " or ".join(str(n) for n in expected)
            flag(i, "length", f"{level} code {code} has {len(code)} digits, not {lengths}")
        parent_level = LEVEL_ORDER[LEVEL_ORDER.index(level) - 1] if level in LEVEL_ORDER[1:] else None
        if parent_level is None:
            continue
        if not parent:
            if level in ("community", "grid"):
                flag(i, "no_parent", f"{level} {code} has no parent code")
            continue
        if not code.startswith(parent):
            flag(i, "parent_prefix", f"{level} code {code} does not start with its parent's code {parent}")
        j = areas.position.get(parent)
        if j is None:
            if parent_level in present_levels:
                flag(i, "unknown_parent", f"{level} {code}: its parent {parent} is not in this edition")
        elif areas.levels[j] != parent_level:
            flag(i, "parent_level", f"{level} {code}: its parent {parent} is a {areas.levels[j]}, not a {parent_level}")
    return findings


# ---- incidents and balance -------------------------------------------------------------------------------
class _Located:
    """Where each incident lies under one edition, by assign's rule (boundary-inclusive, lowest code wins)."""

    def __init__(self, areas: _Areas, incidents: Sequence[dict]) -> None:
        self.incidents = [p for p in incidents if p.get("lon") is not None and p.get("lat") is not None]
        grids = areas.by_level["grid"]
        grids = np.array([i for i in grids if areas.usable[i] and areas.position[areas.codes[i]] == i], dtype=np.int64)
        n = len(self.incidents)
        self.grid: list[int | None] = [None] * n
        self.ambiguous = [False] * n
        self.candidates: list[tuple[str, ...]] = [()] * n
        self.nearest: list[tuple[str | None, float | None]] = [(None, None)] * n
        if not n or not len(grids):
            return
        lons = np.array([float(p["lon"]) for p in self.incidents])
        lats = np.array([float(p["lat"]) for p in self.incidents])
        points = shapely.points(lons, lats)  # Point(lon, lat)
        tree = shapely.STRtree(areas.work[grids])
        # For a point, "intersects" is "covered by": the boundary counts, as the rule says.
        point_index, grid_index = tree.query(points, predicate="intersects")
        order = np.argsort(point_index, kind="stable")
        point_index, grid_index = point_index[order], grid_index[order]
        hits = np.bincount(point_index, minlength=n)
        start = np.searchsorted(point_index, np.arange(n))
        position = np.full(n, -1, dtype=np.int64)
        single = np.flatnonzero(hits == 1)
        position[single] = grids[grid_index[start[single]]]
        self.grid = [g if g >= 0 else None for g in position.tolist()]
        for p in np.flatnonzero(hits > 1).tolist():
            codes = [areas.codes[grids[g]] for g in grid_index[start[p] : start[p] + hits[p]].tolist()]
            code, ambiguous, candidates = assign.choose(codes)
            self.grid[p] = areas.position[code]
            self.ambiguous[p] = ambiguous
            self.candidates[p] = candidates
        lost = [p for p in range(n) if self.grid[p] is None]
        if lost:
            metric_grids = areas.metric.project(areas.work[grids])
            metric_points = areas.metric.project(points[lost])
            nearest_tree = shapely.STRtree(metric_grids)
            (which, target), distance = nearest_tree.query_nearest(
                metric_points, return_distance=True, all_matches=False
            )
            for w, t, d in zip(which.tolist(), target.tolist(), distance.tolist(), strict=True):
                self.nearest[lost[w]] = (areas.codes[grids[t]], round(float(d), 2))

    def code(self, areas: _Areas, k: int) -> str | None:
        return areas.codes[self.grid[k]] if self.grid[k] is not None else None


def _is_open(incident: dict) -> bool:
    return incident.get("status") not in CLOSED_STATUSES


def _stats(values: list[int]) -> dict:
    """Max/min ratio and coefficient of variation (population standard deviation over the mean)."""
    if not values:
        return {"max_min_ratio": None, "cv": None, "mean": None}
    array = np.array(values, dtype=float)
    mean = float(array.mean())
    low = float(array.min())
    return {
        "max_min_ratio": round(float(array.max()) / low, 3) if low > 0 else None,
        "cv": round(float(array.std()) / mean, 4) if mean > 0 else None,
        "mean": round(mean, 1),
    }


def _grid_rows(areas: _Areas, located: _Located, options: AuditOptions, households=None) -> list[dict]:
    as_of = options.as_of or dt.datetime.now()
    since = as_of - dt.timedelta(days=options.recent_days)
    open_cases: Counter = Counter()
    recent: Counter = Counter()
    for k, incident in enumerate(located.incidents):
        g = located.grid[k]
        if g is None:
            continue
        open_cases[g] += _is_open(incident)
        when = _when(incident.get("reported_at"))
        recent[g] += bool(when is not None and since <= when <= as_of)
    rows = []
    for i in areas.by_level["grid"]:
        i = int(i)
        count = areas.households[i] if households is None else households[i]
        applies = areas.kinds[i] != DEDICATED_KIND
        flag = None
        if applies and count is not None:
            flag = "below" if count < options.households_min else "above" if count > options.households_max else None
        rows.append(
            {
                "code": areas.codes[i],
                "name": areas.names[i],
                "community_code": areas.parents[i],
                "kind": areas.kinds[i],
                "households": count,
                "population": areas.population[i],
                "staff": areas.staff[i],
                "open_cases": open_cases[i],
                "recent_cases": recent[i],
                "area_m2": round(float(areas.area_m2[i]), 1),
                "compactness": round(float(areas.compactness[i]), 4),
                "households_flag": flag,
                "range_applies": applies,
            }
        )
    return rows


def _balance(areas: _Areas, located: _Located, options: AuditOptions, households=None) -> dict:
    grids = _grid_rows(areas, located, options, households)
    by_community: dict[str | None, list[dict]] = defaultdict(list)
    for row in grids:
        by_community[row["community_code"]].append(row)
    communities = []
    for code in sorted(by_community, key=lambda c: c or ""):
        rows = by_community[code]
        j = areas.position.get(code) if code else None
        counted = [r["households"] for r in rows if r["range_applies"] and r["households"] is not None]
        staff = [r["staff"] for r in rows if r["staff"] is not None]
        communities.append(
            {
                "code": code,
                "name": areas.names[j] if j is not None else None,
                "grids": len(rows),
                "households": sum(r["households"] or 0 for r in rows),
                "population": sum(r["population"] or 0 for r in rows),
                "open_cases": sum(r["open_cases"] for r in rows),
                "recent_cases": sum(r["recent_cases"] for r in rows),
                "staff": sum(staff) if staff else None,
                "outside_range": sum(r["households_flag"] is not None for r in rows),
                **_stats(counted),
            }
        )
    counted = [r["households"] for r in grids if r["range_applies"] and r["households"] is not None]
    has_staff = any(r["staff"] is not None for r in grids)
    return {
        "households_range": [options.households_min, options.households_max],
        "recent_days": options.recent_days,
        "grids": grids,
        "communities": communities,
        "outside_range": [
            {"code": r["code"], "households": r["households"], "flag": r["households_flag"]}
            for r in grids
            if r["households_flag"] is not None
        ],
        "totals": {
            "grids": len(grids),
            "households": sum(r["households"] or 0 for r in grids),
            "population": sum(r["population"] or 0 for r in grids),
            "open_cases": sum(r["open_cases"] for r in grids),
            "recent_cases": sum(r["recent_cases"] for r in grids),
            "staff": sum(r["staff"] or 0 for r in grids) if has_staff else None,
            "households_unknown": sum(r["households"] is None for r in grids),
            **_stats(counted),
        },
        "staff_note": None if has_staff else "no staff numbers are stored for this edition's grids",
        "range_note": "the households range applies to comprehensive (综合) grids, not dedicated (专属) ones",
    }


def _incident_lists(areas: _Areas, located: _Located) -> dict:
    unassigned, ambiguous = [], []
    for k, incident in enumerate(located.incidents):
        base = {
            "id": incident.get("id"),
            "lon": round(float(incident["lon"]), 7),
            "lat": round(float(incident["lat"]), 7),
            "status": incident.get("status"),
        }
        g = located.grid[k]
        if g is None:
            nearest, distance = located.nearest[k]
            unassigned.append({**base, "nearest_code": nearest, "nearest_distance_m": distance})
        elif located.ambiguous[k]:
            community = areas.parents[g]
            c = areas.position.get(community) if community else None
            ambiguous.append(
                {
                    **base,
                    "grid_code": areas.codes[g],
                    "community_code": community,
                    "street_code": areas.parents[c] if c is not None else None,
                    "candidates": list(located.candidates[k]),
                }
            )
    return {"unassigned": unassigned, "ambiguous": ambiguous}


# ---- the audit -------------------------------------------------------------------------------------------
def audit_areas(
    frame, incidents: Sequence[dict] = (), *, options: AuditOptions | None = None, edition: str | None = None
) -> dict:
    """Audit one edition's areas (a GeoDataFrame like `Store.areas` returns) and the incidents lying in them."""
    started = time.perf_counter()
    options = options or AuditOptions()
    areas = _Areas(frame, tolerance=options.area_tolerance_m2)
    tally = _Tally()
    invalid = _check_invalid(areas)
    overlaps, overlapping = _check_overlaps(areas, tally)
    gaps, not_checked = _check_gaps(areas, overlapping, tally)
    outside = _check_outside(areas, tally)
    slivers = _check_slivers(areas, options)
    codes = _check_codes(areas)
    located = _Located(areas, incidents)
    balance = _balance(areas, located, options)
    incident_lists = _incident_lists(areas, located)
    report = {
        "gaps": gaps,
        "overlaps": overlaps,
        "outside_parent": outside,
        "invalid": invalid,
        "slivers": slivers,
        "codes": codes,
        "balance": balance,
        "incidents": incident_lists,
    }
    report["summary"] = {
        "edition": edition,
        "areas": _per_level(areas.levels),
        "findings": {kind: len(report[kind]) for kind in FINDING_KINDS},
        "below_tolerance": tally.to_dict(),
        "outside_range": len(balance["outside_range"]),
        "incidents": {
            "located": len(located.incidents),
            "open": sum(_is_open(p) for p in located.incidents),
            "unassigned": len(incident_lists["unassigned"]),
            "ambiguous": len(incident_lists["ambiguous"]),
        },
        "not_checked": not_checked,
        "options": options.to_dict(),
        "metric_crs": areas.metric.describe(),
        "clean": not any(report[kind] for kind in FINDING_KINDS),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return report


def failing(report: dict, kinds: Iterable[str]) -> dict[str, int]:
    """Return {kind: number of findings} for the asked kinds that have any (what `--fail-on` acts on)."""
    counts = {kind: len(report[kind]) for kind in FINDING_KINDS}
    counts["balance"] = len(report["balance"]["outside_range"])
    counts["unassigned"] = len(report["incidents"]["unassigned"])
    counts["ambiguous"] = len(report["incidents"]["ambiguous"])
    return {kind: counts[kind] for kind in kinds if counts[kind]}


def parse_kinds(text: str | None) -> list[str]:
    """Parse a comma-separated list of kinds (e.g. "gaps,overlaps"); `all` means every finding kind."""
    kinds = [k.strip() for k in (text or "").split(",") if k.strip()]
    if kinds == ["all"]:
        return list(FINDING_KINDS)
    unknown = [k for k in kinds if k not in FAIL_KINDS]
    if unknown:
        raise InvalidInput(f"unknown kind(s) {', '.join(unknown)}; choose from all, {', '.join(FAIL_KINDS)}")
    return kinds


def summary_lines(report: dict, *, limit: int = 10) -> list[str]:
    """Describe an audit in a few lines of text (the CLI's default output)."""
    summary = report["summary"]
    counts = ", ".join(f"{n} {level} areas" for level, n in summary["areas"].items() if n) or "no areas"
    lines = [f"edition {summary['edition']}: {counts}; areas measured in a {summary['metric_crs']}"]
    for kind in FINDING_KINDS:
        found = report[kind]
        lines.append(f"{kind}: {len(found)}")
        for finding in found[:limit]:
            where = f" at {finding['point'][0]},{finding['point'][1]}" if finding["point"] else ""
            lines.append(f"  {finding['kind']} {' '.join(finding['codes'])} {finding['area_m2']:g} m²{where}")
            if finding["detail"]:
                lines.append(f"    {finding['detail']}")
        if len(found) > limit:
            lines.append(f"  … and {len(found) - limit} more (use --json or --html for all)")
    small = summary["below_tolerance"]
    tolerance = summary["options"]["area_tolerance_m2"]
    lines.append(
        f"below {tolerance:g} m² (counted, not listed): "
        + ", ".join(f"{v['count']} {k} pieces ({v['area_m2']:g} m²)" for k, v in small.items())
    )
    balance = report["balance"]
    low, high = balance["households_range"]
    totals = balance["totals"]
    lines.append(
        f"balance: {totals['grids']} grids, {totals['households']} households, "
        f"{summary['outside_range']} outside {low}–{high}, CV {totals['cv']}, max/min {totals['max_min_ratio']}"
    )
    if balance["staff_note"]:
        lines.append(f"  {balance['staff_note']}")
    incidents = summary["incidents"]
    lines.append(
        f"incidents: {incidents['located']} located, {incidents['unassigned']} in no grid, "
        f"{incidents['ambiguous']} on a shared edge"
    )
    if summary["not_checked"]:
        lines.append("gaps not checked for: " + "; ".join(summary["not_checked"]))
    lines.append(f"audited in {summary['seconds']:.2f} s")
    return lines


# ---- plan-vs-plan comparison -----------------------------------------------------------------------------
def _area_flows(old: _Areas, new: _Areas, tolerance: float) -> tuple[dict[int, list[tuple[int, float]]], set[int]]:
    """Return {new grid: [(old grid, m² it takes from it)]} and the new grids whose code and boundary are unchanged."""
    old_grids = np.array([i for i in old.by_level["grid"] if old.usable[i]], dtype=np.int64)
    new_grids = np.array([i for i in new.by_level["grid"] if new.usable[i]], dtype=np.int64)
    flows: dict[int, list[tuple[int, float]]] = defaultdict(list)
    same_shape: set[int] = set()
    if not len(old_grids) or not len(new_grids):
        return flows, same_shape
    tree = shapely.STRtree(old.work[old_grids])
    target, source = tree.query(new.work[new_grids], predicate="intersects")
    new_i, old_i = new_grids[target], old_grids[source]
    same = np.array([new.codes[n] == old.codes[o] for n, o in zip(new_i.tolist(), old_i.tolist(), strict=True)])
    unchanged = np.zeros(len(new_i), dtype=bool)
    if same.any():
        unchanged[same] = shapely.equals(new.work[new_i[same]], old.work[old_i[same]])
    same_shape.update(new_i[unchanged].tolist())
    # Only pairs whose interiors meet are intersected: most candidates merely touch along an edge.
    overlay = ~unchanged
    if overlay.any():
        meet = shapely.relate_pattern(new.work[new_i[overlay]], old.work[old_i[overlay]], "2********")
        overlay[np.flatnonzero(overlay)[~meet]] = False
    areas = np.zeros(len(new_i))
    areas[unchanged] = new.area_m2[new_i[unchanged]]
    if overlay.any():
        parts, owner = _polygons(shapely.intersection(new.work[new_i[overlay]], old.work[old_i[overlay]]))
        if len(parts):
            areas[np.flatnonzero(overlay)] = np.bincount(owner, weights=new.metric.area(parts), minlength=overlay.sum())
    for n, o, m2 in zip(new_i.tolist(), old_i.tolist(), areas.tolist(), strict=True):
        if m2 >= tolerance:
            flows[n].append((o, m2))
    return flows, same_shape


def _moved_cases(old: _Areas, new: _Areas, before: _Located, after: _Located) -> list[dict]:
    """Return the incidents whose grid differs between the two editions."""
    moved = []
    for k, incident in enumerate(before.incidents):
        was, now = before.code(old, k), after.code(new, k)
        if was != now:
            moved.append(
                {
                    "id": incident.get("id"),
                    "status": incident.get("status"),
                    "from": was,
                    "to": now,
                    "lon": round(float(incident["lon"]), 7),
                    "lat": round(float(incident["lat"]), 7),
                    "open": _is_open(incident),
                }
            )
    return moved


def compare_areas(
    old_frame,
    new_frame,
    incidents: Sequence[dict] = (),
    *,
    options: AuditOptions | None = None,
    a: str = "A",
    b: str = "B",
) -> dict:
    """Compare two editions' grids: where each new grid's land, households and cases come from."""
    started = time.perf_counter()
    options = options or AuditOptions()
    both = np.concatenate(
        [np.array(list(old_frame.geometry), dtype=object), np.array(list(new_frame.geometry), dtype=object)]
    )
    metric = _Metric(both[[g is not None for g in both]]) if len(both) else _Metric(both)
    old, new = _Areas(old_frame, metric), _Areas(new_frame, metric)
    flows, same_shape = _area_flows(old, new, options.area_tolerance_m2)
    old_codes = {old.codes[i] for i in old.by_level["grid"]}
    new_codes = {new.codes[i] for i in new.by_level["grid"]}

    def estimate(o: int, m2: float) -> float | None:
        households = old.households[o]
        if households is None or old.area_m2[o] <= 0:
            return None
        return households * min(1.0, m2 / old.area_m2[o])

    grids, estimated_households, moving_households = [], {}, 0.0
    goes_to: dict[int, list[dict]] = defaultdict(list)
    for n in new.by_level["grid"].tolist():
        sources = []
        total_estimate = 0.0
        known = True
        for o, m2 in sorted(flows.get(n, []), key=lambda f: -f[1]):
            households = estimate(o, m2)
            known = known and households is not None
            total_estimate += households or 0.0
            if old.codes[o] != new.codes[n]:
                moving_households += households or 0.0
            share = m2 / old.area_m2[o] if old.area_m2[o] > 0 else None
            sources.append(
                {
                    "code": old.codes[o],
                    "area_m2": round(m2, 2),
                    "share_of_old": round(share, 4) if share is not None else None,
                    "households_estimated": round(households, 1) if households is not None else None,
                }
            )
            goes_to[o].append({"code": new.codes[n], "area_m2": round(m2, 2)})
        if new.codes[n] not in old_codes:
            status = "new"
        elif n in same_shape:
            status = "unchanged"
        else:
            status = "changed"
        estimated_households[n] = round(total_estimate) if sources and known else None
        grids.append(
            {
                "code": new.codes[n],
                "name": new.names[n],
                "community_code": new.parents[n],
                "status": status,
                "area_m2": round(float(new.area_m2[n]), 1),
                "households": new.households[n],
                "households_estimated": estimated_households[n],
                "sources": sources,
            }
        )
    retired = [
        {
            "code": old.codes[o],
            "name": old.names[o],
            "households": old.households[o],
            "goes_to": sorted(goes_to.get(o, []), key=lambda f: -f["area_m2"]),
        }
        for o in old.by_level["grid"].tolist()
        if old.codes[o] not in new_codes
    ]
    uncovered = 0.0
    for o in old.by_level["grid"].tolist():
        covered = sum(f["area_m2"] for f in goes_to.get(o, []))
        if old.households[o] is not None and old.area_m2[o] > 0:
            uncovered += old.households[o] * max(0.0, 1 - covered / old.area_m2[o])

    before, after = _Located(old, incidents), _Located(new, incidents)
    moved = _moved_cases(old, new, before, after)
    new_households = {
        n: new.households[n] if new.households[n] is not None else estimated_households.get(n)
        for n in new.by_level["grid"].tolist()
    }
    balance_a = _balance(old, before, options)
    balance_b = _balance(new, after, options, households=new_households)
    communities = _compare_communities(balance_a, balance_b)
    open_moving = [m for m in moved if m["open"]]
    counts = Counter(g["status"] for g in grids)
    return {
        "a": a,
        "b": b,
        "grids": grids,
        "retired": retired,
        "households": {"moving": round(moving_households), "left_uncovered": round(uncovered)},
        "cases": {"open_moving": len(open_moving), "moving": len(moved), "moved": moved},
        "balance": {
            "a": _balance_digest(balance_a),
            "b": _balance_digest(balance_b),
            "communities": communities,
            "households_source": "stored where the new edition has them, else estimated by area share",
        },
        "summary": {
            "a": a,
            "b": b,
            "grids": {"a": len(old.by_level["grid"]), "b": len(new.by_level["grid"])},
            "new": counts.get("new", 0),
            "changed": counts.get("changed", 0),
            "unchanged": counts.get("unchanged", 0),
            "retired": len(retired),
            "households_moving": round(moving_households),
            "open_cases_moving": len(open_moving),
            "cases_moving": len(moved),
            "options": options.to_dict(),
            "metric_crs": metric.describe(),
            "seconds": round(time.perf_counter() - started, 3),
        },
    }


def _balance_digest(balance: dict) -> dict:
    return {
        "totals": balance["totals"],
        "outside_range": len(balance["outside_range"]),
        "households_range": balance["households_range"],
        "grids": [
            {k: r[k] for k in ("code", "community_code", "households", "open_cases", "households_flag")}
            for r in balance["grids"]
        ],
    }


def _compare_communities(a: dict, b: dict) -> list[dict]:
    before = {c["code"]: c for c in a["communities"]}
    after = {c["code"]: c for c in b["communities"]}
    rows = []
    for code in sorted(set(before) | set(after), key=lambda c: c or ""):
        x, y = before.get(code, {}), after.get(code, {})
        rows.append(
            {
                "code": code,
                "name": y.get("name") or x.get("name"),
                **{
                    f"{key}_{side}": row.get(key)
                    for key in ("grids", "households", "open_cases", "outside_range", "cv", "max_min_ratio")
                    for side, row in (("a", x), ("b", y))
                },
            }
        )
    return rows


def compare_lines(report: dict, *, limit: int = 20) -> list[str]:
    """Describe a comparison in a few lines of text."""
    s = report["summary"]
    lines = [
        f"{s['a']} → {s['b']}: {s['grids']['a']} → {s['grids']['b']} grids; {s['new']} new, {s['changed']} changed, "
        f"{s['unchanged']} unchanged, {s['retired']} retired",
        f"households changing grid (estimated by area share): {s['households_moving']}",
        f"open cases changing grid: {s['open_cases_moving']} (all cases: {s['cases_moving']})",
    ]
    changed = [g for g in report["grids"] if g["status"] != "unchanged"]
    for grid in changed[:limit]:
        sources = ", ".join(f"{src['code']} {src['area_m2']:g} m²" for src in grid["sources"]) or "no old grid"
        lines.append(f"  {grid['status']} {grid['code']}: from {sources}")
    if len(changed) > limit:
        lines.append(f"  … and {len(changed) - limit} more (use --json or --html for all)")
    ta, tb = report["balance"]["a"], report["balance"]["b"]
    lines.append(
        f"balance: outside range {ta['outside_range']} → {tb['outside_range']}, "
        f"CV {ta['totals']['cv']} → {tb['totals']['cv']}, max/min {ta['totals']['max_min_ratio']} → "
        f"{tb['totals']['max_min_ratio']}"
    )
    return lines


# ---- the store-backed front: what the CLI and the web call ----------------------------------------------
def _edition_name(store, edition: str | None) -> str:
    if edition:
        return store.get_edition(edition).name
    current = store.current_edition()
    if current is None:
        raise NotFound("there is no current edition to audit: load boundaries first, or name an edition")
    return current.name


def _load(store, edition: str | None):
    from gridmap import buildings

    name = _edition_name(store, edition)
    # Where the register has buildings, a grid's households and population are those of its buildings.
    return name, buildings.apply_to_frame(store, name, store.areas(name))


def audit_edition(store, edition: str | None = None, **options) -> dict:
    """Audit an edition (default: the current one) with today's incidents; the JSON shared by CLI and API."""
    settings = AuditOptions.from_values(**options)
    name, frame = _load(store, edition)
    return audit_areas(frame, store.incident_points(), options=settings, edition=name)


def audit_page(store, edition: str | None = None, **options) -> dict:
    """Return what the HTML report needs: the audit, its figures and the editions to choose from."""
    from gridmap.audit.figures import audit_figures

    settings = AuditOptions.from_values(**options)
    name, frame = _load(store, edition)
    report = audit_areas(frame, store.incident_points(), options=settings, edition=name)
    return {
        "edition": name,
        "report": report,
        "figures": audit_figures(frame, report),
        "editions": [e.to_dict() for e in store.list_editions()],
        "kinds": FINDING_KINDS,
    }


def compare_editions(store, a: str, b: str, **options) -> dict:
    """Compare edition `a` (before) with edition `b` (after); the JSON shared by CLI and API."""
    settings = AuditOptions.from_values(**options)
    name_a, old = _load(store, a)
    name_b, new = _load(store, b)
    return compare_areas(old, new, store.incident_points(), options=settings, a=name_a, b=name_b)


def compare_page(store, a: str, b: str, **options) -> dict:
    """Return what the comparison page needs: the comparison and its figures."""
    from gridmap.audit.figures import compare_figures

    settings = AuditOptions.from_values(**options)
    name_a, old = _load(store, a)
    name_b, new = _load(store, b)
    report = compare_areas(old, new, store.incident_points(), options=settings, a=name_a, b=name_b)
    return {
        "a": name_a,
        "b": name_b,
        "report": report,
        "figures": compare_figures(old, new, report),
        "editions": [e.to_dict() for e in store.list_editions()],
    }
