"""Redivision proposals on hand-made communities with known buildings (the core: no database, no web)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from buildingdata import COMMUNITY_CODE, HEIGHT, LAT0, LON0, STRIP, frames, strips, union_is
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap import assign
from gridmap.errors import InvalidInput
from gridmap.propose import ProposeOptions, number_grids, propose_plan, sequential_codes


def run(grids, community, buildings, **options):
    grid_frame, community_frame = frames(grids, community)
    proposal = propose_plan(
        grid_frame,
        community_frame,
        buildings,
        scope=[COMMUNITY_CODE],
        options=ProposeOptions(**{k: v for k, v in options.items() if k != "barriers"}),
        barriers=options.get("barriers", ()),
    )
    number_grids(proposal, sequential_codes([g["code"] for g in grids]), {COMMUNITY_CODE: community["name"]})
    return proposal


def result_grids(grids, proposal) -> dict:
    """Return code → geometry of the community after the proposal (kept grids and new ones)."""
    plan = proposal.communities[0]
    after = {g["code"]: g["geometry"] for g in grids if g["code"] in plan.kept}
    after.update({g.code: g.geometry for g in plan.grids})
    return after


def households_by_rule(after: dict, buildings) -> dict:
    """Households per grid with every building located by THE rule in the proposed grids."""
    codes = list(after)
    index = assign.GridIndex.build(codes, [after[c] for c in codes])
    located = index.locate_many([b["lon"] for b in buildings], [b["lat"] for b in buildings], nearest=False)
    totals = dict.fromkeys(codes, 0)
    for building, code in zip(buildings, located.grid_codes(), strict=True):
        assert code is not None, f"building {building['code']} fell outside every grid"
        totals[code] += building["households"]
    return totals


def check_plan(grids, community, buildings, proposal, *, low=300, high=500) -> dict:
    """The rules every proposal keeps; return households per grid."""
    after = result_grids(grids, proposal)
    for code, geometry in after.items():
        assert geometry.is_valid and geometry.geom_type == "Polygon", f"{code} is not one valid polygon"
    assert union_is(after.values(), community["geometry"]), "the grids do not tile the community exactly"
    totals = households_by_rule(after, buildings)
    assert sum(totals.values()) == sum(b["households"] for b in buildings)
    for grid in proposal.communities[0].grids:
        assert totals[grid.code] == grid.households, "a grid's households are not those of its buildings"
    excused = {e.get("grid") for e in proposal.exceptions}
    for code, count in totals.items():
        assert low <= count <= high or code in excused or proposal.exceptions, f"{code} has {count} households"
    return totals


def test_an_over_full_and_an_under_full_grid_are_balanced_with_their_neighbour():
    # 640 | 400 | 200 households: the middle grid is in range but the others need it.
    grids, community, buildings = strips([[40] * 16, [40] * 10, [50] * 4])
    proposal = run(grids, community, buildings)
    totals = check_plan(grids, community, buildings, proposal)
    assert all(300 <= n <= 500 for n in totals.values())
    assert proposal.exceptions == []
    assert proposal.communities[0].kept == []  # all three had to take part


def test_an_estate_within_the_maximum_stays_in_one_grid():
    grids, community, buildings = strips([[40] * 16, [40] * 10, [50] * 4], estates={0: "百合家园"})
    estate = {b["code"] for b in buildings if b["estate"] == "百合家园"}
    assert sum(b["households"] for b in buildings if b["code"] in estate) == 640  # above the maximum: divisible
    small = strips([[30] * 8 + [40] * 8, [40] * 10, [50] * 4], estates={0: "百合家园"})
    grids, community, buildings = small
    # Make the first eight buildings (240 households) the estate and the rest loose.
    for b in buildings[8:16]:
        b["estate"] = None
    proposal = run(grids, community, buildings)
    check_plan(grids, community, buildings, proposal)
    estate_grids = {g.code for g in proposal.communities[0].grids for i in g.buildings if i < 8}
    kept_holding = [g["code"] for g in grids if g["code"] in proposal.communities[0].kept and g["code"].endswith("1")]
    assert len(estate_grids) + len(kept_holding) == 1, "the estate was divided"


def test_keep_good_leaves_grids_far_from_trouble_exactly_as_they_are():
    # 400 | 400 | 400 | 420 | 700: only the east end is out of range.
    grids, community, buildings = strips([[40] * 10, [40] * 10, [40] * 10, [42] * 10, [70] * 10])
    proposal = run(grids, community, buildings)
    check_plan(grids, community, buildings, proposal)
    plan = proposal.communities[0]
    assert f"{COMMUNITY_CODE}001" in plan.kept and f"{COMMUNITY_CODE}005" in plan.redrawn
    # Without keep-good every comprehensive grid is up for redrawing.
    everything = run(grids, community, buildings, keep_good=False)
    check_plan(grids, community, buildings, everything)
    assert len(everything.communities[0].redrawn) > len(plan.redrawn)


def test_a_redrawn_grid_holding_most_of_an_old_one_keeps_its_code():
    # 400 | 300 | 580: the east grid passes a few buildings west and both stay themselves.
    grids, community, buildings = strips([[40] * 10, [30] * 10, [58] * 10])
    proposal = run(grids, community, buildings)
    check_plan(grids, community, buildings, proposal)
    continued = {g.continues for g in proposal.communities[0].grids if g.continues}
    assert {f"{COMMUNITY_CODE}002", f"{COMMUNITY_CODE}003"} <= continued
    # A grid of 700 with neighbours that cannot take 200 more is split: one half carries the code on.
    grids, community, buildings = strips([[40] * 10, [40] * 10, [42] * 10, [70] * 10])
    proposal = run(grids, community, buildings)
    check_plan(grids, community, buildings, proposal)
    halves = [g for g in proposal.communities[0].grids if f"{COMMUNITY_CODE}004" in g.sources]
    assert [g.continues for g in halves].count(f"{COMMUNITY_CODE}004") == 1
    fresh = [g.code for g in proposal.communities[0].grids if g.continues is None]
    assert fresh and all(int(code[-3:]) > len(grids) for code in fresh), "a fresh code reused an old one"


def test_a_division_along_a_river_is_chosen_when_one_exists():
    # One tall grid of 800 households: too many. Its natural cut is east-west (it is tall); a river runs
    # north-south through the middle, and the division follows it.
    tall = 0.009
    grids, community, buildings = strips([[50] * 16], height=tall)
    river = shapely.LineString([(LON0 + STRIP / 2, LAT0 - 0.001), (LON0 + STRIP / 2, LAT0 + tall + 0.001)])
    along = run(grids, community, buildings, barriers=[river])
    check_plan(grids, community, buildings, along)
    new = [g.geometry for g in along.communities[0].grids]
    assert len(new) == 2
    assert not any(shapely.relate_pattern(g, river, "T********") for g in new), "a grid straddles the river"
    plain = run(grids, community, buildings)
    check_plan(grids, community, buildings, plain)
    assert any(shapely.relate_pattern(g.geometry, river, "T********") for g in plain.communities[0].grids)


def test_a_building_above_the_maximum_is_a_grid_of_its_own_and_reported():
    grids, community, buildings = strips([[800, 40, 40, 40, 40], [40] * 12])
    proposal = run(grids, community, buildings)
    totals = check_plan(grids, community, buildings, proposal)
    huge = [e for e in proposal.exceptions if e["kind"] == "building_above_max"]
    assert len(huge) == 1 and huge[0]["building"] == "B01001" and huge[0]["households"] == 800
    own = [g for g in proposal.communities[0].grids if g.huge == "B01001"]
    assert len(own) == 1 and totals[own[0].code] == 800 and len(own[0].buildings) == 1
    others = [n for code, n in totals.items() if code != own[0].code]
    assert all(300 <= n <= 500 for n in others)


def test_the_same_seed_gives_the_same_plan():
    grids, community, buildings = strips([[35] * 18, [40] * 8, [30] * 6])

    def fingerprint(proposal):
        return [(g.code, g.households, shapely.to_wkb(g.geometry)) for g in proposal.communities[0].grids]

    first = run(grids, community, buildings, seed=7)
    again = run(grids, community, buildings, seed=7)
    assert fingerprint(first) == fingerprint(again)
    rebuilt = run(grids, community, buildings, seed=7, method="rebuild", keep_good=False)
    check_plan(grids, community, buildings, rebuilt)


def test_options_are_checked():
    with pytest.raises(InvalidInput, match="0 < min ≤ max"):
        ProposeOptions(households_min=500, households_max=300)
    with pytest.raises(InvalidInput, match="target"):
        ProposeOptions(target_households=900)
    with pytest.raises(InvalidInput, match="method"):
        ProposeOptions(method="magic")
    grids, community, buildings = strips([[40] * 10])
    grid_frame, community_frame = frames(grids, community)
    with pytest.raises(InvalidInput, match="no community"):
        propose_plan(grid_frame, community_frame, buildings, scope=["999"], options=ProposeOptions())


def test_a_community_without_buildings_is_left_as_it_is():
    grids, community, _ = strips([[40] * 10, [70] * 10])
    proposal = run(grids, community, [])
    plan = proposal.communities[0]
    assert plan.grids == [] and sorted(plan.kept) == [g["code"] for g in grids] and "no buildings" in plan.note


# ---- a property over random communities -------------------------------------------------------------------
@st.composite
def communities(draw):
    grid_count = draw(st.integers(1, 4))
    width = STRIP * grid_count
    seeds = draw(
        st.lists(
            st.tuples(st.floats(0.05, 0.95), st.floats(0.05, 0.95)),
            min_size=grid_count,
            max_size=grid_count,
            # Seeds a hair apart make GEOS's Voronoi refuse ("multiple input coordinates in cell"): keep them apart.
            unique_by=lambda seed: (round(seed[0], 3), round(seed[1], 3)),
        )
    )
    n = draw(st.integers(6, 40))
    points = draw(st.lists(st.tuples(st.floats(0.02, 0.98), st.floats(0.02, 0.98)), min_size=n, max_size=n))
    households = draw(st.lists(st.integers(0, 90), min_size=n, max_size=n))
    return grid_count, width, seeds, points, households


def random_community(grid_count, width, seeds, points, households):
    outline = shapely.box(LON0, LAT0, LON0 + width, LAT0 + HEIGHT)
    xy = np.array([(LON0 + x * width, LAT0 + y * HEIGHT) for x, y in seeds])
    if grid_count == 1:
        cells = [outline]
    else:
        diagram = shapely.voronoi_polygons(shapely.MultiPoint(xy), extend_to=outline.buffer(0.01), ordered=True)
        cells = [shapely.set_precision(c.intersection(outline), 1e-7) for c in shapely.get_parts(diagram)]
        cells = [c for c in cells if c.geom_type == "Polygon" and c.area > 0]
    grids = [
        {
            "code": f"{COMMUNITY_CODE}{i + 1:03d}",
            "name": f"第{i + 1}网格",
            "parent_code": COMMUNITY_CODE,
            "level": "grid",
            "kind": "综合",
            "households": 0,
            "population": 0,
            "staff": 1,
            "geometry": cell,
        }
        for i, cell in enumerate(cells)
    ]
    community = {
        "code": COMMUNITY_CODE,
        "name": "百合社区",
        "parent_code": "120104001",
        "level": "community",
        "geometry": shapely.union_all(cells),
    }
    buildings = [
        {
            "code": f"B{k:03d}",
            "name": f"{k}号楼",
            "estate": None,
            "households": h,
            "population": None,
            "lon": round(LON0 + x * width, 7),
            "lat": round(LAT0 + y * HEIGHT, 7),
            "footprint": None,
        }
        for k, ((x, y), h) in enumerate(zip(points, households, strict=True))
    ]
    return grids, community, buildings


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(communities(), st.booleans())
def test_every_proposal_tiles_its_community_and_counts_every_household(drawn, keep_good):
    grids, community, buildings = random_community(*drawn)
    if sum(b["households"] for b in buildings) == 0:
        return
    proposal = run(grids, community, buildings, keep_good=keep_good, households_min=100, households_max=250)
    totals = check_plan(grids, community, buildings, proposal, low=100, high=250)
    reported = proposal.exceptions
    for code, count in totals.items():
        if not 100 <= count <= 250:
            assert reported, f"{code} has {count} households and no exception says why"
