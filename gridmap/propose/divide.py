"""Dividing the buildings of one region into groups: atoms joined into units (an estate within the maximum stays
whole), the units and the boundaries they share handed to `partition` as a `Problem`, the division it starts
from (the old grids or k-means), and the best of the balancings tried.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from gridmap.propose import cells as cell_rules
from gridmap.propose.atoms import Atom, site_points
from gridmap.propose.division import Problem, State, make_contiguous, pieces
from gridmap.propose.partition import balance, failures, first_plans, identities, kmeans_labels
from gridmap.propose.polish import total_cost

PLANS_TRIED = 3  # balancings tried, best first, until one leaves every grid in range


def divide(region, atoms: list[Atom], buildings, component, frame, options, barriers, rng):
    """Return (groups as lists of atom positions, the group of each atom, groups left out of range)."""
    if not atoms:
        return None
    sites, owner = site_points(atoms, buildings, region, frame)
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
        for plan in [*first_plans(problem, start)[:PLANS_TRIED], None][: max(1, PLANS_TRIED)]:
            trial = State(labels=start.labels.copy(), identity=list(start.identity))
            trial.refresh(problem)
            balance(problem, trial, np.random.default_rng(rng.integers(2**32)), plan)
            trial.refresh(problem)
            key = (failures(problem, trial), total_cost(problem, trial))
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


def _units(atoms: list[Atom], atom_neighbours, options) -> tuple[list[list[int]], list[int]]:
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
        for piece in pieces(set(members), atom_neighbours):
            for atom in piece:
                unit_of[atom] = len(units)
            units.append(sorted(piece))
    for i in range(len(atoms)):
        if unit_of[i] < 0:
            unit_of[i] = len(units)
            units.append([i])
    return units, unit_of


def _problem(units, atoms, atom_neighbours, unit_of, frame, options, old_codes) -> Problem:
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
    return Problem(
        households=households,
        xy=xy,
        old=old,
        neighbours=neighbours,
        fixed=fixed,
        low=options.households_min,
        high=options.households_max,
        target=options.target,
    )


def _start(problem: Problem, units, atoms, old_codes: list[str], options, rng, *, method: str) -> State:
    """The division the flow plan starts from: the old grids (repair) or balanced k-means (rebuild)."""
    free = [u for u in range(problem.size) if not problem.fixed[u]]
    if method == "rebuild" and free:
        total = problem.households[free].sum()
        k = max(1, round(total / options.target))
        k = min(max(k, int(np.ceil(total / options.households_max))), max(1, int(total // options.households_min)))
        k = min(k, len(free))
        labels = np.zeros(problem.size, dtype=int)
        sub = Problem(
            households=problem.households[free],
            xy=problem.xy[free],
            old=[problem.old[u] for u in free],
            neighbours=[],
            fixed=[False] * len(free),
            low=problem.low,
            high=problem.high,
            target=problem.target,
        )
        labels[free] = kmeans_labels(sub, k, rng)
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
    state = State(labels=labels.astype(int), identity=identity)
    state.refresh(problem)
    make_contiguous(problem, state)
    if method == "rebuild":
        state.identity = identities(problem, state.labels, len(state.identity))
    state.refresh(problem)
    return state


def _place_strays(problem: Problem, labels: np.ndarray) -> None:
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
