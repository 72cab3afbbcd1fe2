"""Straight outlines from a separating power diagram (gridmap.propose.power), on hand-made points and squares."""

from __future__ import annotations

import math

import numpy as np
import shapely
from buildingdata import HEIGHT, LAT0, LON0, STRIP, strips, union_is
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_propose import check_plan, result_grids, run

from gridmap.propose.cells import Frame, polsby_popper
from gridmap.propose.power import power_outlines, separating_scores


def scores_margin(xy, labels, centres, offsets) -> np.ndarray:
    """Distance (metres) of each point inside its own cell from the nearest edge towards another group."""
    margins = []
    for point, g in zip(xy, labels, strict=True):
        f = 2 * centres @ point - offsets
        others = [(f[g] - f[h]) / (2 * np.hypot(*(centres[g] - centres[h]))) for h in range(len(centres)) if h != g]
        margins.append(min(others))
    return np.array(margins)


def test_two_clusters_either_side_of_a_line_are_separated_with_the_margin():
    xy = np.array([[-30.0, 0], [-20, 40], [-25, -40], [30, 10], [20, -30], [25, 35]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    centroids = np.array([[-50.0, 0], [50, 0]])
    centres, offsets = separating_scores(xy, labels, 2, centroids, margin=4.0)
    margins = scores_margin(xy, labels, centres, offsets)
    assert (margins >= 4.0 - 1e-6).all()
    # Nothing forces the centres away from the centroids here: they stay put (a plain bisector at x = 0).
    assert np.allclose(centres, centroids, atol=1e-6)
    assert np.allclose(offsets[1] - offsets[0], 0.0, atol=1e-6)


def test_points_that_no_line_separates_have_no_diagram():
    # The XOR pattern: each group on one diagonal of a square.
    xy = np.array([[-10.0, -10], [10, 10], [-10, 10], [10, -10]])
    labels = np.array([0, 0, 1, 1])
    assert separating_scores(xy, labels, 2, np.array([[0.0, 0], [1, 0]]), margin=1.0) is None


def test_a_separation_tighter_than_the_margin_is_refused():
    # The nearest points of the two groups are 6 m apart: a 4 m clearance on both sides cannot fit.
    xy = np.array([[-3.0, 0], [-40, 0], [3, 0], [40, 0]])
    labels = np.array([0, 0, 1, 1])
    assert separating_scores(xy, labels, 2, np.array([[-30.0, 0], [30, 0]]), margin=4.0) is None
    assert separating_scores(xy, labels, 2, np.array([[-30.0, 0], [30, 0]]), margin=2.0) is not None


def _square():
    return shapely.box(LON0, LAT0, LON0 + STRIP, LAT0 + HEIGHT)


def test_two_groups_of_a_square_are_cut_by_one_straight_line_that_keeps_the_square_exactly():
    region = _square()
    frame = Frame.around(region)
    west = [(LON0 + STRIP * x, LAT0 + HEIGHT * y) for x in (0.15, 0.3) for y in (0.2, 0.5, 0.8)]
    east = [(LON0 + STRIP * x, LAT0 + HEIGHT * y) for x in (0.7, 0.85) for y in (0.2, 0.5, 0.8)]
    sites = np.array(west + east)
    labels = np.array([0] * len(west) + [1] * len(east))
    outlines = power_outlines(region, sites, labels, 2, frame)
    assert outlines is not None
    assert union_is(outlines, region)
    for outline, group in zip(outlines, (0, 1), strict=True):
        assert outline.geom_type == "Polygon"
        assert shapely.covers(outline, shapely.points(sites[labels == group])).all()
        # A straight cut leaves two convex pieces: a polygon equal to its hull.
        assert math.isclose(outline.area, outline.convex_hull.area, rel_tol=1e-9)
    # The square's corners are kept bit for bit (the kept neighbours share them).
    corners = {tuple(c) for c in shapely.get_coordinates(region)}
    kept = {tuple(c) for o in outlines for c in shapely.get_coordinates(o)}
    assert corners <= kept


def test_a_group_wrapped_round_another_gets_no_straight_outline():
    region = _square()
    frame = Frame.around(region)
    inner = [(LON0 + STRIP * 0.5, LAT0 + HEIGHT * 0.5)]
    ring = [
        (LON0 + STRIP * (0.5 + 0.35 * math.cos(a)), LAT0 + HEIGHT * (0.5 + 0.35 * math.sin(a)))
        for a in np.linspace(0, 2 * math.pi, 8, endpoint=False)
    ]
    sites = np.array(inner + ring)
    labels = np.array([0] + [1] * len(ring))
    assert power_outlines(region, sites, labels, 2, frame) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.floats(-0.35, 0.35),
    st.floats(0.0, math.pi),
    st.lists(st.tuples(st.floats(0.03, 0.97), st.floats(0.03, 0.97)), min_size=4, max_size=30, unique=True),
)
def test_any_outlines_found_tile_the_region_and_hold_their_buildings_clear_of_other_grids(offset, angle, points):
    region = _square()
    frame = Frame.around(region)
    sites = np.array([(LON0 + STRIP * x, LAT0 + HEIGHT * y) for x, y in points])
    xy = frame.metric(sites)
    normal = np.array([math.cos(angle), math.sin(angle)])
    side = xy @ normal - offset * 300
    keep = np.abs(side) > 6.0  # nothing closer than 6 m to the dividing line: a 4 m clearance fits
    sites, side = sites[keep], side[keep]
    labels = (side > 0).astype(int)
    if len(set(labels.tolist())) < 2:
        return
    outlines = power_outlines(region, sites, labels, 2, frame)
    assert outlines is not None, "points either side of a line are always separable"
    assert union_is(outlines, region)
    points_metric = shapely.points(frame.metric(sites))
    for group, outline in enumerate(outlines):
        assert outline.geom_type == "Polygon" and outline.is_valid
        metric = frame.to_metric(outline)
        assert shapely.covers(metric, points_metric[labels == group]).all()
        assert (shapely.distance(metric, points_metric[labels != group]) >= 0.999).all()


def test_a_rebalanced_strip_boundary_is_straight_and_the_grids_stay_rectangles():
    # 640 | 400 | 200 households on lattices: the shared edges move between lattice columns, and straight
    # cuts keep every grid a rectangle (the building cells would give the same here; the point is no bend).
    grids, community, buildings = strips([[40] * 16, [40] * 10, [50] * 4])
    proposal = run(grids, community, buildings)
    check_plan(grids, community, buildings, proposal)
    for code, geometry in result_grids(grids, proposal).items():
        assert math.isclose(geometry.area, geometry.convex_hull.area, rel_tol=1e-9), f"{code} is not convex"
        frame = Frame.around(geometry)
        assert polsby_popper(geometry, frame) > 0.5
