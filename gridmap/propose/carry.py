"""Carrying a flow plan out unit by unit along the shared boundaries: carving the new group of a split grid (along
a road or river when that divides the households about as well), moving households along the flows, and
emptying the dissolved groups; every group stays in one piece throughout.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gridmap.propose.division import Problem, State, can_leave, connected
from gridmap.propose.flows import FlowPlan

BARRIER_SLACK = 60.0  # households a split along a road or river may miss the amount by and still be preferred


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
        if not emptying and not can_leave(problem, state, unit):
            continue
        if emptying and len(state.members[a]) > 1 and not can_leave(problem, state, unit):
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
            if len(state.members[group]) > 1 and not can_leave(problem, state, unit):
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
