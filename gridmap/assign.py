"""THE point-in-polygon rule, and the in-memory grid index that applies it fast.

The rule: a point belongs to the grid that covers it, boundary included. When several grids cover it (a shared
edge or vertex, or grids that overlap) the grid with the lowest code wins, and the answer says `ambiguous` and
lists every candidate: the tie-break is recorded, never silent. A point in no grid gets no grid, plus the nearest
grid and its distance in metres. SpatiaLite and PostGIS may pre-filter candidates (`locate_via_database`), but
`choose` decides, so every path gives the same answer.

Speed comes from a raster of cells over the edition. A cell that lies in the interior of exactly one grid (and
touches no other) answers every point in it without a geometric test; a cell that no grid touches answers "in no
grid"; only cells crossed by an edge need the exact `covers` test against the few grids that touch them.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from scipy import ndimage

from gridmap import crs as crs_module
from gridmap.errors import InvalidInput, NotFound

# A cell's box is widened by this much (degrees, about 0.1 mm) before testing that a grid's interior holds it,
# so a point that floating-point rounding puts in a neighbouring cell still lies inside the box that was tested.
_CELL_MARGIN = 1e-9
# How close (in cells) an edge may pass to a cell border and still mark the cell beyond it.
_HAIR = 1e-6
_EMPTY = -1  # no grid touches the cell
_MIXED = -2  # an edge crosses the cell: test exactly
_OUTSIDE = -3  # beyond the raster (outside every grid's bounding box)
CELLS_PER_GRID = 2048
MAX_CELLS = 8_000_000
EXACT_CHUNK = 200_000


@dataclass(frozen=True)
class Assignment:
    """Where one point landed."""

    grid_code: str | None
    community_code: str | None = None
    street_code: str | None = None
    ambiguous: bool = False
    candidates: tuple[str, ...] = ()
    nearest_code: str | None = None
    nearest_distance_m: float | None = None

    def incident_fields(self, edition: str | None = None) -> dict:
        """Return the incident columns this answer sets when a case is first located (its original grid too)."""
        fields = {
            "grid_code": self.grid_code,
            "original_grid_code": self.grid_code,
            "community_code": self.community_code,
            "street_code": self.street_code,
            "ambiguous": bool(self.ambiguous),
        }
        if edition is not None:
            fields.update(edition=edition, original_edition=edition)
        return fields

    def to_dict(self) -> dict:
        """Return the JSON shape used by the CLI and the API."""
        return {
            "grid_code": self.grid_code,
            "community_code": self.community_code,
            "street_code": self.street_code,
            "ambiguous": self.ambiguous,
            "candidates": list(self.candidates),
            "nearest_code": self.nearest_code,
            "nearest_distance_m": None if self.nearest_distance_m is None else round(self.nearest_distance_m, 2),
        }


def choose(codes: Iterable[str]) -> tuple[str | None, bool, tuple[str, ...]]:
    """Apply the tie-break to the codes of the grids covering a point: (winner, ambiguous, all candidates)."""
    candidates = tuple(sorted(set(codes)))
    if not candidates:
        return None, False, ()
    return candidates[0], len(candidates) > 1, candidates


@dataclass
class BulkResult:
    """Answers for many points at once, as arrays (index -1: no grid)."""

    index: GridIndex
    grid: np.ndarray
    ambiguous: np.ndarray
    candidates: dict[int, tuple[int, ...]] = field(default_factory=dict)
    nearest: np.ndarray | None = None
    nearest_distance_m: np.ndarray | None = None

    def grid_codes(self) -> list[str | None]:
        """Return each point's grid code (None when in no grid)."""
        codes = self.index.codes
        return [codes[i] if i >= 0 else None for i in self.grid.tolist()]

    def assignment(self, position: int) -> Assignment:
        """Return the full answer for the point at `position`."""
        grid = int(self.grid[position])
        idx = self.index
        if grid < 0:
            nearest = None if self.nearest is None else int(self.nearest[position])
            return Assignment(
                grid_code=None,
                nearest_code=None if nearest is None or nearest < 0 else idx.codes[nearest],
                nearest_distance_m=None if nearest is None or nearest < 0 else float(self.nearest_distance_m[position]),
            )
        many = self.candidates.get(position, ())
        return Assignment(
            grid_code=idx.codes[grid],
            community_code=idx.community_codes[grid],
            street_code=idx.street_codes[grid],
            ambiguous=bool(self.ambiguous[position]),
            candidates=tuple(idx.codes[i] for i in many) if many else (idx.codes[grid],),
        )

    def assignments(self) -> Iterator[Assignment]:
        """Yield the answer for every point, in input order."""
        for position in range(len(self.grid)):
            yield self.assignment(position)


class GridIndex:
    """The grids of one edition, ready to answer "which grid covers this point?" quickly."""

    def __init__(
        self,
        codes: Sequence[str],
        geometries: Sequence[shapely.Geometry],
        community_codes: Sequence[str | None],
        street_codes: Sequence[str | None],
        *,
        names: Sequence[str] | None = None,
        edition: str | None = None,
    ) -> None:
        order = sorted(range(len(codes)), key=lambda i: codes[i])
        # Grids are kept sorted by code, so "lowest code" is "lowest position".
        self.codes = [codes[i] for i in order]
        if len(set(self.codes)) != len(self.codes):
            raise InvalidInput("grid codes must be unique within an edition")
        self.geometries = np.array([geometries[i] for i in order], dtype=object)
        self.community_codes = [community_codes[i] for i in order]
        self.street_codes = [street_codes[i] for i in order]
        self.names = [names[i] for i in order] if names is not None else [""] * len(order)
        self.edition = edition
        self.position = {code: i for i, code in enumerate(self.codes)}
        shapely.prepare(self.geometries)
        self.tree = shapely.STRtree(self.geometries)
        self._build_raster()

    @classmethod
    def build(
        cls,
        codes: Sequence[str],
        geometries: Sequence[shapely.Geometry],
        community_codes: Sequence[str | None] | None = None,
        street_codes: Sequence[str | None] | None = None,
        **kwargs,
    ) -> GridIndex:
        """Build an index from parallel lists (community and street codes optional)."""
        empty = [None] * len(codes)
        return cls(codes, geometries, community_codes or empty, street_codes or empty, **kwargs)

    def __len__(self) -> int:
        return len(self.codes)

    # ---- the raster ------------------------------------------------------------------------------------
    def _build_raster(self) -> None:
        if not len(self.codes):
            self.x0 = self.y0 = 0.0
            self.dx = self.dy = 1.0
            self.nx = self.ny = 0
            self.owner = np.zeros((0,), dtype=np.int32)
            self.candidate_start = np.zeros(1, dtype=np.int64)
            self.candidate_grid = np.zeros(0, dtype=np.int64)
            self._owner_or_outside = np.array([_OUTSIDE], dtype=np.int64)
            return
        minx, miny, maxx, maxy = shapely.total_bounds(self.geometries)
        width, height = max(maxx - minx, 1e-9), max(maxy - miny, 1e-9)
        cells = min(MAX_CELLS, max(4096, CELLS_PER_GRID * len(self.codes)))
        size = math.sqrt(width * height / cells)
        self.nx, self.ny = max(1, math.ceil(width / size)), max(1, math.ceil(height / size))
        self.dx, self.dy = width / self.nx, height / self.ny
        # One spare cell on every side, so points on the outermost edges fall inside the raster.
        self.x0, self.y0 = float(minx) - self.dx, float(miny) - self.dy
        self.nx, self.ny = self.nx + 2, self.ny + 2
        on_edge = self._cells_on_edges()
        # Cells no edge crosses form regions that lie wholly inside one grid, or wholly outside every grid;
        # one exact test at a single cell of each region classifies all of it.
        regions, count = ndimage.label(~on_edge)
        owner = np.full(regions.shape, _MIXED, dtype=np.int32)
        if count:
            first_cell = ndimage.labeled_comprehension(
                np.arange(regions.size).reshape(regions.shape), regions, np.arange(1, count + 1), np.min, np.int64, -1
            )
            iy, ix = np.divmod(first_cell, self.nx)
            centres = shapely.points(self.x0 + (ix + 0.5) * self.dx, self.y0 + (iy + 0.5) * self.dy)
            which, grids = self.tree.query(centres, predicate="intersects")
            hits = np.bincount(which, minlength=count)
            region_owner = np.where(hits == 0, _EMPTY, _MIXED).astype(np.int32)
            single = hits[which] == 1
            region_owner[which[single]] = grids[single]
            # Overlapping grids make regions covered twice: those stay on the exact path.
            lookup = np.concatenate([[_MIXED], region_owner])
            owner = lookup[regions]
        self.owner = owner.ravel()
        self._collect_cell_candidates()
        self._owner_or_outside = np.append(self.owner, _OUTSIDE).astype(np.int64)

    def _cells_on_edges(self) -> np.ndarray:
        """Mark every cell that an edge of some grid passes through (erring on the safe side)."""
        marked = np.zeros((self.ny, self.nx), dtype=bool)
        rings = shapely.get_rings(shapely.get_parts(self.geometries))
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        same_ring = ring_of[1:] == ring_of[:-1]
        start, end = coords[:-1][same_ring], coords[1:][same_ring]
        # Sample each segment at most half a cell apart, so consecutive samples lie in the same or neighbouring
        # cells. Mark each sample's cell (and the cells it is within a hair of, so rounding cannot hide an edge
        # lying on a cell border), and for a diagonal step both cells beside it, one of which the segment crosses.
        gx = (start[:, 0] - self.x0) / self.dx, (end[:, 0] - self.x0) / self.dx
        gy = (start[:, 1] - self.y0) / self.dy, (end[:, 1] - self.y0) / self.dy
        steps = np.ceil(np.maximum(np.abs(gx[1] - gx[0]), np.abs(gy[1] - gy[0])) * 2).astype(np.int64) + 1
        segment = np.repeat(np.arange(len(steps)), steps + 1)
        offsets = np.arange(len(segment)) - np.repeat(np.cumsum(steps + 1) - (steps + 1), steps + 1)
        fraction = offsets / np.repeat(steps, steps + 1)
        sx = gx[0][segment] + (gx[1] - gx[0])[segment] * fraction
        sy = gy[0][segment] + (gy[1] - gy[0])[segment] * fraction

        def cell(values, limit):
            return np.clip(np.floor(values).astype(np.int64), 0, limit - 1)

        for shift_x in (-_HAIR, _HAIR):
            for shift_y in (-_HAIR, _HAIR):
                marked[cell(sy + shift_y, self.ny), cell(sx + shift_x, self.nx)] = True
        ix, iy = cell(sx, self.nx), cell(sy, self.ny)
        same_segment = segment[1:] == segment[:-1]
        marked[iy[:-1][same_segment], ix[1:][same_segment]] = True
        marked[iy[1:][same_segment], ix[:-1][same_segment]] = True
        return marked

    def _collect_cell_candidates(self) -> None:
        """Keep, for each cell on an edge, the grids that may cover its points (code order), as CSR arrays."""
        mixed = np.flatnonzero(self.owner == _MIXED)
        iy, ix = np.divmod(mixed, self.nx)
        boxes = shapely.box(
            self.x0 + ix * self.dx - _CELL_MARGIN,
            self.y0 + iy * self.dy - _CELL_MARGIN,
            self.x0 + (ix + 1) * self.dx + _CELL_MARGIN,
            self.y0 + (iy + 1) * self.dy + _CELL_MARGIN,
        )
        which, grids = self.tree.query(boxes, predicate="intersects")
        order = np.lexsort((grids, which))
        which, grids = which[order], grids[order]
        counts = np.zeros(self.owner.size, dtype=np.int64)
        np.add.at(counts, mixed[which], 1)
        self.candidate_start = np.concatenate([[0], np.cumsum(counts)])
        self.candidate_grid = grids.astype(np.int64)
        # A mixed cell no grid touches (the safe-side marking overshoots) holds only uncovered points.
        untouched = mixed[counts[mixed] == 0]
        self.owner[untouched] = _EMPTY

    def raster_summary(self) -> dict:
        """Say how the raster splits the edition (for benchmarks and notes)."""
        return {
            "cells": int(self.owner.size),
            "inside_one_grid": int((self.owner >= 0).sum()),
            "empty": int((self.owner == _EMPTY).sum()),
            "on_an_edge": int((self.owner == _MIXED).sum()),
        }

    def _cells(self, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
        """Return each point's cell number; points beyond the raster (or not finite) get `self.owner.size`."""
        with np.errstate(invalid="ignore"):
            fx = (lons - self.x0) / self.dx
            fy = (lats - self.y0) / self.dy
            outside = ~((fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny))
            np.copyto(fx, 0.0, where=outside)
            np.copyto(fy, 0.0, where=outside)
        cell = fy.astype(np.int64) * self.nx + fx.astype(np.int64)  # truncation is floor for values >= 0
        cell[outside] = self.owner.size
        return cell

    # ---- one point -------------------------------------------------------------------------------------
    def covering(self, *, lon: float, lat: float) -> list[int]:
        """Return the positions of every grid covering the point, lowest code first."""
        ix = math.floor((lon - self.x0) / self.dx) if self.nx else -1
        iy = math.floor((lat - self.y0) / self.dy) if self.ny else -1
        if not (0 <= ix < self.nx and 0 <= iy < self.ny):
            return []
        cell = iy * self.nx + ix
        owner = int(self.owner[cell])
        if owner >= 0:
            return [owner]
        if owner == _EMPTY:
            return []
        geometries = self.geometries
        grids = self.candidate_grid[self.candidate_start[cell] : self.candidate_start[cell + 1]].tolist()
        return [g for g in grids if shapely.intersects_xy(geometries[g], lon, lat)]

    def locate(self, *, lon: float, lat: float) -> Assignment:
        """Apply the rule to one WGS84 point."""
        found = self.covering(lon=lon, lat=lat)
        if not found:
            nearest, distance = self.nearest(lon=lon, lat=lat)
            return Assignment(
                grid_code=None,
                nearest_code=None if nearest is None else self.codes[nearest],
                nearest_distance_m=distance,
            )
        grid = found[0]  # positions are in code order: the lowest code wins
        return Assignment(
            grid_code=self.codes[grid],
            community_code=self.community_codes[grid],
            street_code=self.street_codes[grid],
            ambiguous=len(found) > 1,
            candidates=tuple(self.codes[g] for g in found),
        )

    def nearest(self, *, lon: float, lat: float) -> tuple[int | None, float | None]:
        """Return the position of the grid nearest to an uncovered point and its geodesic distance in metres."""
        # The same search as nearest_many, on scalars: array set-up costs more than the search for one point.
        if not len(self.codes) or not (math.isfinite(lon) and math.isfinite(lat)):
            return None, None
        tree, scaled, scale = self._metric_tree()
        point = shapely.Point(lon * scale, lat)
        first = float(shapely.distance(scaled[int(tree.nearest(point))], point))
        low = min(abs(lat), self._lat_span[0])
        high = min(max(abs(lat), self._lat_span[1]), 89.9)
        slack = max(1.0, _east_scale_one(low) / scale) / min(1.0, _east_scale_one(high) / scale)
        best: tuple[float, int] | None = None
        reach = max(first * slack * 1.0001, 1e-12)
        for grid in tree.query(point, predicate="dwithin", distance=reach).tolist():
            (x1, y1), (x2, y2) = shapely.shortest_line(point, scaled[grid]).coords
            metres = crs_module.geodesic_distance_m(lon1=x1 / scale, lat1=y1, lon2=x2 / scale, lat2=y2)
            if best is None or (metres, grid) < best:
                best = (metres, grid)
        return (best[1], best[0]) if best else (None, None)

    def nearest_many(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the nearest grid and geodesic distance in metres for each point (-1, nan when no grids)."""
        positions = np.full(len(lons), -1, dtype=np.int64)
        distances = np.full(len(lons), np.nan)
        if not len(self.codes) or not len(lons):
            return positions, distances
        tree, scaled, scale = self._metric_tree()
        lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
        points = shapely.points(lons * scale, lats)
        # Distances in this space (longitude shrunk as at the index's mid latitude) are metres up to a factor
        # that varies with latitude between the point and the grids; every grid whose scaled distance is within
        # that factor of the nearest one may be the nearest in metres, so all of them are measured exactly.
        pairs, nearest = tree.query_nearest(points, return_distance=True, all_matches=False)
        first = np.zeros(len(points))
        first[pairs[0]] = nearest
        low = np.minimum(np.abs(lats), self._lat_span[0])
        high = np.minimum(np.maximum(np.abs(lats), self._lat_span[1]), 89.9)
        slack = np.maximum(1.0, _east_scale(low) / scale) / np.minimum(1.0, _east_scale(high) / scale)
        which, grids = tree.query(points, predicate="dwithin", distance=np.maximum(first * slack * 1.0001, 1e-12))
        ends = shapely.get_coordinates(shapely.shortest_line(points[which], scaled[grids]))
        ends[:, 0] /= scale
        metres = crs_module.geodesic_distance_m(
            lon1=ends[0::2, 0], lat1=ends[0::2, 1], lon2=ends[1::2, 0], lat2=ends[1::2, 1]
        )
        metres = np.atleast_1d(metres)
        order = np.lexsort((grids, metres, which))
        which, grids, metres = which[order], grids[order], metres[order]
        keep = np.ones(len(which), dtype=bool)
        keep[1:] = which[1:] != which[:-1]
        positions[which[keep]] = grids[keep]
        distances[which[keep]] = metres[keep]
        return positions, distances

    def _metric_tree(self) -> tuple[shapely.STRtree, np.ndarray, float]:
        """Return (built once) the grids with longitudes scaled so a degree each way is as long, and their tree."""
        if getattr(self, "_metric", None) is None:
            _, miny, _, maxy = shapely.total_bounds(self.geometries)
            scale = float(_east_scale(np.array([(miny + maxy) / 2]))[0])
            scaled = shapely.transform(self.geometries, lambda xy: xy * np.array([scale, 1.0]))
            self._lat_span = (min(abs(miny), abs(maxy)) if miny * maxy > 0 else 0.0, max(abs(miny), abs(maxy)))
            self._metric = (shapely.STRtree(scaled), scaled, scale)
        return self._metric

    # ---- many points -----------------------------------------------------------------------------------
    def locate_many(self, lons: Sequence[float], lats: Sequence[float], *, nearest: bool = True) -> BulkResult:
        """Apply the rule to many WGS84 points at once; `nearest=False` skips the nearest-grid search."""
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        grid = np.full(lons.shape, -1, dtype=np.int64)
        ambiguous = np.zeros(lons.shape, dtype=bool)
        candidates: dict[int, tuple[int, ...]] = {}
        if len(self.codes) and len(lons):
            cell = self._cells(lons, lats)
            owner = self._owner_or_outside[cell]
            np.maximum(owner, -1, out=grid)
            edge = np.flatnonzero(owner == _MIXED)
            for chunk in np.array_split(edge, max(1, len(edge) // EXACT_CHUNK)):
                self._exact(chunk, cell[chunk], lons, lats, grid, ambiguous, candidates)
        result = BulkResult(self, grid, ambiguous, candidates)
        if nearest:
            result.nearest = np.full(lons.shape, -1, dtype=np.int64)
            result.nearest_distance_m = np.full(lons.shape, np.nan)
            missing = np.flatnonzero((grid < 0) & np.isfinite(lons) & np.isfinite(lats))
            if len(missing):
                found, metres = self.nearest_many(lons[missing], lats[missing])
                result.nearest[missing] = found
                result.nearest_distance_m[missing] = metres
        return result

    def _exact(self, positions, cells, lons, lats, grid, ambiguous, candidates) -> None:
        """Test points in edge cells against just the grids touching their cell, in code order."""
        if not len(positions):
            return
        first = self.candidate_start[cells]
        counts = self.candidate_start[cells + 1] - first
        point = np.repeat(np.arange(len(positions)), counts)
        within = np.arange(len(point)) - np.repeat(np.cumsum(counts) - counts, counts)
        grids = self.candidate_grid[np.repeat(first, counts) + within]
        # For a point, "intersects" is "covered by": the boundary counts, as the rule says.
        hit = shapely.intersects_xy(self.geometries[grids], lons[positions][point], lats[positions][point])
        point, grids = point[hit], grids[hit]
        if not len(point):
            return
        leading = np.ones(len(point), dtype=bool)
        leading[1:] = point[1:] != point[:-1]
        grid[positions[point[leading]]] = grids[leading]  # candidates are in code order: the lowest code wins
        hits = np.bincount(point, minlength=len(positions))
        several = np.flatnonzero(hits > 1)
        if len(several):
            ambiguous[positions[several]] = True
            starts = dict(zip(point[leading].tolist(), np.flatnonzero(leading).tolist(), strict=True))
            for local in several.tolist():
                candidates[int(positions[local])] = tuple(grids[starts[local] : starts[local] + hits[local]].tolist())


def _east_scale(lats: np.ndarray) -> np.ndarray:
    """Return the length of a degree of longitude over that of a degree of latitude, on the WGS84 ellipsoid."""
    e2 = 0.00669437999014  # WGS84 first eccentricity squared
    sin2 = np.sin(np.radians(lats)) ** 2
    # N cos(lat) / M, with N and M the ellipsoid's prime-vertical and meridional radii of curvature.
    return np.cos(np.radians(lats)) * (1 - e2 * sin2) / (1 - e2)


def _east_scale_one(lat: float) -> float:
    """`_east_scale` for one latitude, without arrays."""
    sin2 = math.sin(math.radians(lat)) ** 2
    return math.cos(math.radians(lat)) * (1 - 0.00669437999014 * sin2) / (1 - 0.00669437999014)


# ---- the store-backed front: one cached index per edition ----------------------------------------------
_cache: dict[tuple[str, str], tuple[tuple, GridIndex]] = {}
_cache_lock = threading.Lock()


def index_from_frames(grids, communities, *, edition: str | None = None) -> GridIndex:
    """Build an index from the grid and community GeoDataFrames of one edition (as `Store.areas` returns them)."""
    street_of = dict(zip(communities["code"], communities["parent_code"], strict=True))
    community = list(grids["parent_code"])
    return GridIndex(
        list(grids["code"]),
        list(grids.geometry),
        community,
        [street_of.get(c) for c in community],
        names=list(grids["name"]),
        edition=edition,
    )


def _edition_name(store, edition: str | None) -> str:
    if edition is not None:
        return store.get_edition(edition).name
    current = store.current_edition()
    if current is None:
        raise NotFound("there is no current edition: load boundaries and activate an edition first")
    return current.name


def grid_index(store, edition: str | None = None) -> GridIndex:
    """Return the in-memory index of an edition (default: the current one), rebuilt whenever it changes."""
    name = _edition_name(store, edition)
    key = (store.url, name)
    fingerprint = store.edition_fingerprint(name)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
    index = index_from_frames(store.areas(name, "grid"), store.areas(name, "community"), edition=name)
    with _cache_lock:
        _cache[key] = (fingerprint, index)
    return index


def to_wgs84_point(*, lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """Check a point given in `crs` and return it as WGS84 lon, lat."""
    crs_module.check_lonlat(lon=lon, lat=lat)
    x, y = crs_module.to_wgs84(lon=float(lon), lat=float(lat), crs=crs)
    return float(x), float(y)


def locate(store, *, lon: float, lat: float, crs: str = "wgs84", edition: str | None = None) -> dict:
    """Find the grid of one point given in `crs`; the JSON answer shared by the CLI and the API."""
    wgs_lon, wgs_lat = to_wgs84_point(lon=lon, lat=lat, crs=crs)
    index = grid_index(store, edition)
    found = index.locate(lon=wgs_lon, lat=wgs_lat)
    answer = found.to_dict()
    position = index.position.get(found.grid_code) if found.grid_code else None
    answer.update(
        grid_name=None if position is None else index.names[position],
        edition=index.edition,
        lon=round(wgs_lon, 7),
        lat=round(wgs_lat, 7),
        crs=crs_module.canonical_crs(crs),
    )
    return answer


def locate_via_database(store, *, lon: float, lat: float, edition: str | None = None) -> Assignment:
    """Apply the same rule with the database's spatial index choosing candidates (SpatiaLite or PostGIS)."""
    name = _edition_name(store, edition)
    code, ambiguous, candidates = choose(store.grids_covering(lon=lon, lat=lat, edition=name))
    if code is None:
        return Assignment(grid_code=None)
    index = grid_index(store, name)
    position = index.position[code]
    return Assignment(
        grid_code=code,
        community_code=index.community_codes[position],
        street_code=index.street_codes[position],
        ambiguous=ambiguous,
        candidates=candidates,
    )


def reassign(store) -> dict[str, int]:
    """Recompute every incident's current grid under the current edition; the original grid is never touched."""
    index = grid_index(store)
    points = store.incident_points()
    if not points:
        return {"incidents": 0, "moved": 0, "unassigned": 0, "ambiguous": 0}
    result = index.locate_many([p["lon"] for p in points], [p["lat"] for p in points], nearest=False)
    updates = []
    moved = 0
    for point, code, position in zip(points, result.grid_codes(), range(len(points)), strict=True):
        grid = int(result.grid[position])
        moved += code != point["grid_code"]
        updates.append(
            {
                "id": point["id"],
                "grid_code": code,
                "community_code": index.community_codes[grid] if grid >= 0 else None,
                "street_code": index.street_codes[grid] if grid >= 0 else None,
                "ambiguous": bool(result.ambiguous[position]),
            }
        )
    store.set_current_grids(updates, edition=index.edition)
    return {
        "incidents": len(points),
        "moved": moved,
        "unassigned": int((result.grid < 0).sum()),
        "ambiguous": int(result.ambiguous.sum()),
    }


# ---- bulk CSV --------------------------------------------------------------------------------------------
OUTPUT_COLUMNS = ("grid_code", "community_code", "street_code", "ambiguous", "error")
CSV_CHUNK = 50_000


def _parse_point(raw_lon: str | None, raw_lat: str | None, crs: str) -> tuple[float, float]:
    try:
        lon, lat = float(raw_lon), float(raw_lat)
    except (TypeError, ValueError):
        raise InvalidInput(f"lon={raw_lon!r}, lat={raw_lat!r} is not a pair of numbers") from None
    return to_wgs84_point(lon=lon, lat=lat, crs=crs)


def locate_csv(
    index: GridIndex,
    input_path: Path,
    output_path: Path,
    *,
    columns: tuple[str, str, str] = ("id", "lon", "lat"),
    crs: str = "wgs84",
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Locate every row of a CSV file and write it back with the grid columns; a bad row gets an `error`."""
    from gridmap.incidents import decode_text

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise InvalidInput(f"{input_path}: no such file")
    crs_module.canonical_crs(crs)
    text = decode_text(input_path.read_bytes(), input_path.name)
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    id_column, lon_column, lat_column = columns
    missing = [c for c in (id_column, lon_column, lat_column) if c not in header]
    if missing:
        raise InvalidInput(
            f"{input_path.name}: no column {', '.join(missing)}; its columns are: {', '.join(header) or '(none)'}"
        )
    counts: Counter[str] = Counter()
    out_header = header + [c for c in OUTPUT_COLUMNS if c not in header]
    with output_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=out_header, extrasaction="ignore")
        writer.writeheader()
        chunk: list[dict] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) == CSV_CHUNK:
                _write_chunk(index, chunk, writer, lon_column, lat_column, crs, counts, progress)
                chunk = []
        _write_chunk(index, chunk, writer, lon_column, lat_column, crs, counts, progress)
    return {
        "rows": counts["rows"],
        "in a grid": counts["located"],
        "in no grid": counts["outside"],
        "ambiguous": counts["ambiguous"],
        "errors": counts["errors"],
    }


def _write_chunk(index, rows, writer, lon_column, lat_column, crs, counts, progress) -> None:
    if not rows:
        return
    lons = np.full(len(rows), np.nan)
    lats = np.full(len(rows), np.nan)
    errors: dict[int, str] = {}
    for position, row in enumerate(rows):
        try:
            lons[position], lats[position] = _parse_point(row.get(lon_column), row.get(lat_column), crs)
        except InvalidInput as exc:
            errors[position] = exc.message
    result = index.locate_many(lons, lats, nearest=False)
    codes = result.grid_codes()
    for position, row in enumerate(rows):
        counts["rows"] += 1
        if position in errors:
            counts["errors"] += 1
            row.update(grid_code="", community_code="", street_code="", ambiguous="", error=errors[position])
        else:
            grid = int(result.grid[position])
            located = grid >= 0
            counts["located" if located else "outside"] += 1
            counts["ambiguous"] += bool(result.ambiguous[position])
            row.update(
                grid_code=codes[position] or "",
                community_code=(index.community_codes[grid] or "") if located else "",
                street_code=(index.street_codes[grid] or "") if located else "",
                ambiguous="true" if result.ambiguous[position] else "false",
                error="",
            )
        writer.writerow(row)
    if progress is not None:
        progress(len(rows))


def locate_batch(grids, communities, lons: Sequence[float], lats: Sequence[float]) -> BulkResult:
    """Apply the rule to one batch of WGS84 points (an import) with a tree over the grid polygons.

    Building `GridIndex`'s raster costs seconds for a district; a batch that is looked up once is answered
    faster from the STR tree alone. Same rule: boundary-inclusive, the lowest code wins a shared edge."""
    index = _TreeIndex(grids, communities)
    lons = np.asarray(lons, dtype=float)
    lats = np.asarray(lats, dtype=float)
    grid = np.full(lons.shape, -1, dtype=np.int64)
    ambiguous = np.zeros(lons.shape, dtype=bool)
    candidates: dict[int, tuple[int, ...]] = {}
    if len(index.codes) and len(lons):
        # For a point, "intersects" is "covered by": the boundary counts, as the rule says.
        point, hit = index.tree.query(shapely.points(lons, lats), predicate="intersects")
        order = np.lexsort((hit, point))  # by point, then by position = by code
        point, hit = point[order], hit[order]
        first = np.ones(len(point), dtype=bool)
        first[1:] = point[1:] != point[:-1]
        grid[point[first]] = hit[first]
        hits = np.bincount(point, minlength=len(lons))
        many = np.flatnonzero(hits > 1)
        ambiguous[many] = True
        starts = np.searchsorted(point, many)
        for p, start in zip(many.tolist(), starts.tolist(), strict=True):
            candidates[p] = tuple(hit[start : start + hits[p]].tolist())
    return BulkResult(index, grid, ambiguous, candidates)


class _TreeIndex:
    """The parts of a GridIndex a BulkResult reads, without the raster."""

    def __init__(self, grids, communities) -> None:
        street_of = dict(zip(communities["code"], communities["parent_code"], strict=True))
        order = sorted(range(len(grids)), key=lambda i: grids["code"].iloc[i])
        self.codes = [grids["code"].iloc[i] for i in order]
        self.community_codes = [grids["parent_code"].iloc[i] for i in order]
        self.street_codes = [street_of.get(c) for c in self.community_codes]
        self.tree = shapely.STRtree(np.array([grids.geometry.iloc[i] for i in order], dtype=object))
