"""Which good grids a region takes in to balance: the awkwardly shaped ones before the round ones.

An out-of-range grid must change, but the neighbours taken in to balance it are a choice, and whatever is taken
in is redrawn. A round grid (Polsby–Popper at or above the edition's median) redrawn is compactness lost for
good: its new outline is drawn from its buildings and rarely comes out as round as the one it replaces. A
ragged neighbour redrawn loses little and often gains. So taking in a neighbour costs, besides the households
it makes move and the flat price of one more grid changing, a price for its roundness; when a ragged neighbour
(or two) can balance the region, the round one is left alone. This is the planning choice too: redraw the
awkward grids, leave the well-shaped ones that residents and staff know as they are.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gridmap.propose.cells import Frame, polsby_popper

ROUND_PRICE = 100.0  # households: what taking in a neighbour as round as the edition's median counts against a plan


def compactness(geometries: Iterable) -> np.ndarray:
    """Return the Polsby–Popper value of each geometry (each measured in metres around itself)."""
    return np.array([polsby_popper(g, Frame.around(g)) for g in geometries], dtype=float)


def median_compactness(geometries: Iterable) -> float | None:
    """Return the median Polsby–Popper value of an edition's grids (the bar a plan's median is held to)."""
    values = compactness(geometries)
    return float(np.median(values)) if len(values) else None


def round_prices(pp: dict[str, float], bar: float | None) -> dict[str, float]:
    """Return what taking in each grid counts against a plan for its shape, in households: ROUND_PRICE at the
    bar and above, nothing below it (a grid below the median loses nothing worth keeping by being redrawn)."""
    if bar is None:
        return dict.fromkeys(pp, 0.0)
    return {code: ROUND_PRICE if value >= bar else 0.0 for code, value in pp.items()}
