"""Address normalisation, parsing and gazetteer matching, with addresses in the style of the source articles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap import crs
from gridmap.errors import InvalidInput
from gridmap.geocode import (
    CONFIDENCE,
    Gazetteer,
    GazetteerEntry,
    Geocoder,
    Jurisdiction,
    ParsedAddress,
    chinese_numeral_to_int,
    normalize_address,
    normalize_building,
    normalize_number,
    parse_address,
    read_gazetteer_rows,
)

# A small hand-made gazetteer of a Nankai-like district; every point is distinct so a match is unambiguous.
BAIHE = GazetteerEntry("estate", "百合豪庭小区", 117.1500, 39.1200, community_code="C01", aliases=("百合豪庭花园",))
BAIHE_3 = GazetteerEntry("building", "百合豪庭3栋", 117.1503, 39.1204, estate="百合豪庭小区", building="3")
BAIHE_5 = GazetteerEntry("building", "百合豪庭5号楼", 117.1508, 39.1206, estate="百合豪庭花园", building="5号楼")
CUILAN = GazetteerEntry("estate", "翠澜新村", 117.1600, 39.1300, community_code="C02")
CHAOYUAN = GazetteerEntry("estate", "朝园里", 117.1700, 39.1100, community_code="C03")
CHAOYUAN_3 = GazetteerEntry("building", "朝园里3号楼", 117.1702, 39.1101, estate="朝园里", building="3")
SHENGXIN = GazetteerEntry("estate", "盛欣园小区", 117.1800, 39.1400, community_code="C04")
CHANGHU = GazetteerEntry("road", "长湖街", 117.1550, 39.1250)
DOOR_10 = GazetteerEntry("door", "长湖街10号", 117.1540, 39.1250, road="长湖街", number=10)
DOOR_12 = GazetteerEntry("door", "长湖街12号", 117.1544, 39.1250, road="长湖街", number=12)
DOOR_20 = GazetteerEntry("door", "长湖街20号", 117.1560, 39.1250, road="长湖街", number=20)
DOOR_13 = GazetteerEntry("door", "长湖街13号", 117.1545, 39.1252, road="长湖街", number=13)
GUIHUA_5 = GazetteerEntry("door", "桂花路5号", 117.1400, 39.1000, road="桂花路", number=5)
JINYUAN = GazetteerEntry("community", "金源社区", 117.1450, 39.1150, community_code="C01")
CHAOYUAN_COMMUNITY = GazetteerEntry("community", "朝园里社区", 117.1710, 39.1110, community_code="C03")
ZIGUANG = GazetteerEntry("community", "紫光苑社区", 117.1790, 39.1390, community_code="C04")
SERVICE_CENTRE = GazetteerEntry("poi", "金源社区党群服务中心", 117.1452, 39.1151)
XINGFU_C01 = GazetteerEntry("estate", "幸福里", 117.1900, 39.1000, community_code="C01")
XINGFU_C04 = GazetteerEntry("estate", "幸福里", 117.2000, 39.0900, community_code="C04")
ENTRIES = [
    BAIHE,
    BAIHE_3,
    BAIHE_5,
    CUILAN,
    CHAOYUAN,
    CHAOYUAN_3,
    SHENGXIN,
    CHANGHU,
    DOOR_10,
    DOOR_12,
    DOOR_20,
    DOOR_13,
    GUIHUA_5,
    JINYUAN,
    CHAOYUAN_COMMUNITY,
    ZIGUANG,
    SERVICE_CENTRE,
    XINGFU_C01,
    XINGFU_C04,
]


TIANJIN = Jurisdiction.parse("city=天津市|天津; districts=南开区")
TIANJIN_PREFIXES = ("天津市", "天津", "南开区")


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer(ENTRIES, jurisdiction=TIANJIN)


# ---- normalisation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("百合豪庭小区３栋", "百合豪庭小区3栋"),  # full-width digit
        ("百合豪庭小区三栋", "百合豪庭小区3栋"),
        ("百合豪庭3号楼", "百合豪庭3栋"),
        ("百合豪庭3幢", "百合豪庭3栋"),
        ("百合豪庭Ｂ座", "百合豪庭B栋"),
        ("百合豪庭 3#楼", "百合豪庭3栋"),
        ("长湖街十二号", "长湖街12号"),
        ("朝园里二十三号楼一百零五室", "朝园里23栋105室"),
        ("一品花园十二号楼二单元五零一室", "一品花园12栋2单元501室"),  # 一 of the name kept
        ("三里屯", "三里屯"),  # 里 is not a unit word: place names keep their numerals
        ("（百合豪庭）、3栋。", "百合豪庭3栋"),
        ("朝园里3—2—501", "朝园里3-2-501"),
        ("天津市南开区长虹街道朝园里", "长虹街道朝园里"),
        ("天津南开区朝园里", "朝园里"),
        ("天津大道12号", "天津大道12号"),  # the prefix is part of the road's name
        ("广东省惠州市惠城区小金口街道金源社区", "小金口街道金源社区"),
        ("深圳市龙华区观澜街道新澜社区翠澜新村", "观澜街道新澜社区翠澜新村"),
        ("河北省香河县金源小区", "金源小区"),
        ("河北省金源小区", "金源小区"),  # a province alone is stripped
        ("河北省廊坊市", "河北省廊坊市"),  # but never everything
        ("华润城市花园", "华润城市花园"),  # one "XX市" alone is not stripped: it may be a name
        ("华苑小区3栋", "华苑小区3栋"),
    ],
)
def test_normalize_address(text, expected):
    assert normalize_address(text, strip_prefixes=TIANJIN_PREFIXES) == expected


def test_prefixes_are_the_jurisdictions_choice():
    assert normalize_address("惠城区长湖街12号", strip_prefixes=("惠州市", "惠城区")) == "长湖街12号"
    assert normalize_address("天津南开区朝园里", strip_prefixes=()) == "天津南开区朝园里"
    assert normalize_address("天津市南开区朝园里", strip_prefixes=()) == "朝园里"  # a generic city + district
    assert normalize_address("天津市南开区朝园里", strip_prefixes=(), strip_admin_names=False) == "天津市南开区朝园里"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("三", 3),
        ("十", 10),
        ("十二", 12),
        ("二十三", 23),
        ("一百零五", 105),
        ("两千零一十", 2010),
        ("五零一", 501),
        ("〇三", 3),
    ],
)
def test_chinese_numerals(text, value):
    assert chinese_numeral_to_int(text) == value


def test_building_and_door_numbers_normalise_alike():
    assert {normalize_building(b) for b in ("3", 3, "3号楼", "三栋", "3幢", "03", "３")} == {"3"}
    assert normalize_building("a座") == "A"
    assert {normalize_number(n) for n in (12, "12号", "十二号", "012")} == {"12"}
    assert normalize_number("12-3号") == "12-3"


address_text = st.text(alphabet="百合豪庭小区一二三十百栋幢号楼单元室 3５-—（）天津市南开区长湖街", max_size=25)


@settings(max_examples=300, deadline=None)
@given(text=address_text)
def test_normalisation_is_idempotent_and_ignores_spaces_and_width(text):
    once = normalize_address(text, strip_prefixes=TIANJIN_PREFIXES)
    assert normalize_address(once, strip_prefixes=TIANJIN_PREFIXES) == once
    spaced = " ".join(text).replace("3", "３")
    assert normalize_address(spaced, strip_prefixes=TIANJIN_PREFIXES) == once


# ---- parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("百合豪庭小区3栋", dict(estate="百合豪庭小区", building="3")),
        ("长湖街12号", dict(road="长湖街", number="12")),
        ("长湖街12-3号", dict(road="长湖街", number="12-3")),
        ("翠澜新村", dict(estate="翠澜新村")),
        ("翠澜新村东门", dict(estate="翠澜新村", rest="东门")),
        ("百合豪庭小区3栋2单元501室", dict(estate="百合豪庭小区", building="3", unit="2", room="501")),
        (
            "天津市南开区长虹街道朝园里3-2-501",
            dict(street="长虹街道", estate="朝园里", building="3", unit="2", room="501"),
        ),
        ("朝园里5-301", dict(estate="朝园里", building="5", room="301")),
        ("朝园里5-2", dict(estate="朝园里", building="5", unit="2")),
        ("朝园里3号楼2门501", dict(estate="朝园里", building="3", unit="2", room="501")),  # Tianjin: 门 = unit
        ("百合豪庭3栋12层", dict(estate="百合豪庭", building="3", floor="12")),
        ("百合豪庭12号", dict(estate="百合豪庭", building="12")),
        ("深圳市龙华区观澜街道新澜社区翠澜新村", dict(street="观澜街道", community="新澜社区", estate="翠澜新村")),
        (
            "广东省惠州市惠城区小金口街道金源社区长湖街12号",
            dict(street="小金口街道", community="金源社区", road="长湖街", number="12"),
        ),
        ("桂花路", dict(road="桂花路")),
        ("三里屯", dict(rest="三里屯")),
    ],
)
def test_parse_address(text, parts):
    parsed = parse_address(text)
    assert parsed == ParsedAddress(normalized=normalize_address(text), **parts)


# ---- geocoding -------------------------------------------------------------------------------------
def test_gazetteer_is_a_geocoder(gazetteer):
    assert isinstance(gazetteer, Geocoder)
    assert len(gazetteer) == len(ENTRIES)


@pytest.mark.parametrize(
    "address",
    [
        "百合豪庭小区3栋",
        "百合豪庭小区３栋",
        "百合豪庭三栋",
        "百合豪庭3号楼",
        "百合豪庭3幢",
        "天津市南开区百合豪庭3栋2单元501室",
        "百合豪庭花园3栋",
        "百合豪庭社区3栋",
    ],
)
def test_building_is_found_however_it_is_written(gazetteer, address):
    result = gazetteer.geocode(address)
    assert (result.found, result.level, result.entry) == (True, "building", BAIHE_3)
    assert (result.lon, result.lat) == (117.1503, 39.1204)
    assert result.confidence >= 0.95


def test_building_listed_under_an_estate_alias(gazetteer):
    result = gazetteer.geocode("百合豪庭小区五栋")
    assert (result.level, result.entry, result.confidence) == ("building", BAIHE_5, 0.97)


def test_tianjin_style_building_unit_room(gazetteer):
    result = gazetteer.geocode("天津市南开区长虹街道朝园里3-2-501")
    assert (result.level, result.entry, result.normalized) == (
        "building",
        CHAOYUAN_3,
        "天津市南开区长虹街道朝园里3-2-501",
    )


def test_unknown_building_falls_back_to_its_estate(gazetteer):
    result = gazetteer.geocode("百合豪庭小区9栋")
    assert (result.level, result.entry, result.confidence) == ("estate", BAIHE, 0.8)
    assert (result.lon, result.lat) == (117.15, 39.12)


@pytest.mark.parametrize(
    ("address", "entry"),
    [
        ("翠澜新村", CUILAN),
        ("翠澜新村小区", CUILAN),
        ("盛欣园", SHENGXIN),
        ("兴南街紫光苑社区盛欣园小区", SHENGXIN),
    ],
)
def test_estate(gazetteer, address, entry):
    result = gazetteer.geocode(address)
    assert (result.level, result.entry, result.confidence) == ("estate", entry, 0.8)


def test_exact_door_number(gazetteer):
    result = gazetteer.geocode("长湖街12号")
    assert (result.level, result.entry, result.confidence) == ("door", DOOR_12, CONFIDENCE["door"])
    assert (result.lon, result.lat) == (117.1544, 39.1250)


def test_missing_door_number_is_interpolated_between_same_side_neighbours(gazetteer):
    result = gazetteer.geocode("长湖街16号")  # 12 and 20 known on the even side; 13 is across the road
    assert (result.level, result.entry, result.candidates) == ("door", DOOR_12, [DOOR_12, DOOR_20])
    assert result.lon == pytest.approx(117.1552) and result.lat == pytest.approx(39.1250)
    assert 0.5 < result.confidence < 0.9


def test_door_number_with_one_neighbour_takes_the_nearest(gazetteer):
    result = gazetteer.geocode("长湖街11号")  # odd side: only 13
    assert (result.level, result.entry, result.lon, result.lat) == ("door", DOOR_13, 117.1545, 39.1252)
    assert 0.5 < result.confidence < gazetteer.geocode("长湖街16号").confidence
    far = gazetteer.geocode("长湖街40号")  # 20 numbers beyond 20号 at ~17 m a number: on the line, further east
    assert far.entry == DOOR_20 and 0.5 < far.confidence < 0.85
    assert far.lon == pytest.approx(DOOR_20.lon + 0.0040, abs=0.0003) and far.lat == pytest.approx(DOOR_20.lat)


def test_sub_number_falls_back_to_its_main_number(gazetteer):
    result = gazetteer.geocode("长湖街12-3号")
    assert (result.level, result.entry, result.confidence) == ("door", DOOR_12, CONFIDENCE["door_sub_number_missing"])


def test_road_without_number(gazetteer):
    result = gazetteer.geocode("长湖街")
    assert (result.level, result.entry, result.confidence) == ("road", CHANGHU, 0.5)
    only_doors = gazetteer.geocode("桂花路")  # no road entry: its only door stands in, with less confidence
    assert (only_doors.level, only_doors.entry, only_doors.confidence) == ("road", GUIHUA_5, 0.4)


def test_street_office_is_not_read_as_a_road(gazetteer):
    assert not gazetteer.geocode("长湖街道").found


def test_community(gazetteer):
    result = gazetteer.geocode("金源社区")
    assert (result.level, result.entry, result.confidence) == ("community", JINYUAN, 0.3)
    core = gazetteer.geocode("金源")
    assert (core.level, core.entry) == ("community", JINYUAN) and core.confidence < 0.3
    # "朝园里社区" is the community; "朝园里" alone is the estate of the same name.
    assert gazetteer.geocode("朝园里社区").entry == CHAOYUAN_COMMUNITY
    assert gazetteer.geocode("朝园里").entry == CHAOYUAN


def test_poi(gazetteer):
    result = gazetteer.geocode("惠城区金源社区党群服务中心")
    assert (result.level, result.entry, result.confidence) == ("poi", SERVICE_CENTRE, CONFIDENCE["poi"])


def test_same_estate_name_in_two_communities_is_resolved_by_the_community(gazetteer):
    named = gazetteer.geocode("紫光苑社区幸福里")
    assert (named.entry, named.confidence, named.candidates) == (XINGFU_C04, 0.8, [XINGFU_C01])
    unnamed = gazetteer.geocode("幸福里")  # two places, nothing to choose: not a guess
    assert (unnamed.found, unnamed.lon, set(unnamed.candidates)) == (False, None, {XINGFU_C01, XINGFU_C04})
    assert unnamed.suggestions == ["幸福里"] and "several places" in unnamed.note


def test_misspelt_estate_matches_fuzzily_with_lower_confidence(gazetteer):
    result = gazetteer.geocode("百合豪亭3栋")  # 亭 for 庭
    assert (result.level, result.entry) == ("building", BAIHE_3)
    assert 0.6 < result.confidence < 0.95
    estate = gazetteer.geocode("翠兰新村")
    assert (estate.level, estate.entry) == ("estate", CUILAN) and estate.confidence < 0.8


def test_not_found_is_a_result_with_suggestions(gazetteer):
    result = gazetteer.geocode("香鸢美颂小区5栋")
    assert (result.found, result.lon, result.lat, result.level, result.confidence, result.entry) == (
        False,
        None,
        None,
        None,
        0.0,
        None,
    )
    assert result.normalized == "香鸢美颂小区5栋"
    assert gazetteer.geocode("百合美景家园").candidates == [BAIHE]  # too different to match, close enough to offer


@pytest.mark.parametrize("address", ["", "   ", "\u3000", "，。、"])
def test_empty_address_is_invalid(gazetteer, address):
    with pytest.raises(InvalidInput, match="address"):
        gazetteer.geocode(address)


@settings(max_examples=50, deadline=None)
@given(
    names=st.lists(
        st.text(alphabet="金源翠澜盛欣紫光华苑锦绣春晖碧水蓝天明月清风", min_size=3, max_size=5),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    building=st.integers(min_value=1, max_value=40),
)
def test_every_building_is_found_by_its_own_address(names, building):
    entries = [
        GazetteerEntry("building", f"{n}{building}号楼", 117.0 + i / 100, 39.0, estate=n, building=str(building))
        for i, n in enumerate(names)
    ]
    gazetteer = Gazetteer(entries)
    for entry in entries:
        result = gazetteer.geocode(f"天津市{entry.estate}小区{building}栋")
        assert (result.level, result.entry) == ("building", entry)


# ---- reading gazetteer rows ------------------------------------------------------------------------
def row(**values):
    base = {
        "kind": "door",
        "name": "长湖街12号",
        "lon": "117.1544",
        "lat": "39.125",
        "road": "长湖街",
        "number": "12",
        "estate": "",
        "building": "",
        "community_code": "",
        "aliases": "",
    }
    return base | values


def test_rows_become_entries():
    entries = read_gazetteer_rows(
        [
            row(),
            row(
                kind="Estate",
                name="百合豪庭小区",
                road="",
                number="",
                community_code="C01",
                aliases="百合豪庭花园| 百合 ",
            ),
            row(kind="building", name="百合豪庭3栋", road="", number="", estate="百合豪庭小区", building="3"),
            row(number="12-3号"),
        ]
    )
    assert entries[0] == GazetteerEntry("door", "长湖街12号", 117.1544, 39.125, road="长湖街", number=12)
    assert entries[1] == GazetteerEntry(
        "estate", "百合豪庭小区", 117.1544, 39.125, community_code="C01", aliases=("百合豪庭花园", "百合")
    )
    assert (entries[2].estate, entries[2].building) == ("百合豪庭小区", "3")
    assert entries[3].number == "12-3"


def test_csv_header_quirks_and_gcj02_coordinates():
    gcj = crs.wgs84_to_gcj02(lon=117.1544, lat=39.125)
    [entry] = read_gazetteer_rows(
        [{"\ufeffKind": "road", " NAME ": "长湖街", "Lon": str(gcj[0]), "LAT": str(gcj[1])}], crs="GCJ-02"
    )
    assert (entry.kind, entry.name) == ("road", "长湖街")
    assert crs.geodesic_distance_m(lon1=entry.lon, lat1=entry.lat, lon2=117.1544, lat2=39.125) < 0.01


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (row(kind="shop"), "row 3: kind 'shop' must be one of building, estate, door, road, poi, community"),
        (row(kind=""), "row 3: kind missing must be one of"),
        (row(name=" "), "row 3: name is missing"),
        (row(lon="abc"), "row 3 (长湖街12号): lon 'abc' is not a number"),
        (row(lat=""), "row 3 (长湖街12号): lat is missing"),
        (
            row(lon="39.125", lat="117.1544"),
            "row 3 (长湖街12号): lon=39.125, lat=117.154 looks like latitude, longitude",
        ),
        (row(lon="505000", lat="4331000"), "row 3 (长湖街12号): lon=505000, lat=4.331e+06 looks like projected metres"),
        (row(number=""), "row 3 (长湖街12号): a door needs its road and number columns"),
        (row(kind="building", name="百合豪庭3栋"), "row 3 (百合豪庭3栋): a building needs its estate and building"),
    ],
)
def test_bad_row_is_refused_with_its_number(bad, message):
    with pytest.raises(InvalidInput) as caught:
        read_gazetteer_rows([row(), bad], first_row=2)
    assert caught.value.message.startswith(message)


def test_rows_round_trip_into_a_working_gazetteer():
    entries = read_gazetteer_rows(
        [
            row(kind="estate", name="翠澜新村", lon="117.16", lat="39.13", road="", number=""),
            row(kind="door", name="长湖街12号"),
        ]
    )
    gazetteer = Gazetteer(entries)
    assert gazetteer.geocode("翠澜新村").entry == entries[0]
    assert gazetteer.geocode("长湖街十二号").entry == entries[1]


def test_gazetteer_refuses_an_unknown_kind():
    with pytest.raises(InvalidInput, match="kind 'shop' must be one of"):
        Gazetteer([GazetteerEntry("shop", "小卖部", 117.1, 39.1)])


def test_entries_may_say_their_estate_building_road_and_number_in_the_name_only():
    building = GazetteerEntry("building", "盛欣园小区十二号楼", 117.181, 39.141)
    door = GazetteerEntry("door", "桂花路7号", 117.141, 39.1)
    hospital = GazetteerEntry("poi", "南开区人民医院", 117.15, 39.11)
    gazetteer = Gazetteer([SHENGXIN, building, door, hospital])
    assert (gazetteer.geocode("盛欣园12栋").level, gazetteer.geocode("盛欣园12栋").entry) == ("building", building)
    assert gazetteer.geocode("桂花路七号").entry == door
    assert gazetteer.geocode("天津市南开区人民医院").entry == hospital  # prefixes stripped on both sides
    with pytest.raises(InvalidInput, match="needs its road and door number"):
        Gazetteer([GazetteerEntry("door", "桂花路口", 117.14, 39.1)])
