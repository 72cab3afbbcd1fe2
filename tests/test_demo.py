"""The committed demo district: counts, codes, exact tiling, numbering and loads."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from gridmap.cli import main
from gridmap.demo import FILES, demo_boundary_dir, generate_district


@pytest.fixture(scope="module")
def demo():
    return {level: gpd.read_file(demo_boundary_dir() / name) for level, name in FILES.items()}


def test_counts_are_nankai_scale(demo):
    assert {level: len(frame) for level, frame in demo.items()} == {
        "district": 1,
        "street": 12,
        "community": 175,
        "grid": 1464,
    }


@pytest.mark.parametrize(
    "child,parent,length", [("street", "district", 9), ("community", "street", 12), ("grid", "community", 15)]
)
def test_codes_extend_their_parents_code(demo, child, parent, length):
    frame = demo[child]
    assert frame.code.is_unique
    assert (frame.code.str.len() == length).all() and frame.code.str.isdigit().all()
    assert set(frame.parent_code) == set(demo[parent].code)
    assert all(code.startswith(p) for code, p in zip(frame.code, frame.parent_code, strict=True))


@pytest.mark.parametrize("child,parent", [("street", "district"), ("community", "street"), ("grid", "community")])
def test_each_level_tiles_its_parent_exactly(demo, child, parent):
    children = demo[child]
    assert children.geometry.is_valid.all()
    assert shapely.coverage_is_valid(children.geometry.values)  # no overlaps, shared edges identical
    parents = demo[parent].set_index("code").geometry
    for code, group in children.groupby("parent_code"):
        union = shapely.union_all(group.geometry.values)
        assert union.symmetric_difference(parents[code]).area == pytest.approx(0, abs=1e-15)


def test_numbering_runs_west_to_east_then_north_to_south(demo):
    grids, communities = demo["grid"], demo["community"].set_index("code").geometry
    for code, group in grids.groupby("parent_code"):
        rows = max(1, round(math.sqrt(len(group))))
        miny, maxy = communities[code].bounds[1], communities[code].bounds[3]
        height = (maxy - miny) / rows
        centroids = shapely.centroid(group.geometry.values)
        keys = [(min(rows - 1, int((maxy - c.y) / height)), c.x) for c in centroids]
        assert keys == sorted(keys), f"grids of {code} are not numbered west→east, north→south"


def test_households_mostly_within_guideline_with_outliers(demo):
    grids = demo["grid"]
    comprehensive = grids[grids.kind == "综合"]
    inside = comprehensive.households.between(300, 500).mean()
    assert 0.8 < inside < 0.95
    assert (comprehensive.households < 300).any() and (comprehensive.households > 500).any()
    assert 10 <= (grids.kind == "专属").sum() <= 80
    assert ((grids.population / grids.households.clip(lower=1))[comprehensive.index].between(2.29, 2.91)).all()


def test_generation_is_deterministic():
    first, second = generate_district(seed=7), generate_district(seed=7)
    assert np.array_equal(shapely.to_wkb(first["grid"].geometry.values), shapely.to_wkb(second["grid"].geometry.values))


def test_demo_command_loads_the_district_once(database_url):
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--db", database_url])
    assert first.exit_code == 0, first.output
    assert "12 streets, 175 communities, 1464 grids" in first.output
    assert "loaded the demo gazetteer: 14067 addresses" in first.output
    again = runner.invoke(main, ["demo", "--if-empty", "--db", database_url])
    assert again.exit_code == 0 and "demo not loaded" in again.output
