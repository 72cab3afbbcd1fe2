"""Geometry helpers of the audit: overlay parts, repair, JSON output, and measuring lon/lat pieces in metres."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import shapely
from pyproj import Transformer

from gridmap import crs as crs_module

POLYGON_TYPE = 3  # shapely geometry type id
CHUNK = 4096  # pairs or groups per worker task
# Longest lon/lat piece projected as a straight line: 1e-4° is about 11 m of latitude (less of longitude).
MAX_SEGMENT_DEG = 1e-4


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def parallel(function: Callable, items: Sequence, chunk: int = CHUNK) -> list:
    """Run `function` over chunks of `items` on a few threads (shapely releases the GIL) and concatenate."""
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    if len(chunks) <= 1 or _workers() == 1:
        return [r for c in chunks for r in function(c)]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        return [r for part in pool.map(function, chunks) for r in part]


def polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split overlay results into their polygons: (polygons, index of the geometry each came from).

    Intersections and differences of touching shapes come back with lines and points mixed in; those have no
    area and are dropped here.
    """
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return np.array([], dtype=object), np.array([], dtype=np.int64)
    parts, first = shapely.get_parts(geoms, return_index=True)
    parts, second = shapely.get_parts(parts, return_index=True)  # a collection may hold multipolygons
    owner = first[second]
    keep = (shapely.get_type_id(parts) == POLYGON_TYPE) & ~shapely.is_empty(parts)
    return parts[keep], owner[keep]


def repair(geom: shapely.Geometry) -> shapely.Geometry:
    """Return a valid polygonal version of an invalid geometry (a bow-tie becomes its two triangles)."""
    fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    parts, _ = polygons(np.array([fixed], dtype=object))
    return shapely.MultiPolygon(list(parts)) if len(parts) else shapely.MultiPolygon()


def geojson(geom: shapely.Geometry) -> dict:
    """Return a geometry as GeoJSON rounded to 7 decimals."""
    # 7 decimals of a degree is about 1 cm: enough to draw and to find the spot, and it halves the JSON.
    rounded = shapely.transform(geom, lambda xy: np.round(xy, 7))
    return json.loads(shapely.to_geojson(rounded))


def lonlat(point: shapely.Point) -> list[float]:
    """Return [lon, lat] of a point rounded to 7 decimals."""
    return [round(point.x, 7), round(point.y, 7)]


class Metric:
    """One local transverse Mercator around the data: areas and lengths in metres of lon/lat geometry.

    A straight lon/lat edge is a curve in any projection. Projecting only its two ends replaces the curve by its
    chord, up to a metre off over 10 km, while a neighbour whose side has extra vertices on the same lon/lat line
    follows the curve: the sliver between them would be measured as thousands of m² although it is nothing in
    lon/lat. So every ring is segmentized in lon/lat first (no piece longer than MAX_SEGMENT_DEG, about 10 m):
    the chord of a 10 m piece is within a micrometre of the curve, and what is measured is the lon/lat polygon.
    Rings are densified as lines and measured by the shoelace formula, never rebuilt into polygons: GEOS
    "repairs" a densified polygon that comes out invalid with buffer(0), which can erase a thin piece entirely.
    """

    def __init__(self, geoms: np.ndarray) -> None:
        present = geoms[~shapely.is_empty(geoms)] if len(geoms) else geoms
        if len(present):
            minx, miny, maxx, maxy = shapely.total_bounds(present)
        else:
            minx = maxx = 117.2
            miny = maxy = 39.1
        self.centre = ((minx + maxx) / 2, (miny + maxy) / 2)
        self.crs = crs_module.local_metric_crs(lon=self.centre[0], lat=self.centre[1])
        # always_xy: EPSG:4326 is latitude-first by definition; our coordinates are lon, lat.
        self._transformer = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    def _xy(self, coords: np.ndarray) -> np.ndarray:
        x, y = self._transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def project(self, geoms):
        """Project the vertices of lon/lat geometries (one or an array) into metres (for distances)."""
        return shapely.transform(geoms, self._xy)

    def measure(self, geoms) -> tuple[np.ndarray, np.ndarray]:
        """Return (areas in m², perimeters in m) of lon/lat polygons or multipolygons, following their edges."""
        geoms = np.atleast_1d(np.asarray(geoms, dtype=object))
        areas, lengths = np.zeros(len(geoms)), np.zeros(len(geoms))
        if not len(geoms):
            return areas, lengths
        polygons_, owner = shapely.get_parts(geoms, return_index=True)
        polygons_, second = shapely.get_parts(polygons_, return_index=True)  # collections may hold multipolygons
        owner = owner[second]
        keep = shapely.get_type_id(polygons_) == POLYGON_TYPE
        rings, ring_polygon = shapely.get_rings(polygons_[keep], return_index=True)
        if not len(rings):
            return areas, lengths
        exterior = np.r_[True, ring_polygon[1:] != ring_polygon[:-1]]  # each polygon lists its shell first
        # Lines, not polygons: segmentizing a LinearRing never triggers GEOS's buffer(0) repair.
        dense = shapely.segmentize(
            shapely.linestrings(shapely.get_coordinates(rings), indices=_ring_index(rings)), MAX_SEGMENT_DEG
        )
        coords, ring = shapely.get_coordinates(dense, return_index=True)
        xy = self._xy(coords)
        same = ring[1:] == ring[:-1]  # consecutive coordinates of one ring
        x0, y0, x1, y1 = xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]
        cross = np.where(same, x0 * y1 - x1 * y0, 0.0)
        step = np.where(same, np.hypot(x1 - x0, y1 - y0), 0.0)
        ring_area = np.abs(np.bincount(ring[:-1], weights=cross, minlength=len(rings))) / 2
        ring_length = np.bincount(ring[:-1], weights=step, minlength=len(rings))
        geometry_of_ring = owner[keep][ring_polygon]
        areas += np.bincount(geometry_of_ring, weights=np.where(exterior, ring_area, -ring_area), minlength=len(geoms))
        lengths += np.bincount(geometry_of_ring, weights=ring_length, minlength=len(geoms))
        return areas, lengths

    def area(self, geoms) -> np.ndarray:
        """Return areas in square metres of lon/lat polygons or multipolygons."""
        return self.measure(geoms)[0]

    def describe(self) -> str:
        """Say which CRS measured the areas."""
        return (
            f"transverse Mercator centred on {self.centre[0]:.5f}, {self.centre[1]:.5f} (WGS84), "
            f"lon/lat edges followed in steps of at most {MAX_SEGMENT_DEG:g}°"
        )


def _ring_index(rings: np.ndarray) -> np.ndarray:
    """Return, for every coordinate of `rings`, the number of the ring it belongs to."""
    return np.repeat(np.arange(len(rings)), shapely.get_num_coordinates(rings))


def rounded_m2(value: float) -> float:
    """Round an area to centimetres² above 1 m², to 3 significant digits below (a zero tolerance lists crumbs)."""
    value = float(value)
    return round(value, 2) if value >= 1 else float(f"{value:.3g}")


def make_finding(
    kind: str, codes: Iterable[str], geometry: shapely.Geometry, area_m2: float, detail: str | None, **extra
) -> dict:
    """Return one finding as JSON-ready values (the audit adds the areas' names beside their codes)."""
    return {
        "kind": kind,
        "codes": list(codes),
        "area_m2": rounded_m2(area_m2),
        "point": lonlat(shapely.point_on_surface(geometry)),
        "geometry": geojson(geometry),
        "detail": detail,
        **extra,
    }
