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

This module runs those steps (`balance`) and starts a division from scratch; the model and contiguity are in
`division`, the flow plan in `flows`, carrying it out in `carry`, the costs and local moves in `polish`.
"""

from __future__ import annotations

import numpy as np

from gridmap.propose.carry import carry_out
from gridmap.propose.division import Problem, State, fixed_groups, make_contiguous
from gridmap.propose.flows import FlowPlan, flow_plans, plan_flows
from gridmap.propose.polish import fix_ranges, out_of_range, polish


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
    fixed = fixed_groups(problem, state) | {g for g in range(len(state.identity)) if not state.members[g]}
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
        fixed = fixed_groups(problem, state) | {g for g in range(len(state.identity)) if not state.members[g]}
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
    fixed = fixed_groups(problem, state)
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
