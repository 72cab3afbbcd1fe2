"""One batch of points looked up once (an incident import): THE rule over an STR tree, no raster.

Building `GridIndex`'s raster pays off over many lookups; a batch that is looked up once is answered faster
from the tree alone. Same rule: boundary-inclusive, the lowest code wins a shared edge, ties are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely

from .index import BulkResult


def locate_batch(grids, communities, lons: Sequence[float], lats: Sequence[float]) -> BulkResult:
    """Apply the rule to WGS84 points with a tree over the grid polygons (frames as `Store.areas` returns)."""
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
