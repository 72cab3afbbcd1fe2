"""Building cells: the pieces proposed grids are made of, their neighbours, and the grids' final outlines.

A region (the part of a community being redrawn) is cut into blocks by the barrier lines (roads, rivers) and
each block into the Voronoi cells of the buildings standing in it, so every cell holds one building (or several
at the same point) and no cell straddles a barrier. A grid is a union of cells; its shared edges are then
straightened (`straighten`: vertices dropped from the chains two grids share, never from the region's outline, so
the kept neighbours stay exactly as they were), as far as every building stays well inside its own grid. Where a
power diagram separates the grids' buildings, `power` cuts straight edges instead.

Distances are measured in a local equirectangular frame (metres east and north of the region's centre): exact
enough across a community, and an affine map, so Voronoi cells computed there are Voronoi cells in metres.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
import shapely.ops

MIN_SHARED_M = 0.01  # cells meeting along less than this (a vertex, a rounding crumb) are not neighbours
BARRIER_SNAP_DEG = 1e-7  # a cell edge within ~1 cm of a barrier line runs along it
BUILDING_MARGIN_M = 1.0  # a building must stand at least this far inside its grid after straightening


@dataclass(frozen=True)
class Frame:
    """Metres east and north of a centre point, for lon/lat near it."""

    lon0: float
    lat0: float

    @property
    def kx(self) -> float:
        """Metres per degree of longitude at the centre."""
        phi = math.radians(self.lat0)
        return 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)

    @property
    def ky(self) -> float:
        """Metres per degree of latitude at the centre."""
        phi = math.radians(self.lat0)
        return 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)

    def metric(self, lonlat: np.ndarray) -> np.ndarray:
        """Turn an (n, 2) array of lon/lat into metres."""
        lonlat = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        return np.column_stack([(lonlat[:, 0] - self.lon0) * self.kx, (lonlat[:, 1] - self.lat0) * self.ky])

    def to_metric(self, geometry):
        """Return a geometry (or array of them) in metres."""
        return shapely.transform(geometry, self.metric)

    def to_lonlat(self, geometry):
        """Return a metric geometry (or array of them) in lon/lat."""
        return shapely.transform(
            geometry, lambda xy: np.column_stack([xy[:, 0] / self.kx + self.lon0, xy[:, 1] / self.ky + self.lat0])
        )

    @classmethod
    def around(cls, geometry) -> Frame:
        """Return the frame centred on a geometry's bounding box."""
        minx, miny, maxx, maxy = geometry.bounds
        return cls((minx + maxx) / 2, (miny + maxy) / 2)


def polsby_popper(geometry, frame: Frame) -> float:
    """Return 4πA/P² of a geometry measured in metres (1 for a circle; slivers near 0)."""
    metric = frame.to_metric(geometry)
    perimeter = metric.length
    return 0.0 if perimeter == 0 else 4 * math.pi * metric.area / perimeter**2


@dataclass
class Cells:
    """The cells of a region: one per site, with the length of boundary each shares with its neighbours."""

    region: shapely.Geometry
    geometries: list[shapely.Geometry]
    # neighbours[i][j] = (metres shared not along a barrier, metres shared along a barrier)
    neighbours: list[dict[int, tuple[float, float]]] = field(default_factory=list)


def _blocks(region, barriers: Sequence) -> list:
    """Cut the region along the barrier lines; a region in several parts gives one block per part at least."""
    parts = [p for p in shapely.get_parts(region) if p.area > 0]
    lines = [b for b in barriers if b.intersects(region)]
    if not lines:
        return parts
    linework = shapely.union_all([region.boundary, *[b.intersection(region) for b in lines]])
    faces = [f for f in shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))) if f.area > 0]
    inside = [f for f in faces if region.covers(f.representative_point())]
    return inside or parts


def build_cells(region, sites: np.ndarray, frame: Frame, barriers: Sequence = ()) -> Cells:
    """Return the cells of the sites (lon/lat, every one covered by the region), cut along the barriers."""
    n = len(sites)
    pieces: list[list] = [[] for _ in range(n)]
    orphans: list = []
    points = shapely.points(sites)
    for block in _blocks(region, barriers):
        inside = np.flatnonzero(shapely.covers(block, points))
        if not len(inside):
            orphans.append(block)
            continue
        if len(inside) == 1:
            pieces[inside[0]].append(block)
            continue
        metric = frame.metric(sites[inside])
        envelope = frame.to_metric(block).envelope.buffer(1000.0)
        diagram = shapely.voronoi_polygons(shapely.MultiPoint(metric), extend_to=envelope, ordered=True)
        # Co-circular buildings (a regular lattice) give Voronoi vertices that coincide; mapped back to lon/lat
        # such a cell can touch itself, so it is made valid before clipping (in lon/lat, so the block's own
        # vertices, which its neighbours share, are kept bit for bit).
        cells = shapely.make_valid(frame.to_lonlat(np.asarray(shapely.get_parts(diagram))))
        clipped = shapely.intersection(cells, block)
        for site, cell in zip(inside.tolist(), clipped.tolist(), strict=True):
            parts = [p for p in shapely.get_parts(cell) if p.geom_type == "Polygon" and p.area > 0]
            if not parts:
                continue
            parts.sort(key=lambda p: (not p.covers(points[site]), -p.area))
            pieces[site].append(parts[0])
            orphans.extend(parts[1:])
    geometries = [shapely.union_all(p) if p else shapely.Polygon() for p in pieces]
    geometries = _adopt(geometries, orphans)
    cells = Cells(region=region, geometries=geometries)
    cells.neighbours = _neighbours(geometries, frame, barriers, region)
    return cells


def _adopt(geometries: list, orphans: list) -> list:
    """Give every piece without a building to the cell it shares the longest boundary with."""
    geometries = list(geometries)
    pending = list(orphans)
    for _ in range(len(pending) + 1):
        if not pending:
            break
        array = np.asarray(geometries, dtype=object)
        tree = shapely.STRtree(array)
        left = []
        for piece in pending:
            candidates = [int(i) for i in tree.query(piece, predicate="intersects") if not array[i].is_empty]
            shared = shapely.length(shapely.intersection(shapely.boundary(array[candidates]), piece.boundary))
            if not candidates or shared.max() <= 0:
                left.append(piece)
                continue
            target = candidates[int(np.argmax(shared))]
            geometries[target] = shapely.union(geometries[target], piece)
            array[target] = geometries[target]
        if len(left) == len(pending):
            break  # pieces touching no cell at all (an empty island of the community) stay out
        pending = left
    return geometries


def _neighbours(geometries: list, frame: Frame, barriers: Sequence, region) -> list[dict[int, tuple[float, float]]]:
    array = np.asarray(geometries, dtype=object)
    neighbours: list[dict[int, tuple[float, float]]] = [{} for _ in geometries]
    if len(array) < 2:
        return neighbours
    left, right = shapely.STRtree(array).query(array, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if not len(left):
        return neighbours
    shared = shapely.intersection(shapely.boundary(array[left]), shapely.boundary(array[right]))
    lengths = shapely.length(frame.to_metric(shared))
    along = np.zeros(len(left))
    lines = [b for b in barriers if b.intersects(region)]
    if lines:
        corridor = shapely.union_all(lines).buffer(BARRIER_SNAP_DEG)
        along = shapely.length(frame.to_metric(shapely.intersection(shared, corridor)))
    for a, b, total, barrier in zip(left.tolist(), right.tolist(), lengths.tolist(), along.tolist(), strict=True):
        if total >= MIN_SHARED_M:
            value = (max(0.0, total - barrier), min(total, barrier))
            neighbours[a][b] = neighbours[b][a] = value
    return neighbours


# ---- outlines of the proposed grids ---------------------------------------------------------------------------
def group_outlines(cells: Cells, labels: Sequence[int], groups: int, sites: np.ndarray, frame: Frame) -> list:
    """Return each group's outline: the union of its cells with every shared edge straightened as far as the
    buildings allow (see `straighten`)."""
    members: list[list] = [[] for _ in range(groups)]
    for cell, group in enumerate(labels):
        if group >= 0 and not cells.geometries[cell].is_empty:
            members[group].append(cells.geometries[cell])
    raw = [_clean(shapely.union_all(m)) if m else shapely.Polygon() for m in members]
    if groups < 2:
        return raw
    return straighten(raw, sites, np.asarray(labels), frame)


def straighten(outlines: list, sites: np.ndarray, site_group: np.ndarray, frame: Frame) -> list:
    """Straighten the edges two outlines share: each chain of vertices between two junctions loses every vertex it
    can, Douglas–Peucker style, as long as no building changes side and none comes closer than BUILDING_MARGIN_M to
    the new edge (or closer than it already was). Only vertices are dropped, the same ones on both sides, so the
    outlines keep sharing their edges exactly; the region's outline is never touched."""
    owners: dict[tuple[float, float], set[int]] = defaultdict(set)
    rings: list[tuple[int, list[tuple[float, float]]]] = []
    for group, outline in enumerate(outlines):
        for polygon in shapely.get_parts(outline):
            for ring in (polygon.exterior, *polygon.interiors):
                coords = [tuple(c) for c in shapely.get_coordinates(ring)[:-1]]
                rings.append((group, coords))
                for c in coords:
                    owners[c].add(group)
    metric_sites = frame.metric(sites) if len(sites) else np.zeros((0, 2))
    site_points = shapely.points(metric_sites) if len(sites) else np.zeros(0, dtype=object)
    tree = shapely.STRtree(site_points)
    dropped: set[tuple[float, float]] = set()
    for group, coords in rings:
        for chain in _chains(coords, group, owners):
            dropped |= _drop(chain, frame, site_points, tree)
    result = _rebuild(outlines, dropped)
    if all(r.is_valid and r.geom_type == "Polygon" for r, o in zip(result, outlines, strict=True) if not o.is_empty):
        return result
    # A straightened edge crossed another one somewhere: keep the cell edges of the outlines involved.
    bad = {
        g
        for g, (r, o) in enumerate(zip(result, outlines, strict=True))
        if not o.is_empty and not (r.is_valid and r.geom_type == "Polygon")
    }
    keep = {c for c in dropped if owners[c] & bad}
    result = _rebuild(outlines, dropped - keep)
    if all(r.is_valid for r, o in zip(result, outlines, strict=True) if not o.is_empty):
        return result
    return outlines


def _chains(coords: list[tuple[float, float]], group: int, owners) -> list[list[tuple[float, float]]]:
    """Return the runs of a ring's vertices shared with exactly one other group (with a higher number, so each
    shared edge is handled once), split at junctions, each with its two end vertices."""
    n = len(coords)
    chains = []
    for other in sorted({g for c in coords for g in owners[c]} - {group}):
        if other < group:
            continue
        shared = [other in owners[c] for c in coords]
        if all(shared) or not any(shared):
            continue
        start = next(i for i in range(n) if not shared[i])
        run: list[tuple[float, float]] = []
        for step in range(1, n + 1):
            c = coords[(start + step) % n]
            if other in owners[c]:
                run.append(c)
                continue
            chains += _split_at_junctions(run, owners)
            run = []
        chains += _split_at_junctions(run, owners)
    return chains


def _split_at_junctions(run, owners) -> list[list[tuple[float, float]]]:
    pieces, piece = [], []
    for c in run:
        piece.append(c)
        if len(owners[c]) > 2 and len(piece) > 1:
            pieces.append(piece)
            piece = [c]
    if len(piece) > 1:
        pieces.append(piece)
    return [p for p in pieces if len(p) > 2]


def _drop(chain: list[tuple[float, float]], frame: Frame, sites: np.ndarray, tree) -> set[tuple[float, float]]:
    """Return the interior vertices of a chain that can go (recursive: try the straight line between the ends,
    else split at the vertex farthest from it)."""
    metric = frame.metric(np.array(chain))
    keep = np.zeros(len(chain), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(chain) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        if _straight_ok(metric[i : j + 1], sites, tree):
            continue
        segment = shapely.LineString([metric[i], metric[j]])
        k = i + 1 + int(np.argmax(shapely.distance(shapely.points(metric[i + 1 : j]), segment)))
        keep[k] = True
        stack += [(i, k), (k, j)]
    return {c for c, kept in zip(chain, keep.tolist(), strict=True) if not kept}


def _straight_ok(path: np.ndarray, sites: np.ndarray, tree) -> bool:
    """Whether replacing the path by the segment between its ends moves no building across it or too near it."""
    swept = shapely.make_valid(shapely.Polygon(np.vstack([path, path[:1]])))
    segment = shapely.LineString([path[0], path[-1]])
    original = shapely.LineString(path)
    near = tree.query(shapely.buffer(swept, BUILDING_MARGIN_M))
    if not len(near):
        return True
    candidates = sites[near]
    if shapely.intersects(swept, candidates).any():
        return False
    after = shapely.distance(segment, candidates)
    before = shapely.distance(original, candidates)
    return bool((after >= np.minimum(before, BUILDING_MARGIN_M) * 0.999).all())


def _rebuild(outlines: list, dropped: set[tuple[float, float]]) -> list:
    rebuilt = []
    for outline in outlines:
        if outline.is_empty:
            rebuilt.append(outline)
            continue
        polygons = []
        for polygon in shapely.get_parts(outline):
            rings = []
            for ring in (polygon.exterior, *polygon.interiors):
                coords = [tuple(c) for c in shapely.get_coordinates(ring)[:-1]]
                kept = [c for c in coords if c not in dropped]
                rings.append(kept if len(kept) >= 3 else coords)
            polygons.append(shapely.Polygon(rings[0], rings[1:]))
        rebuilt.append(polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons))
    return rebuilt


def _clean(geometry):
    """Return a Polygon when a union is one piece (drop zero-area crumbs a union of cells may leave)."""
    parts = [p for p in shapely.get_parts(geometry) if p.area > 0]
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiPolygon(parts) if parts else shapely.Polygon()
