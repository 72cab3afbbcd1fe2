"""What a division costs, and the single-unit moves that lower it: polishing between neighbouring groups, and
chains of moves that bring the groups still out of range into it.
"""

from __future__ import annotations

import numpy as np

from gridmap.propose.division import Problem, State, can_leave, fixed_groups

# Costs of the local search, in "households" (one household changing grid costs 1).
W_RANGE = 1000.0  # per household above the maximum or below the minimum
W_CUT = 1.5  # per metre of grid boundary drawn through the built area (short boundaries make compact grids)
W_CUT_BARRIER = 0.02  # per metre of grid boundary drawn along a road or river
W_STRADDLE = 1.5  # per metre of road or river left inside one grid
W_ESTATE = 2.0  # extra per metre of boundary cutting through an estate divided by buildings
W_BALANCE = 0.002  # per squared household away from the target
MAX_PASSES = 12


# ---- costs -------------------------------------------------------------------------------------------------
def out_of_range(problem: Problem, total: float) -> float:
    """Households above the maximum or below the minimum (0 when inside the range)."""
    return max(0.0, problem.low - total) + max(0.0, total - problem.high)


def _group_cost(problem: Problem, total: float, fixed: bool) -> float:
    if fixed:
        return 0.0
    return W_RANGE * out_of_range(problem, total) + W_BALANCE * (total - problem.target) ** 2


def _edge_cost(plain: float, barrier: float, estate: bool, cut: bool) -> float:
    if cut:
        return W_CUT * plain + W_CUT_BARRIER * barrier + (W_ESTATE * plain if estate else 0.0)
    return W_STRADDLE * barrier


def moved(problem: Problem, unit: int, identity: int | None) -> float:
    """Households of a unit that change grid when it lies in a group continuing `identity`."""
    return float(problem.households[unit]) - (problem.old[unit].get(identity, 0) if identity is not None else 0)


def total_cost(problem: Problem, state: State) -> float:
    """The whole cost of a division (what polishing lowers)."""
    fixed = fixed_groups(problem, state)
    cost = sum(_group_cost(problem, s, g in fixed) for g, s in enumerate(state.sums.tolist()))
    for unit in range(problem.size):
        cost += moved(problem, unit, state.identity[int(state.labels[unit])])
        for other, (plain, barrier, estate) in problem.neighbours[unit].items():
            if other > unit:
                cost += _edge_cost(plain, barrier, estate, state.labels[unit] != state.labels[other])
    return cost


def _delta(problem: Problem, state: State, unit: int, target: int, fixed: set[int]) -> float:
    source = int(state.labels[unit])
    h = float(problem.households[unit])
    delta = (
        _group_cost(problem, state.sums[source] - h, False)
        - _group_cost(problem, state.sums[source], False)
        + _group_cost(problem, state.sums[target] + h, False)
        - _group_cost(problem, state.sums[target], False)
    )
    delta += moved(problem, unit, state.identity[target]) - moved(problem, unit, state.identity[source])
    for other, (plain, barrier, estate) in problem.neighbours[unit].items():
        label = int(state.labels[other])
        before = _edge_cost(plain, barrier, estate, label != source)
        after = _edge_cost(plain, barrier, estate, label != target)
        delta += after - before
    return delta


def polish(problem: Problem, state: State, rng: np.random.Generator) -> None:
    """Move single units between neighbouring groups while that lowers the cost; groups stay in one piece."""
    fixed = fixed_groups(problem, state)
    for _ in range(MAX_PASSES):
        improved = False
        for unit in rng.permutation(problem.size).tolist():
            source = int(state.labels[unit])
            if problem.fixed[unit] or source in fixed:
                continue
            targets = sorted({int(state.labels[v]) for v in problem.neighbours[unit]} - {source} - fixed)
            if not targets:
                continue
            best, best_delta = None, -1e-9
            for target in targets:
                delta = _delta(problem, state, unit, target, fixed)
                if delta < best_delta:
                    best, best_delta = target, delta
            if best is not None and can_leave(problem, state, unit):
                state.move(problem, unit, best)
                improved = True
        if not improved:
            return


# ---- chains of moves for groups still out of range ----------------------------------------------------------
def fix_ranges(problem: Problem, state: State, *, depth: int = 3, rounds: int = 60) -> None:
    """Bring groups into range by chains of single-unit moves: a unit leaves an over-full group for a neighbour,
    which passes one of its own units on, and so on until a group with room takes it (and the same backwards
    for a group with too few households). A chain is kept only if it lowers the households out of range."""
    fixed = fixed_groups(problem, state)
    for _ in range(rounds):
        bad = [
            g
            for g in range(len(state.identity))
            if g not in fixed and state.members[g] and out_of_range(problem, state.sums[g]) > 0
        ]
        if not bad:
            return
        improved = False
        for group in sorted(bad, key=lambda g: -out_of_range(problem, state.sums[g])):
            if _chain(problem, state, group, depth, fixed):
                improved = True
        if not improved:
            return


def _chain(problem: Problem, state: State, start: int, depth: int, fixed: set[int]) -> bool:
    """Try chains from (over-full) or into (too small) `start`; apply the best one found."""
    outward = state.sums[start] > problem.high
    initial = {g: out_of_range(problem, state.sums[g]) for g in range(len(state.identity))}
    best: tuple[float, float, list[tuple[int, int, int]]] | None = None

    def search(here: int, touched: list[int], moves: list[tuple[int, int, int]]) -> None:
        nonlocal best
        if moves:
            gain = sum(initial[g] - out_of_range(problem, state.sums[g]) for g in touched)
            if gain > 1e-9:
                key = (gain, -sum(problem.households[u] for u, _, _ in moves))
                if best is None or key > best[:2]:
                    best = (*key, list(moves))
        if len(moves) >= depth:
            return
        for unit, source, target in _candidates(problem, state, here, outward, fixed, set(touched)):
            if not can_leave(problem, state, unit):
                continue
            state.move(problem, unit, target)
            following = target if outward else source
            search(following, [*touched, following], [*moves, (unit, source, target)])
            state.move(problem, unit, source)

    search(start, [start], [])
    if best is None:
        return False
    for unit, _source, target in best[2]:
        state.move(problem, unit, target)
    return True


def _candidates(problem: Problem, state: State, group: int, outward: bool, fixed: set[int], touched: set[int]):
    """Moves extending a chain at `group`: one of its units to a neighbour (outward), or a neighbour's unit into it."""
    found = []
    if outward:
        excess = state.sums[group] - problem.high
        for unit in state.members[group]:
            if problem.fixed[unit]:
                continue
            for other in {int(state.labels[v]) for v in problem.neighbours[unit]} - {group} - fixed - touched:
                found.append((abs(problem.households[unit] - excess), unit, group, other))
    else:
        shortfall = problem.low - state.sums[group]
        for unit in {v for u in state.members[group] for v in problem.neighbours[u]} - state.members[group]:
            source = int(state.labels[unit])
            if problem.fixed[unit] or source in fixed or source in touched:
                continue
            found.append((abs(problem.households[unit] - shortfall), unit, source, group))
    found.sort()
    return [(unit, source, target) for _, unit, source, target in found[:8]]
