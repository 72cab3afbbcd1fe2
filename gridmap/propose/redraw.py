"""Redrawing one region (touching grids to be redrawn, with the gaps beside them): its buildings divided into groups
(`divide`), each group's outline drawn (straight cuts of a power diagram, else cells that follow roads and
rivers), an old grid held exactly by one group kept with its very outline, and the new grids with the old codes
they continue.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import shapely

from gridmap.propose import cells as cell_rules
from gridmap.propose import power
from gridmap.propose.atoms import Atom, gather_atoms, site_points
from gridmap.propose.divide import divide


@dataclass
class NewGrid:
    """One proposed grid of a community."""

    geometry: shapely.Geometry
    households: int
    population: int | None
    buildings: list[int]  # positions in the building list handed in
    sources: dict[str, int]  # old grid code → households it brings
    continues: str | None = None  # the old code it keeps (it holds most of that grid, and mostly that grid)
    huge: str | None = None  # the code of the one building above the maximum that makes up this grid
    code: str | None = None
    name: str | None = None


# ---- dividing one region ---------------------------------------------------------------------------------------
@dataclass
class Solution:
    """What redrawing one region gives: its new grids, the old codes redrawn and unchanged, groups out of range."""

    grids: list[NewGrid]
    redrawn: set[str]
    unchanged: set[str]
    exceptions: list[dict]
    failures: int


def solve_region(community, grids, component: set[str], buildings, frame, options, barriers) -> Solution:
    """Divide the region made of the component's grids (plus any gaps next to them) into new grids."""
    by_code = {g["code"]: g for g in grids}
    region = _region(community, grids, component)
    inside = [i for i, b in enumerate(buildings) if b["grid"] in component or b["grid"] is None]
    atoms = gather_atoms(buildings, inside)
    atoms = [a for a in atoms if region.covers(shapely.Point(a.point))]
    # Each region draws from its own stream, so its plan does not depend on the order regions are solved in.
    rng = np.random.default_rng([options.seed, zlib.crc32(",".join(sorted(component)).encode())])
    result = divide(region, atoms, buildings, component, frame, options, barriers, rng)
    if result is None:
        return Solution([], set(), set(component), [_no_buildings(component)], 0)
    groups, atom_group, failures = result
    # A group holding exactly the buildings of one old grid is that grid unchanged: keep its very outline.
    unchanged = _unchanged(groups, atom_group, atoms, buildings, component, by_code, options)
    if unchanged:
        region_left = shapely.difference(region, shapely.union_all([by_code[c]["geometry"] for c in unchanged]))
        keep = [i for i, a in enumerate(atoms) if a.old not in unchanged]
        outlines = _outlines(
            region_left,
            [atoms[i] for i in keep],
            [atom_group[i] for i in keep],
            buildings,
            frame,
            barriers,
            len(groups),
        )
        used = {atom_group[i] for i in keep}
        covered = sum(outlines[g].area for g in used)
        if (
            any(outlines[g].geom_type != "Polygon" for g in used)
            or abs(covered - region_left.area) > 1e-9 * region.area
        ):
            unchanged = set()  # the rest does not divide cleanly around the kept grid: redraw it too
    if not unchanged:
        outlines = _outlines(region, atoms, atom_group, buildings, frame, barriers, len(groups))
    new_grids, exceptions = [], []
    for group, members in enumerate(groups):
        if not members or (unchanged and _old_of(members, atoms) in unchanged):
            continue
        grid = _new_grid(outlines[group], members, atoms, buildings)
        if len(members) == 1 and atoms[members[0]].households > options.households_max:
            grid.huge = buildings[atoms[members[0]].buildings[0]]["code"]
            exceptions.append(
                {
                    "kind": "building_above_max",
                    "building": grid.huge,
                    "households": grid.households,
                    "detail": f"building {grid.huge} alone has {grid.households} households "
                    f"(> {options.households_max}): a grid of its own",
                }
            )
        new_grids.append(grid)
    _continuations(new_grids, component, buildings)
    return Solution(new_grids, set(component) - unchanged, unchanged, exceptions, failures)


def _no_buildings(component: set[str]) -> dict:
    return {
        "kind": "no_buildings",
        "codes": sorted(component),
        "detail": "no building of the register stands in " + ", ".join(sorted(component)) + ": left as it is",
    }


def _region(community, grids, component: set[str]):
    geometry = shapely.union_all([g["geometry"] for g in grids if g["code"] in component])
    covered = shapely.union_all([g["geometry"] for g in grids])
    gaps = [gap for gap in shapely.get_parts(community["geometry"].difference(covered)) if gap.intersects(geometry)]
    if gaps:
        geometry = shapely.union_all([geometry, *gaps])
    return shapely.intersection(geometry, community["geometry"])


def _unchanged(groups, atom_group, atoms, buildings, component, by_code, options) -> set[str]:
    """Return the old grids some group holds exactly (all their buildings and no other), in range and whole."""
    by_old: dict[str, set[int]] = defaultdict(set)
    for i, atom in enumerate(atoms):
        by_old[atom.old].add(i)
    found = set()
    for code in sorted(component):
        mine = by_old.get(code)
        if not mine:
            continue
        group = {atom_group[i] for i in mine}
        if len(group) != 1:
            continue
        members = set(groups[group.pop()])
        total = sum(atoms[i].households for i in members)
        geometry = by_code[code]["geometry"]
        if (
            members == mine
            and options.households_min <= total <= options.households_max
            and len(shapely.get_parts(geometry)) == 1
        ):
            found.add(code)
    return found


def _old_of(members: list[int], atoms: list[Atom]) -> str | None:
    olds = {atoms[i].old for i in members}
    return olds.pop() if len(olds) == 1 else None


def _outlines(region, atoms, atom_group, buildings, frame, barriers, groups: int):
    if not atoms:
        return [shapely.Polygon()] * groups
    sites, owner = site_points(atoms, buildings, region, frame)
    site_group = [atom_group[int(o)] for o in owner]
    if not any(b.intersects(region) for b in barriers):
        # Straight cuts where a power diagram separates the groups; along roads and rivers the cells follow them.
        straight = power.power_outlines(region, sites, np.array(site_group), groups, frame)
        if straight is not None:
            return straight
    cells = cell_rules.build_cells(region, sites, frame, barriers)
    return cell_rules.group_outlines(cells, site_group, groups, sites, frame)


def _new_grid(geometry, members: list[int], atoms: list[Atom], buildings) -> NewGrid:
    return grid_of(geometry, sorted(i for a in members for i in atoms[a].buildings), buildings)


def grid_of(geometry, positions: list[int], buildings) -> NewGrid:
    """Return the new grid of these buildings (positions in the list handed in) with the given outline."""
    sources: dict[str, int] = defaultdict(int)
    for i in positions:
        if buildings[i]["grid"] is not None:
            sources[buildings[i]["grid"]] += buildings[i]["households"]
    population = [buildings[i].get("population") for i in positions]
    return NewGrid(
        geometry=geometry,
        households=sum(buildings[i]["households"] for i in positions),
        population=None if any(v is None for v in population) else sum(population),
        buildings=positions,
        sources=dict(sources),
    )


def _continuations(new_grids: list[NewGrid], component: set[str], buildings) -> None:
    """A new grid keeps an old code when it holds at least half of that grid's households and they are most of
    its own (of two equal halves, the first in order of size keeps it)."""
    old_totals: dict[str, int] = defaultdict(int)
    for b in buildings:
        if b["grid"] in component:
            old_totals[b["grid"]] += b["households"]
    taken: set[str] = set()
    for grid in sorted(new_grids, key=lambda g: -g.households):
        for code, count in sorted(grid.sources.items(), key=lambda item: (-item[1], item[0])):
            if code in taken:
                continue
            if count * 2 >= old_totals[code] and count * 2 > grid.households:
                grid.continues = code
                taken.add(code)
            break
