"""The in-memory grid index: a raster of cells over an edition that applies the rule fast.

A cell that lies in the interior of exactly one grid (and touches no other) answers every point in it without a
geometric test; a cell that no grid touches answers "in no grid"; only cells crossed by an edge need the exact
`covers` test against the few grids that touch them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from gridmap import crs as crs_module
from gridmap.errors import InvalidInput

from . import index_cache
from .rule import Assignment

# A cell's box is widened by this much (degrees, about 0.1 mm) before testing that a grid's interior holds it,
# so a point that floating-point rounding puts in a neighbouring cell still lies inside the box that was tested.
_CELL_MARGIN = 1e-9
# How close (in cells) an edge may pass to a cell border and still mark the cell beyond it.
_HAIR = 1e-6
_EMPTY = -1  # no grid touches the cell
_OUTSIDE = -2  # beyond the raster (outside every grid's bounding box)
# An edge crosses the cell: test exactly. Such a cell's owner is _MIXED - slot, where `slot` numbers the edge
# cells and indexes their candidate lists, so memory follows the edge cells, not the whole raster.
_MIXED = -3
CELLS_PER_GRID = 2048
MAX_CELLS = 8_000_000
EXACT_CHUNK = 200_000


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
            self.candidate_grid = np.zeros(0, dtype=np.int32)
            self._owner_or_outside = np.array([_OUTSIDE], dtype=np.int32)
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
        params = np.array([self.x0, self.y0, self.dx, self.dy, self.nx, self.ny], dtype=float)
        name = None
        if index_cache.directory() is not None:
            name = index_cache.digest(
                self.codes, shapely.to_wkb(self.geometries), (CELLS_PER_GRID, MAX_CELLS, _HAIR, _CELL_MARGIN)
            )
            if self._use_saved(index_cache.load(name), params):
                return
        self._compute_raster()
        if name is not None:
            index_cache.save(
                name,
                {
                    "params": params,
                    "owner_or_outside": self._owner_or_outside,
                    "candidate_start": self.candidate_start,
                    "candidate_grid": self.candidate_grid,
                },
            )

    def _use_saved(self, saved: dict[str, np.ndarray] | None, params: np.ndarray) -> bool:
        """Take a saved raster when it is whole and was laid out as this one would be."""
        if saved is None or not np.array_equal(saved["params"], params):
            return False
        owner_or_outside, start, grids = saved["owner_or_outside"], saved["candidate_start"], saved["candidate_grid"]
        slots = start.size - 1
        if not (
            owner_or_outside.size == self.nx * self.ny + 1
            and slots >= 0
            and start[-1] == grids.size
            and (grids.size == 0 or 0 <= grids.min() <= grids.max() < len(self.codes))
            and owner_or_outside[:-1].max(initial=_EMPTY) < len(self.codes)
            and owner_or_outside[:-1].min(initial=_EMPTY) >= _MIXED - slots + 1
        ):
            return False
        self._owner_or_outside = owner_or_outside
        self.owner = owner_or_outside[:-1]
        self.candidate_start, self.candidate_grid = start, grids
        return True

    def _compute_raster(self) -> None:
        from scipy import ndimage  # ~0.25 s to import: only building a raster (not loading one) needs it

        on_edge = self._cells_on_edges()
        # Cells no edge crosses form regions that lie wholly inside one grid, or wholly outside every grid;
        # one exact test at any single cell of each region classifies all of it.
        regions, count = ndimage.label(~on_edge)
        regions = regions.ravel()
        any_cell = np.zeros(count + 1, dtype=np.int64)
        any_cell[regions] = np.arange(regions.size)  # for repeated labels some cell of the region wins: any will do
        iy, ix = np.divmod(any_cell[1:], self.nx)
        centres = shapely.points(self.x0 + (ix + 0.5) * self.dx, self.y0 + (iy + 0.5) * self.dy)
        which, grids = self.tree.query(centres, predicate="intersects")
        hits = np.bincount(which, minlength=count)
        # Overlapping grids make regions covered twice: those are tested exactly, like edge cells.
        region_owner = np.where(hits == 0, _EMPTY, _MIXED).astype(np.int32)
        single = hits[which] == 1
        region_owner[which[single]] = grids[single]
        owner = np.concatenate([np.array([_MIXED], dtype=np.int32), region_owner])[regions]
        # The raster and one cell beyond it (every point outside the raster) in one array; `owner` is a view.
        self._owner_or_outside = np.append(owner, np.int32(_OUTSIDE))
        self.owner = self._owner_or_outside[:-1]
        self._collect_cell_candidates()

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
        """Keep, for each edge cell, the grids whose bounding box reaches it (code order), as CSR arrays.

        Bounding boxes, not exact shapes: the exact `covers` test follows anyway, and finding them with sorted
        arrays costs a tenth of building a box per cell and querying the tree (15,000 grids: 0.1 s, not 2 s).
        """
        mixed = np.flatnonzero(self.owner == _MIXED)
        bounds = shapely.bounds(self.geometries)
        ix0 = np.clip(np.floor((bounds[:, 0] - _CELL_MARGIN - self.x0) / self.dx), 0, self.nx - 1).astype(np.int64)
        ix1 = np.clip(np.floor((bounds[:, 2] + _CELL_MARGIN - self.x0) / self.dx), 0, self.nx - 1).astype(np.int64)
        iy0 = np.clip(np.floor((bounds[:, 1] - _CELL_MARGIN - self.y0) / self.dy), 0, self.ny - 1).astype(np.int64)
        iy1 = np.clip(np.floor((bounds[:, 3] + _CELL_MARGIN - self.y0) / self.dy), 0, self.ny - 1).astype(np.int64)
        # One (grid, row) pair per row of each grid's box; the edge cells of that row within the box are a run of
        # the sorted `mixed` array, found by two binary searches.
        rows_per_grid = iy1 - iy0 + 1
        grid_of_row = np.repeat(np.arange(len(self.codes)), rows_per_grid)
        row = np.arange(len(grid_of_row)) - np.repeat(np.cumsum(rows_per_grid) - rows_per_grid, rows_per_grid)
        row += iy0[grid_of_row]
        low = np.searchsorted(mixed, row * self.nx + ix0[grid_of_row], side="left")
        high = np.searchsorted(mixed, row * self.nx + ix1[grid_of_row], side="right")
        runs = high - low
        slot = np.arange(runs.sum()) - np.repeat(np.cumsum(runs) - runs, runs) + np.repeat(low, runs)
        grids = np.repeat(grid_of_row, runs)
        order = np.argsort(slot * len(self.codes) + grids, kind="stable")
        slot, grids = slot[order], grids[order]
        counts = np.bincount(slot, minlength=len(mixed))
        self.candidate_start = np.concatenate([[0], np.cumsum(counts)])
        self.candidate_grid = grids.astype(np.int32)
        self.owner[mixed] = _MIXED - np.arange(len(mixed), dtype=np.int32)
        # An edge cell no grid's box reaches (the safe-side marking overshoots) holds only uncovered points.
        self.owner[mixed[counts == 0]] = _EMPTY

    def raster_summary(self) -> dict:
        """Say how the raster splits the edition (for benchmarks and notes)."""
        return {
            "cells": int(self.owner.size),
            "inside_one_grid": int((self.owner >= 0).sum()),
            "empty": int((self.owner == _EMPTY).sum()),
            "on_an_edge": int((self.owner <= _MIXED).sum()),
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
        slot = _MIXED - owner
        grids = self.candidate_grid[self.candidate_start[slot] : self.candidate_start[slot + 1]]
        # One call over every candidate: shapely's per-call cost (~3 µs) is most of a scalar test.
        return grids[shapely.intersects_xy(self.geometries[grids], lon, lat)].tolist()

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
        return self.nearest_grids().nearest(lon=lon, lat=lat)

    def nearest_many(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the nearest grid and geodesic distance in metres for each point (-1, nan when no grids)."""
        return self.nearest_grids().nearest_many(lons, lats)

    def nearest_grids(self) -> NearestGrids:
        """Return (built once) the nearest-grid search over this index's grids."""
        if getattr(self, "_nearest", None) is None:
            self._nearest = NearestGrids(self.geometries)
        return self._nearest

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
            edge = np.flatnonzero(owner <= _MIXED)
            for chunk in np.array_split(edge, max(1, len(edge) // EXACT_CHUNK)):
                self._exact(chunk, _MIXED - owner[chunk].astype(np.int64), lons, lats, grid, ambiguous, candidates)
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

    def _exact(self, positions, slots, lons, lats, grid, ambiguous, candidates) -> None:
        """Test points in edge cells against just the grids touching their cell, in code order."""
        if not len(positions):
            return
        first = self.candidate_start[slots]
        counts = self.candidate_start[slots + 1] - first
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


class NearestGrids:
    """The nearest grid to points in no grid, by geodesic distance, found through a tree of the grids with
    longitudes scaled so a degree each way is about as long (at the middle latitude of all the grids).

    It depends only on the geometries in code order, so an index and a one-off search over the same edition
    (`gridmap locate --lon --lat` reads the grids without building the raster) give identical answers.
    """

    def __init__(self, geometries: Sequence[shapely.Geometry]) -> None:
        self.geometries = np.asarray(geometries, dtype=object)
        if not len(self.geometries):
            self.scale, self._lat_span = 1.0, (0.0, 0.0)
            self.scaled = self.geometries
            self.tree = shapely.STRtree(self.geometries)
            return
        _, miny, _, maxy = shapely.total_bounds(self.geometries)
        self.scale = scale = float(_east_scale(np.array([(miny + maxy) / 2]))[0])
        self.scaled = shapely.transform(self.geometries, lambda xy: xy * np.array([scale, 1.0]))
        self._lat_span = (min(abs(miny), abs(maxy)) if miny * maxy > 0 else 0.0, max(abs(miny), abs(maxy)))
        self.tree = shapely.STRtree(self.scaled)

    def nearest(self, *, lon: float, lat: float) -> tuple[int | None, float | None]:
        """Return the position of the grid nearest to an uncovered point and its geodesic distance in metres."""
        # The same search as nearest_many, on scalars: array set-up costs more than the search for one point.
        if not len(self.geometries) or not (math.isfinite(lon) and math.isfinite(lat)):
            return None, None
        tree, scaled, scale = self.tree, self.scaled, self.scale
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
        if not len(self.geometries) or not len(lons):
            return positions, distances
        tree, scaled, scale = self.tree, self.scaled, self.scale
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
