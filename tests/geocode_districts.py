"""Two hand-made districts that share road names, for geocoding tests on both databases.

南开区 (120104) is the tiny district of `geodata` (one street, 长虹街道, 0.02° × 0.02° at lon 117.10–117.12);
西青区 (120111) is the same size 0.1° (about 8.6 km) further west, one street 西营门街道 and one grid. Both have a
黄河道 (east–west at lat 39.105, doors 1–76 from west to east, odd numbers north, even south) and a 人民路 (at lat
39.115: short in 南开区, doors 1–20; long in 西青区, doors 1–300 and a lane entry 99弄). Only 南开区 has 卫津路 (north–
south at lon 117.115, crossing its 黄河道) and 花园路. The gazetteer file has no district column except for two
entries, so the rest is tagged from the boundaries.
"""

from __future__ import annotations

import csv
from pathlib import Path

from geodata import COMMUNITIES, GRIDS, STREET, write_geojson
from shapely.geometry import box

from gridmap import boundaries, geocode

WEST_SHIFT = 0.1
A_CODE, B_CODE = "120104", "120111"
A_GRID = GRIDS[0]["code"]  # 南开区 north-west grid
B_GRID = "120111001001001"
DISTRICTS = [
    {"code": A_CODE, "name": "南开区", "parent_code": "", "geometry": box(117.10, 39.10, 117.12, 39.12)},
    {"code": B_CODE, "name": "西青区", "parent_code": "", "geometry": box(117.00, 39.10, 117.02, 39.12)},
]
STREETS = [
    {**STREET, "parent_code": A_CODE},
    {"code": "120111001", "name": "西营门街道", "parent_code": B_CODE, "geometry": box(117.00, 39.10, 117.02, 39.12)},
]
B_COMMUNITY = {
    "code": "120111001001",
    "name": "津门社区",
    "parent_code": "120111001",
    "geometry": box(117.00, 39.10, 117.02, 39.12),
}
B_GRIDS = [
    {
        "code": B_GRID,
        "name": "津门第1网格",
        "parent_code": "120111001001",
        "kind": "综合",
        "households": 400,
        "population": 1000,
        "staff": 2,
        "geometry": box(117.00, 39.10, 117.02, 39.12),
    }
]


def door_point(road: str, number: int, *, west: float = 0.0) -> tuple[float, float]:
    """Return where a door of the test roads is (lon, lat); `west` shifts it into 西青区."""
    step = (number - 1) // 2
    side = 1 if number % 2 else -1  # odd north (or east), even south (or west)
    if road == "黄河道":
        return 117.1005 + step * 0.0005 - west, 39.105 + side * 0.00012
    if road == "人民路":
        return 117.1005 + step * 0.0001 - west, 39.115 + side * 0.00012
    if road == "卫津路":
        return 117.115 + side * 0.00012, 39.1005 + step * 0.0005
    if road == "花园路":
        return 117.1005 + step * 0.0005, 39.119 + side * 0.00012
    raise ValueError(road)


def gazetteer_rows() -> list[dict]:
    """Return the test gazetteer as CSV rows (kind, name, lon, lat, road, number, estate, building, …)."""
    rows = []

    def add(kind, name, lon, lat, **extra):
        rows.append({"kind": kind, "name": name, "lon": f"{lon:.7f}", "lat": f"{lat:.7f}", **extra})

    for west, last in ((0.0, 76), (WEST_SHIFT, 76)):
        add("road", "黄河道", 117.11 - west, 39.105, road="黄河道")
        for n in range(1, last + 1):
            add("door", f"黄河道{n}号", *door_point("黄河道", n, west=west), road="黄河道", number=str(n))
    for west, last in ((0.0, 20), (WEST_SHIFT, 300)):
        for n in range(1, last + 1):
            add("door", f"人民路{n}号", *door_point("人民路", n, west=west), road="人民路", number=str(n))
    add("door", "人民路99弄", 117.1054 - WEST_SHIFT, 39.1155, road="人民路", number="99弄")
    for n in range(1, 75):
        add("door", f"卫津路{n}号", *door_point("卫津路", n), road="卫津路", number=str(n))
    for n in range(1, 11):
        add("door", f"花园路{n}号", *door_point("花园路", n), road="花园路", number=str(n))
    add("estate", "幸福里", 117.103, 39.112, community_code=COMMUNITIES[0]["code"])
    add("building", "幸福里3栋", 117.1032, 39.1122, estate="幸福里", building="3")
    add("estate", "幸福里", 117.003, 39.112, community_code=B_COMMUNITY["code"])
    add("building", "幸福里5栋", 117.0034, 39.1121, estate="幸福里", building="5")
    add("estate", "百合小区", 117.113, 39.113, community_code=COMMUNITIES[1]["code"])
    add("building", "百合小区2栋", 117.1133, 39.1134, estate="百合小区", building="2")
    add("poi", "南开区中心医院", 117.108, 39.108)
    add("poi", "西青区中心医院", 117.008, 39.108)
    for lon, lat in ((117.1055, 39.1052), (117.117, 39.117), (117.102, 39.118)):
        add("poi", "蜜雪冰城", lon, lat)
    add("poi", "蜜雪冰城", 117.01, 39.11)
    add("poi", "诊所", 117.109, 39.109)
    add("community", "百合社区", 117.105, 39.11, community_code=COMMUNITIES[0]["code"])
    # Two entries that say their district: by another of its names, and outside every boundary.
    add("poi", "杨柳青画社", 117.0105, 39.1052, district="西青")
    add("poi", "津门湖公园", 116.99, 39.09, district="西青区", street="津门湖街道")
    return rows


def write_gazetteer(path: Path) -> Path:
    """Write the test gazetteer as a UTF-8 CSV file."""
    columns = list(geocode.GAZETTEER_COLUMNS)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(gazetteer_rows())
    return path


def load_two_districts(store, directory: Path) -> None:
    """Load both districts (districts, streets, communities, grids) and the gazetteer through the real imports."""
    files = {
        "district": write_geojson(directory / "districts.geojson", DISTRICTS),
        "street": write_geojson(directory / "streets.geojson", STREETS),
        "community": write_geojson(directory / "communities.geojson", [*COMMUNITIES, B_COMMUNITY]),
        "grid": write_geojson(directory / "grids.geojson", [*GRIDS, *B_GRIDS]),
    }
    for level in ("district", "street", "community", "grid"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level))
    geocode.load_gazetteer(store, write_gazetteer(directory / "gazetteer.csv"))


# The scenarios every front door must answer alike: address → (found, level, district, expected point or None,
# "high" (confidence ≥ 0.85), "low" (found but flagged for review) or None for not found).
HIGH, LOW = "high", "low"
EAST_150M = 150 / (111_320 * 0.7763)  # degrees of longitude at lat 39.1
SCENARIOS = [
    ("南开区黄河道21号", True, "door", "南开区", door_point("黄河道", 21), HIGH),
    ("西青区黄河道21号", True, "door", "西青区", door_point("黄河道", 21, west=WEST_SHIFT), HIGH),
    ("长虹街道黄河道21号", True, "door", "南开区", door_point("黄河道", 21), HIGH),  # a street names its district
    ("黄河道21号", False, None, None, None, None),  # two districts, nothing to choose
    ("西青区人民路253号", True, "door", "西青区", door_point("人民路", 253, west=WEST_SHIFT), HIGH),
    ("人民路253号", True, "door", "西青区", door_point("人民路", 253, west=WEST_SHIFT), LOW),  # fits one, checked
    ("西青区人民路99弄7号楼210室", True, "door", "西青区", (117.1054 - WEST_SHIFT, 39.1155), HIGH),
    ("西青区人民路98弄3支弄", True, "door", "西青区", door_point("人民路", 98, west=WEST_SHIFT), HIGH),
    ("南开区黄河道与卫津路交叉口东150米", True, "junction", "南开区", (117.115 + EAST_150M, 39.105), HIGH),
    ("南开卫津路黄河道路口", True, "junction", "南开区", (117.115, 39.105), HIGH),
    ("南开区黄河道22-26号", True, "door", "南开区", door_point("黄河道", 24), HIGH),
    ("南开区黄河道22至26号", True, "door", "南开区", door_point("黄河道", 24), HIGH),
    ("天津市南开区黄河道21号之2", True, "door", "南开区", door_point("黄河道", 21), HIGH),
    ("南开区卫津路31职业学院", True, "door", "南开区", door_point("卫津路", 31), HIGH),  # a bare number
    ("南开区黄河道25号楼3单元201室", True, "door", "南开区", door_point("黄河道", 25), HIGH),
    ("南开区黄河道21号(蜜雪冰城旁)", True, "poi", "南开区", (117.1055, 39.1052), HIGH),  # refined nearby
    ("南开区黄河道61号蜜雪冰城", True, "door", "南开区", door_point("黄河道", 61), HIGH),  # no branch near: door
    ("蜜雪冰城", False, None, None, None, None),  # a chain alone
    ("王氏诊所", False, None, None, None, None),  # a generic word inside a name
    ("南开区中心医院", True, "poi", "南开区", (117.108, 39.108), HIGH),
    ("西青区中心医院", True, "poi", "西青区", (117.008, 39.108), HIGH),
    ("西青中心医院", True, "poi", "西青区", (117.008, 39.108), HIGH),
    ("中心医院", False, None, None, None, None),
    ("张家花园路8号", False, None, None, None, None),  # 花园路 is not 张家花园路
    ("北京市朝阳区黄河道21号", False, None, None, None, None),  # outside the jurisdiction
    ("天津市南开区幸福里3栋2单元501", True, "building", "南开区", (117.1032, 39.1122), HIGH),
    ("幸福里", False, None, None, None, None),  # two estates of the name
    ("幸福里5栋", True, "building", "西青区", (117.0034, 39.1121), LOW),  # only one lists it: checked
    ("天津市南开区百合小区2栋", True, "building", "南开区", (117.1133, 39.1134), HIGH),
    ("百合小区2栋", True, "building", "南开区", (117.1133, 39.1134), LOW),  # a name alone, no district named
    ("杨柳青画社", True, "poi", "西青区", (117.0105, 39.1052), LOW),
    ("西青区杨柳青画社", True, "poi", "西青区", (117.0105, 39.1052), HIGH),
]
