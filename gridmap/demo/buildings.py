"""The demo household register: buildings in the demo district's grids whose households and population add up to
their grid's, placed in each grid's estate compound or around it.

Its random draws use seed + 2, so it never shifts the boundaries' or the gazetteer's draws.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity

from gridmap.demo.district import _KM_PER_DEG_LAT, _KM_PER_DEG_LON, DEFAULT_SEED, demo_boundary_dir, read_district
from gridmap.demo.gazetteer import _point_inside, read_gazetteer_csv

_ESTATE_SHARE = (0.3, 0.55)  # share of a comprehensive grid's households living in its estate
_ESTATE_MAX = 280  # households of the largest estate: the old walk-up compounds of an inner district are small


def generate_buildings(
    district: dict[str, gpd.GeoDataFrame], gazetteer: list[dict], seed: int = DEFAULT_SEED
) -> list[dict]:
    """Make the demo household register: buildings whose households and population add up to their grid's.

    A comprehensive grid holds its estate (小区: the gazetteer's buildings of that estate, by name, standing
    together in a walled compound somewhere inside the grid) and 6–12 loose buildings (散居楼, street-front
    buildings) around it; a dedicated grid with residents holds 1–3 dormitory buildings. An estate's compound
    covers about its share of the grid's households (30–55 %, at most 280 households). Codes are the community
    code + 4 digits.
    """
    rng = np.random.default_rng(seed + 2)
    grids = district["grid"].reset_index(drop=True)
    geometries = grids.geometry.to_numpy()
    tree = shapely.STRtree(geometries)
    entries = [e for e in gazetteer if e["kind"] == "building"]
    points = shapely.points([float(e["lon"]) for e in entries], [float(e["lat"]) for e in entries])
    estate_names: dict[int, list[dict]] = {}
    where, which = tree.query(points, predicate="within") if len(entries) else ([], [])
    for entry_index, grid_index in sorted(zip(np.asarray(where).tolist(), np.asarray(which).tolist(), strict=True)):
        estate_names.setdefault(grid_index, []).append(entries[entry_index])
    rows: list[dict] = []
    sequence: dict[str, int] = {}
    for index, grid in enumerate(grids.drop(columns="geometry").to_dict("records")):
        polygon = geometries[index]
        households, population = int(grid["households"]), int(grid["population"])
        base = str(grid["name"]).removesuffix("网格").removesuffix("专属")
        if grid["kind"] == "专属":
            if households == 0:
                continue
            count = int(rng.integers(1, 4))
            points = [_building_point(polygon, polygon, rng) for _ in range(count)]
            estate = f"{base}宿舍区"
            names = [f"{estate}{i + 1}号楼" for i in range(count)]
            estates = [estate] * count
            shares = _split(households, rng.uniform(0.6, 1.4, size=count))
        else:
            named = estate_names.get(index, [])
            share = min(rng.uniform(*_ESTATE_SHARE), _ESTATE_MAX / max(households, 1))
            compound = _compound(polygon, share, rng)
            loose = int(rng.integers(6, 13))
            around = polygon.difference(compound.buffer(_metres(12)))
            shapely.prepare(compound)
            shapely.prepare(around)
            points = [_building_point(compound, polygon, rng) for _ in named]
            points += _ring_points(polygon, compound, around if not around.is_empty else polygon, loose, rng)
            names = [e["name"] for e in named] + [f"{base}散居{i + 1}号楼" for i in range(loose)]
            estates = [e["estate"] for e in named] + [None] * loose
            in_estate = round(households * share) if named else 0
            shares = _split(in_estate, rng.uniform(0.6, 1.4, size=len(named)))
            shares += _split(households - in_estate, rng.uniform(0.6, 1.4, size=loose))
        people = _split(population, np.array(shares, dtype=float)) if households else [0] * len(points)
        for (lon, lat), name, estate, h, p in zip(points, names, estates, shares, people, strict=True):
            community = grid["parent_code"]
            sequence[community] = sequence.get(community, 0) + 1
            rows.append(
                {
                    "code": f"{community}{sequence[community]:04d}",
                    "name": name,
                    "address": name,
                    "estate": estate,
                    "community_code": community,
                    "households": int(h),
                    "population": int(p),
                    "lon": round(float(lon), 7),
                    "lat": round(float(lat), 7),
                }
            )
    return rows


def _building_point(area, grid, rng: np.random.Generator) -> tuple[float, float]:
    """Return a point in `area` that stays inside `grid`, 2 m clear of its edge, once rounded to 7 decimals."""
    while True:
        x, y = _point_inside(area, rng)
        point = shapely.Point(round(x, 7), round(y, 7))
        if grid.contains(point) and grid.exterior.distance(point) > _metres(2):
            return point.x, point.y


def _metres(value: float) -> float:
    """Degrees of latitude for a distance in metres (good enough to place demo buildings)."""
    return value / (_KM_PER_DEG_LAT * 1000)


def _ring_points(polygon, compound, around, count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Spread the loose buildings all the way round the compound (one per sector), between it and the grid's edge,
    so no side of the estate is left without neighbours."""
    centre = compound.centroid
    squeeze = _KM_PER_DEG_LAT / _KM_PER_DEG_LON  # degrees of longitude per degree of latitude, for equal metres
    inner = math.sqrt(compound.area / squeeze / math.pi) + _metres(12)  # the compound's radius, in degrees of lat
    reach = math.hypot(polygon.bounds[2] - polygon.bounds[0], polygon.bounds[3] - polygon.bounds[1]) * 2
    angles = rng.uniform(0, 2 * math.pi) + 2 * math.pi * (np.arange(count) + rng.uniform(0.2, 0.8, count)) / count
    ends = np.column_stack([centre.x + np.cos(angles) * reach * squeeze, centre.y + np.sin(angles) * reach])
    rays = shapely.linestrings([[(centre.x, centre.y), tuple(end)] for end in ends])
    # A grid is a convex Voronoi cell and the centre lies inside it: each ray leaves it once.
    inside = shapely.intersection(rays, polygon)
    points = []
    for angle, piece, fraction in zip(angles, inside, rng.uniform(0.2, 0.8, count), strict=True):
        reach_here = piece.length / math.hypot(math.cos(angle) * squeeze, math.sin(angle)) - _metres(4)
        if reach_here <= inner:
            points.append(_building_point(around, polygon, rng))
            continue
        distance = inner + (reach_here - inner) * fraction
        candidate = shapely.Point(
            round(centre.x + math.cos(angle) * distance * squeeze, 7), round(centre.y + math.sin(angle) * distance, 7)
        )
        if polygon.contains(candidate) and polygon.exterior.distance(candidate) > _metres(2):
            points.append((candidate.x, candidate.y))
        else:
            points.append(_building_point(around, polygon, rng))
    return points


def _compound(polygon, share: float, rng: np.random.Generator):
    """Return a round compound inside the polygon covering about `share` of it, around a point near its middle."""
    radius = math.sqrt(polygon.area * share / math.pi) * 0.75
    centre = polygon.centroid
    for _ in range(20):
        x = centre.x + rng.uniform(-0.15, 0.15) * radius * _KM_PER_DEG_LAT / _KM_PER_DEG_LON
        y = centre.y + rng.uniform(-0.15, 0.15) * radius
        disc = shapely.affinity.scale(shapely.Point(x, y).buffer(radius, 24), _KM_PER_DEG_LAT / _KM_PER_DEG_LON, 1.0)
        compound = disc.intersection(polygon)
        if compound.area >= disc.area * 0.8:
            return compound
    return polygon.buffer(-radius * 0.2) if not polygon.buffer(-radius * 0.2).is_empty else polygon


def _split(total: int, weights) -> list[int]:
    """Split total into whole parts in proportion to weights (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    if not len(weights):
        return []
    if weights.sum() <= 0:
        weights = np.ones(len(weights))
    exact = weights * total / weights.sum()
    parts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - parts), kind="stable")[: total - parts.sum()]:
        parts[i] += 1
    return parts.tolist()


def demo_buildings(directory: Path | None = None) -> list[dict]:
    """Return the demo register for the demo district in `directory` (default: the repository's)."""
    directory = directory or demo_boundary_dir()
    return generate_buildings(read_district(directory), read_gazetteer_csv(directory))
