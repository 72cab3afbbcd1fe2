"""The coverage checks: invalid shapes, overlaps, gaps, parts outside a parent, slivers and codes.

Every question is asked of the lon/lat geometry, where neighbours share their vertices; only the pieces found are
measured in metres (see `measure.Metric`). A piece is listed when its area reaches the tolerance and is above
zero; smaller ones, and pairs whose interiors meet without any polygonal intersection (it happens when two
boundaries run within rounding of each other), are counted in the tally instead. So `--tolerance 0` lists
every piece with an area and never fails on one without.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import shapely

from gridmap.audit.areas import Areas, child_level
from gridmap.audit.measure import geojson, lonlat, make_finding, parallel, polygons
from gridmap.audit.options import CODE_LENGTHS, LEVEL_ORDER, AuditOptions

PLURAL = {"district": "districts", "street": "streets", "community": "communities", "grid": "grids"}


def listed(areas_m2: np.ndarray, tolerance: float) -> np.ndarray:
    """Tell which pieces are findings: area at least the tolerance and above zero."""
    return (areas_m2 >= tolerance) & (areas_m2 > 0)


class Tally:
    """Pieces below the area tolerance: counted and summed, not listed."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.areas: Counter = Counter()

    def add(self, kind: str, areas: np.ndarray) -> None:
        """Count and sum pieces of one kind."""
        self.counts[kind] += len(areas)
        self.areas[kind] += float(np.sum(areas))

    def to_dict(self) -> dict:
        """Return {kind: {count, area_m2}} for the summary."""
        return {
            kind: {"count": self.counts[kind], "area_m2": round(self.areas[kind], 4)}
            for kind in ("gaps", "overlaps", "outside_parent")
        }


def check_invalid(areas: Areas) -> list[dict]:
    """List invalid and empty geometries, with the spot where each breaks."""
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
                    "detail": f"{areas.levels[i]} {areas.label(i)} has an empty geometry",
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
        finding = make_finding(
            "invalid",
            [code],
            work if not work.is_empty else areas.geoms[i].envelope,
            areas.area_m2[i],
            f"{areas.levels[i]} {areas.label(i)}: {reason}; the rest of the audit uses a repaired copy",
        )
        if point is not None:
            finding["point"] = point  # where the geometry breaks is what an editor needs to find
        findings.append(finding)
    return findings


def _interior_pairs(areas: Areas, level: str) -> tuple[np.ndarray, np.ndarray]:
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

    hit = np.array(parallel(interiors_meet, np.arange(len(left))), dtype=bool)
    return members[left[hit]], members[right[hit]]


def check_overlaps(areas: Areas, tally: Tally) -> tuple[list[dict], set[tuple[int, int]]]:
    """List pairs of one level whose interiors share an area; return them too (the gap check needs them)."""
    findings: list[dict] = []
    overlapping: set[tuple[int, int]] = set()
    for level in ("street", "community", "grid"):
        left, right = _interior_pairs(areas, level)
        if not len(left):
            continue
        overlapping.update(zip(left.tolist(), right.tolist(), strict=True))
        shared = shapely.intersection(areas.work[left], areas.work[right])
        parts, owner = polygons(shared)
        part_area = areas.metric.area(parts) if len(parts) else np.array([])
        per_pair = np.bincount(owner, weights=part_area, minlength=len(left)) if len(parts) else np.zeros(len(left))
        shown = listed(per_pair, areas.tolerance)
        tally.add("overlaps", per_pair[~shown])
        for k in np.flatnonzero(shown):
            i, j = int(left[k]), int(right[k])
            a, b = areas.work[i], areas.work[j]
            if shapely.equals(a, b):
                kind = "duplicate"
                detail = f"{PLURAL[level]} {areas.label(i)} and {areas.label(j)} have the same boundary"
            elif shapely.contains(a, b) or shapely.contains(b, a):
                outer, inner = (i, j) if shapely.contains(a, b) else (j, i)
                kind, detail = "containment", f"{level} {areas.label(outer)} contains {level} {areas.label(inner)}"
            else:
                kind, detail = "overlap", f"{PLURAL[level]} {areas.label(i)} and {areas.label(j)} overlap"
            pieces = parts[owner == k]
            geometry = shapely.MultiPolygon(list(pieces)) if len(pieces) > 1 else pieces[0]
            findings.append(
                make_finding(kind, [areas.codes[i], areas.codes[j]], geometry, per_pair[k], detail, level=level)
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


def check_gaps(areas: Areas, overlapping: set[tuple[int, int]], tally: Tally) -> tuple[list[dict], list[str]]:
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
        child = child_level(level)
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

    rests = np.array(parallel(uncovered, parents, chunk=64), dtype=object)
    parts, owner = polygons(rests)
    if not len(parts):
        return findings, not_checked
    part_area = areas.metric.area(parts)
    shown = listed(part_area, areas.tolerance)
    tally.add("gaps", part_area[~shown])
    for k in np.flatnonzero(shown):
        p = parents[owner[k]]
        piece = parts[k]
        kids = children.get(p, [])
        # Name the children around the gap: that is where an editor will have to move a boundary.
        neighbours = sorted(areas.codes[c] for c in kids if shapely.intersects(areas.work[c], piece))
        child = child_level(areas.levels[p])
        plural = PLURAL[child]
        detail = (
            f"part of {areas.levels[p]} {areas.label(p)} covered by none of its {plural}"
            if kids
            else f"{areas.levels[p]} {areas.label(p)} has no {plural} at all"
        )
        findings.append(
            make_finding("gap", [areas.codes[p], *neighbours], piece, part_area[k], detail, level=areas.levels[p])
        )
    findings.sort(key=lambda f: (-f["area_m2"], f["codes"]))
    return findings, not_checked


def check_outside(areas: Areas, tally: Tally) -> list[dict]:
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
        parts, owner = polygons(rest)
        if not len(parts):
            continue
        part_area = areas.metric.area(parts)
        per_child = np.bincount(owner, weights=part_area, minlength=len(child))
        shown = listed(per_child, areas.tolerance)
        tally.add("outside_parent", per_child[~shown & (per_child > 0)])
        siblings = areas.by_level[parent_level]
        tree = areas.tree(parent_level)
        for k in np.flatnonzero(shown):
            i, p = int(child[k]), int(parent[k])
            pieces = parts[owner == k]
            outside = shapely.MultiPolygon(list(pieces)) if len(pieces) > 1 else pieces[0]
            across = []
            for other in tree.query(outside, predicate="intersects"):
                o = int(siblings[other])
                if o == p:
                    continue
                shared, _ = polygons(np.array([shapely.intersection(areas.work[o], outside)], dtype=object))
                shared_area = float(np.sum(areas.metric.area(shared))) if len(shared) else 0.0
                if listed(np.array([shared_area]), areas.tolerance)[0]:
                    across.append({"code": areas.codes[o], "name": areas.names[o], "area_m2": round(shared_area, 2)})
            percent = 100.0 * per_child[k] / areas.area_m2[i] if areas.area_m2[i] > 0 else 100.0
            where = "; ".join(
                f"{a['area_m2']:g} m² in {parent_level} {areas.label(areas.position[a['code']])}" for a in across
            )
            detail = f"{percent:.1f}% of {level} {areas.label(i)} lies outside its {parent_level} {areas.label(p)}" + (
                f" ({where})" if where else ""
            )
            findings.append(
                make_finding(
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


def check_slivers(areas: Areas, options: AuditOptions) -> list[dict]:
    """List grids with a low Polsby–Popper score or a tiny area."""
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
                make_finding(
                    "sliver",
                    [areas.codes[i]],
                    areas.work[i],
                    area,
                    f"grid {areas.label(i)}: " + "; ".join(reasons),
                    compactness=round(score, 4),
                )
            )
    return findings


def check_codes(areas: Areas) -> list[dict]:
    """List duplicate, malformed and orphaned codes."""
    findings = []

    def flag(i: int, kind: str, detail: str) -> None:
        geometry = areas.work[i] if areas.usable[i] else None
        findings.append(
            {
                "kind": kind,
                "codes": [areas.codes[i]] + ([areas.parents[i]] if areas.parents[i] else []),
                "area_m2": round(float(areas.area_m2[i]), 2),
                "point": lonlat(shapely.point_on_surface(geometry)) if geometry is not None else None,
                "geometry": geojson(geometry) if geometry is not None else None,
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
            flag(i, "duplicate", f"code {code} is used by {counts[code]} areas ({areas.name_of(i)}, …)")
        if not code.isdigit():
            flag(i, "not_digits", f"{level} code {code!r} ({areas.name_of(i)}) has characters other than digits")
        expected = CODE_LENGTHS.get(level)
        if expected and len(code) not in expected:
            lengths = " or ".join(str(n) for n in expected)
            flag(i, "length", f"{level} {areas.label(i)}: the code has {len(code)} digits, not {lengths}")
        parent_level = LEVEL_ORDER[LEVEL_ORDER.index(level) - 1] if level in LEVEL_ORDER[1:] else None
        if parent_level is None:
            continue
        if not parent:
            if level in ("community", "grid"):
                flag(i, "no_parent", f"{level} {areas.label(i)} has no parent code")
            continue
        if not code.startswith(parent):
            flag(i, "parent_prefix", f"{level} {areas.label(i)}: code does not start with its parent's code {parent}")
        j = areas.position.get(parent)
        if j is None:
            if parent_level in present_levels:
                flag(i, "unknown_parent", f"{level} {areas.label(i)}: its parent {parent} is not in this edition")
        elif areas.levels[j] != parent_level:
            flag(
                i,
                "parent_level",
                f"{level} {areas.label(i)}: its parent {areas.label(j)} is a {areas.levels[j]}, not a {parent_level}",
            )
    return findings
