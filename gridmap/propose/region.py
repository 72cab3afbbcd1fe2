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
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from gridmap.propose import cells as cell_rules
from gridmap.propose import choice, power, shift
from gridmap.propose import partition as p

DEDICATED = "专属"
FOOTPRINT_STEP_M = 6.0  # spacing of the points that stand for a footprint's outline
MAX_FOOTPRINT_POINTS = 48
MIN_SHARED_M = 0.5  # grids sharing less boundary than this are not neighbours
GROW_SAVING = 20  # households fewer to move that make taking in one more neighbour worth it
GROW_AT_ONCE = 3
GROW_POOL = {2: 5, 3: 4}  # how many of the best single neighbours pairs and triples are drawn from
PER_NEIGHBOUR = 10  # what taking in one more neighbour counts against a plan, in households
PLANS_TRIED = 3  # balancings tried, best first, until one leaves every grid in range


@dataclass
class NewGrid:
    """One proposed grid of a community."""

    geometry: shapely.Geometry
    households: int
    population: int | None
    buildings: list[int]  # positions in the building list handed in
    sources: dict[str, int]  # old grid code → households it brings
    continues: str | None = None  # the old code it keeps (it holds most of that grid, and mostly that grid)
    huge: str | None = None  # the code of the one building above the maximum that makes up this grid
    code: str | None = None
    name: str | None = None


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


@dataclass
class _Atom:
    buildings: list[int]
    households: int
    population: int | None
    old: str | None
    estate: str | None
    point: tuple[float, float]


def _atoms(buildings: Sequence[dict], positions: Sequence[int]) -> list[_Atom]:
    """Group the buildings standing at the same point (they cannot be told apart by a line)."""
    by_point: dict[tuple, list[int]] = defaultdict(list)
    for i in positions:
        b = buildings[i]
        key = (round(b["lon"], 7), round(b["lat"], 7)) if b.get("footprint") is None else ("footprint", i)
        by_point[key].append(i)
    atoms = []
    for members in by_point.values():
        first = buildings[members[0]]
        estates = {buildings[i].get("estate") for i in members}
        olds: dict[str | None, int] = defaultdict(int)
        for i in members:
            olds[buildings[i]["grid"]] += buildings[i]["households"]
        population = [buildings[i].get("population") for i in members]
        atoms.append(
            _Atom(
                buildings=list(members),
                households=sum(buildings[i]["households"] for i in members),
                population=None if any(v is None for v in population) else sum(population),
                old=max(sorted(olds, key=str), key=olds.__getitem__),
                estate=estates.pop() if len(estates) == 1 else None,
                point=(first["lon"], first["lat"]),
            )
        )
    return atoms


def _sites(atoms: list[_Atom], buildings: Sequence[dict], region, frame) -> tuple[np.ndarray, np.ndarray]:
    """Return the points the cells are drawn around (a footprint gives points along its outline) and the atom
    each belongs to."""
    points, owners = [], []
    seen: set[tuple[float, float]] = set()
    for index, atom in enumerate(atoms):
        candidates = [atom.point]
        footprint = buildings[atom.buildings[0]].get("footprint")
        if footprint is not None:
            outline = frame.to_metric(footprint.exterior if footprint.geom_type == "Polygon" else footprint.boundary)
            steps = int(min(MAX_FOOTPRINT_POINTS, max(4, outline.length // FOOTPRINT_STEP_M)))
            ring = shapely.line_interpolate_point(outline, np.linspace(0, 1, steps, endpoint=False), normalized=True)
            candidates += [tuple(xy) for xy in shapely.get_coordinates(frame.to_lonlat(ring))]
        for xy in candidates:
            key = (round(xy[0], 8), round(xy[1], 8))
            if key in seen or not region.covers(shapely.Point(xy)):
                continue
            seen.add(key)
            points.append(xy)
            owners.append(index)
    return np.array(points, dtype=float).reshape(-1, 2), np.array(owners, dtype=int)


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
    balance = _Grids(neighbours, households, options, choice.round_prices(shapes, round_bar))
    solved: dict[frozenset, _Solution] = {}
    added: list[str] = []
    for _ in range(len(grids) + 1):
        grown = False
        for component in _components(bad, neighbours):
            key = frozenset(component)
            if key in solved:
                continue
            growth = balance.growth(component, growable - bad)
            if growth:
                bad.update(growth)
                added += growth
                grown = True
                break
            solution = _solve(community, grids, component, buildings, frame, options, barriers)
            candidate = balance.grow_choice(component, growable - bad)
            if solution.failures and candidate is not None and len(added) < options.max_added * max(1, len(solved) + 1):
                bad.add(candidate)
                added.append(candidate)
                grown = True
                break
            solved[key] = solution
        if not grown:
            break
    final = {frozenset(c) for c in _components(bad, neighbours)}
    plan.added = [c for c in added if c in bad]
    plan.kept = [c for c in codes if c not in bad and c not in shifted]
    for s in shifts:
        plan.redrawn += sorted(s.codes)
        for code, piece, members in zip(s.codes, s.pieces, s.members, strict=True):
            grid = _grid_of(piece, sorted(members), buildings)
            grid.continues = code
            plan.grids.append(grid)
    for key in sorted(final, key=lambda k: sorted(k)):
        solution = solved.get(key) or _solve(community, grids, set(key), buildings, frame, options, barriers)
        plan.redrawn += sorted(solution.redrawn)
        plan.kept += sorted(solution.unchanged)
        plan.grids += solution.grids
        plan.exceptions += solution.exceptions
    plan.kept.sort()
    return plan


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


def _components(codes: set[str], neighbours: dict[str, dict[str, float]]) -> list[set[str]]:
    remaining, pieces = set(codes), []
    for start in sorted(codes):
        if start not in remaining:
            continue
        piece, stack = {start}, [start]
        remaining.discard(start)
        while stack:
            for other in neighbours[stack.pop()]:
                if other in remaining:
                    remaining.discard(other)
                    piece.add(other)
                    stack.append(other)
        pieces.append(piece)
    return pieces


@dataclass
class _Grids:
    """A community's grids as the balancing sees them: neighbours, households, and the flow plans tried."""

    neighbours: dict[str, dict[str, float]]
    households: dict
    options: object
    prices: dict = field(default_factory=dict)  # code → what taking that grid in costs for its shape
    plans: dict = field(default_factory=dict)

    def plan(self, members) -> p.FlowPlan | None:
        """Return the best balancing of a region made of these grids (cached), or None."""
        key = tuple(sorted(members))
        if key not in self.plans:
            position = {c: i for i, c in enumerate(key)}
            pairs = {
                (position[a], position[b])
                for a in key
                for b in self.neighbours[a]
                if b in position and position[a] < position[b]
            }
            self.plans[key] = p.plan_flows(
                [float(self.households.get(c, 0)) for c in key],
                pairs,
                low=self.options.households_min,
                high=self.options.households_max,
                target=self.options.target,
            )
        return self.plans[key]

    def touching(self, component: set[str], candidates: set[str]) -> list[str]:
        """Return the candidate grids sharing an edge with the component."""
        return sorted({n for c in component for n in self.neighbours[c] if n in candidates})

    def growth(self, component: set[str], candidates: set[str]) -> list[str]:
        """Return the neighbouring good grids (up to GROW_AT_ONCE) worth taking in: the region cannot balance
        without them, or can only by moving clearly more households (a split or a dissolved grid where shifting
        boundaries into a few neighbours would do). Empty when the region is best as it is."""
        from itertools import combinations

        touching = self.touching(component, candidates)
        alone = self.plan(component)
        best: tuple[float, int, list[str]] | None = None
        singles: list[tuple[float, str]] = []
        for size in range(1, GROW_AT_ONCE + 1):
            # Pairs and triples are drawn from the neighbours that did best alone, to keep the LPs few.
            pool = touching if size == 1 else [code for _, code in sorted(singles)[: GROW_POOL[size]]]
            for extra in combinations(pool, size):
                plan = self.plan(component | set(extra))
                score = math.inf if plan is None else plan.score
                if size == 1:
                    singles.append((score + self.prices.get(extra[0], 0.0), extra[0]))
                if plan is None:
                    continue
                price = sum(self.prices.get(code, 0.0) for code in extra)
                key = (score + PER_NEIGHBOUR * size + price, size, list(extra))
                if best is None or key < best:
                    best = key
            if best is not None and alone is None and not any(self.prices.get(c, 0.0) for c in best[2]):
                break  # the fewest neighbours that make it balance, unless one of them is round: try more
        if best is None:
            return []
        if alone is not None and best[0] >= alone.score - max(GROW_SAVING, 0.1 * alone.score):
            return []
        return best[2]

    def grow_choice(self, component: set[str], candidates: set[str]) -> str | None:
        """Pick the neighbouring good grid whose joining gives the best balancing (or, when none balances,
        brings the region's total closest to a whole number of grids)."""
        best, best_key = None, None
        total = sum(self.households.get(c, 0) for c in component)
        for code in self.touching(component, candidates):
            plan = self.plan(component | {code})
            shared = sum(self.neighbours[code].get(c, 0.0) for c in component)
            if plan is not None:
                key = (0, plan.score + self.prices.get(code, 0.0), -shared, code)
            else:
                key = (1, _distance_to_feasible(total + self.households.get(code, 0), self.options), -shared, code)
            if best_key is None or key < best_key:
                best, best_key = code, key
        return best


def _distance_to_feasible(total: float, options) -> float:
    low, high = options.households_min, options.households_max
    k = max(1, round(total / ((low + high) / 2)))
    return min(max(0.0, j * low - total) + max(0.0, total - j * high) for j in (k - 1, k, k + 1) if j >= 1)


# ---- dividing one region ---------------------------------------------------------------------------------------
@dataclass
class _Solution:
    grids: list[NewGrid]
    redrawn: set[str]
    unchanged: set[str]
    exceptions: list[dict]
    failures: int


def _solve(community, grids, component: set[str], buildings, frame, options, barriers) -> _Solution:
    """Divide the region made of the component's grids (plus any gaps next to them) into new grids."""
    by_code = {g["code"]: g for g in grids}
    region = _region(community, grids, component)
    inside = [i for i, b in enumerate(buildings) if b["grid"] in component or b["grid"] is None]
    atoms = _atoms(buildings, inside)
    atoms = [a for a in atoms if region.covers(shapely.Point(a.point))]
    # Each region draws from its own stream, so its plan does not depend on the order regions are solved in.
    rng = np.random.default_rng([options.seed, zlib.crc32(",".join(sorted(component)).encode())])
    result = _divide(region, atoms, buildings, component, frame, options, barriers, rng)
    if result is None:
        return _Solution([], set(), set(component), [_no_buildings(component)], 0)
    groups, atom_group, failures = result
    # A group holding exactly the buildings of one old grid is that grid unchanged: keep its very outline.
    unchanged = _unchanged(groups, atom_group, atoms, buildings, component, by_code, options)
    if unchanged:
        region_left = shapely.difference(region, shapely.union_all([by_code[c]["geometry"] for c in unchanged]))
        keep = [i for i, a in enumerate(atoms) if a.old not in unchanged]
        outlines = _outlines(
            region_left,
            [atoms[i] for i in keep],
            [atom_group[i] for i in keep],
            buildings,
            frame,
            barriers,
            len(groups),
        )
        used = {atom_group[i] for i in keep}
        covered = sum(outlines[g].area for g in used)
        if (
            any(outlines[g].geom_type != "Polygon" for g in used)
            or abs(covered - region_left.area) > 1e-9 * region.area
        ):
            unchanged = set()  # the rest does not divide cleanly around the kept grid: redraw it too
    if not unchanged:
        outlines = _outlines(region, atoms, atom_group, buildings, frame, barriers, len(groups))
    new_grids, exceptions = [], []
    for group, members in enumerate(groups):
        if not members or (unchanged and _old_of(members, atoms) in unchanged):
            continue
        grid = _new_grid(outlines[group], members, atoms, buildings)
        if len(members) == 1 and atoms[members[0]].households > options.households_max:
            grid.huge = buildings[atoms[members[0]].buildings[0]]["code"]
            exceptions.append(
                {
                    "kind": "building_above_max",
                    "building": grid.huge,
                    "households": grid.households,
                    "detail": f"building {grid.huge} alone has {grid.households} households "
                    f"(> {options.households_max}): a grid of its own",
                }
            )
        new_grids.append(grid)
    _continuations(new_grids, component, buildings)
    return _Solution(new_grids, set(component) - unchanged, unchanged, exceptions, failures)


def _no_buildings(component: set[str]) -> dict:
    return {
        "kind": "no_buildings",
        "codes": sorted(component),
        "detail": "no building of the register stands in " + ", ".join(sorted(component)) + ": left as it is",
    }


def _region(community, grids, component: set[str]):
    geometry = shapely.union_all([g["geometry"] for g in grids if g["code"] in component])
    covered = shapely.union_all([g["geometry"] for g in grids])
    gaps = [gap for gap in shapely.get_parts(community["geometry"].difference(covered)) if gap.intersects(geometry)]
    if gaps:
        geometry = shapely.union_all([geometry, *gaps])
    return shapely.intersection(geometry, community["geometry"])


def _divide(region, atoms: list[_Atom], buildings, component, frame, options, barriers, rng):
    """Return (groups as lists of atom positions, the group of each atom, groups left out of range)."""
    if not atoms:
        return None
    sites, owner = _sites(atoms, buildings, region, frame)
    cells = cell_rules.build_cells(region, sites, frame, barriers)
    atom_neighbours: list[dict[int, list[float]]] = [{} for _ in atoms]
    for site, links in enumerate(cells.neighbours):
        for other, (plain, barrier) in links.items():
            a, b = int(owner[site]), int(owner[other])
            if a != b:
                entry = atom_neighbours[a].setdefault(b, [0.0, 0.0])
                entry[0] += plain
                entry[1] += barrier
    units, unit_of = _units(atoms, atom_neighbours, options)
    problem = _problem(units, atoms, atom_neighbours, unit_of, frame, options, sorted(component))
    state, best_key = None, None
    # The chosen method first; when it leaves a grid out of range, the other one, and fresh starts from k-means.
    methods = [options.method, *(m for m in ("repair", "rebuild", "rebuild", "rebuild") if m != options.method)]
    for attempt, method in enumerate(methods):
        if attempt and best_key[0] == 0:
            break
        start = _start(problem, units, atoms, sorted(component), options, rng, method=method)
        for plan in [*p.first_plans(problem, start)[:PLANS_TRIED], None][: max(1, PLANS_TRIED)]:
            trial = p.State(labels=start.labels.copy(), identity=list(start.identity))
            trial.refresh(problem)
            p.balance(problem, trial, np.random.default_rng(rng.integers(2**32)), plan)
            trial.refresh(problem)
            key = (p.failures(problem, trial), p.total_cost(problem, trial))
            if best_key is None or key < best_key:
                state, best_key = trial, key
            if key[0] == 0:
                break
    live = [g for g in range(len(state.identity)) if state.members[g]]
    renumber = {g: i for i, g in enumerate(live)}
    groups: list[list[int]] = [[] for _ in live]
    atom_group = [0] * len(atoms)
    for unit, members in enumerate(units):
        group = renumber[int(state.labels[unit])]
        for atom in members:
            groups[group].append(atom)
            atom_group[atom] = group
    return groups, atom_group, best_key[0]


def _units(atoms: list[_Atom], atom_neighbours, options) -> tuple[list[list[int]], list[int]]:
    """Estates within the maximum are one unit (in one piece per connected part); other buildings stand alone."""
    by_estate: dict[str, list[int]] = defaultdict(list)
    for i, atom in enumerate(atoms):
        if atom.estate:
            by_estate[atom.estate].append(i)
    units: list[list[int]] = []
    unit_of = [-1] * len(atoms)
    for estate in sorted(by_estate):
        members = by_estate[estate]
        if sum(atoms[i].households for i in members) > options.households_max:
            continue
        for piece in _pieces(set(members), atom_neighbours):
            for atom in piece:
                unit_of[atom] = len(units)
            units.append(sorted(piece))
    for i in range(len(atoms)):
        if unit_of[i] < 0:
            unit_of[i] = len(units)
            units.append([i])
    return units, unit_of


def _pieces(members: set[int], neighbours) -> list[set[int]]:
    remaining, pieces = set(members), []
    while remaining:
        start = min(remaining)
        piece, stack = {start}, [start]
        remaining.discard(start)
        while stack:
            for other in neighbours[stack.pop()]:
                if other in remaining:
                    remaining.discard(other)
                    piece.add(other)
                    stack.append(other)
        pieces.append(piece)
    return pieces


def _problem(units, atoms, atom_neighbours, unit_of, frame, options, old_codes) -> p.Problem:
    key = {code: i for i, code in enumerate(old_codes)}
    households = np.array([sum(atoms[a].households for a in members) for members in units], dtype=float)
    xy = np.zeros((len(units), 2))
    old: list[dict[int, int]] = []
    for u, members in enumerate(units):
        points = cell_rules.Frame.metric(frame, np.array([atoms[a].point for a in members]))
        weights = np.array([atoms[a].households for a in members], dtype=float) + 1e-3
        xy[u] = np.average(points, axis=0, weights=weights)
        by_old: dict[int, int] = defaultdict(int)
        for a in members:
            if atoms[a].old in key:
                by_old[key[atoms[a].old]] += atoms[a].households
        old.append(dict(by_old))
    neighbours: list[dict[int, tuple[float, float, bool]]] = [{} for _ in units]
    for a, links in enumerate(atom_neighbours):
        for b, (plain, barrier) in links.items():
            ua, ub = unit_of[a], unit_of[b]
            if ua == ub:
                continue
            same_estate = bool(atoms[a].estate) and atoms[a].estate == atoms[b].estate
            before = neighbours[ua].get(ub, (0.0, 0.0, False))
            neighbours[ua][ub] = (before[0] + plain, before[1] + barrier, before[2] or same_estate)
    fixed = [len(m) == 1 and atoms[m[0]].households > options.households_max for m in units]
    return p.Problem(
        households=households,
        xy=xy,
        old=old,
        neighbours=neighbours,
        fixed=fixed,
        low=options.households_min,
        high=options.households_max,
        target=options.target,
    )


def _start(problem: p.Problem, units, atoms, old_codes: list[str], options, rng, *, method: str) -> p.State:
    """The division the flow plan starts from: the old grids (repair) or balanced k-means (rebuild)."""
    free = [u for u in range(problem.size) if not problem.fixed[u]]
    if method == "rebuild" and free:
        total = problem.households[free].sum()
        k = max(1, round(total / options.target))
        k = min(max(k, int(np.ceil(total / options.households_max))), max(1, int(total // options.households_min)))
        k = min(k, len(free))
        labels = np.zeros(problem.size, dtype=int)
        sub = p.Problem(
            households=problem.households[free],
            xy=problem.xy[free],
            old=[problem.old[u] for u in free],
            neighbours=[],
            fixed=[False] * len(free),
            low=problem.low,
            high=problem.high,
            target=problem.target,
        )
        labels[free] = p.kmeans_labels(sub, k, rng)
        groups = k
        identity: list[int | None] = [None] * k
    else:
        labels = np.full(problem.size, -1, dtype=int)
        for u in free:
            if problem.old[u]:
                labels[u] = max(sorted(problem.old[u]), key=problem.old[u].__getitem__)
        used = sorted({int(x) for x in labels if x >= 0})
        renumber = {g: i for i, g in enumerate(used)}
        identity = list(used)
        labels = np.array([renumber.get(int(x), -1) for x in labels])
        groups = len(used)
        if groups == 0 and free:
            labels[free] = 0
            identity, groups = [None], 1
        _place_strays(problem, labels)
    for u in range(problem.size):
        if problem.fixed[u]:
            labels[u] = groups
            only = problem.old[u] and len(problem.old[u]) == 1
            identity.append(next(iter(problem.old[u])) if only else None)
            groups += 1
    state = p.State(labels=labels.astype(int), identity=identity)
    state.refresh(problem)
    p.make_contiguous(problem, state)
    if method == "rebuild":
        state.identity = p.identities(problem, state.labels, len(state.identity))
    state.refresh(problem)
    return state


def _place_strays(problem: p.Problem, labels: np.ndarray) -> None:
    """Give units standing in no old grid (a gap) to the neighbouring group they share most boundary with."""
    for _ in range(problem.size):
        strays = [u for u in range(problem.size) if labels[u] < 0 and not problem.fixed[u]]
        if not strays:
            return
        for u in strays:
            shared: dict[int, float] = defaultdict(float)
            for v, (plain, barrier, _e) in problem.neighbours[u].items():
                if labels[v] >= 0:
                    shared[int(labels[v])] += plain + barrier
            if shared:
                labels[u] = max(sorted(shared), key=shared.__getitem__)
    labels[labels < 0] = 0


def _unchanged(groups, atom_group, atoms, buildings, component, by_code, options) -> set[str]:
    """Return the old grids some group holds exactly (all their buildings and no other), in range and whole."""
    by_old: dict[str, set[int]] = defaultdict(set)
    for i, atom in enumerate(atoms):
        by_old[atom.old].add(i)
    found = set()
    for code in sorted(component):
        mine = by_old.get(code)
        if not mine:
            continue
        group = {atom_group[i] for i in mine}
        if len(group) != 1:
            continue
        members = set(groups[group.pop()])
        total = sum(atoms[i].households for i in members)
        geometry = by_code[code]["geometry"]
        if (
            members == mine
            and options.households_min <= total <= options.households_max
            and len(shapely.get_parts(geometry)) == 1
        ):
            found.add(code)
    return found


def _old_of(members: list[int], atoms: list[_Atom]) -> str | None:
    olds = {atoms[i].old for i in members}
    return olds.pop() if len(olds) == 1 else None


def _outlines(region, atoms, atom_group, buildings, frame, barriers, groups: int):
    if not atoms:
        return [shapely.Polygon()] * groups
    sites, owner = _sites(atoms, buildings, region, frame)
    site_group = [atom_group[int(o)] for o in owner]
    if not any(b.intersects(region) for b in barriers):
        # Straight cuts where a power diagram separates the groups; along roads and rivers the cells follow them.
        straight = power.power_outlines(region, sites, np.array(site_group), groups, frame)
        if straight is not None:
            return straight
    cells = cell_rules.build_cells(region, sites, frame, barriers)
    return cell_rules.group_outlines(cells, site_group, groups, sites, frame)


def _new_grid(geometry, members: list[int], atoms: list[_Atom], buildings) -> NewGrid:
    return _grid_of(geometry, sorted(i for a in members for i in atoms[a].buildings), buildings)


def _grid_of(geometry, positions: list[int], buildings) -> NewGrid:
    sources: dict[str, int] = defaultdict(int)
    for i in positions:
        if buildings[i]["grid"] is not None:
            sources[buildings[i]["grid"]] += buildings[i]["households"]
    population = [buildings[i].get("population") for i in positions]
    return NewGrid(
        geometry=geometry,
        households=sum(buildings[i]["households"] for i in positions),
        population=None if any(v is None for v in population) else sum(population),
        buildings=positions,
        sources=dict(sources),
    )


def _continuations(new_grids: list[NewGrid], component: set[str], buildings) -> None:
    """A new grid keeps an old code when it holds at least half of that grid's households and they are most of
    its own (of two equal halves, the first in order of size keeps it)."""
    old_totals: dict[str, int] = defaultdict(int)
    for b in buildings:
        if b["grid"] in component:
            old_totals[b["grid"]] += b["households"]
    taken: set[str] = set()
    for grid in sorted(new_grids, key=lambda g: -g.households):
        for code, count in sorted(grid.sources.items(), key=lambda item: (-item[1], item[0])):
            if code in taken:
                continue
            if count * 2 >= old_totals[code] and count * 2 > grid.households:
                grid.continues = code
                taken.add(code)
            break
