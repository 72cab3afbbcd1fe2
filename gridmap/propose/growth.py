"""Which neighbouring good grids a region takes in so it can balance: flow plans are tried for the region with one,
two or three neighbours added, weighing households moved against neighbours taken in and their shape (`choice`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gridmap.propose.flows import FlowPlan, plan_flows

GROW_SAVING = 20  # households fewer to move that make taking in one more neighbour worth it
GROW_AT_ONCE = 3
GROW_POOL = {2: 5, 3: 4}  # how many of the best single neighbours pairs and triples are drawn from
PER_NEIGHBOUR = 10  # what taking in one more neighbour counts against a plan, in households


@dataclass
class Grids:
    """A community's grids as the balancing sees them: neighbours, households, and the flow plans tried."""

    neighbours: dict[str, dict[str, float]]
    households: dict
    options: object
    prices: dict = field(default_factory=dict)  # code → what taking that grid in costs for its shape
    plans: dict = field(default_factory=dict)

    def plan(self, members) -> FlowPlan | None:
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
            self.plans[key] = plan_flows(
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
