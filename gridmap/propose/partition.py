"""Dividing the units of a region (estates and single buildings) into grids within the households range.

The method, chosen by the figures of `bench/bench_propose.py`:

1. Start from a division: the grids as they are (`repair`, which moves few households) or balanced k-means of
   the units (`rebuild`, the plan from scratch).
2. Plan the balancing as a flow of households between neighbouring grids: a small linear programme finds the
   fewest households to move so that every grid ends inside the range; a grid too small to live on is dissolved
   into its neighbours (its bounds become 0) and a grid too big for its neighbours to take from is split in two
   (a new grid fed from it only). Which grids to dissolve or split is tried out and the cheapest plan wins.
3. Carry the flows out unit by unit along the shared boundaries, always keeping every grid in one piece.
4. Polish with single-unit moves between neighbours that lower the cost (out-of-range households first, then
   households changing grid, boundary length, barriers crossed, estates cut, balance).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Costs of the local search, in "households" (one household changing grid costs 1).
W_RANGE = 1000.0  # per household above the maximum or below the minimum
W_CUT = 1.5  # per metre of grid boundary drawn through the built area (short boundaries make compact grids)
W_CUT_BARRIER = 0.02  # per metre of grid boundary drawn along a road or river
W_STRADDLE = 1.5  # per metre of road or river left inside one grid
W_ESTATE = 2.0  # extra per metre of boundary cutting through an estate divided by buildings
W_BALANCE = 0.002  # per squared household away from the target
MAX_PASSES = 12
BARRIER_SLACK = 60.0  # households a split along a road or river may miss the amount by and still be preferred
# Room a plan should leave every grid from the ends of the range (whole buildings rarely add up to a plan cut to
# the household), and what each household of room missing counts against it.
MARGIN_PRICE = 3.0
SPLIT_PENALTY = 150.0


@dataclass
class Problem:
    """The units of one region and what the division must respect."""

    households: np.ndarray  # per unit
    xy: np.ndarray  # per unit, metres
    old: list[dict[int, int]]  # per unit: old grid key → households of the unit in it
    neighbours: list[dict[int, tuple[float, float, bool]]]  # unit → {unit: (plain m, barrier m, same estate)}
    fixed: list[bool]  # a building above the maximum: a grid of its own, never moved
    low: int
    high: int
    target: float

    @property
    def size(self) -> int:
        """Number of units."""
        return len(self.households)


@dataclass
class State:
    """A division of the units into groups, with each group's total and the old grid it continues."""

    labels: np.ndarray
    identity: list[int | None]
    sums: np.ndarray = field(init=False)
    members: list[set[int]] = field(init=False)

    def refresh(self, problem: Problem) -> None:
        """Recompute the totals and member lists from the labels."""
        groups = len(self.identity)
        self.sums = np.bincount(self.labels, weights=problem.households, minlength=groups).astype(float)
        self.members = [set() for _ in range(groups)]
        for unit, group in enumerate(self.labels.tolist()):
            self.members[group].add(unit)

    def move(self, problem: Problem, unit: int, target: int) -> None:
        """Move one unit to another group."""
        source = int(self.labels[unit])
        self.labels[unit] = target
        self.members[source].discard(unit)
        self.members[target].add(unit)
        self.sums[source] -= problem.households[unit]
        self.sums[target] += problem.households[unit]


# ---- contiguity ---------------------------------------------------------------------------------------------
def connected(problem: Problem, units: set[int]) -> bool:
    """Whether the units form one edge-connected piece (an empty set counts as connected)."""
    if len(units) <= 1:
        return True
    start = next(iter(units))
    seen, queue = {start}, deque([start])
    while queue:
        for other in problem.neighbours[queue.popleft()]:
            if other in units and other not in seen:
                seen.add(other)
                queue.append(other)
    return len(seen) == len(units)


def components(problem: Problem, units: set[int]) -> list[set[int]]:
    """Split units into edge-connected pieces, largest (by households, then size) first."""
    remaining, pieces = set(units), []
    while remaining:
        start = min(remaining)
        piece, queue = {start}, deque([start])
        remaining.discard(start)
        while queue:
            for other in problem.neighbours[queue.popleft()]:
                if other in remaining:
                    remaining.discard(other)
                    piece.add(other)
                    queue.append(other)
        pieces.append(piece)
    pieces.sort(key=lambda p: (-problem.households[list(p)].sum(), -len(p), min(p)))
    return pieces


def _can_leave(problem: Problem, state: State, unit: int) -> bool:
    group = state.members[int(state.labels[unit])]
    if len(group) <= 1 or problem.fixed[unit]:
        return False
    inside = [v for v in problem.neighbours[unit] if v in group]
    if len(inside) <= 1:
        return True  # a unit with one neighbour in its group hangs off it: removing it cannot cut the group
    return connected(problem, group - {unit})


def make_contiguous(problem: Problem, state: State) -> None:
    """Give every piece of a group but its largest to the neighbouring group it shares most boundary with."""
    for _ in range(problem.size):
        changed = False
        for group in range(len(state.identity)):
            pieces = components(problem, state.members[group])
            for piece in pieces[1:]:
                shared: dict[int, float] = {}
                for unit in piece:
                    for other, (plain, barrier, _estate) in problem.neighbours[unit].items():
                        label = int(state.labels[other])
                        if label != group:
                            shared[label] = shared.get(label, 0.0) + plain + barrier
                if not shared:
                    continue  # an island of the region: it stays with its group
                target = max(sorted(shared), key=shared.__getitem__)
                for unit in piece:
                    state.move(problem, unit, target)
                changed = True
        if not changed:
            return


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
    fixed = _fixed_groups(problem, state)
    cost = sum(_group_cost(problem, s, g in fixed) for g, s in enumerate(state.sums.tolist()))
    for unit in range(problem.size):
        cost += moved(problem, unit, state.identity[int(state.labels[unit])])
        for other, (plain, barrier, estate) in problem.neighbours[unit].items():
            if other > unit:
                cost += _edge_cost(plain, barrier, estate, state.labels[unit] != state.labels[other])
    return cost


def _fixed_groups(problem: Problem, state: State) -> set[int]:
    return {int(state.labels[u]) for u in range(problem.size) if problem.fixed[u]}


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
    fixed = _fixed_groups(problem, state)
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
            if best is not None and _can_leave(problem, state, unit):
                state.move(problem, unit, best)
                improved = True
        if not improved:
            return


# ---- chains of moves for groups still out of range ----------------------------------------------------------
def fix_ranges(problem: Problem, state: State, *, depth: int = 3, rounds: int = 60) -> None:
    """Bring groups into range by chains of single-unit moves: a unit leaves an over-full group for a neighbour,
    which passes one of its own units on, and so on until a group with room takes it (and the same backwards
    for a group with too few households). A chain is kept only if it lowers the households out of range."""
    fixed = _fixed_groups(problem, state)
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
            if not _can_leave(problem, state, unit):
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


# ---- the flow plan -------------------------------------------------------------------------------------------
@dataclass
class FlowPlan:
    """How many households go from which group to which, and the groups dissolved or split for it."""

    cost: float
    flows: dict[tuple[int, int], float]
    dissolved: list[int]
    splits: list[int]  # the source of each new group, in the order the new groups are numbered
    score: float = 0.0  # cost plus the penalties for a tight plan and for new grids: what plans are ranked by


def _solve_flows(
    sums: Sequence[float],
    pairs: Sequence[tuple[int, int]],
    bounds: Sequence[tuple[float, float]],
    ranged: set[int],
    target: float,
    capacities: dict[tuple[int, int], float] | None = None,
    room: float = 0.0,
) -> tuple[float, float, dict[tuple[int, int], float]] | None:
    """Solve the flow LP: the fewest households moved so every group ends within its bounds, the `ranged` ones
    also keeping a common room m ≤ `room` from both ends (paid MARGIN_PRICE per household of room missing);
    return (households moved, room kept, flows) or None when impossible."""
    from scipy.optimize import linprog

    groups = len(sums)
    edges = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
    n_flow = len(edges)
    balanced = [g for g in range(groups) if bounds[g][1] > 0]
    margin_at = n_flow + 2 * len(balanced)
    n = margin_at + 1
    cost = np.concatenate([np.ones(n_flow), np.full(2 * len(balanced), 0.01), [-MARGIN_PRICE]])
    a_ub, b_ub, a_eq, b_eq = [], [], [], []
    for g in range(groups):
        net = np.zeros(n)  # inflow − outflow of group g
        for e, (a, b) in enumerate(edges):
            if b == g:
                net[e] += 1
            if a == g:
                net[e] -= 1
        low, high = bounds[g]
        lower, upper = -net, net.copy()
        if g in ranged:
            lower[margin_at] = upper[margin_at] = 1.0
        a_ub.append(lower)
        b_ub.append(sums[g] - low)
        a_ub.append(upper)
        b_ub.append(high - sums[g])
        if g in balanced:
            row = net.copy()
            k = balanced.index(g)
            row[n_flow + 2 * k] = -1
            row[n_flow + 2 * k + 1] = 1
            a_eq.append(row)
            b_eq.append(target - sums[g])
    result = linprog(
        cost,
        A_ub=np.array(a_ub),
        b_ub=np.array(b_ub),
        A_eq=np.array(a_eq) if a_eq else None,
        b_eq=np.array(b_eq) if b_eq else None,
        bounds=[(0, (capacities or {}).get(edge)) for edge in edges] + [(0, None)] * (n - n_flow - 1) + [(0, room)],
        method="highs",
    )
    if result.status != 0:
        return None
    flows = {edges[e]: float(result.x[e]) for e in range(n_flow) if result.x[e] > 1e-6}
    return float(result.x[:n_flow].sum()), float(result.x[margin_at]), flows


def plan_flows(
    sums: Sequence[float],
    pairs: set[tuple[int, int]],
    *,
    low: float,
    high: float,
    target: float,
    fixed: set[int] = frozenset(),
    capacities: dict[tuple[int, int], float] | None = None,
    restructure: bool = True,
) -> FlowPlan | None:
    """Find the cheapest balancing of groups (totals `sums`, neighbours `pairs` with a < b), or None.

    `capacities` caps the households that can go from one group to another (what stands along their shared
    boundary); with `restructure` a group may be dissolved or split when that is cheaper or needed."""
    plans = flow_plans(
        sums, pairs, low=low, high=high, target=target, fixed=fixed, capacities=capacities, restructure=restructure
    )
    return plans[0] if plans else None


def flow_plans(
    sums: Sequence[float],
    pairs: set[tuple[int, int]],
    *,
    low: float,
    high: float,
    target: float,
    fixed: set[int] = frozenset(),
    capacities: dict[tuple[int, int], float] | None = None,
    restructure: bool = True,
) -> list[FlowPlan]:
    """Return every balancing tried that works, best first: by households moved, a plan that needs some group
    closer to an end of the range counting more (MARGIN_PRICE) (units come in whole buildings) and each new grid
    SPLIT_PENALTY more (a grid carved out of another is rarely compact)."""
    free = [g for g in range(len(sums)) if g not in fixed]
    total = sum(sums[g] for g in free)
    if not free:
        return [FlowPlan(0.0, {}, [], [])]
    smallest, largest = math.ceil(total / high - 1e-9), math.floor(total / low + 1e-9)
    if total > 0 and smallest > largest:
        return []
    margin = min(40.0, (high - low) / 5)
    by_size = sorted(free, key=lambda g: (sums[g], g))
    options: list[tuple[list[int], list[int]]] = [([], [])]
    k = len(free)
    if restructure and k > largest:
        for count in range(1, k - max(largest, 1) + 1):
            options += [(list(c), []) for c in _first_combinations(by_size, count, 4)]
    if restructure and k < smallest:
        for count in range(1, smallest - k + 1):
            options += [([], list(c)) for c in _first_combinations(by_size[::-1], count, 4)]
    if restructure and smallest <= k - 1 <= largest:
        options += [([g], []) for g in by_size[:2]]
    if restructure and smallest <= k + 1 <= largest:
        options += [([], [g]) for g in by_size[::-1][:1]]
    found: list[FlowPlan] = []
    for dissolved, splits in options:
        if len(free) - len(dissolved) + len(splits) not in range(max(smallest, 1), largest + 1):
            continue
        plan = _try_plan(sums, pairs, fixed, dissolved, splits, low, high, target, margin, capacities)
        if plan is not None:
            found.append(plan)
    found.sort(key=lambda plan: plan.score)
    return found


def _first_combinations(items: list[int], count: int, limit: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return list(combinations(items[: max(limit, count)], count))


def _try_plan(sums, pairs, fixed, dissolved, splits, low, high, target, margin, capacities) -> FlowPlan | None:
    groups = len(sums) + len(splits)
    all_sums = list(sums) + [0.0] * len(splits)
    all_pairs = {p for p in pairs if p[0] not in fixed and p[1] not in fixed}
    all_pairs |= {(source, len(sums) + i) for i, source in enumerate(splits)}
    bounds, ranged = [], set()
    for g in range(groups):
        if g in fixed:
            bounds.append((sums[g], sums[g]))
        elif g in dissolved:
            bounds.append((0.0, 0.0))
        else:
            bounds.append((low, high))
            ranged.add(g)
    solved = _solve_flows(all_sums, sorted(all_pairs), bounds, ranged, target, capacities, room=margin)
    if solved is None:
        return None
    cost, room, flows = solved
    score = cost + MARGIN_PRICE * (margin - room) + SPLIT_PENALTY * len(splits)
    return FlowPlan(cost, flows, list(dissolved), list(splits), score)


# ---- carrying the plan out -----------------------------------------------------------------------------------
def carry_out(problem: Problem, state: State, plan: FlowPlan) -> None:
    """Apply a flow plan unit by unit: carve the new groups, move households along the flows, empty the
    dissolved groups; groups stay in one piece throughout."""
    first_new = len(state.identity)
    for i, source in enumerate(plan.splits):
        state.identity.append(None)  # the new group starts empty
        state.refresh(problem)
        _carve(problem, state, source, first_new + i, plan.flows.get((source, first_new + i), problem.target))
    remaining = {edge: amount for edge, amount in plan.flows.items() if edge[1] < first_new}
    for _ in range(problem.size):
        progress = False
        for (a, b), amount in sorted(remaining.items(), key=lambda item: -item[1]):
            if amount <= 0:
                continue
            unit = _best_to_move(problem, state, a, b, amount, emptying=a in plan.dissolved)
            if unit is None:
                continue
            remaining[(a, b)] = amount - problem.households[unit]
            state.move(problem, unit, b)
            progress = True
        if not progress:
            break
    for group in plan.dissolved:
        _empty(problem, state, group)


def _best_to_move(problem: Problem, state: State, a: int, b: int, amount: float, *, emptying: bool) -> int | None:
    best, best_score = None, None
    slack = max(amount * 0.5, 15.0)
    for unit in state.members[a]:
        if problem.fixed[unit]:
            continue
        shared_b = sum(sum(v[:2]) for o, v in problem.neighbours[unit].items() if state.labels[o] == b)
        if shared_b <= 0:
            continue
        h = problem.households[unit]
        if h > amount + slack and not emptying:
            continue
        shared_a = sum(sum(v[:2]) for o, v in problem.neighbours[unit].items() if state.labels[o] == a)
        returning = problem.old[unit].get(state.identity[b], 0) if state.identity[b] is not None else 0
        score = (returning, shared_b - shared_a, -abs(amount - h))
        if best_score is not None and score <= best_score:
            continue
        if not emptying and not _can_leave(problem, state, unit):
            continue
        if emptying and len(state.members[a]) > 1 and not _can_leave(problem, state, unit):
            continue
        best, best_score = unit, score
    return best


def _empty(problem: Problem, state: State, group: int) -> None:
    """Hand every unit of a dissolved group to a neighbouring group (the emptiest first)."""
    for _ in range(problem.size):
        units = sorted(state.members[group])
        if not units:
            return
        moved_any = False
        for unit in units:
            targets = {int(state.labels[v]) for v in problem.neighbours[unit]} - {group}
            targets = {t for t in targets if not any(problem.fixed[u] for u in state.members[t])}
            if not targets:
                continue
            if len(state.members[group]) > 1 and not _can_leave(problem, state, unit):
                continue
            target = min(sorted(targets), key=lambda t: state.sums[t])
            state.move(problem, unit, target)
            moved_any = True
        if not moved_any:
            return


def _carve(problem: Problem, state: State, source: int, new: int, amount: float) -> None:
    """Take about `amount` households out of the source group as a new group: grown from several seeds (the
    ends of the group's long axis and the units on its boundary), each growth adding the neighbouring unit that
    brings the total closest to the amount; the closest compact piece that leaves the rest in one piece wins."""
    units = sorted(u for u in state.members[source] if not problem.fixed[u])
    if len(units) < 2:
        return
    xy = problem.xy[units]
    weights = problem.households[units].astype(float) + 1.0
    centre = np.average(xy, axis=0, weights=weights)
    spread = np.cov((xy - centre).T, aweights=weights) if len(units) > 2 else np.eye(2)
    axis = np.linalg.eigh(np.atleast_2d(spread))[1][:, -1]
    order = np.argsort((xy - centre) @ axis, kind="stable")
    seeds = [units[int(order[0])], units[int(order[-1])]]
    seeds += [u for u in units if any(int(state.labels[v]) != source for v in problem.neighbours[u])][:6]
    members = set(units)
    best: tuple[float, list[int]] | None = None
    for seed in dict.fromkeys(seeds):
        taken, total = [seed], float(problem.households[seed])
        while total < amount:
            frontier = {v for u in taken for v in problem.neighbours[u] if v in members} - set(taken)
            if not frontier:
                break
            here = np.average(problem.xy[taken], axis=0)
            pick = min(
                sorted(frontier),
                key=lambda v: (abs(total + problem.households[v] - amount), float(np.hypot(*(problem.xy[v] - here)))),
            )
            if abs(total + problem.households[pick] - amount) >= abs(total - amount):
                break
            taken.append(pick)
            total += problem.households[pick]
        rest = members - set(taken)
        if not rest or not connected(problem, rest | (state.members[source] - members)):
            continue
        score = abs(total - amount)
        if best is None or score < best[0]:
            best = (score, taken)
    along = _barrier_cut(problem, units, amount, state.members[source] - members)
    if along is not None and (best is None or along[0] <= max(BARRIER_SLACK, best[0])):
        best = along  # a cut along a road or river, when it divides the households about as well
    if best is None:
        return
    for unit in best[1]:
        state.move(problem, unit, new)


def _barrier_cut(problem: Problem, units: list[int], amount: float, others: set[int]):
    """Return (|households − amount|, units) of the best new group made of whole blocks between barriers."""
    from itertools import combinations

    members = set(units)
    blocks, remaining = [], set(units)
    while remaining:
        start = min(remaining)
        block, queue = {start}, deque([start])
        remaining.discard(start)
        while queue:
            for other, (plain, _barrier, _estate) in problem.neighbours[queue.popleft()].items():
                if other in remaining and plain > 0.5:
                    remaining.discard(other)
                    block.add(other)
                    queue.append(other)
        blocks.append(block)
    if not 1 < len(blocks) <= 8:
        return None
    best = None
    for size in range(1, len(blocks)):
        for chosen in combinations(range(len(blocks)), size):
            taken = set().union(*(blocks[i] for i in chosen))
            rest = members - taken
            if not connected(problem, taken) or not connected(problem, rest | others):
                continue
            gap = abs(float(problem.households[list(taken)].sum()) - amount)
            if best is None or gap < best[0]:
                best = (gap, sorted(taken))
    return best


# ---- the whole balancing -------------------------------------------------------------------------------------
def capacities(problem: Problem, state: State) -> dict[tuple[int, int], float]:
    """Households that could go from each group to each neighbouring group: the units along their boundary."""
    found: dict[tuple[int, int], float] = {}
    for unit in range(problem.size):
        if problem.fixed[unit]:
            continue
        source = int(state.labels[unit])
        for target in {int(state.labels[v]) for v in problem.neighbours[unit]} - {source}:
            found[(source, target)] = found.get((source, target), 0.0) + float(problem.households[unit])
    return found


def group_pairs(problem: Problem, state: State) -> set[tuple[int, int]]:
    """Return the pairs of groups (a < b) whose units touch."""
    pairs = set()
    for unit in range(problem.size):
        a = int(state.labels[unit])
        for other in problem.neighbours[unit]:
            b = int(state.labels[other])
            if a != b:
                pairs.add((min(a, b), max(a, b)))
    return pairs


def first_plans(problem: Problem, state: State) -> list[FlowPlan]:
    """Return the balancings the first round may start from, best first."""
    fixed = _fixed_groups(problem, state) | {g for g in range(len(state.identity)) if not state.members[g]}
    return flow_plans(
        state.sums.tolist(),
        group_pairs(problem, state),
        low=problem.low,
        high=problem.high,
        target=problem.target,
        fixed=fixed,
    )


def balance(
    problem: Problem, state: State, rng: np.random.Generator, first: FlowPlan | None, *, rounds: int = 4
) -> None:
    """Carry out the first plan, then re-plan with what each boundary can pass while groups are out of range;
    finish with chains of moves and polishing."""
    if first is not None:
        carry_out(problem, state, first)
        state.refresh(problem)
        make_contiguous(problem, state)
    for _ in range(rounds - 1):
        fixed = _fixed_groups(problem, state) | {g for g in range(len(state.identity)) if not state.members[g]}
        live = [g for g in range(len(state.identity)) if g not in fixed]
        if all(out_of_range(problem, state.sums[g]) == 0 for g in live):
            break
        plan = plan_flows(
            state.sums.tolist(),
            group_pairs(problem, state),
            low=problem.low,
            high=problem.high,
            target=problem.target,
            fixed=fixed,
            capacities=capacities(problem, state),
            restructure=False,
        )
        if plan is None:
            break
        carry_out(problem, state, plan)
        state.refresh(problem)
        make_contiguous(problem, state)
    fix_ranges(problem, state)
    polish(problem, state, rng)
    fix_ranges(problem, state)


def failures(problem: Problem, state: State) -> int:
    """Count the groups (not a single huge building) left out of range."""
    fixed = _fixed_groups(problem, state)
    return sum(
        1
        for g in range(len(state.identity))
        if state.members[g] and g not in fixed and out_of_range(problem, state.sums[g]) > 0
    )


# ---- a division from scratch -----------------------------------------------------------------------------------
def kmeans_labels(problem: Problem, k: int, rng: np.random.Generator, iterations: int = 25) -> np.ndarray:
    """Cluster the units into k groups by household-weighted k-means (k-means++ start)."""
    xy = problem.xy
    weights = problem.households.astype(float) + 1.0
    first = int(rng.choice(problem.size, p=weights / weights.sum()))
    centres = [xy[first]]
    for _ in range(k - 1):
        d2 = np.min([((xy - c) ** 2).sum(axis=1) for c in centres], axis=0) * weights
        if d2.sum() <= 0:
            centres.append(xy[int(rng.integers(problem.size))])
            continue
        centres.append(xy[int(rng.choice(problem.size, p=d2 / d2.sum()))])
    centres = np.array(centres)
    labels = np.zeros(problem.size, dtype=int)
    for _ in range(iterations):
        labels = np.argmin(((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
        for group in range(k):
            chosen = labels == group
            if chosen.any():
                centres[group] = np.average(xy[chosen], axis=0, weights=weights[chosen])
    return labels


def identities(problem: Problem, labels: np.ndarray, groups: int) -> list[int | None]:
    """Match groups to the old grids they mostly hold, one to one, largest overlaps first."""
    overlap: dict[tuple[int, int], float] = {}
    for unit, group in enumerate(labels.tolist()):
        for old, households in problem.old[unit].items():
            if old is not None and old >= 0:
                overlap[(group, old)] = overlap.get((group, old), 0.0) + households
    identity: list[int | None] = [None] * groups
    used: set[int] = set()
    for (group, old), _ in sorted(overlap.items(), key=lambda item: (-item[1], item[0])):
        if identity[group] is None and old not in used:
            identity[group] = old
            used.add(old)
    return identity
