"""Straight outlines for a division of buildings: the cells of a power diagram that separates the groups.

A union of building cells follows the bisectors between single buildings, so where a building changed grid the
edge bends around it, and straightening that chain (see `cells.straighten`) only drops vertices, never moves
them. Yet any line that leaves every building on its own side will do, and a straight one keeps a grid round.
Giving each group an affine score f(x) = 2 c·x − b and every point of the region to the highest score cuts the
region along straight lines (a power diagram with centres c: every cell is convex). Which centres and offsets
put every building inside its own group's cell, at least a margin from the nearest edge, is a linear programme;
among those it picks the centres nearest to the centroids of the groups' areas and the weights nearest to equal,
as a centroidal Voronoi tessellation would have them (its cells are as round as cells come). When no power
diagram separates the groups (a grid wrapped around another, a barrier to follow, a cell in several pieces), the
caller keeps the building cells.
"""

from __future__ import annotations

import numpy as np
import shapely

MARGINS_M = (4.0, 1.0)  # the clearance of every building from a new edge, tried in turn
CENTRE_SLACK = 3.0  # how far (in group spacings) a centre may stray from its group's centroid
SPACING_ROUNDS = 4
WEIGHT_PRICE = 0.5  # what a weight away from zero costs against a centre away from its centroid (scaled units)


def separating_scores(
    xy: np.ndarray, labels: np.ndarray, groups: int, centroids: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (centres, offsets) of a power diagram putting each point (metres) in its label's cell, at least
    `margin` metres from the edges towards every other group, with the centres as near the centroids as that
    allows; None when none is found. Every group must hold a point."""
    labels = np.asarray(labels, dtype=int)
    if groups < 2:
        return centroids.copy(), np.zeros(groups)
    apart = None
    for _ in range(SPACING_ROUNDS):
        found = _separate(xy, labels, groups, centroids, margin, apart)
        if found is None:
            return None
        centres, offsets = found
        if clearance(xy, labels, centres, offsets) >= margin * 0.999:
            return centres, offsets
        # The programme measured clearances as if centres sat that far apart; they moved apart, which widens
        # the score gap without widening the clearance: measure again with the spacing they took.
        apart = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1)) * 1.05
    return None


def _separate(xy, labels, groups: int, centroids: np.ndarray, margin: float, apart: np.ndarray | None):
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    origin = centroids.mean(axis=0)
    spread = float(np.sqrt(((centroids - origin) ** 2).sum(axis=1).mean())) or 1.0
    # Unit-free coordinates keep the programme well conditioned whatever the size of the region.
    x = (xy - origin) / spread
    target = (centroids - origin) / spread
    gap = margin / spread
    # Variables per group: cx, cy, b, |cx − target x|, |cy − target y|, |weight|. For every point p of group g and every
    # other group h: f_h(p) − f_g(p) ≤ −2·gap·|t_g − t_h|, i.e. p lies `gap` inside g's side of their bisector
    # (the distance measured as if the centres stayed at their targets).
    n = 6 * groups
    point_index, other = np.nonzero(np.arange(groups)[None, :] != labels[:, None])
    own = labels[point_index]
    px, py = x[point_index, 0], x[point_index, 1]
    count = len(point_index)
    row_ids = np.repeat(np.arange(count), 6)
    col_ids = np.column_stack([6 * other, 6 * other + 1, 6 * other + 2, 6 * own, 6 * own + 1, 6 * own + 2]).ravel()
    values = np.column_stack([2 * px, 2 * py, -np.ones(count), -2 * px, -2 * py, np.ones(count)]).ravel()
    spacing = np.hypot(*(target[own] - target[other]).T) if apart is None else apart[own, other] / spread
    bound = list(-2 * gap * np.maximum(spacing, 1e-6))
    # |c − t| ≤ u, written as c − u ≤ t and −c − u ≤ −t.
    row = count
    extra_rows, extra_cols, extra_values = [], [], []
    for g in range(groups):
        for axis in (0, 1):
            for sign in (1.0, -1.0):
                extra_rows += [row, row]
                extra_cols += [6 * g + axis, 6 * g + 3 + axis]
                extra_values += [sign, -1.0]
                bound.append(sign * target[g, axis])
                row += 1
        # The weight w = |c|² − b, linearised at the target (|c|² ≈ 2t·c − |t|²): equal weights are a plain
        # Voronoi diagram of the centres, whose edges run midway between them; |w| ≤ v.
        for sign in (1.0, -1.0):
            extra_rows += [row] * 4
            extra_cols += [6 * g, 6 * g + 1, 6 * g + 2, 6 * g + 5]
            extra_values += [sign * 2 * target[g, 0], sign * 2 * target[g, 1], -sign, -1.0]
            bound.append(sign * float(target[g] @ target[g]))
            row += 1
    matrix = coo_matrix(
        (
            np.concatenate([values, extra_values]),
            (np.concatenate([row_ids, extra_rows]), np.concatenate([col_ids, extra_cols])),
        ),
        shape=(row, n),
    ).tocsr()
    cost = np.zeros(n)
    bounds = []
    for g in range(groups):
        cost[6 * g + 3] = cost[6 * g + 4] = 1.0
        cost[6 * g + 5] = WEIGHT_PRICE
        bounds += [
            (target[g, 0] - CENTRE_SLACK, target[g, 0] + CENTRE_SLACK),
            (target[g, 1] - CENTRE_SLACK, target[g, 1] + CENTRE_SLACK),
            (None, None),
            (0, None),
            (0, None),
            (0, None),
        ]
    result = linprog(cost, A_ub=matrix, b_ub=np.array(bound), bounds=bounds, method="highs")
    if result.status != 0:
        return None
    solution = result.x.reshape(groups, 6)
    centres = solution[:, :2] * spread + origin
    # f(x) = 2c·x − b in the scaled frame, written back in metres: 2c'·x' − b' with x' = x·s + o.
    scaled_c = solution[:, :2]
    offsets = solution[:, 2] * spread**2 + 2 * spread * (scaled_c @ origin)
    return centres, offsets


def clearance(xy: np.ndarray, labels: np.ndarray, centres: np.ndarray, offsets: np.ndarray) -> float:
    """Return the least distance (metres) from a point to an edge of its group's cell (negative: outside it)."""
    scores = 2 * xy @ centres.T - offsets[None, :]
    own = scores[np.arange(len(xy)), labels]
    apart = np.hypot(*(centres[labels][:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    gaps = (own[:, None] - scores) / np.where(apart > 0, 2 * apart, np.inf)
    gaps[np.arange(len(xy)), labels] = np.inf
    return float(gaps.min()) if len(xy) else np.inf


def power_outlines(region, sites: np.ndarray, site_group: np.ndarray, groups: int, frame) -> list | None:
    """Return each group's outline (lon/lat) cut from the region by a separating power diagram, or None when no
    diagram separates the groups with a margin or a group's outline would be in several pieces."""
    present, site_group = np.unique(np.asarray(site_group, dtype=int), return_inverse=True)
    if len(present) < 2:
        return None
    xy = frame.metric(sites)
    region_metric = frame.to_metric(region)
    centroids = _centroids(region_metric, xy, site_group, len(present))
    for margin in MARGINS_M:
        found = separating_scores(xy, site_group, len(present), centroids, margin)
        if found is None:
            continue
        outlines = _carve(region, region_metric, *found, frame)
        if outlines is not None and _clear(outlines, sites, site_group, frame, MARGINS_M[-1]):
            result = [shapely.Polygon()] * groups
            for g, outline in zip(present.tolist(), outlines, strict=True):
                result[g] = outline
            return result
    return None


def _centroids(region_metric, xy: np.ndarray, site_group: np.ndarray, groups: int) -> np.ndarray:
    """Centroid of the area nearest to each group's buildings (its part of the Voronoi diagram of the sites)."""
    if len(xy) < 2:
        return xy.mean(axis=0, keepdims=True).repeat(groups, axis=0)
    envelope = region_metric.envelope.buffer(1000.0)
    diagram = shapely.voronoi_polygons(shapely.MultiPoint(xy), extend_to=envelope, ordered=True)
    # Co-circular buildings (a lattice) give coinciding Voronoi vertices and cells touching themselves.
    cells = shapely.intersection(shapely.make_valid(np.asarray(shapely.get_parts(diagram))), region_metric)
    area = shapely.area(cells)
    centre = shapely.centroid(cells)
    cx, cy = np.nan_to_num(shapely.get_x(centre)), np.nan_to_num(shapely.get_y(centre))
    total = np.bincount(site_group, weights=area, minlength=groups)
    result = np.column_stack(
        [
            np.bincount(site_group, weights=area * cx, minlength=groups),
            np.bincount(site_group, weights=area * cy, minlength=groups),
        ]
    )
    plain = (
        np.column_stack(
            [
                np.bincount(site_group, weights=xy[:, 0], minlength=groups),
                np.bincount(site_group, weights=xy[:, 1], minlength=groups),
            ]
        )
        / np.maximum(np.bincount(site_group, minlength=groups), 1)[:, None]
    )
    return np.where(total[:, None] > 0, result / np.where(total > 0, total, 1.0)[:, None], plain)


def _carve(region, region_metric, centres: np.ndarray, offsets: np.ndarray, frame) -> list | None:
    """Cut the region along the diagram's edges; return each group's outline in lon/lat, None if one is not one
    polygon. The edges are noded together with the region's own boundary, so the outlines tile it exactly and
    keep its vertices bit for bit."""
    cells = power_cells(region_metric, centres, offsets)
    # Cells computed one by one meet at vertices equal to ~1e-10 m; rounding makes them equal bit for bit.
    edges = [shapely.transform(c.exterior, lambda xy: np.round(xy, 6)) for c in cells if not c.is_empty]
    linework = shapely.union_all([region.boundary, *frame.to_lonlat(np.asarray(edges, dtype=object))])
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))), dtype=object)
    points = shapely.point_on_surface(faces)
    faces = faces[shapely.covers(region, points)]
    points = points[shapely.covers(region, points)]
    xy = frame.metric(shapely.get_coordinates(points))
    owner = np.argmax(2 * xy @ centres.T - offsets[None, :], axis=1)
    outlines = []
    for g in range(len(centres)):
        mine = faces[owner == g]
        if not len(mine):
            return None
        outline = shapely.coverage_union_all(mine)
        if outline.geom_type != "Polygon" or not outline.is_valid:
            return None
        outlines.append(outline)
    return outlines


def _clear(outlines: list, sites: np.ndarray, site_group: np.ndarray, frame, margin: float) -> bool:
    """Whether every building lies in its own group's outline, at least `margin` metres from every other one."""
    points = shapely.points(frame.metric(sites))
    for g, outline in enumerate(outlines):
        metric = frame.to_metric(outline)
        mine = site_group == g
        if not shapely.covers(metric, points[mine]).all():
            return False
        others = points[~mine]
        if len(others) and (shapely.distance(metric, others) < margin * 0.999).any():
            return False
    return True


def power_cells(region_metric, centres: np.ndarray, offsets: np.ndarray) -> list:
    """Return each group's cell of the power diagram (scores 2c·x − b) around the region, in metres."""
    minx, miny, maxx, maxy = region_metric.bounds
    pad = max(maxx - minx, maxy - miny) + 1.0
    frame = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    cells = []
    for g in range(len(centres)):
        cell = frame
        for h in range(len(centres)):
            if h == g or cell.is_empty:
                continue
            cell = _half_plane(cell, centres[g], offsets[g], centres[h], offsets[h])
        cells.append(cell)
    return cells


def _half_plane(polygon, c_g, b_g, c_h, b_h):
    """Clip a convex polygon to where group g scores at least as high as group h."""
    normal = 2 * (np.asarray(c_g) - np.asarray(c_h))  # f_g − f_h = normal·x − (b_g − b_h) ≥ 0
    constant = b_g - b_h
    length = float(np.hypot(*normal))
    if length == 0:
        return polygon if constant <= 0 else shapely.Polygon()
    coords = shapely.get_coordinates(polygon.exterior)
    values = coords @ normal - constant
    kept = []
    for i in range(len(coords) - 1):
        a, b, va, vb = coords[i], coords[i + 1], values[i], values[i + 1]
        if va >= 0:
            kept.append(tuple(a))
        if (va >= 0) != (vb >= 0):
            t = va / (va - vb)
            kept.append(tuple(a + t * (b - a)))
    return shapely.Polygon(kept) if len(kept) >= 3 else shapely.Polygon()
