"""Small hand-made communities with known buildings, for the register and proposal tests.

A community is a box near Nankai (lon 117.1, lat 39.1) cut into vertical strips (its grids); each strip holds a
lattice of buildings with the households given, so every total is known in advance.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from geodata import write_geojson
from shapely.geometry import box

from gridmap import boundaries

LON0, LAT0 = 117.10, 39.10
STRIP = 0.004  # degrees of longitude per grid (about 345 m)
HEIGHT = 0.004  # degrees of latitude (about 444 m)
STREET_CODE = "120104001"
COMMUNITY_CODE = "120104001001"


def grid_record(number: int, geometry, households: int | None = None) -> dict:
    """One comprehensive grid of the test community, numbered from 1 (population twice its households)."""
    return {
        "code": f"{COMMUNITY_CODE}{number:03d}",
        "name": f"百合第{number}网格",
        "parent_code": COMMUNITY_CODE,
        "level": "grid",
        "kind": "综合",
        "households": households,
        "population": None if households is None else households * 2,
        "staff": 1,
        "geometry": geometry,
    }


def strips(households: list[list[int]], *, height: float = HEIGHT, estates: dict[int, str] | None = None):
    """Return (grids, community, buildings): one vertical strip per entry of `households`, each with a lattice of
    buildings carrying those households; `estates` names the estate of the buildings of some strips."""
    estates = estates or {}
    grids, buildings = [], []
    for i, counts in enumerate(households):
        west, east = round(LON0 + i * STRIP, 7), round(LON0 + (i + 1) * STRIP, 7)  # neighbours share exact edges
        geometry = box(west, LAT0, east, round(LAT0 + height, 7))
        grids.append(grid_record(i + 1, geometry, sum(counts)))
        side = int(np.ceil(np.sqrt(len(counts))))
        for k, count in enumerate(counts):
            row, column = divmod(k, side)
            lon = west + STRIP * (column + 0.5) / side
            lat = LAT0 + height * (row + 0.5) / max(1, int(np.ceil(len(counts) / side)))
            buildings.append(
                {
                    "code": f"B{i + 1:02d}{k + 1:03d}",
                    "name": f"{i + 1}区{k + 1}号楼",
                    "address": None,
                    "estate": estates.get(i),
                    "community_code": COMMUNITY_CODE,
                    "households": count,
                    "population": count * 2,
                    "lon": round(lon, 7),
                    "lat": round(lat, 7),
                    "footprint": None,
                    "geocode_level": None,
                }
            )
    outline = box(LON0, LAT0, round(LON0 + STRIP * len(households), 7), round(LAT0 + height, 7))
    community = {"code": COMMUNITY_CODE, "name": "百合社区", "parent_code": STREET_CODE, "level": "community"}
    return grids, {**community, "geometry": outline}, buildings


def frames(grids: list[dict], community: dict) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Return the grid and community GeoDataFrames `propose_plan` takes."""
    return (
        gpd.GeoDataFrame(grids, geometry="geometry", crs="EPSG:4326"),
        gpd.GeoDataFrame([community], geometry="geometry", crs="EPSG:4326"),
    )


def load(store, directory, grids: list[dict], community: dict, buildings: list[dict]) -> None:
    """Load a street, the community, its grids (as the current edition) and the buildings into a store."""
    street = {"code": STREET_CODE, "name": "长虹街道", "parent_code": "", "geometry": community["geometry"]}
    files = {
        "street": write_geojson(directory / "street.geojson", [street]),
        "community": write_geojson(directory / "community.geojson", [community]),
        "grid": write_geojson(directory / "grids.geojson", grids),
    }
    for level in ("street", "community", "grid"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level))
    store.save_buildings(buildings)


def union_is(geometries, outline) -> bool:
    """Whether the geometries tile the outline: each lies inside it, no two overlap, and their areas add up to it.

    (Measured by areas rather than one big union, whose overlay may snap nearly collinear edges together.)"""
    geometries = list(geometries)
    tolerance = outline.area * 1e-9
    if any(g.difference(outline).area > tolerance for g in geometries):
        return False
    for i, a in enumerate(geometries):
        for b in geometries[i + 1 :]:
            if a.intersection(b).area > tolerance:
                return False
    return abs(sum(g.area for g in geometries) - outline.area) <= tolerance
