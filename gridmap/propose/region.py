"""One community at a time: which grids stay, which are redrawn (with which neighbours), and the new grids.

A comprehensive grid is *good* when its households are in range, it is one polygon, reasonably compact and
inside its community; with `keep_good` good grids stay exactly as they are. The others are grouped into
regions of touching grids; a region whose households cannot be divided into grids within the range takes in
the neighbouring good grid that makes the cheapest flow plan possible, one at a time, until it can (or no
neighbour is left). A neighbour as round as the edition's median costs more to take in than a ragged one
(`choice`): the awkward grids are redrawn, the well-shaped ones left as they are. Dedicated (专属) grids are
never redrawn: the households range does not apply to them. Before any region is formed, a grid whose only
fault is its households count is first offered a straight edge shift with one neighbour (`shift`): the pair is
re-cut by one line and nothing else changes; only the grids no shift fits go to the region redraw.

Which neighbours a region takes in is `growth`; redrawing a region is `redraw`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from gridmap.propose import cells as cell_rules
from gridmap.propose import choice, rounding, shift
from gridmap.propose.division import pieces
from gridmap.propose.growth import Grids
from gridmap.propose.redraw import NewGrid, Solution, grid_of, solve_region

DEDICATED = "专属"
MIN_SHARED_M = 0.5  # grids sharing less boundary than this are not neighbours


@dataclass
class CommunityPlan:
    """What the proposal does in one community."""

    code: str
    name: str
    kept: list[str] = field(default_factory=list)
    redrawn: list[str] = field(default_factory=list)
    grids: list[NewGrid] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # good grids taken in so the region could balance
    buildings: list[int] = field(default_factory=list)  # positions (in the list handed in) of its buildings
    exceptions: list[dict] = field(default_factory=list)
    note: str | None = None


# ---- the community -------------------------------------------------------------------------------------------
def plan_community(
    community: dict,
    grids: list[dict],
    buildings: Sequence[dict],
    *,
    options,
    barriers: Sequence = (),
    round_bar: float | None = None,
) -> CommunityPlan:
    """Propose the grids of one community (grids: its grids as dicts; buildings: those in it, each with the
    old grid it lies in under `grid`; round_bar: the edition's median Polsby–Popper, above which a neighbour
    is taken in only when a rounder-to-lose one will not do: see `choice`; default the community's own)."""
    plan = CommunityPlan(code=community["code"], name=community["name"])
    frame = cell_rules.Frame.around(community["geometry"])
    if not buildings:
        plan.kept = [g["code"] for g in grids]
        plan.note = "no buildings of the register lie in this community: left as it is"
        return plan
    households = defaultdict(int)
    for b in buildings:
        households[b["grid"]] += b["households"]
    codes = [g["code"] for g in grids]
    neighbours = _grid_neighbours(grids, frame)
    shapes = dict(zip(codes, choice.compactness(g["geometry"] for g in grids), strict=True))
    if round_bar is None:
        round_bar = float(np.median(list(shapes.values()))) if shapes else None
    bad = {
        g["code"] for g in grids if g.get("kind") != DEDICATED and not _good(g, households, community, frame, options)
    }
    beside_gaps = _grids_beside_gaps(community, grids, frame)
    bad |= beside_gaps
    if not options.keep_good:
        bad = {g["code"] for g in grids if g.get("kind") != DEDICATED}
    shifts = []
    if options.keep_good and getattr(options, "shift", True):
        whole = {  # the grids whose sole fault, if any, is their households count
            g["code"]
            for g in grids
            if g.get("kind") != DEDICATED
            and g["code"] not in beside_gaps
            and _good(g, households, community, frame, options, count=False)
        }
        shifts = shift.plan_shifts(
            grids, buildings, households, bad & whole, whole, neighbours, frame, options, barriers, round_bar
        )
    shifted = {code for s in shifts for code in s.codes}
    bad -= shifted
    growable = {g["code"] for g in grids if g.get("kind") != DEDICATED} - bad - shifted
    balance = Grids(neighbours, households, options, choice.round_prices(shapes, round_bar))
    solved: dict[frozenset, Solution] = {}
    added: list[str] = []
    for _ in range(len(grids) + 1):
        grown = False
        for component in pieces(bad, neighbours):
            key = frozenset(component)
            if key in solved:
                continue
            growth = balance.growth(component, growable - bad)
            if growth:
                bad.update(growth)
                added += growth
                grown = True
                break
            solution = solve_region(community, grids, component, buildings, frame, options, barriers)
            candidate = balance.grow_choice(component, growable - bad)
            if solution.failures and candidate is not None and len(added) < options.max_added * max(1, len(solved) + 1):
                bad.add(candidate)
                added.append(candidate)
                grown = True
                break
            solved[key] = solution
        if not grown:
            break
    final = {frozenset(c) for c in pieces(bad, neighbours)}
    plan.added = [c for c in added if c in bad]
    plan.kept = [c for c in codes if c not in bad and c not in shifted]
    for s in shifts:
        plan.redrawn += sorted(s.codes)
        for code, piece, members in zip(s.codes, s.pieces, s.members, strict=True):
            grid = grid_of(piece, sorted(members), buildings)
            grid.continues = code
            plan.grids.append(grid)
    for key in sorted(final, key=lambda k: sorted(k)):
        solution = solved.get(key) or solve_region(community, grids, set(key), buildings, frame, options, barriers)
        plan.redrawn += sorted(solution.redrawn)
        plan.kept += sorted(solution.unchanged)
        plan.grids += solution.grids
        plan.exceptions += solution.exceptions
    if options.keep_good and getattr(options, "rounding", True) and round_bar is not None:
        _round_out(plan, grids, buildings, shapes, frame, options, barriers, round_bar)
    plan.kept.sort()
    return plan


def _round_out(plan: CommunityPlan, grids: list[dict], buildings, shapes, frame, options, barriers, bar: float) -> None:
    """Lift grids below the bar to it by straight re-cuts of pairs that may change (see `rounding`); shapes: the
    old grids' Polsby–Popper values."""
    by_code = {g["code"]: g for g in grids}
    members: dict[str | None, list[int]] = defaultdict(list)
    for i, b in enumerate(buildings):
        members[b["grid"]].append(i)
    pieces = []
    for code in plan.kept:
        grid = by_code[code]
        value = shapes[code]
        mutable = grid.get("kind") != DEDICATED and value < bar
        pieces.append(rounding.Piece(code, grid["geometry"], members.get(code, []), mutable, False, value))
    for number, grid in enumerate(plan.grids):
        pieces.append(rounding.Piece(f"#{number}", grid.geometry, list(grid.buildings), grid.huge is None, True))
    if sum(p.mutable for p in pieces) < 2:
        return
    links = _grid_neighbours([{"code": p.key, "geometry": p.geometry} for p in pieces], frame)
    neighbours = {key: set(others) for key, others in links.items()}
    made = rounding.round_out(pieces, buildings, neighbours, frame, options, barriers, bar)
    changed = {key for pair in made for key in pair}
    for piece in pieces:
        if piece.key not in changed:
            continue
        grid = grid_of(piece.geometry, piece.members, buildings)
        if piece.new:
            old = plan.grids[int(piece.key[1:])]
            grid.continues, grid.huge = old.continues, old.huge
            plan.grids[int(piece.key[1:])] = grid
        else:
            grid.continues = piece.key
            plan.kept.remove(piece.key)
            plan.redrawn.append(piece.key)
            plan.grids.append(grid)


def _good(grid: dict, households: dict, community: dict, frame, options, *, count: bool = True) -> bool:
    number = households.get(grid["code"], 0)
    if count and not options.households_min <= number <= options.households_max:
        return False
    geometry = grid["geometry"]
    if len(shapely.get_parts(geometry)) != 1 or not geometry.is_valid:
        return False
    if cell_rules.polsby_popper(geometry, frame) < options.compact_min:
        return False
    outside = frame.to_metric(geometry.difference(community["geometry"])).area
    return outside < 1.0


def _grid_neighbours(grids: list[dict], frame) -> dict[str, dict[str, float]]:
    geometries = np.array([g["geometry"] for g in grids], dtype=object)
    neighbours: dict[str, dict[str, float]] = {g["code"]: {} for g in grids}
    if len(grids) < 2:
        return neighbours
    left, right = shapely.STRtree(geometries).query(geometries, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(
        frame.to_metric(shapely.intersection(shapely.boundary(geometries[left]), shapely.boundary(geometries[right])))
    )
    for a, b, length in zip(left.tolist(), right.tolist(), shared.tolist(), strict=True):
        if length >= MIN_SHARED_M:
            neighbours[grids[a]["code"]][grids[b]["code"]] = length
            neighbours[grids[b]["code"]][grids[a]["code"]] = length
    return neighbours


def _grids_beside_gaps(community: dict, grids: list[dict], frame) -> set[str]:
    """Return, for every gap of the community, the grid sharing most boundary with it (it will absorb it)."""
    covered = shapely.union_all([g["geometry"] for g in grids]) if grids else shapely.Polygon()
    gaps = [g for g in shapely.get_parts(community["geometry"].difference(covered)) if frame.to_metric(g).area >= 1.0]
    chosen = set()
    for gap in gaps:
        shared = [frame.to_metric(gap.boundary.intersection(g["geometry"].boundary)).length for g in grids]
        if shared and max(shared) > 0 and grids[int(np.argmax(shared))].get("kind") != DEDICATED:
            chosen.add(grids[int(np.argmax(shared))]["code"])
    return chosen
