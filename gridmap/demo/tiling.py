"""The generic steps that build the demo district's tiling: well-spread seed points, Voronoi cells clipped to a
parent, k-means clusters mended into contiguous pieces, whole shares, and the numbering order.

They know nothing of the district's constants (those are `gridmap.demo.district`'s), so each takes what it
works on as arguments; the random generator is passed in so the caller fixes the order of draws (same seed, same
bytes).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import shapely
from shapely.geometry import Polygon


def _spread_points(parent: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick n points in parent, each the farthest of the remaining random candidates (best-candidate)."""
    minx, miny, maxx, maxy = parent.bounds
    candidates = rng.uniform((minx, miny), (maxx, maxy), size=(n * 30, 2))
    candidates = candidates[shapely.contains_xy(parent, candidates[:, 0], candidates[:, 1])]
    chosen = [0]
    distance = np.hypot(*(candidates - candidates[0]).T)
    for _ in range(n - 1):
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.hypot(*(candidates - candidates[best]).T))
    return candidates[chosen]


def _voronoi_cells(parent: Polygon, points: np.ndarray) -> np.ndarray:
    """Return the Voronoi cell of each point clipped to parent, in the order of the points."""
    diagram = shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=parent.buffer(0.05), ordered=True)
    return shapely.intersection(shapely.get_parts(diagram), parent)


def _absorb_fragments(cells: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Keep each cell's part around its seed; give a piece cut off by a bend of the outline to its neighbour."""
    cells = cells.copy()
    tree = shapely.STRtree(cells)
    for index in np.flatnonzero(shapely.get_type_id(cells) != shapely.GeometryType.POLYGON):
        parts = [p for p in shapely.get_parts(cells[index]) if p.geom_type == "Polygon" and p.area > 0]
        seed = shapely.Point(seeds[index])
        parts.sort(key=lambda p: (not p.covers(seed), -p.area))
        cells[index] = parts[0]
        for piece in parts[1:]:
            neighbours = [j for j in tree.query(piece, predicate="intersects") if j != index]
            shared = shapely.length(shapely.intersection(piece.boundary, shapely.boundary(cells[neighbours])))
            target = neighbours[int(np.argmax(shared))]
            cells[target] = shapely.union(cells[target], piece)
    return cells


def _centres(cells: np.ndarray) -> np.ndarray:
    """Return each cell's centroid, or a point inside it when a bend of the outline puts the centroid outside."""
    centres = shapely.centroid(cells)
    outside = ~shapely.covers(cells, centres)
    centres[outside] = shapely.point_on_surface(cells[outside])
    return shapely.get_coordinates(centres)


def _adjacency(cells: np.ndarray) -> list[dict[int, float]]:
    """Return, for each cell, its edge neighbours and the length of boundary they share."""
    left, right = shapely.STRtree(cells).query(cells, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(cells[left]), shapely.boundary(cells[right])))
    neighbours: list[dict[int, float]] = [{} for _ in cells]
    for a, b, length in zip(left.tolist(), right.tolist(), shared.tolist(), strict=True):
        if length > 0:  # cells meeting at a single vertex are not neighbours
            neighbours[a][b] = neighbours[b][a] = length
    return neighbours


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster points into k groups (Lloyd's algorithm from a farthest-first start); return each point's group."""
    start = [int(rng.integers(len(points)))]
    distance = np.hypot(*(points - points[start[0]]).T)
    for _ in range(k - 1):
        start.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.hypot(*(points - points[start[-1]]).T))
    centres = points[start]
    for _ in range(30):
        distances = np.hypot(points[:, None, 0] - centres[None, :, 0], points[:, None, 1] - centres[None, :, 1])
        labels = np.argmin(distances, axis=1)
        counts = np.bincount(labels, minlength=k)
        for group in np.flatnonzero(counts == 0):
            # An empty cluster restarts at the point worst served by its centre, so no group is ever lost.
            worst = int(np.argmax(distances[np.arange(len(points)), labels]))
            labels[worst] = group
            counts = np.bincount(labels, minlength=k)
        centres = np.stack([np.bincount(labels, weights=points[:, axis], minlength=k) / counts for axis in (0, 1)], 1)
    return labels


def _make_contiguous(labels: dict[int, int], neighbours: list[dict[int, float]]) -> dict[int, int]:
    """Give every piece of a cluster but its largest to the neighbouring cluster it shares most boundary with.

    `labels` maps cell index → cluster for the cells of one parent; only those cells are considered, so the
    cells never leave their parent. Each cluster keeps its largest piece, so none disappears.
    """
    labels = dict(labels)
    changed = True
    while changed:
        changed = False
        for label in sorted(set(labels.values())):
            pieces = _components([i for i, lab in labels.items() if lab == label], neighbours)
            pieces.sort(key=lambda piece: (-len(piece), min(piece)))
            for piece in pieces[1:]:
                shared: dict[int, float] = {}
                for cell in piece:
                    for other, length in neighbours[cell].items():
                        if other in labels and labels[other] != label:
                            shared[labels[other]] = shared.get(labels[other], 0.0) + length
                target = max(sorted(shared), key=shared.__getitem__)
                for cell in piece:
                    labels[cell] = target
                changed = True
    return labels


def _components(cells: list[int], neighbours: list[dict[int, float]]) -> list[list[int]]:
    """Split cells into edge-connected pieces."""
    remaining, pieces = set(cells), []
    for start in sorted(cells):
        if start not in remaining:
            continue
        remaining.discard(start)
        piece, queue = [start], deque([start])
        while queue:
            for other in neighbours[queue.popleft()]:
                if other in remaining:
                    remaining.discard(other)
                    piece.append(other)
                    queue.append(other)
        pieces.append(piece)
    return pieces


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split total into whole shares in proportion to weights (largest remainder), at least 1 each."""
    exact = np.asarray(weights, dtype=float) * total / sum(weights)
    shares = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - shares), kind="stable")[: total - shares.sum()]:
        shares[index] += 1
    for index in np.flatnonzero(shares == 0):
        shares[np.argmax(shares)] -= 1
        shares[index] = 1
    return shares.tolist()


def _order(shapes: list, parent) -> list[int]:
    """Return the indices of shapes west→east, north→south (the rule in the module docstring)."""
    rows = max(1, round(math.sqrt(len(shapes))))
    miny, maxy = parent.bounds[1], parent.bounds[3]
    band_height = (maxy - miny) / rows

    def key(index: int) -> tuple[int, float]:
        centroid = shapes[index].centroid
        return (min(rows - 1, int((maxy - centroid.y) / band_height)), centroid.x)

    return sorted(range(len(shapes)), key=key)
