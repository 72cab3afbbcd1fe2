"""Geocoding with two districts that share road names, on both databases, through every front door.

The scenario table (tests/geocode_districts.py) is answered alike by the core (`geocode.geocode_address`), the CLI
(`gridmap geocode --json`) and HTTP (`GET /api/geocode` on a real server): 号, 弄, 支弄, 号楼, 室, bare numbers,
ranges, junctions with offsets, chains beside a door, generic words, district-qualified names, ambiguity,
another city. The gazetteer's district and street columns, tagging from the boundaries and migration 0006 too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner
from geocode_districts import (
    HIGH,
    SCENARIOS,
    WEST_SHIFT,
    door_point,
    load_two_districts,
)

from gridmap import geocode, people
from gridmap.cli import main
from gridmap.config import Settings
from gridmap.errors import ConfigError, InvalidInput
from gridmap.geocode.parse import metres_between
from gridmap.store import Store
from gridmap.store import tables as t

CLOSE_M = 20  # the test roads are straight: every expected point is met within a few metres


@pytest.fixture
def districts(store, tmp_path):
    load_two_districts(store, tmp_path)
    return store


def check(address: str, answer: dict, found, level, district, point, band) -> None:
    where = f"{address}: {answer}"
    assert answer["found"] is found, where
    if not found:
        assert answer["lon"] is None and answer["review"] is True, where
        return
    assert (answer["level"], answer["district"]) == (level, district), where
    assert metres_between(*point, answer["lon"], answer["lat"]) < CLOSE_M, where
    assert (answer["confidence"] >= 0.85) is (band == HIGH), where
    assert answer["review"] is (band != HIGH), where
    assert answer["matched"], where


def test_every_scenario_through_the_core(districts):
    for address, *expected in SCENARIOS:
        check(address, geocode.geocode_address(districts, address), *expected)


def test_every_scenario_through_the_cli(districts, database_url):
    runner = CliRunner()
    for address, *expected in SCENARIOS:
        result = runner.invoke(main, ["geocode", address, "--json", "--db", database_url])
        assert result.exit_code == 0, result.output
        check(address, json.loads(result.output), *expected)


def test_every_scenario_over_http(live_server, database_url, tmp_path):
    store = Store.open(database_url)
    load_two_districts(store, tmp_path)
    token = people.add_user(store, "调度员", role="viewer")
    store.close()

    def get(path: str, *, auth: bool = True):
        headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if auth else {})}
        try:
            with urllib.request.urlopen(urllib.request.Request(live_server + path, headers=headers)) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    for address, *expected in SCENARIOS:
        status, answer = get("/api/geocode?" + urllib.parse.urlencode({"address": address}))
        assert status == 200, answer
        check(address, answer, *expected)
    status, located = get("/api/geocode?" + urllib.parse.urlencode({"address": "西青区黄河道21号", "locate": "true"}))
    assert status == 200 and located["grid"]["grid_code"] == "120111001001001"
    assert get("/api/geocode?address=x", auth=False)[0] == 401
    status, error = get("/api/geocode")
    assert status == 400 and "address" in error["error"]
    # Text as the API describes it, but nothing to look up in it: 422 (400 is for what the description refuses)
    status, error = get("/api/geocode?" + urllib.parse.urlencode({"address": "，。"}))
    assert status == 422 and "nothing but spaces and punctuation" in error["error"]
    assert get("/api/geocode?" + urllib.parse.urlencode({"address": "  "}))[0] == 400


def test_the_cli_says_why_and_what_else(districts, database_url):
    runner = CliRunner()
    ambiguous = runner.invoke(main, ["geocode", "黄河道21号", "--db", database_url])
    assert ambiguous.output.startswith("not found: 黄河道21号 (黄河道 is in several districts (南开区, 西青区)")
    assert "did you mean: 黄河道21号" in ambiguous.output
    found = runner.invoke(main, ["geocode", "幸福里5栋", "--locate", "--db", database_url])
    assert "building (confidence 0.60; needs review): 幸福里5栋 [西青区]" in found.output
    assert "grid 120111001001001" in found.output


def test_entries_without_columns_are_tagged_from_the_boundaries(districts):
    answer = geocode.geocode_address(districts, "南开区黄河道21号")
    assert (answer["district"], answer["street"]) == ("南开区", "长虹街道")
    west = geocode.geocode_address(districts, "西青区黄河道21号")
    assert (west["district"], west["street"]) == ("西青区", "西营门街道")
    # Columns win: "西青" is another name of 西青区; a point outside every boundary keeps what its row says.
    painted = geocode.geocode_address(districts, "西青区杨柳青画社")
    assert painted["district"] == "西青区"
    park = geocode.geocode_address(districts, "西青区津门湖公园")
    assert (park["found"], park["district"], park["street"]) == (True, "西青区", "津门湖街道")
    # What is stored is what the file said: tags live in the built gazetteer, following the boundaries.
    stored = [r for r in districts.gazetteer_rows() if r["name"] == "杨柳青画社"]
    assert [(r["district"], r["street"]) for r in stored] == [("西青", None)]
    assert all(r["district"] is None for r in districts.gazetteer_rows() if r["name"] == "黄河道21号")


def test_the_gazetteer_is_tagged_again_when_the_boundaries_arrive_later(store, tmp_path):
    from geocode_districts import write_gazetteer

    geocode.load_gazetteer(store, write_gazetteer(tmp_path / "gazetteer.csv"))
    # No boundaries yet: the two 黄河道 are one road whose numbers appear twice, far apart — not a guess.
    before = geocode.geocode_address(store, "黄河道21号")
    assert before["found"] and before["confidence"] < 0.85 and "listed at 2 places" in before["note"]
    load_two_districts(store, tmp_path)
    after = geocode.geocode_address(store, "西青区黄河道21号")
    assert (after["district"], after["confidence"]) == ("西青区", geocode.CONFIDENCE["door"])
    lon, lat = door_point("黄河道", 21, west=WEST_SHIFT)
    assert metres_between(lon, lat, after["lon"], after["lat"]) < 1


def test_the_jurisdiction_setting_adds_names_and_keeps_others_out(districts):
    declared = Settings(database_url=districts.url, jurisdiction="city=天津市|津门; districts=南开区|南开|NK")
    answer = geocode.geocode_address(districts, "津门NK黄河道21号", settings=declared)
    assert (answer["found"], answer["district"]) == (True, "南开区")
    outside = geocode.geocode_address(districts, "天津市河西区黄河道21号", settings=declared)
    assert outside["found"] is False and "outside the jurisdiction" in outside["note"]
    with pytest.raises(ConfigError, match="GRIDMAP_JURISDICTION: 'town=x' is not one of"):
        geocode.geocode_address(districts, "黄河道1号", settings=Settings(jurisdiction="town=x"))
    with pytest.raises(ConfigError, match="GRIDMAP_GEOCODE_REVIEW_BELOW"):
        geocode.geocode_address(districts, "黄河道1号", settings=Settings(geocode_review_below=1.5))


def test_the_review_threshold_is_a_setting(districts):
    strict = Settings(database_url=districts.url, geocode_review_below=0.95)
    assert geocode.geocode_address(districts, "南开区黄河道21号", settings=strict)["review"] is True
    lenient = Settings(database_url=districts.url, geocode_review_below=0.5)
    assert geocode.geocode_address(districts, "幸福里5栋", settings=lenient)["review"] is False


def test_gazetteer_columns_are_stored_and_counted_in_the_fingerprint(store, tmp_path):
    source = tmp_path / "g.csv"
    source.write_text("kind,name,lon,lat,district,street\nestate,朝园里,117.11,39.11,南开区,长虹街道\n", "utf-8")
    geocode.load_gazetteer(store, source)
    [row] = store.gazetteer_rows()
    assert (row["district"], row["street"]) == ("南开区", "长虹街道")
    first = store.gazetteer_fingerprint()
    source.write_text("kind,name,lon,lat,district,street\nestate,朝园里,117.11,39.11,西青区,长虹街道\n", "utf-8")
    geocode.load_gazetteer(store, source)
    assert store.gazetteer_fingerprint() != first
    source.write_text(f"kind,name,lon,lat,district\nestate,朝园里,117.11,39.11,{'区' * 101}\n", "utf-8")
    with pytest.raises(InvalidInput, match=r"row 2 .*district is longer than 100"):
        geocode.load_gazetteer(store, source)
    assert store.gazetteer_rows()[0]["district"] == "西青区"  # the refused file changed nothing


def test_migration_0006_keeps_rows_and_flags_open_low_confidence_cases(database_url):
    store = Store.open(database_url)
    config = store._alembic_config()
    with store.transaction() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    assert store.schema_revision() == "0004"
    now = "2026-11-30 09:00:00"
    with store.transaction() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO gazetteer (kind, name, lon, lat, aliases) VALUES ('estate', '朝园里', 117.1, 39.1, '')"
            )
        )
        for title, confidence, status in (("低", 0.5, "reported"), ("高", 0.97, "reported"), ("结", 0.4, "closed")):
            conn.execute(
                sa.text(
                    "INSERT INTO incidents (source, title, reported_at, geocode_confidence, status) "
                    "VALUES ('web', :title, :now, :confidence, :status)"
                ),
                {"title": title, "now": now, "confidence": confidence, "status": status},
            )
    store.close()
    upgraded = Store.open(database_url)
    assert upgraded.schema_revision() == upgraded.head_revision()
    [row] = upgraded.gazetteer_rows()
    assert (row["name"], row["district"], row["street"]) == ("朝园里", None, None)
    with upgraded.engine.connect() as conn:
        flags = dict(conn.execute(sa.select(t.incidents.c.title, t.incidents.c.geocode_review)).all())
    assert flags == {"低": True, "高": False, "结": False}
    upgraded.close()
