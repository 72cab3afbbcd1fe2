"""The jurisdiction setting, the forms residents write (弄, ranges, junctions, offsets), tagging from boundaries,
properties that hold for every door number, and the calibration targets on held-out queries (in memory)."""

from __future__ import annotations

import pytest
from geocode_districts import DISTRICTS, SCENARIOS, STREETS, WEST_SHIFT, door_point, gazetteer_rows
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap import geocode
from gridmap.errors import ConfigError
from gridmap.geocode import Area, Gazetteer, GazetteerEntry, Jurisdiction, Place, calibration, parse_address
from gridmap.geocode.normalise import clean
from gridmap.geocode.parse import DoorNumber, apply_offset, metres_between, read_number, read_offset


# ---- the jurisdiction -----------------------------------------------------------------------------------------
def test_the_setting_is_read_with_every_name():
    j = Jurisdiction.parse("province=广东省|广东; city=惠州市|惠州；districts=惠城区|惠城, 惠阳区，博罗县")
    assert j.province == Place("广东省", ("广东",)) and j.city == Place("惠州市", ("惠州",))
    assert [d.name for d in j.districts] == ["惠城区", "惠阳区", "博罗县"]
    assert j.district_name("惠阳") == "惠阳区" and j.district_name("博罗") == "博罗县"  # 区/县 dropped: a name too
    assert j.describe() == "province=广东省|广东; city=惠州市|惠州; districts=惠城区|惠城, 惠阳区, 博罗县"
    assert Jurisdiction.parse(j.describe()) == j
    assert Jurisdiction.parse("") == Jurisdiction() == Jurisdiction.parse("  ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("town=惠州", "'town=惠州' is not one of province=…, city=…, districts=…"),
        ("city=惠州市; city=广州市", "city is given twice"),
        ("city=|", "city has no name"),
        ("districts=" + "区" * 51, "longer than 50 characters"),
        ("惠州市", "is not one of"),
    ],
)
def test_a_bad_setting_says_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        Jurisdiction.parse(text)


def test_the_data_adds_districts_streets_and_the_province_from_codes():
    j = Jurisdiction().with_data(
        districts=[("120104", "南开区"), ("120111", "西青区")], streets=[("长虹街道", "南开区"), ("中北镇", "西青")]
    )
    assert (j.province.name, j.city.name) == ("天津市", "天津市")  # 12: a municipality, city and province at once
    assert [d.name for d in j.districts] == ["南开区", "西青区"]
    assert j.street("中北镇").parent == "西青区"
    declared = Jurisdiction.parse("province=广东省; districts=南开区|NK").with_data(districts=[("440104", "南开区")])
    assert declared.province.name == "广东省" and declared.city is None  # what is declared wins
    assert [d.name for d in declared.districts] == ["南开区"] and declared.district_name("NK") == "南开区"


@pytest.mark.parametrize(
    ("address", "rest", "district", "street", "foreign"),
    [
        ("天津市南开区长虹街道朝园里", "朝园里", "南开区", "长虹街道", None),
        ("天津南开朝园里", "朝园里", "南开区", None, None),
        ("长虹街道朝园里", "朝园里", "南开区", "长虹街道", None),  # the street says its district
        ("南开大学东门", "南开大学东门", None, None, None),  # 南开 starts a longer name
        ("天津大道12号", "天津大道12号", None, None, None),
        ("北京市朝阳区朝园里", "北京市朝阳区朝园里", None, None, "北京市朝阳区"),
        ("天津市河西区朝园里", "河西区朝园里", None, None, "河西区"),  # our city, another district
        ("河北省朝园里", "河北省朝园里", None, None, "河北省"),
        ("华苑小区3栋", "华苑小区3栋", None, None, None),  # one "XX区" alone is a name
        ("南开区", "南开区", None, None, None),  # never everything
    ],
)
def test_reading_the_start_of_an_address(address, rest, district, street, foreign):
    j = Jurisdiction.parse("province=天津市|天津; city=天津市|天津; districts=南开区")
    j = j.with_data(streets=[("长虹街道", "南开区")])
    names = {"南开大学", "天津大道"}

    def longer(text, start, end):
        return any(text.startswith(n, start) and len(n) > end - start for n in names)

    prefix = j.read(clean(address), longer_name=longer)
    assert (prefix.rest, prefix.district, prefix.street, prefix.foreign) == (rest, district, street, foreign)


def test_without_a_jurisdiction_generic_chains_are_stripped_and_nothing_is_foreign():
    prefix = Jurisdiction().read(clean("北京市朝阳区朝园里"))
    assert (prefix.rest, prefix.foreign) == ("朝园里", None)


# ---- what follows a road ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("12号", DoorNumber(12, end=3)),
        ("12-3号", DoorNumber(12, 3, end=5)),
        ("12-16号", DoorNumber(12, 16, end=6)),
        ("1999弄7栋210室", DoorNumber(1999, lane=True, end=7)),
        ("1999弄3支弄7号", DoorNumber(1999, lane=True, end=10)),
        ("6001职业学院", DoorNumber(6001, end=4)),
        ("12号院3栋", DoorNumber(12, end=4)),
        ("12", DoorNumber(12, end=2)),
        ("12单元", None),
        ("东门", None),
    ],
)
def test_numbers_after_a_road(text, number):
    assert read_number(clean(text), 0) == number


def test_ranges_and_sub_numbers_are_told_apart():
    assert DoorNumber(12, 16).is_range and not DoorNumber(12, 3).is_range
    assert (DoorNumber(12, 16).written, DoorNumber(12, 3).written, DoorNumber(99, lane=True).written) == (
        "12-16号",
        "12-3号",
        "99弄",
    )
    assert clean("黄河道12号至16号") == clean("黄河道12至16号") == clean("黄河道12号-16号") == "黄河道12-16号"
    assert clean("黄河道12号之3") == "黄河道12-3号"
    assert clean("路口东一百五十米") == clean("路口东150m") == "路口东150米"


def test_offsets_move_the_point_by_metres():
    assert read_offset("交叉口往北约100米", 0) == ("北", 100.0)
    assert read_offset("交叉口西南侧50米", 0) == ("西南", 50.0)
    lon, lat = apply_offset(117.1, 39.1, ("东", 150.0))
    assert metres_between(117.1, 39.1, lon, lat) == pytest.approx(150, abs=0.5) and lat == 39.1
    lon, lat = apply_offset(117.1, 39.1, ("西南", 100.0))
    assert metres_between(117.1, 39.1, lon, lat) == pytest.approx(100, abs=0.5) and lon < 117.1 and lat < 39.1


def test_parse_address_reads_lanes_and_the_district():
    j = Jurisdiction.parse("districts=西青区")
    parsed = parse_address("西青区人民路1999弄7号楼210室", jurisdiction=j)
    assert (parsed.district, parsed.road, parsed.lane, parsed.number) == ("西青区", "人民路", "1999", None)
    assert parse_address("张家花园路80号").road == "张家花园路"


# ---- tagging ----------------------------------------------------------------------------------------------------
def areas(rows) -> list[Area]:
    return [Area(r["code"], r["name"], r["parent_code"] or None, r["geometry"]) for r in rows]


def test_tagging_uses_the_one_point_in_polygon_rule():
    on_edge = GazetteerEntry("door", "界碑1号", 117.10, 39.11, road="界碑", number=1)  # on 南开区's west edge
    inside = GazetteerEntry("door", "黄河道1号", *door_point("黄河道", 1), road="黄河道", number=1)
    outside = GazetteerEntry("poi", "远处", 116.5, 39.5)
    says = GazetteerEntry("poi", "说了", *door_point("黄河道", 1), district="西青区")
    tagged = geocode.tag_entries([on_edge, inside, outside, says], districts=areas(DISTRICTS), streets=areas(STREETS))
    assert (tagged[0].district, tagged[0].street) == ("南开区", "长虹街道")  # boundary included
    assert (tagged[1].district, tagged[1].street) == ("南开区", "长虹街道")
    assert (tagged[2].district, tagged[2].street) == (None, None)
    assert (tagged[3].district, tagged[3].street) == ("西青区", None)  # its own district; a street of another is not
    shared = [{**DISTRICTS[0], "code": "120100", "name": "甲区"}, DISTRICTS[0]]  # two districts covering the point
    assert geocode.tag_entries([inside], districts=areas(shared))[0].district == "甲区"  # the lowest code wins
    assert geocode.tag_entries([inside]) == [inside]


# ---- properties over every door number ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two() -> Gazetteer:
    entries = geocode.read_gazetteer_rows(gazetteer_rows())
    entries = geocode.tag_entries(entries, districts=areas(DISTRICTS), streets=areas(STREETS))
    names = {"120104": "南开区", "120111": "西青区"}
    jurisdiction = Jurisdiction().with_data(
        districts=[(d["code"], d["name"]) for d in DISTRICTS],
        streets=[(s["name"], names[s["parent_code"]]) for s in STREETS],
    )
    return Gazetteer(entries, jurisdiction=jurisdiction)


def test_the_scenarios_in_memory(two):
    for address, found, level, district, point, band in SCENARIOS:
        result = two.geocode(address)
        assert result.found is found, (address, result)
        if found:
            assert (result.level, result.district) == (level, district), (address, result)
            assert metres_between(*point, result.lon, result.lat) < 20, (address, result)
            assert (result.confidence >= 0.85) is (band == "high"), (address, result)


@settings(max_examples=150, deadline=None)
@given(
    number=st.integers(min_value=1, max_value=400),
    district=st.sampled_from(["南开区", "西青区", "南开", "西青", "天津市西青区"]),
    tail=st.sampled_from(["号", "弄", "号3单元201室", "号楼", "", "号(蜜雪冰城旁)"]),
)
def test_a_district_named_is_never_left(two, number, district, tail):
    result = two.geocode(f"{district}黄河道{number}{tail}")
    assert result.found
    west = "西青" in district
    assert result.district == ("西青区" if west else "南开区")
    assert (117.0 <= result.lon <= 117.03) if west else (117.1 <= result.lon <= 117.13)  # in it, or just beyond
    if result.confidence >= 0.85:  # confident answers are where that number is
        lon, lat = door_point("黄河道", number, west=WEST_SHIFT if west else 0.0)
        assert metres_between(lon, lat, result.lon, result.lat) <= 300


@settings(max_examples=100, deadline=None)
@given(a=st.integers(min_value=1, max_value=70), span=st.integers(min_value=1, max_value=3))
def test_a_range_lands_between_its_ends(two, a, span):
    b = a + 2 * span
    result = two.geocode(f"南开区黄河道{a}-{b}号")
    first, last = door_point("黄河道", a), door_point("黄河道", min(b, 76 - (b % 2 == 1)))
    assert min(first[0], last[0]) - 1e-9 <= result.lon <= max(first[0], last[0]) + 0.002


# ---- calibration ---------------------------------------------------------------------------------------------------
def test_confident_answers_are_within_300_m_on_held_out_queries():
    heldout = calibration.build_heldout(queries=2500, seed=29)
    gazetteer = Gazetteer(heldout.entries, jurisdiction=heldout.jurisdiction)
    results = [gazetteer.geocode(q.text) for q in heldout.queries]
    errors = calibration.errors_m(heldout.queries, results)
    figures = calibration.summary(results, errors)
    assert figures["high"] > 1000  # most queries are answered confidently, so the check means something
    assert figures["within_300m"] >= calibration.TARGET_SHARE_300M
    assert figures["beyond_1km"] == 0, calibration.worst(heldout.queries, results, errors, limit=3)
    forms = {row["form"]: row for row in calibration.form_table(heldout.queries, results, errors)}
    for trap in ("trap_longer_road", "trap_generic", "trap_chain_alone", "trap_foreign"):
        assert forms[trap]["high"] == 0, trap  # traps are never answered confidently
    assert forms["junction"]["high"] > 0.9 and forms["lane"]["high"] > 0.8 and forms["range"]["high"] > 0.8
    bands = calibration.calibration_table(results, errors)
    assert bands[-1]["band"] == "not found" and sum(b["answers"] for b in bands) == len(results)
