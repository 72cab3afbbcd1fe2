"""The structure of an address: road + number (号, 弄, 支弄, ranges, bare numbers), junctions, offsets, buildings.

The matcher finds known names in the text and reads these patterns right after them; `parse_address` reads the
same patterns without a gazetteer (for the fuzzy estate guess, online geocoders and callers that want the parts).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .jurisdiction import Jurisdiction
from .normalise import require_text

# What may follow a road: a lane "1999弄" (with "3支弄" and "7号"/"7栋" in it), or a door number "12号", "12-3号"
# (sub-number), "12-16号" (range), "12号院", "12栋" (号楼 after normalisation), or a bare number ("6001" followed
# by a name or nothing).
AFTER_ROAD = re.compile(
    r"(?P<lane>\d+)弄(?:(?P<sub_lane>\d+)支弄)?(?:(?P<lane_house>\d+)(?:号|栋))?"
    r"|(?P<number>\d+)(?:-(?P<second>\d+))?(?P<suffix>号院|号|栋|(?![\d单元室层户门-]))"
)
# "东150米", "往北约100米", "西侧50米": a distance from the place named before it.
OFFSET = re.compile(
    r"(?:往|向)?(?P<direction>东北|东南|西北|西南|东|南|西|北)(?:侧|方向|边|面)?(?:约|大约)?(?P<metres>\d+)米"
)
_DIRECTIONS = {
    "东": (1, 0),
    "西": (-1, 0),
    "南": (0, -1),
    "北": (0, 1),
    "东北": (math.sqrt(0.5), math.sqrt(0.5)),
    "东南": (math.sqrt(0.5), -math.sqrt(0.5)),
    "西北": (-math.sqrt(0.5), math.sqrt(0.5)),
    "西南": (-math.sqrt(0.5), -math.sqrt(0.5)),
}
JUNCTION_WORDS = ("交叉路口", "交叉口", "十字路口", "丁字路口", "交汇处", "交界处", "交口", "路口", "口")
CONNECTORS = ("", "与", "和", "及", "跟", "同", "-", "交")
METRES_PER_DEGREE_LAT = 110_540.0
METRES_PER_DEGREE_LON = 111_320.0


@dataclass(frozen=True)
class DoorNumber:
    """A number read after a road: a door (maybe a sub-number or a range end) or a lane."""

    number: int
    second: int | None = None  # 12-3 (sub-number, second < number) or 12-16 (range, second > number)
    lane: bool = False
    end: int = 0  # where the number ends in the text

    @property
    def is_range(self) -> bool:
        """Say whether this is a range of numbers (12-16号) rather than a sub-number (12-3号)."""
        return self.second is not None and self.second > self.number

    @property
    def written(self) -> str:
        """Return the number as an address writes it: 12号, 12-3号, 12-16号, 1999弄."""
        if self.lane:
            return f"{self.number}弄"
        return f"{self.number}-{self.second}号" if self.second is not None else f"{self.number}号"


def read_number(text: str, position: int) -> DoorNumber | None:
    """Read the door number or lane at `position` (right after a road's name), or None."""
    m = AFTER_ROAD.match(text, position)
    if not m:
        return None
    if m.group("lane"):
        return DoorNumber(int(m.group("lane")), lane=True, end=m.end())
    second = m.group("second")
    return DoorNumber(int(m.group("number")), int(second) if second else None, end=m.end())


def read_offset(text: str, position: int) -> tuple[str, float] | None:
    """Find an offset such as "东150米" at or after `position`: (direction, metres), or None."""
    m = OFFSET.search(text, position)
    if not m:
        return None
    return m.group("direction"), float(m.group("metres"))


def apply_offset(lon: float, lat: float, offset: tuple[str, float] | None) -> tuple[float, float]:
    """Move a WGS84 point by an offset ("东", 150 metres); unchanged without one."""
    if offset is None:
        return lon, lat
    east, north = _DIRECTIONS[offset[0]]
    metres = offset[1]
    return (
        lon + east * metres / (METRES_PER_DEGREE_LON * math.cos(math.radians(lat))),
        lat + north * metres / METRES_PER_DEGREE_LAT,
    )


def metres_between(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Return the distance between two nearby WGS84 points in metres (flat-earth; city scale)."""
    dx = (lon2 - lon1) * METRES_PER_DEGREE_LON * math.cos(math.radians((lat1 + lat2) / 2))
    dy = (lat2 - lat1) * METRES_PER_DEGREE_LAT
    return math.hypot(dx, dy)


# ---- the parts of an address without a gazetteer ----------------------------------------------------------
@dataclass(frozen=True)
class ParsedAddress:
    """The parts of a normalised address; None where the address does not say."""

    normalized: str
    street: str | None = None  # 街道 (sub-district office)
    community: str | None = None  # 社区 / 居委会 / 村委会
    road: str | None = None
    number: str | None = None  # door number on `road`, "12", "12-3" or "12-16"
    estate: str | None = None  # as written, e.g. "百合豪庭小区"
    building: str | None = None
    unit: str | None = None
    floor: str | None = None
    room: str | None = None
    rest: str | None = None  # what could not be read
    lane: str | None = None  # 1999弄
    district: str | None = None  # a district of the jurisdiction, when one was named


_STREET = re.compile(r".{2,10}?街道")
_COMMUNITY = re.compile(r".{2,10}?(?:社区|居委会|村委会)")
_ROAD = re.compile(r"[^\d-]{1,14}?(?:大道|大街|路|街|巷|胡同|道)(?=\d)")
_ROAD_ONLY = re.compile(r"[^\d]{1,14}(?:大道|大街|路|街|巷|胡同)")
BUILDING = re.compile(
    r"(?P<building>\d+|[A-Z])栋|(?P<b3>\d+)-(?P<u3>\d+)-(?P<r3>\d+)|(?P<b2>\d+)-(?P<x2>\d+)|(?P<bn>\d+)号"
)
_UNIT = re.compile(r"-?(\d+)(?:单元|门)")
_FLOOR = re.compile(r"-?(\d+)(?:层|楼)")
_ROOM = re.compile(r"-?(\d+)(?:室|号|户)?")
_ESTATE_SUFFIX = re.compile(
    r".+(?:小区|新村|花园|花苑|家园|公寓|大厦|广场|新城|大院|苑|里|庭|园|城|村|府|居|湾|邸|阁|轩|庄|坊|墅)"
    r"(?=(?:[东南西北]?门|门口|附近|对面|旁边|[东南西北]侧)?$)"
)


def parse_address(text: str, *, jurisdiction: Jurisdiction | None = None) -> ParsedAddress:
    """Split an address into street, community, road + door number or lane, estate, building, unit, floor, room.

    Read left to right after the jurisdiction's prefixes: "XX街道", "XX社区", then "XX路/街/道/巷" with a number
    (12号, 12-3号, 12-16号, 1999弄, a bare 6001), then the first building token — "3栋" (after normalisation
    3号楼/3幢/3座 too), "3-2-501" (building-unit-room), "3-501" (building-room when the second part has 3+ digits,
    else building-unit) or "3号" after an estate — with the text before it taken as the estate. Without a building
    token the rest is an estate only if it ends like one (小区, 新村, 花园, 苑, 里, 庭, 园 ...).
    """
    prefix = (jurisdiction or Jurisdiction()).read(require_text(text))
    normalized = prefix.rest
    parts: dict[str, str | None] = {"district": prefix.district, "street": prefix.street}
    pos = 0
    if not parts["street"] and (m := _STREET.match(normalized, pos)) and m.end() < len(normalized):
        parts["street"], pos = m.group(0), m.end()
    if m := _COMMUNITY.match(normalized, pos):
        parts["community"], pos = m.group(0), m.end()
    m = _ROAD.match(normalized, pos)
    number = read_number(normalized, m.end()) if m else None
    if m and number is not None:
        parts["road"], pos = m.group(0), number.end
        if number.lane:
            parts["lane"] = str(number.number)
        else:
            parts["number"] = f"{number.number}-{number.second}" if number.second is not None else str(number.number)
        if "community" not in parts and (m := _COMMUNITY.match(normalized, pos)):
            parts["community"], pos = m.group(0), m.end()
    remainder = normalized[pos:]
    m = BUILDING.search(remainder)
    if m and (m.group("bn") is None or m.start() > 0):
        estate = remainder[: m.start()].rstrip("-")
        parts["estate"] = estate or None
        tail = remainder[m.end() :]
        if m.group("b3"):
            parts.update(building=m.group("b3"), unit=m.group("u3"), room=m.group("r3"))
        elif m.group("b2"):
            second = "room" if len(m.group("x2")) >= 3 else "unit"
            parts.update({"building": m.group("b2"), second: m.group("x2")})
        else:
            parts["building"] = m.group("building") or m.group("bn")
            for name, pattern in (("unit", _UNIT), ("floor", _FLOOR), ("room", _ROOM)):
                if tail and (found := pattern.match(tail)):
                    parts[name], tail = found.group(1), tail[found.end() :]
        parts["rest"] = tail or None
    elif remainder:
        m = _ESTATE_SUFFIX.match(remainder)
        if m:
            parts["estate"] = m.group(0)
            remainder = remainder[m.end() :]
        elif "road" not in parts and _ROAD_ONLY.fullmatch(remainder):
            parts["road"], remainder = remainder, ""
        parts["rest"] = remainder or None
    return ParsedAddress(normalized=normalized, **{k: _strip_number(v) for k, v in parts.items()})


def _strip_number(value: str | None) -> str | None:
    if value is None or not value.isdigit():
        return value
    return value.lstrip("0") or value
