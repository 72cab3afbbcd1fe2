"""Atoms and sites: the buildings standing at one point grouped into one atom (no line can tell them apart), and
the points the cells are drawn around (a footprint gives points along its outline).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

FOOTPRINT_STEP_M = 6.0  # spacing of the points that stand for a footprint's outline
MAX_FOOTPRINT_POINTS = 48


@dataclass
class Atom:
    """Buildings standing at one point: the smallest piece a division moves."""

    buildings: list[int]
    households: int
    population: int | None
    old: str | None
    estate: str | None
    point: tuple[float, float]


def gather_atoms(buildings: Sequence[dict], positions: Sequence[int]) -> list[Atom]:
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
            Atom(
                buildings=list(members),
                households=sum(buildings[i]["households"] for i in members),
                population=None if any(v is None for v in population) else sum(population),
                old=max(sorted(olds, key=str), key=olds.__getitem__),
                estate=estates.pop() if len(estates) == 1 else None,
                point=(first["lon"], first["lat"]),
            )
        )
    return atoms


def site_points(atoms: list[Atom], buildings: Sequence[dict], region, frame) -> tuple[np.ndarray, np.ndarray]:
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
