"""Draft plans on both databases: copy, save with versions, move a shared vertex, split, merge, activate."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from geodata import GRIDS, MID_LAT, MID_LON, load_district
from shapely.geometry import box, mapping

from gridmap import assign, drafts
from gridmap.errors import Conflict, InvalidInput, NotFound

NW, SW, NE, SE = (g["code"] for g in GRIDS)


@pytest.fixture
def draft(store, tmp_path):
    load_district(store, tmp_path)
    drafts.create_draft(store, "plan-2027")
    return store


def grids_of(store, edition="plan-2027"):
    return {f["properties"]["code"]: f for f in drafts.draft_features(store, edition)["features"]}


def test_a_draft_copies_the_current_edition_and_is_invisible_to_lookups(draft):
    features = grids_of(draft)
    assert sorted(features) == sorted(g["code"] for g in GRIDS)
    assert all(f["properties"]["version"] == 1 for f in features.values())
    assert draft.get_edition("plan-2027").status == "draft"
    with pytest.raises(Conflict, match="already exists"):
        drafts.create_draft(draft, "plan-2027")
    drafts.save_grid(draft, "plan-2027", NW, {"version": 1, "households": 999})
    assert assign.grid_index(draft).edition != "plan-2027"
    assert draft.get_area(draft.current_edition().name, NW)["households"] == 420


def test_saving_bumps_the_version_and_a_stale_save_is_refused_with_what_is_there(draft):
    smaller = box(117.10, 39.11, 117.109, 39.12)
    saved = drafts.save_grid(draft, "plan-2027", NW, {"version": 1, "geometry": mapping(smaller), "name": "新名"})
    assert saved["properties"]["version"] == 2 and saved["properties"]["name"] == "新名"
    with pytest.raises(Conflict) as refused:
        drafts.save_grid(draft, "plan-2027", NW, {"version": 1, "households": 1})
    assert refused.value.status == 409
    current = refused.value.extra["current"]
    assert current["properties"]["version"] == 2
    assert shapely.geometry.shape(current["geometry"]).equals(smaller)
    assert draft.get_area("plan-2027", NW)["households"] == 420  # the stale save changed nothing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[117.1, 39.1], [117.11, 39.11], [117.11, 39.1], [117.1, 39.11], [117.1, 39.1]]],
                }
            },
            "Self-intersection",
        ),
        ({"geometry": {"type": "Polygon", "coordinates": []}}, "empty"),
        ({"geometry": {"type": "Point", "coordinates": [117.1, 39.1]}}, "a grid must be a Polygon"),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[39.1, 117.1], [39.11, 117.1], [39.11, 117.11], [39.1, 117.1]]],
                }
            },
            "swapped",
        ),
        ({"kind": "其他"}, "kind must be one of"),
        ({"households": -3}, "households must be a whole number"),
        ({}, "nothing to save"),
    ],
)
def test_bad_saves_are_400_naming_the_problem(draft, changes, message):
    with pytest.raises(InvalidInput, match=message):
        drafts.save_grid(draft, "plan-2027", NW, {"version": 1, **changes})
    assert draft.get_area("plan-2027", NW)["version"] == 1


def test_only_drafts_are_editable(draft):
    current = draft.current_edition().name
    with pytest.raises(Conflict, match="only drafts can be edited"):
        drafts.save_grid(draft, current, NW, {"version": 1, "households": 1})


def test_moving_a_shared_vertex_moves_it_in_every_grid_that_has_it(draft):
    moved = drafts.move_vertex(draft, "plan-2027", old=[MID_LON, MID_LAT], new=[117.112, 39.109])
    assert sorted(f["properties"]["code"] for f in moved) == [NW, SW, NE, SE]
    features = grids_of(draft)
    shapes = [shapely.geometry.shape(f["geometry"]) for f in features.values()]
    union = shapely.union_all(shapes)
    assert union.equals(box(117.10, 39.10, 117.12, 39.12))  # no gap opened
    assert sum(s.area for s in shapes) == pytest.approx(union.area, rel=1e-9)  # no overlap either
    assert all(f["properties"]["version"] == 2 for f in features.values())
    with pytest.raises(NotFound, match="has a vertex"):
        drafts.move_vertex(draft, "plan-2027", old=[117.105, 39.105], new=[117.1, 39.1])


def test_split_makes_two_new_grids_whose_union_is_the_old_one(draft):
    old = draft.get_area("plan-2027", NW)["geometry"]
    line = {"type": "LineString", "coordinates": [[117.105, 39.125], [117.105, 39.105]]}
    first, second = drafts.split_grid(draft, "plan-2027", NW, line)
    codes = [first["properties"]["code"], second["properties"]["code"]]
    assert codes == ["120104001001003", "120104001001004"]
    pieces = [shapely.geometry.shape(f["geometry"]) for f in (first, second)]
    assert shapely.union_all(pieces).symmetric_difference(old).area < 1e-9 * old.area
    assert first["properties"]["households"] + second["properties"]["households"] == 420
    assert NW not in grids_of(draft)
    with pytest.raises(InvalidInput, match="from edge to edge"):
        drafts.split_grid(
            draft, "plan-2027", SW, {"type": "LineString", "coordinates": [[117.0, 39.0], [117.01, 39.01]]}
        )


def test_merge_joins_neighbours_of_one_community_only(draft):
    merged = drafts.merge_grids(draft, "plan-2027", [NW, SW])
    assert merged["properties"]["code"] == "120104001001003"
    assert shapely.geometry.shape(merged["geometry"]).equals(box(117.10, 39.10, 117.11, 39.12))
    assert merged["properties"]["households"] == 800 and merged["properties"]["staff"] == 3
    with pytest.raises(InvalidInput, match="different communities"):
        drafts.merge_grids(draft, "plan-2027", [NE, "120104001001003"])


def test_merge_refuses_grids_that_only_touch_at_a_corner(store, tmp_path):
    load_district(store, tmp_path)
    drafts.create_draft(store, "corner")
    drafts.split_grid(
        store, "corner", NE, {"type": "LineString", "coordinates": [[117.115, 39.125], [117.115, 39.105]]}
    )
    drafts.split_grid(
        store, "corner", SE, {"type": "LineString", "coordinates": [[117.115, 39.115], [117.115, 39.095]]}
    )
    # 003/004 split NE west/east, 005/006 split SE: 003 (north-west) and 006 (south-east) meet at one point.
    with pytest.raises(InvalidInput, match="do not share an edge"):
        drafts.merge_grids(store, "corner", ["120104001002003", "120104001002006"])


def test_retired_codes_are_never_reused(draft):
    drafts.merge_grids(draft, "plan-2027", [NW, SW])  # → 003; 001 and 002 retire with this plan
    drafts.activate_draft(draft, "plan-2027")
    drafts.create_draft(draft, "plan-2028")
    halves = drafts.split_grid(
        draft,
        "plan-2028",
        "120104001001003",
        {"type": "LineString", "coordinates": [[117.105, 39.125], [117.105, 39.095]]},
    )
    assert [h["properties"]["code"] for h in halves] == ["120104001001004", "120104001001005"]


def test_activation_is_refused_while_a_gap_is_open_and_allowed_when_waived(draft):
    when = dt.datetime(2026, 11, 1, 9, 0)
    draft.add_incidents(
        [
            {
                "source": "hotline",
                "title": "drain",
                "reported_at": when,
                "lon": 117.105,
                "lat": 39.115,
                "grid_code": NW,
                "original_grid_code": NW,
                "community_code": NW[:12],
                "street_code": "120104001",
            }
        ]
    )
    drafts.delete_grid(draft, "plan-2027", NW, version=1)
    with pytest.raises(Conflict) as refused:
        drafts.activate_draft(draft, "plan-2027")
    (finding,) = refused.value.extra["findings"]
    assert finding["kind"] == "gaps" and finding["area_m2"] > 500_000
    assert draft.get_edition("plan-2027").status == "draft"
    result = drafts.activate_draft(
        draft,
        "plan-2027",
        valid_from=dt.date(2027, 1, 1),
        waive=[{"finding": finding["id"], "reason": "estate demolished"}],
    )
    assert result["edition"]["status"] == "current" and result["waived"] == {finding["id"]: "estate demolished"}
    assert assign.locate(draft, lon=117.105, lat=39.115)["grid_code"] is None
    assert assign.locate(draft, lon=117.115, lat=39.115)["edition"] == "plan-2027"
    (incident,) = draft.incident_points()
    assert (incident["grid_code"], incident["original_grid_code"]) == (None, NW)
    retired = [e for e in draft.list_editions() if e.status == "retired"]
    assert retired and retired[0].valid_to == dt.date(2026, 12, 31)


def test_a_waiver_needs_a_reason(draft):
    with pytest.raises(InvalidInput, match="reason"):
        drafts.activate_draft(draft, "plan-2027", waive=[{"finding": "gaps:x"}])
