"""Which good neighbours a region takes in (gridmap.propose.choice): the ragged ones before the round ones."""

from __future__ import annotations

import shapely
from buildingdata import COMMUNITY_CODE, HEIGHT, LAT0, LON0, STREET_CODE, STRIP, grid_record
from test_propose import check_plan, run

from gridmap.propose import choice
from gridmap.propose.cells import Frame, polsby_popper


def _lattice(number: int, west: float, count: int, households: int) -> list[dict]:
    """`count` buildings of `households` each on a lattice in the square column starting at `west`."""
    side = 6
    rows = -(-count // side)
    buildings = []
    for k in range(count):
        row, column = divmod(k, side)
        buildings.append(
            {
                "code": f"B{number:02d}{k + 1:03d}",
                "name": f"{number}区{k + 1}号楼",
                "address": None,
                "estate": None,
                "community_code": COMMUNITY_CODE,
                "households": households,
                "population": households * 2,
                "lon": round(west + STRIP * (column + 0.5) / side, 7),
                "lat": round(LAT0 + HEIGHT * (row + 0.5) / rows, 7),
                "footprint": None,
                "geocode_level": None,
            }
        )
    return buildings


def round_and_ragged(middle: int = 560):
    """West: a round (square) grid of 300 households; middle: a square grid of `middle` households, above the
    maximum; east: a ragged grid (its east edge a saw of long teeth) of 300 households. Both neighbours have the
    same room, share the same edge with the middle one, and the round one comes first in code order."""
    xs = [round(LON0 + i * STRIP, 7) for i in range(4)]
    top = round(LAT0 + HEIGHT, 7)
    west = shapely.box(xs[0], LAT0, xs[1], top)
    middle_box = shapely.box(xs[1], LAT0, xs[2], top)
    teeth, saw = 3, []
    for t in range(teeth):
        low, high = LAT0 + HEIGHT * t / teeth, LAT0 + HEIGHT * (t + 0.5) / teeth
        saw += [(xs[3], round(low, 7)), (round(xs[3] + STRIP * 0.3, 7), round(high, 7))]
    east = shapely.Polygon([(xs[2], LAT0), *saw, (xs[3], top), (xs[2], top)])
    grids = [grid_record(1, west), grid_record(2, middle_box), grid_record(3, east)]
    buildings = _lattice(1, xs[0], 15, 20) + _lattice(2, xs[1], middle // 20, 20) + _lattice(3, xs[2], 15, 20)
    outline = shapely.union_all([west, middle_box, east])
    community = {"code": COMMUNITY_CODE, "name": "百合社区", "parent_code": STREET_CODE, "level": "community"}
    return grids, {**community, "geometry": outline}, buildings


def test_the_ragged_neighbour_is_taken_in_and_the_round_one_left_as_it_is():
    grids, community, buildings = round_and_ragged()
    shapes = {g["code"]: polsby_popper(g["geometry"], Frame.around(g["geometry"])) for g in grids}
    west, middle, east = (g["code"] for g in grids)
    assert shapes[east] < shapes[west] and sum(b["households"] for b in buildings if b["code"][1:3] == "02") > 500
    proposal = run(grids, community, buildings, shift=False)  # the region redraw, not the edge shift
    totals = check_plan(grids, community, buildings, proposal)
    assert all(300 <= n <= 500 for n in totals.values())
    plan = proposal.communities[0]
    assert plan.added == [east], f"took in {plan.added}"
    assert west in plan.kept and middle in plan.redrawn and east in plan.redrawn


def test_a_round_neighbour_is_still_taken_in_when_no_ragged_one_can_balance_the_region():
    # The ragged neighbour is full (480 households): only the round one has room.
    grids, community, buildings = round_and_ragged()
    for b in buildings:
        if b["code"].startswith("B03"):
            b["households"] = 32
    proposal = run(grids, community, buildings, shift=False)  # the region redraw, not the edge shift
    totals = check_plan(grids, community, buildings, proposal)
    assert all(300 <= n <= 500 for n in totals.values())
    assert proposal.communities[0].added == [grids[0]["code"]]


def test_round_prices_charge_the_grids_at_or_above_the_bar_only():
    prices = choice.round_prices({"a": 0.9, "b": 0.8, "c": 0.5}, 0.8)
    assert prices == {"a": choice.ROUND_PRICE, "b": choice.ROUND_PRICE, "c": 0.0}
    assert choice.round_prices({"a": 0.9}, None) == {"a": 0.0}
    assert choice.median_compactness([shapely.box(0, 0, 1, 1), shapely.box(0, 0, 4, 1), shapely.box(0, 0, 9, 1)]) < 0.7
