"""The flow plan: how many households go from which group to which so that every group ends inside the range.

A small linear programme over the groups' totals and which groups touch (no units, no geometry) finds the fewest
households to move; a grid too small to live on is dissolved into its neighbours (its bounds become 0) and a grid
too big for its neighbours to take from is split in two (a new grid fed from it only). Which grids to dissolve or
split is tried out and the cheapest plan wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Room a plan should leave every grid from the ends of the range (whole buildings rarely add up to a plan cut to
# the household), and what each household of room missing counts against it.
MARGIN_PRICE = 3.0
SPLIT_PENALTY = 150.0


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
