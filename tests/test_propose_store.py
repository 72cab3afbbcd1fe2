"""Proposals written into draft plans on both databases, through the CLI and the HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import shapely
from buildingdata import COMMUNITY_CODE, LAT0, LON0, STRIP, load, strips, union_is
from click.testing import CliRunner

from gridmap import audit, drafts, people
from gridmap import propose as proposals
from gridmap.cli import main
from gridmap.errors import Conflict
from gridmap.store import Store

# 400 | 400 | 400 | 420 | 700 households: the east end is out of range, the west end far from it.
LAYOUT = [[40] * 10, [40] * 10, [40] * 10, [42] * 10, [70] * 10]


@pytest.fixture
def loaded(store, tmp_path):
    grids, community, buildings = strips(LAYOUT)
    load(store, tmp_path, grids, community, buildings)
    return store, community


def test_a_proposal_lands_in_a_draft_that_audits_clean_and_activates(loaded):
    store, community = loaded
    before = store.areas("main", "grid")
    report = proposals.propose(store, into="plan-b", community=COMMUNITY_CODE)
    assert store.get_edition("plan-b").status == "draft" and report["from"] == "main"
    assert report["figures"]["out_of_range"] == {"before": 1, "after": 0}
    after = store.areas("plan-b", "grid")
    assert union_is(after.geometry, community["geometry"])
    assert all(300 <= h <= 500 for h in after["households"])
    kept = set(before["code"]) - set(report["communities"][0]["redrawn"])
    assert f"{COMMUNITY_CODE}001" in kept
    old = before.set_index("code")
    new = after.set_index("code")
    for code in kept:  # byte for byte: geometry and every attribute
        assert shapely.to_wkb(new.geometry[code]) == shapely.to_wkb(old.geometry[code])
        assert new.drop(columns="geometry").loc[code].to_dict() == old.drop(columns="geometry").loc[code].to_dict()
    found = audit.audit_edition(store, "plan-b")
    assert found["gaps"] == [] and found["overlaps"] == [] and found["outside_parent"] == []
    compared = audit.compare_editions(store, "main", "plan-b")
    # The comparison estimates by area share; the proposal counts buildings: both see households move.
    assert compared["summary"]["households_moving"] > 0 and report["figures"]["households_moving"] > 0
    # A redrawn grid that keeps its code carries on from its version, so a stale editor save is refused.
    continued = report["communities"][0]["continued"]
    assert continued and store.area_versions("plan-b")[continued[0]] == 2
    activated = drafts.activate_draft(store, "plan-b")
    assert activated["edition"]["status"] == "current"


def test_proposing_again_into_the_same_draft_starts_from_the_draft(loaded):
    store, _ = loaded
    proposals.propose(store, into="plan-b", community=COMMUNITY_CODE)
    again = proposals.propose(store, into="plan-b", community=COMMUNITY_CODE)
    assert again["from"] == "plan-b"
    assert again["communities"][0]["redrawn"] == []  # everything is in range now: nothing to redraw
    with pytest.raises(Conflict, match="current"):
        proposals.propose(store, into="main", community=COMMUNITY_CODE)


def test_the_cli_proposes_and_reports(loaded, database_url, tmp_path):
    river = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "卫津河"},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[LON0 + 4.5 * STRIP, LAT0 - 0.001], [LON0 + 4.5 * STRIP, LAT0 + 0.005]],
                },
            }
        ],
    }
    (tmp_path / "river.geojson").write_text(json.dumps(river), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            *("propose", "--community", COMMUNITY_CODE, "--into", "plan-b"),
            *("--barriers", str(tmp_path / "river.geojson"), "--seed", "3", "--db", database_url),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "proposal written into draft 'plan-b' (from 'main')" in result.output
    assert "grids outside 300–500: 1 → 0" in result.output
    assert "households changing grid:" in result.output
    as_json = runner.invoke(
        main, ["propose", "--all", "--into", "plan-c", "--json", "--max", "450", "--db", database_url]
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["options"]["max"] == 450
    missing = runner.invoke(main, ["propose", "--into", "plan-d", "--db", database_url])
    assert missing.exit_code != 0 and "give exactly one of --community CODE, --street CODE or --all" in missing.output
    bad = runner.invoke(main, ["propose", "--street", "999", "--into", "plan-d", "--db", database_url])
    assert bad.exit_code == 1 and "no street '999'" in bad.output
    check = Store.open(database_url)
    try:
        assert check.find_edition("plan-d") is None  # a failed command changes nothing
    finally:
        check.close()


def test_the_http_api_proposes_for_planners_only(loaded, live_server, database_url):
    store, _ = loaded
    drafts.create_draft(store, "plan-b")
    tokens = {
        "planner": people.add_user(store, "规划员", role="planner"),
        "viewer": people.add_user(store, "访客", role="viewer"),
    }

    def post(path: str, body, who: str = "planner"):
        request = urllib.request.Request(f"{live_server}{path}", data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {tokens[who]}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, report = post("/api/editions/plan-b/propose", {"community": COMMUNITY_CODE, "seed": 1})
    assert status == 200 and report["figures"]["out_of_range"]["after"] == 0
    assert report["options"]["seed"] == 1 and report["options"]["keep_good"] is True
    assert report["options"]["rounding"] is True
    status, report = post("/api/editions/plan-b/propose", {"community": COMMUNITY_CODE, "rounding": False})
    assert status == 200 and report["options"]["rounding"] is False
    assert post("/api/editions/plan-b/propose", {"community": COMMUNITY_CODE}, who="viewer")[0] == 403
    status, answer = post("/api/editions/main/propose", {"community": COMMUNITY_CODE})
    assert status == 409 and "not a draft" in answer["error"]
    assert post("/api/editions/nope/propose", {"all": True})[0] == 404
    # 400: the body does not match the API's description; 422: it does, but cannot be used against the data
    for body, code, message in [
        ({"community": COMMUNITY_CODE, "min": 500, "max": 300}, 422, "0 < min ≤ max"),
        ({}, 400, "exactly one of"),
        ({"community": COMMUNITY_CODE, "street": "120104001"}, 400, "exactly one of"),
        ({"community": "999"}, 422, "no community '999'"),
        ({"all": "yes"}, 400, "all must be true or false"),
        ({"all": True, "rounding": "yes"}, 400, "rounding must be true or false"),
        ({"all": True, "seed": -1}, 400, "seed must be a whole number"),
        ({"all": True, "barriers": {"type": "Point", "coordinates": [117.1, 39.1]}}, 400, "barriers are lines"),
        ({"all": True, "colour": "red"}, 400, "unknown field(s) colour"),
        ([1, 2], 400, "JSON object"),
    ]:
        status, answer = post("/api/editions/plan-b/propose", body)
        assert status == code and message in answer["error"], (body, answer)
