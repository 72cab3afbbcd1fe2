"""The model of a division: the units of a region and what the division must respect (`Problem`), a division of
the units into groups (`State`), and keeping every group in one edge-connected piece.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


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


def pieces(nodes, neighbours) -> list[set]:
    """Split nodes into the connected pieces of a graph (`neighbours[node]` iterates a node's neighbours, of any
    kind), ordered by their smallest member."""
    remaining, found = set(nodes), []
    while remaining:
        start = min(remaining)
        piece, queue = {start}, deque([start])
        remaining.discard(start)
        while queue:
            for other in neighbours[queue.popleft()]:
                if other in remaining:
                    remaining.discard(other)
                    piece.add(other)
                    queue.append(other)
        found.append(piece)
    return found


def components(problem: Problem, units: set[int]) -> list[set[int]]:
    """Split units into edge-connected pieces, largest (by households, then size) first."""
    found = pieces(units, problem.neighbours)
    found.sort(key=lambda p: (-problem.households[list(p)].sum(), -len(p), min(p)))
    return found


def can_leave(problem: Problem, state: State, unit: int) -> bool:
    """Whether a unit may leave its group: not a fixed unit nor the last one, and the group stays in one piece."""
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
            parts = components(problem, state.members[group])
            for piece in parts[1:]:
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


def fixed_groups(problem: Problem, state: State) -> set[int]:
    """Return the groups holding a building above the maximum (a grid of its own, outside the range rules)."""
    return {int(state.labels[u]) for u in range(problem.size) if problem.fixed[u]}
