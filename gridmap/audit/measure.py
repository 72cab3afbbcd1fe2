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
    """Areas and lengths in metres of lon/lat geometry, as the lon/lat polygons they are, on the WGS84 ellipsoid.

    A straight lon/lat edge is a curve in any projection. Projecting only its two ends replaces the curve by its
    chord, up to a metre off over 10 km, while a neighbour whose side has extra vertices on the same lon/lat line
    follows the curve: the sliver between them would be measured as thousands of m² although it is nothing in
    lon/lat. So nothing is projected: by Green's theorem the area of a lon/lat polygon on the ellipsoid is
    -∮ G(φ) dλ, where G(φ) = ∫ M·N·cos φ dφ (M, N the radii of curvature) is the area per radian of longitude of
    the band up to latitude φ. Along a straight lon/lat edge φ changes linearly with λ, so each edge's integral is
    taken by Simpson's rule (exact for edges along a parallel or a meridian, within 1e-12 for a diagonal 10 km
    edge) and G by 3-point Gauss–Legendre quadrature from a latitude of the same ring. These are the "local scale
    factors" at each vertex and edge midpoint; the result is the ellipsoidal area whatever the extent, with no
    densifying. Lengths (for compactness) integrate ds² = (M dφ)² + (N cos φ dλ)² the same way.
    Distances to the nearest grid are measured in a transverse Mercator centred on the data (`project`).
    """

    def __init__(self, geoms: np.ndarray) -> None:
        present = geoms[~shapely.is_empty(geoms)] if len(geoms) else geoms
        if len(present):
            minx, miny, maxx, maxy = shapely.total_bounds(present)
        else:
            minx = maxx = 117.2
            miny = maxy = 39.1
        self.centre = ((minx + maxx) / 2, (miny + maxy) / 2)
        self._transformer: Transformer | None = None

    def _xy(self, coords: np.ndarray) -> np.ndarray:
        if self._transformer is None:
            metric = crs_module.local_metric_crs(lon=self.centre[0], lat=self.centre[1])
            # always_xy: EPSG:4326 is latitude-first by definition; our coordinates are lon, lat.
            self._transformer = Transformer.from_crs("EPSG:4326", metric, always_xy=True)
        x, y = self._transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def project(self, geoms):
        """Project the vertices of lon/lat geometries (one or an array) into metres (for distances)."""
        return shapely.transform(geoms, self._xy)

    def measure(self, geoms) -> tuple[np.ndarray, np.ndarray]:
        """Return (areas in m², perimeters in m) of lon/lat polygons or multipolygons on the WGS84 ellipsoid."""
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
        coords, ring = shapely.get_coordinates(rings, return_index=True)  # rings are closed: last = first
        lam, phi = np.radians(coords[:, 0]), np.radians(coords[:, 1])
        reference = phi[np.searchsorted(ring, np.arange(len(rings)))][ring]  # the first latitude of each ring
        same = ring[1:] == ring[:-1]  # consecutive coordinates of one ring: an edge
        dl = np.where(same, lam[1:] - lam[:-1], 0.0)
        dp = np.where(same, phi[1:] - phi[:-1], 0.0)
        pm = (phi[:-1] + phi[1:]) / 2
        at_vertex, at_middle = _band(phi, reference), _band(pm, reference[:-1])
        edge_area = -dl * (at_vertex[:-1] + 4 * at_middle + at_vertex[1:]) / 6
        speed_vertex, speed_middle = _speed(phi), _speed(pm)
        edge_length = (
            np.hypot(speed_vertex[0][:-1] * dp, speed_vertex[1][:-1] * dl)
            + 4 * np.hypot(speed_middle[0] * dp, speed_middle[1] * dl)
            + np.hypot(speed_vertex[0][1:] * dp, speed_vertex[1][1:] * dl)
        ) / 6
        ring_area = np.abs(np.bincount(ring[:-1], weights=edge_area, minlength=len(rings)))
        ring_length = np.bincount(ring[:-1], weights=edge_length, minlength=len(rings))
        geometry_of_ring = owner[keep][ring_polygon]
        areas += np.bincount(geometry_of_ring, weights=np.where(exterior, ring_area, -ring_area), minlength=len(geoms))
        lengths += np.bincount(geometry_of_ring, weights=ring_length, minlength=len(geoms))
        return areas, lengths

    def area(self, geoms) -> np.ndarray:
        """Return areas in square metres of lon/lat polygons or multipolygons."""
        return self.measure(geoms)[0]

    def describe(self) -> str:
        """Say how the areas were measured."""
        return "WGS84 ellipsoid, every lon/lat edge followed exactly (no projection)"


_WGS84_A = 6378137.0
_WGS84_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(3)  # exact to degree 5: to 1e-12 over a ring


def _radii(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the meridian (M) and prime-vertical (N) radii of curvature of WGS84 at latitudes phi (radians)."""
    w = 1.0 - _WGS84_E2 * np.sin(phi) ** 2
    return _WGS84_A * (1.0 - _WGS84_E2) / w**1.5, _WGS84_A / np.sqrt(w)


def _band(phi: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Return ∫ M·N·cos φ dφ from `reference` to `phi`: m² per radian of longitude between two latitudes."""
    half, mid = (phi - reference) / 2, (phi + reference) / 2
    total = np.zeros_like(phi)
    for node, weight in zip(_NODES, _WEIGHTS, strict=True):
        at = mid + half * node
        m, n = _radii(at)
        total += weight * m * n * np.cos(at)
    return half * total


def _speed(phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (M, N cos φ): metres per radian of latitude and of longitude at latitudes phi."""
    m, n = _radii(phi)
    return m, n * np.cos(phi)


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
