"""Straight edge shifts: an out-of-range grid and one neighbour re-cut by a single straight line.

Most grids out of range are only a little out (520 households, or 280), and the grids of a plan drawn by hand or
by a Voronoi tool meet along straight edges. The least change that brings such a grid into range is to move the
edge it shares with a neighbour that has room: take the union U of the two grids and cut it with one straight
line (the old shared edge moved parallel, or turned a little, or the line square to the one joining their
centres), so that each side holds its households within the range. The outline of U does not change, so every
other grid stays byte for byte as it was and the community stays exactly tiled, and both grids keep nearly their
shape (moving one straight edge of a round grid changes its Polsby–Popper value very little), where a grid
redrawn from its buildings' cells comes out noticeably less round.

A cut is allowed when every building of U stands at least CLEARANCE_M from the line (and no footprint touches
it), every estate within the maximum lies wholly on one side, each side is one polygon, and no barrier line
crosses U (along a road or river the building cells are followed instead). A piece must also stay about as round
as its grid was: a grid at or above the bar (the edition's median Polsby–Popper) stays at or above it, another
loses MAX_DROP at most. Among the allowed cuts with all the partners the one that keeps most pieces at or above
the bar wins, then the one whose less round piece is roundest, less the households it moves; an out-of-range
grid for which no cut is allowed is left to the region redraw of `region` (`redraw`).

On the demo district this is no cure for the plan's median: most grids out of range are 100 or more households
out, and moving that many across one edge of a round grid costs it its roundness, so few cuts pass the floor
(a star of several edges moved at once, tried too, did no better).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

CLEARANCE_M = 3.0  # how far every building must stand from the new edge
TILING_TOLERANCE = 1e-12  # the two pieces' areas must add up to the pair's, to this share of it
TURNS_DEG = (0.0, -5.0, 5.0, -10.0, 10.0, -16.0, 16.0, -24.0, 24.0, -35.0, 35.0)  # off each base direction
MOVED_PRICE = 0.0004  # Polsby–Popper a household moved is worth (100 households ≈ 0.04)
MAX_DROP = 0.03  # how much rounder than a piece a grid may have been (or than the bar, if it was rounder still)


@dataclass
class Shift:
    """Grids re-cut (a pair): `codes[i]` becomes `pieces[i]` holding the buildings `members[i]`."""

    codes: tuple[str, ...]
    pieces: tuple[shapely.Geometry, ...]  # lon/lat
    members: tuple[list[int], ...]  # positions in the building list handed in
    moved: int
    score: float


def plan_shifts(grids, buildings, households, candidates, partners, neighbours, frame, options, barriers, bar):
    """Return the shifts for the grids of `candidates` that are out of range, the farthest out first (partners:
    the grids whose only fault, if any, is their households count)."""
    low, high = options.households_min, options.households_max
    out = sorted(
        (c for c in candidates if not low <= households.get(c, 0) <= high),
        key=lambda c: (-abs(households.get(c, 0) - options.target), c),
    )
    return shift_pairs(
        grids,
        buildings,
        out_of_range=out,
        partners=partners,
        neighbours=neighbours,
        frame=frame,
        options=options,
        barriers=barriers,
        bar=bar,
    )


def shift_pairs(
    grids: list[dict],
    buildings: Sequence[dict],
    *,
    out_of_range: Sequence[str],
    partners: set[str],
    neighbours: dict[str, dict[str, float]],
    frame,
    options,
    barriers: Sequence = (),
    bar: float | None = None,
) -> list[Shift]:
    """Return the shifts that bring grids of `out_of_range` (codes, tried in order) into range with one of their
    `partners` (codes whose shape may change: whole, compact grids); each grid takes part in one shift at most."""
    by_code = {g["code"]: g for g in grids}
    members: dict[str, list[int]] = defaultdict(list)
    for i, b in enumerate(buildings):
        if b["grid"] is not None:
            members[b["grid"]].append(i)
    estates = _estates_within_max(buildings, options)
    used: set[str] = set()
    shifts = []
    for code in out_of_range:
        if code in used:
            continue
        best: Shift | None = None
        free = [other for other in sorted(neighbours.get(code, {})) if other not in used and other in partners]
        found = []
        for other in free:
            cut = best_cut(
                (code, other),
                (by_code[code]["geometry"], by_code[other]["geometry"]),
                buildings,
                (members.get(code, []), members.get(other, [])),
                frame,
                options,
                barriers,
                estates,
                bar,
            )
            if cut is not None:
                found.append(cut)
        for candidate in found:
            score = _judge(candidate, by_code, frame, options, bar)
            if score is None:
                continue
            candidate.score = score
            if best is None or (score, -len(candidate.codes)) > (best.score, -len(best.codes)):
                best = candidate
        if best is not None:
            shifts.append(best)
            used.update(best.codes)
    return shifts


def _judge(candidate: Shift, by_code, frame, options, bar) -> float | None:
    """Score a re-cut: grids at or above the bar gained (or lost), then the least round piece, less the households
    moved; None when a piece comes out much less round than its grid was (see `floor`)."""
    before = [_pp(frame.to_metric(by_code[c]["geometry"])) for c in candidate.codes]
    after = [_pp(frame.to_metric(p)) for p in candidate.pieces]
    if any(v < max(options.compact_min, floor(old, bar)) for v, old in zip(after, before, strict=True)):
        return None
    gained = 0 if bar is None else sum(v >= bar for v in after) - sum(v >= bar for v in before)
    return gained + min(after) - MOVED_PRICE * candidate.moved


def floor(old: float, bar: float | None) -> float:
    """How round a piece must stay: a grid at or above the bar stays there; another loses MAX_DROP at most."""
    if bar is None:
        return old - MAX_DROP
    return bar if old >= bar else min(old, bar) - MAX_DROP


def _estates_within_max(buildings: Sequence[dict], options) -> set[str]:
    """The estates that must stay whole: those whose households fit in one grid."""
    totals: dict[str, int] = defaultdict(int)
    for b in buildings:
        if b.get("estate"):
            totals[b["estate"]] += b["households"]
    return {e for e, total in totals.items() if total <= options.households_max}


def best_cut(
    codes, geometries, buildings, members, frame, options, barriers=(), estates=None, bar=None
) -> Shift | None:
    """Return the best straight re-cut of two touching grids (lon/lat polygons) holding the buildings `members`
    (positions), or None when no allowed cut brings both into range."""
    if estates is None:
        estates = _estates_within_max(buildings, options)
    pair = pair_of(geometries, members, buildings, frame, barriers, estates)
    if pair is None:
        return None
    a, b, union, metric, origin = pair.a, pair.b, pair.union, pair.metric, pair.origin
    positions, xy, households, was_a, estate_ids = pair.positions, pair.xy, pair.households, pair.was_a, pair.estates
    low, high = options.households_min, options.households_max
    reach = pair.reach
    # A piece may come out a little less round than its grid was, never much (nor much below the bar).
    before = [_pp(frame.to_metric(g)) for g in (a, b)]
    floors = [floor(v, bar) for v in before]
    candidates: list[tuple[float, int, float, float]] = []  # (score, moved, angle, offset)
    pieces_of: dict[tuple[float, float], tuple] = {}
    for angle in _angles(frame.to_metric(a), frame.to_metric(b), origin):
        normal = np.array([math.cos(angle), math.sin(angle)])
        along = xy @ normal
        order = np.argsort(along, kind="stable")
        sorted_along = along[order]
        # Cut between consecutive buildings with room for the clearance on both sides.
        gaps = np.flatnonzero(np.diff(sorted_along) >= 2 * CLEARANCE_M)
        offsets = [(sorted_along[k] + sorted_along[k + 1]) / 2 for k in gaps]
        ends = np.array(shapely.get_coordinates(metric)) @ normal
        if len(sorted_along):
            offsets += [sorted_along[0] - CLEARANCE_M, sorted_along[-1] + CLEARANCE_M]
        for offset in offsets:
            if not ends.min() < offset < ends.max():
                continue
            below = along < offset
            a_below = households[below & was_a].sum() >= households[~below & was_a].sum()
            side_a = below if a_below else ~below
            count_a, count_b = households[side_a].sum(), households[~side_a].sum()
            if not (low <= count_a <= high and low <= count_b <= high):
                continue
            if not _estates_whole(estate_ids, below):
                continue
            moved = int(households[side_a != was_a].sum())
            pieces = _halves(metric, normal, offset, reach, a_below)
            if pieces is None:
                continue
            pp = [_pp(p) for p in pieces]
            if any(v < max(options.compact_min, floor) for v, floor in zip(pp, floors, strict=True)):
                continue
            key = (round(angle, 12), round(float(offset), 9))
            pieces_of[key] = (side_a, a_below)
            round_ = 0 if bar is None else sum(v >= bar for v in pp)
            candidates.append((round_ + min(pp) - MOVED_PRICE * moved, moved, *key))
    for score, moved, angle, offset in sorted(candidates, key=lambda c: (-c[0], c[1], c[2], c[3])):
        side_a, a_below = pieces_of[(angle, offset)]
        normal = np.array([math.cos(angle), math.sin(angle)])
        if _cuts_a_footprint(buildings, positions, frame, origin, normal, offset, reach):
            continue
        pieces = _lonlat_halves(union, frame, origin, normal, offset, reach, a_below)
        if pieces is None or any(
            not p.is_valid or _pp(frame.to_metric(p)) < max(options.compact_min, floor)
            for p, floor in zip(pieces, floors, strict=True)
        ):
            continue
        chosen = ([positions[k] for k in np.flatnonzero(side_a)], [positions[k] for k in np.flatnonzero(~side_a)])
        return Shift(codes=tuple(codes), pieces=pieces, members=chosen, moved=moved, score=score)
    return None


@dataclass
class Pair:
    """Two touching grids ready to be re-cut: their union, in lon/lat and in metres around its centroid
    (`origin`), and their buildings (positions, metres, households, whether in the first grid, estate ids)."""

    a: shapely.Geometry
    b: shapely.Geometry
    union: shapely.Geometry
    metric: shapely.Geometry
    origin: np.ndarray
    positions: list[int]
    xy: np.ndarray
    households: np.ndarray
    was_a: np.ndarray
    estates: np.ndarray

    @property
    def reach(self) -> float:
        """A length beyond the union's extent, for lines that must cross all of it."""
        return float(np.hypot(*(np.array(self.metric.bounds).reshape(2, 2))).max()) * 2 + 100.0


def pair_of(geometries, members, buildings, frame, barriers, estates: set[str]) -> Pair | None:
    """Return the pair of grids (lon/lat polygons holding the buildings `members`) as a straight re-cut sees it,
    or None when no re-cut of it may be made: a grid in pieces, a union not one polygon, a barrier across it, an
    outline the union does not keep, no buildings."""
    parts = [shapely.get_parts(g) for g in geometries]
    if any(len(p) != 1 for p in parts):
        return None
    a, b = parts[0][0], parts[1][0]  # a stored grid is often a MultiPolygon of one part
    union = shapely.union_all([a, b])
    if union.geom_type != "Polygon" or any(line.intersects(union) for line in barriers):
        return None
    if abs(union.area - a.area - b.area) > union.area * TILING_TOLERANCE:
        # The overlay snapped a nearly collinear vertex of the outline (seen: a gap of ~0.06 m² by the kept
        # neighbour that still has it): pieces cut from this union would not tile the community exactly.
        return None
    positions = [*members[0], *members[1]]
    if not positions:
        return None
    metric = frame.to_metric(union)
    origin = np.array(metric.centroid.coords[0])
    metric = shapely.transform(metric, lambda xy: xy - origin)
    xy = frame.metric(np.array([(buildings[i]["lon"], buildings[i]["lat"]) for i in positions])) - origin
    return Pair(
        a=a,
        b=b,
        union=union,
        metric=metric,
        origin=origin,
        positions=positions,
        xy=xy,
        households=np.array([buildings[i]["households"] for i in positions], dtype=float),
        was_a=np.arange(len(positions)) < len(members[0]),
        estates=_estate_ids([buildings[i].get("estate") for i in positions], estates),
    )


def _pp(metric) -> float:
    return 0.0 if metric.length == 0 else 4 * math.pi * metric.area / metric.length**2


def _angles(a, b, origin) -> list[float]:
    """Directions of the cut's normal: the old shared edge's and the one along the line joining the centres,
    each turned a little either way."""
    bases = []
    shared = shapely.intersection(a.boundary, b.boundary)
    coordinates = shapely.get_coordinates(shared)
    if len(coordinates) >= 2:
        centred = coordinates - coordinates.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        dx, dy = vt[0]
        bases.append(math.atan2(dx, -dy))  # the normal of the edge's direction
    joining = np.array(b.centroid.coords[0]) - np.array(a.centroid.coords[0])
    if np.hypot(*joining) > 0:
        bases.append(math.atan2(joining[1], joining[0]))
    angles: list[float] = []
    for base in bases:
        for turn in TURNS_DEG:
            angle = (base + math.radians(turn)) % math.pi
            if all(abs(angle - seen) > 1e-6 for seen in angles):
                angles.append(angle)
    return angles


def _estate_ids(estates: list, whole: set[str]) -> np.ndarray:
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(e, len(codes)) if e in whole else -1 for e in estates], dtype=int)


def _estates_whole(estate_ids: np.ndarray, below: np.ndarray) -> bool:
    mine = estate_ids >= 0
    if not mine.any():
        return True
    ids = estate_ids[mine]
    sides = below[mine]
    count = ids.max() + 1
    low = np.bincount(ids, weights=sides.astype(float), minlength=count)
    total = np.bincount(ids, minlength=count)
    return bool(np.all((low == 0) | (low == total)))


def _line(normal: np.ndarray, offset: float, reach: float, origin=(0.0, 0.0)) -> shapely.LineString:
    """The line x·normal = offset (around the centred frame's origin), `reach` either way of its foot."""
    direction = np.array([-normal[1], normal[0]])
    foot = normal * offset + np.asarray(origin)
    return shapely.LineString([foot + direction * reach, foot - direction * reach])


def _split(polygon, line, normal: np.ndarray, offset: float, a_below: bool, origin=(0.0, 0.0), frame=None):
    """Cut a polygon in two along the line (one noding, so both pieces share the very same cut vertices) and
    return the pieces, the first grid's first; None unless the line cuts it into exactly two polygons."""
    import shapely.ops

    pieces = list(shapely.get_parts(shapely.ops.split(polygon, line)))
    if len(pieces) != 2 or any(p.geom_type != "Polygon" or p.is_empty for p in pieces):
        return None
    # split's noding can nudge a new vertex off the outline it lands on (seen: a sliver of ~0.2 m² over the kept
    # neighbour): such a cut would not tile the pair's outline exactly, so it is not offered.
    if abs(pieces[0].area + pieces[1].area - polygon.area) > polygon.area * TILING_TOLERANCE:
        return None
    point = np.array(pieces[0].representative_point().coords[0]).reshape(1, 2)
    if frame is not None:
        point = frame.metric(point)
    below = float(((point - np.asarray(origin)) @ normal)[0]) < offset
    return (pieces[0], pieces[1]) if below == a_below else (pieces[1], pieces[0])


def _halves(metric, normal, offset, reach, a_below: bool):
    """The two pieces of the (metric, centred) union, the first grid's first; None unless each is one polygon."""
    return _split(metric, _line(normal, offset, reach), normal, offset, a_below)


def _lonlat_halves(union, frame, origin, normal, offset, reach, a_below: bool):
    """The same cut made in lon/lat, so the pieces keep U's outline vertex for vertex."""
    line = frame.to_lonlat(_line(normal, offset, reach, origin))
    return _split(union, line, normal, offset, a_below, origin, frame)


def _cuts_a_footprint(buildings, positions, frame, origin, normal, offset, reach) -> bool:
    footprints = [buildings[i].get("footprint") for i in positions]
    footprints = [f for f in footprints if f is not None]
    if not footprints:
        return False
    line = frame.to_lonlat(_line(normal, offset, reach, origin))
    return bool(np.any(shapely.intersects(np.array(footprints, dtype=object), line)))
