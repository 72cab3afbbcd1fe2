"""Rounding: after the plan is drawn, lift grids below the edition's median Polsby–Popper to it, two at a time.

A grid as round as the edition's median Polsby–Popper (the bar) is *compact* in `keep_good`'s sense and stays
exactly as it is. A grid below the bar is whole and in range, and no more: it stays as it is too, unless one
straight re-cut with a touching grid that may also change (another grid below the bar, or a grid the plan drew
anew) lifts one of the two to the bar without pushing the other out of range or more than MAX_DROP below its old
shape. The re-cut keeps the rules of `shift`: the pair's outline is kept, every building stands CLEARANCE_M from
the new edge, estates stay whole, no barrier is crossed; so every other grid stays byte for byte as it was and the
community stays tiled exactly.

Why this step: the demo district's grids are Voronoi-like cells whose Polsby–Popper values crowd just under the
median (a quarter of all grids lie within 0.02 below it). The grids a plan must redraw (a grid of 700 households
split in two, a grid of 200 merged) come out less round than the ones they replace, so the plan's median falls
below the edition's unless some of those crowded grids are lifted over it; a small turn of one shared edge does
that, and moves few households. The cuts are made greedily, the pair that lifts most grids (then moves fewest
households) first, until no re-cut lifts any grid. Then grids thinner than EVEN_BELOW are evened out with a
neighbour the same way (`_even_out`).

The search tries ANGLES directions and, in each, positions OFFSET_STEP_M apart in every gap between buildings
that leaves both sides in range; the pieces' Polsby–Popper values are computed by arithmetic on the outline for
all of them at once (`_clipped_roundness`), and only the chosen cut is made with GEOS and checked again.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from gridmap.propose import shift
from gridmap.propose.cells import Frame, polsby_popper


@dataclass
class Piece:
    """One grid of the community as the plan stands: kept (`new` False) or drawn by the plan."""

    key: str  # the kept grid's code, or a name for a new grid
    geometry: shapely.Geometry
    members: list[int]  # positions in the community's building list
    mutable: bool
    new: bool
    pp: float | None = None  # its Polsby–Popper, when the caller has it already


def roundness(geometry) -> float:
    """Polsby–Popper measured as the plan's figures measure it (in metres around the grid itself)."""
    return polsby_popper(geometry, Frame.around(geometry))


def round_out(
    pieces: list[Piece],
    buildings: Sequence[dict],
    neighbours: dict[str, set[str]],
    frame,
    options,
    barriers: Sequence,
    bar: float,
) -> list[tuple[str, str]]:
    """Re-cut pairs of mutable pieces while a re-cut lifts a piece to the bar; change `pieces` in place and return
    the pairs re-cut (keys), in the order they were made."""
    by_key = {p.key: p for p in pieces}
    for p in pieces:
        if p.pp is None:
            p.pp = roundness(p.geometry)
    estates = shift._estates_within_max(buildings, options)
    version = dict.fromkeys(by_key, 0)
    heap: list[tuple] = []

    def offer(a: str, b: str) -> None:
        first, second = by_key[a], by_key[b]
        if not (first.mutable and second.mutable) or (first.pp >= bar and second.pp >= bar):
            return
        found = lifting_cut(first, second, buildings, frame, options, barriers, estates, bar)
        if found is None:
            return
        gained, moved, cut, after = found
        heapq.heappush(heap, (-gained, moved, a, b, version[a], version[b], cut, after))

    for a in sorted(by_key):
        for b in sorted(neighbours.get(a, ())):
            if a < b:
                offer(a, b)
    made = []
    while heap:
        _, _, a, b, va, vb, cut, after = heapq.heappop(heap)
        if version[a] != va or version[b] != vb:
            continue
        _apply(by_key, neighbours, a, b, cut, after, frame)
        version[a] += 1
        version[b] += 1
        made.append((a, b))
        for key in (a, b):
            for other in sorted(neighbours.get(key, ())):
                pair = (key, other) if key < other else (other, key)
                offer(*pair)
    made += _even_out(by_key, buildings, neighbours, frame, options, barriers, estates, bar)
    return made


def _even_out(by_key, buildings, neighbours, frame, options, barriers, estates, bar) -> list[tuple[str, str]]:
    """Re-cut a sliver-thin piece (below EVEN_BELOW, typically half of a grid split along a row of its buildings)
    with the mutable neighbour whose straight re-cut makes the less round of the two roundest, the thinnest piece
    first, while one can be made EVEN_STEP rounder; no piece at the bar is lost."""
    made: list[tuple[str, str]] = []
    tried: set[tuple] = set()
    for _ in range(len(by_key)):
        thin = sorted((p for p in by_key.values() if p.mutable and p.pp < EVEN_BELOW), key=lambda p: (p.pp, p.key))
        chosen = None
        for piece in thin:
            for other in sorted(neighbours.get(piece.key, ())):
                partner = by_key[other]
                state = (piece.key, other, piece.pp, partner.pp)
                if not partner.mutable or state in tried:
                    continue
                tried.add(state)
                found = lifting_cut(piece, partner, buildings, frame, options, barriers, estates, bar, even=True)
                if found is not None and (chosen is None or min(found[3]) > min(chosen[1][3])):
                    chosen = ((piece.key, other), found)
            if chosen is not None:
                break
        if chosen is None:
            return made
        (a, b), (_, _, cut, after) = chosen
        _apply(by_key, neighbours, a, b, cut, after, frame)
        made.append((a, b))
    return made


def _apply(by_key, neighbours, a: str, b: str, cut, after, frame) -> None:
    """Make a re-cut: the two pieces take their new outlines, buildings and Polsby–Popper values."""
    for key, geometry, members, value in zip((a, b), cut.pieces, cut.members, after, strict=True):
        by_key[key].geometry, by_key[key].members, by_key[key].pp = geometry, sorted(members), value
    _update_neighbours(neighbours, by_key, a, b, frame)


def _update_neighbours(neighbours, by_key, a: str, b: str, frame) -> None:
    """The pair's outline is unchanged, so its outer neighbours are those it had; which of the two each touches
    may have changed."""
    around = (set(neighbours.get(a, ())) | set(neighbours.get(b, ()))) - {a, b}
    for key in (a, b):
        for other in around:
            shared = frame.to_metric(
                shapely.intersection(by_key[key].geometry.boundary, by_key[other].geometry.boundary)
            ).length
            if shared >= 0.5:
                neighbours.setdefault(key, set()).add(other)
                neighbours.setdefault(other, set()).add(key)
            else:
                neighbours.get(key, set()).discard(other)
                neighbours.get(other, set()).discard(key)


# ---- the search for one pair -----------------------------------------------------------------------------------
ANGLES = 120  # directions of the cut tried, evenly over half a turn
OFFSET_STEP_M = 2.0  # spacing of the cut positions tried within one gap between buildings
MAX_PER_GAP = 16
MAX_DROP = 0.1  # how much less round than it was a piece below the bar may become to lift its partner
MARGIN = 1e-4  # a piece counts as lifted only this far above the bar (frames differ in the last digits)
EVEN_BELOW = 0.5  # a piece less round than this (a 4:1 rectangle is 0.50) is evened out with a neighbour
EVEN_STEP = 0.05  # … when a straight re-cut makes the less round of the two this much rounder at least


def lifting_cut(first: Piece, second: Piece, buildings, frame, options, barriers, estates, bar, *, even=False):
    """Return (gained, households moved, the cut, the pieces' Polsby–Popper) of the straight re-cut of two pieces
    that lifts most of them to the bar (then moves fewest households); None when no allowed cut lifts one.
    With `even`, the cut instead that makes the less round of the two roundest, lifting it by EVEN_STEP at least
    and losing no piece at the bar."""
    pair = shift.pair_of(
        (first.geometry, second.geometry), (first.members, second.members), buildings, frame, barriers, estates
    )
    if pair is None:
        return None
    union, metric, origin, positions, xy = pair.union, pair.metric, pair.origin, pair.positions, pair.xy
    before = (first.pp >= bar) + (second.pp >= bar)
    floors = np.array([_floor(first.pp, bar), _floor(second.pp, bar)])
    floors = np.maximum(floors, options.compact_min)
    if len(metric.interiors):
        return None  # a pair around a third grid: no straight cut keeps the third one's outline
    angle, offset, a_below, moved = _candidates(metric, xy, pair.households, pair.was_a, pair.estates, options)
    if not len(angle):
        return None
    single, pp_low, pp_high = _clipped_roundness(np.array(metric.exterior.coords), angle, offset)
    pp_a, pp_b = np.where(a_below, pp_low, pp_high), np.where(a_below, pp_high, pp_low)
    gained = (pp_a >= bar + MARGIN).astype(int) + (pp_b >= bar + MARGIN) - before
    least = min(first.pp, second.pp) + EVEN_STEP
    if even:
        ok = single & (np.minimum(pp_a, pp_b) >= least) & (gained >= 0)
        order = np.lexsort((moved, -np.round(np.minimum(pp_a, pp_b), 2)))
    else:
        ok = single & (pp_a >= floors[0]) & (pp_b >= floors[1]) & (gained > 0)
        order = np.lexsort((-np.minimum(pp_a, pp_b), moved, -gained))
    if not ok.any():
        return None
    reach = pair.reach
    for k in order[ok[order]][:6]:
        normal = np.array([np.cos(angle[k]), np.sin(angle[k])])
        if shift._cuts_a_footprint(buildings, positions, frame, origin, normal, offset[k], reach):
            continue
        pieces = shift._lonlat_halves(union, frame, origin, normal, offset[k], reach, bool(a_below[k]))
        if pieces is None or not all(p.is_valid for p in pieces):
            continue
        after = [roundness(p) for p in pieces]
        now = sum(v >= bar for v in after) - before
        if even and (now < 0 or min(after) < least):
            continue
        if not even and (now <= 0 or after[0] < floors[0] or after[1] < floors[1]):
            continue
        side = ((xy @ normal) < offset[k]) == bool(a_below[k])
        members = ([positions[i] for i in np.flatnonzero(side)], [positions[i] for i in np.flatnonzero(~side)])
        cut = shift.Shift(codes=(first.key, second.key), pieces=pieces, members=members, moved=int(moved[k]), score=0)
        return now, int(moved[k]), cut, after
    return None


def _floor(old: float, bar: float) -> float:
    return bar if old >= bar else old - MAX_DROP


def _candidates(metric, xy, households, was_a, estate_ids, options):
    """Return (angle, offset, a_below, households moved), one entry per cut that leaves every building clear of
    the line, both sides within the range and every estate whole: every direction of ANGLES, and positions spread
    over each gap between buildings wide enough for the clearance."""
    low, high = options.households_min, options.households_max
    clearance = shift.CLEARANCE_M
    angles = np.arange(ANGLES) * np.pi / ANGLES
    normals = np.column_stack([np.cos(angles), np.sin(angles)])
    along = xy @ normals.T  # (buildings, angles)
    order = np.argsort(along, axis=0, kind="stable")
    s = np.take_along_axis(along, order, axis=0)
    ends = np.asarray(shapely.get_coordinates(metric)) @ normals.T
    starts = np.vstack([ends.min(axis=0), s + clearance])  # gap k lies after the first k buildings
    stops = np.vstack([s - clearance, ends.max(axis=0)])
    zero = np.zeros((1, len(angles)))
    below = np.vstack([zero, np.cumsum(households[order], axis=0)])
    below_a = np.vstack([zero, np.cumsum((households * was_a)[order], axis=0)])
    total, total_a = households.sum(), households[was_a].sum()
    a_below = below_a >= total_a - below_a
    count_a = np.where(a_below, below, total - below)
    count_b = total - count_a
    moved = np.where(a_below, below - below_a + total_a - below_a, below_a + total - below - (total_a - below_a))
    fine = (stops > starts) & _estates_whole_at(estate_ids, order)
    fine &= (count_a >= low) & (count_a <= high) & (count_b >= low) & (count_b <= high)
    k, column = np.nonzero(fine)
    width = stops[k, column] - starts[k, column]
    steps = np.clip(width // OFFSET_STEP_M, 1, MAX_PER_GAP).astype(int)
    row = np.repeat(np.arange(len(k)), steps)
    within = np.arange(len(row)) - np.repeat(np.cumsum(steps) - steps, steps)
    offsets = starts[k, column][row] + width[row] * (within + 0.5) / steps[row]
    return angles[column][row], offsets, a_below[k, column][row], moved[k, column][row]


def _estates_whole_at(estate_ids: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each direction (a column of `order`, the buildings sorted along it), whether a cut after the first k
    buildings (k = 0 … n) leaves every estate whole (ids -1: no estate to keep whole)."""
    n, directions = order.shape
    whole = np.ones((n + 1, directions), dtype=bool)
    kept = estate_ids >= 0
    if not kept.any():
        return whole
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[:, None], axis=0)
    ids = estate_ids[kept]
    count = ids.max() + 1
    columns = np.broadcast_to(np.arange(directions), (len(ids), directions))
    first = np.full((count, directions), n)
    last = np.full((count, directions), -1)
    np.minimum.at(first, (ids[:, None], columns), rank[kept])
    np.maximum.at(last, (ids[:, None], columns), rank[kept])
    present = last >= 0
    broken = np.zeros((n + 2, directions), dtype=int)
    estate_columns = np.broadcast_to(np.arange(directions), first.shape)
    np.add.at(broken, (first[present] + 1, estate_columns[present]), 1)
    np.add.at(broken, (last[present] + 1, estate_columns[present]), -1)
    return np.cumsum(broken, axis=0)[: n + 1] == 0


def _clipped_roundness(ring: np.ndarray, angle: np.ndarray, offset: np.ndarray):
    """Cut a polygon (its closed outer ring, no holes) by the lines x·n = offset; return, per line, whether it
    cuts the polygon into exactly two pieces (the ring crosses it twice) and the Polsby–Popper value of the piece
    below the line and of the one above. Plain arithmetic on the ring, as shapely would do one cut at a time."""
    normal = np.column_stack([np.cos(angle), np.sin(angle)])
    start, edge = ring[:-1], np.diff(ring, axis=0)
    d = ring @ normal.T - offset  # (vertices, cuts)
    inside = d < 0
    d0, d1, in0, in1 = d[:-1], d[1:], inside[:-1], inside[1:]
    crossing = in0 != in1
    single = crossing.sum(axis=0) == 2
    t = np.where(crossing, d0 / np.where(crossing, d0 - d1, 1.0), 0.0)
    x = start[:, None, :] + t[..., None] * edge[:, None, :]  # (edges, cuts, 2)
    leaving, entering = in0 & ~in1, ~in0 & in1
    head = np.where((in0)[..., None], start[:, None, :], x)  # the part of each edge below the line
    tail = np.where((in1)[..., None], ring[1:][:, None, :], x)
    part = in0 | in1
    cross = np.where(part, head[..., 0] * tail[..., 1] - head[..., 1] * tail[..., 0], 0.0)
    length = np.where(part, np.hypot(*(tail - head).transpose(2, 0, 1)), 0.0)
    out = x[leaving.argmax(axis=0), np.arange(len(angle))]
    back = x[entering.argmax(axis=0), np.arange(len(angle))]
    chord_cross = out[:, 0] * back[:, 1] - out[:, 1] * back[:, 0]
    chord = np.hypot(*(back - out).T)
    area_low = np.abs(cross.sum(axis=0) + chord_cross) / 2
    perimeter_low = length.sum(axis=0) + chord
    total_cross = start[:, 0] * ring[1:, 1] - start[:, 1] * ring[1:, 0]
    area = abs(total_cross.sum()) / 2
    perimeter = np.hypot(*edge.T).sum()
    area_high = area - area_low
    perimeter_high = perimeter - length.sum(axis=0) + chord
    with np.errstate(divide="ignore", invalid="ignore"):
        pp_low = np.where(single, 4 * np.pi * area_low / perimeter_low**2, 0.0)
        pp_high = np.where(single, 4 * np.pi * area_high / perimeter_high**2, 0.0)
    return single, pp_low, pp_high
