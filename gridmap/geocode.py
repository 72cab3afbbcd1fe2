"""Chinese address geocoding against an offline gazetteer (标准地址库); storage-free.

An address such as "天津市南开区长虹街道朝园里3-2-501" is normalised (full-width and Chinese numerals to
ASCII digits, 栋/幢/号楼/座 to 栋, the jurisdiction's prefixes removed), then matched from the most precise
level down: building (estate + building number) → POI → estate → door (road + number; a missing number
is interpolated between its neighbours on the same side of the road) → road → community. Known names are
found by looking up every substring of the address in a dictionary (longest first), so no query scans
the entries. An estate name that is not in the gazetteer is matched fuzzily through a bigram index; such
a guess competes with the door, road and community matches on confidence. Every result carries its level
and a confidence in 0-1 (see CONFIDENCE); "not found" is a result, never an exception.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Protocol, runtime_checkable

from gridmap import crs as crs_rules
from gridmap.errors import InvalidInput, ServiceUnavailable

KINDS = ("building", "estate", "door", "road", "poi", "community")
LEVELS = ("building", "poi", "estate", "door", "road", "community")
DEFAULT_PREFIXES = ("天津市", "天津", "南开区")

CONFIDENCE = {
    "building": 0.97,
    "poi": 0.85,
    "estate": 0.8,
    "door": 0.9,
    "door_sub_number_missing": 0.85,  # 12-3号 asked, 12号 known
    "door_interpolated": 0.75,  # between two known numbers on the same side; minus 0.005 per number of gap
    "door_nearest": 0.65,  # only a neighbour on one side; minus 0.01 per number of distance
    "door_floor": 0.55,
    "road": 0.5,
    "road_from_doors": 0.4,  # no road entry: the door in the middle of the road's known numbers
    "community": 0.3,
    "community_core": 0.27,  # "金源" matched "金源社区"
}
# A fuzzy estate match counts when difflib's ratio reaches this ("百合豪亭" vs "百合豪庭" is 0.75).
FUZZY_THRESHOLD = 0.7
_SUGGESTION_THRESHOLD = 0.5
_SUGGESTIONS = 5
_COMMON_BIGRAM = 2000  # a bigram shared by more estates than this ("花园") says nothing about which one
_AMBIGUOUS_FACTOR = 0.8  # same name in several places and nothing in the address to choose

# ---- normalisation ---------------------------------------------------------------------------------
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMERAL = "零〇一二两三四五六七八九十百千"
# Chinese numerals are converted only directly before one of these unit words, so names keep theirs
# ("一品花园", "三里屯", "七里香苑" stay as written).
_NUMERAL_BEFORE_UNIT = re.compile(rf"([{_CN_NUMERAL}]+)(?=号楼|号|栋|幢|座|单元|室|层|楼|弄)")
_BUILDING_WORDS = re.compile(r"(\d+|[A-Z])(?:号楼|号栋|#楼|#|幢|座|栋)")
_NAME_CONTINUATIONS = ("大道", "大街", "路", "街", "道", "站", "港", "湾", "大学", "医院", "桥")
# Province, city and district at the start; stripped only as a chain of two or more (or a province alone),
# because one "XX市"/"XX区" alone is too often part of a name ("华润城市花园", "华苑小区").
_ADMIN_CHAIN = re.compile(
    r"^(?P<province>[\u4e00-\u9fff]{2,7}?(?:省|自治区|特别行政区))?"
    r"(?P<city>[\u4e00-\u9fff]{2,6}?(?:市(?!场)|自治州|地区|盟))?"
    r"(?P<district>[\u4e00-\u9fff]{1,6}?(?<![社小园校景片厂营])(?:区|县|旗))?"
)


def _noise_table() -> dict[int, str | None]:
    # Punctuation, symbols and spaces go; dashes become "-" (they separate 3-2-501); "#" stays (3#楼).
    table: dict[int, str | None] = {}
    ranges = [(0x20, 0x7F), (0xA0, 0xC0), (0x2000, 0x2070), (0x3000, 0x3040), (0xFE30, 0xFE50), (0xFF00, 0xFF66)]
    for start, stop in ranges:
        for code in range(start, stop):
            char = chr(code)
            category = unicodedata.category(char)
            if char in "-#" or category[0] not in "PZS":
                continue
            table[code] = "-" if category == "Pd" or char == "~" else None
    for code in (0x09, 0x0A, 0x0D):
        table[code] = None
    return table


_NOISE = _noise_table()


def chinese_numeral_to_int(text: str) -> int:
    """Read a Chinese numeral: 十二 → 12, 二十三 → 23, 一百零五 → 105, 五零一 → 501 (digit by digit)."""
    if not text or any(c not in _CN_DIGITS and c not in _CN_UNITS for c in text):
        raise InvalidInput(f"{text!r} is not a Chinese numeral")
    if not any(c in _CN_UNITS for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, current = 0, 0
    for char in text:
        if char in _CN_DIGITS:
            current = _CN_DIGITS[char]
        else:
            total += (current or 1) * _CN_UNITS[char]
            current = 0
    return total + current


def normalize_address(
    text: str, *, strip_prefixes: Iterable[str] = DEFAULT_PREFIXES, strip_admin_names: bool = True
) -> str:
    """Return the comparable form of an address.

    Steps: NFKC (full-width letters, digits and punctuation to ASCII; Chinese kept); letters upper-cased;
    spaces and punctuation removed, dashes kept as "-"; Chinese numerals converted only where they directly
    precede 栋/幢/座/号楼/号/单元/室/层/楼/弄 (三栋 → 3栋, 十二号 → 12号, 五零一室 → 501室, while 一品花园 and
    三里屯 keep theirs); 幢/座/号楼/#楼 after a number become 栋; then `strip_prefixes` are removed from the
    start (longest first, repeatedly, unless what follows shows the prefix is part of a name, as in
    天津大道), and, with `strip_admin_names`, a leading chain of generic province/city/district names
    ("广东省惠州市惠城区"; a province alone, but one "XX市" or "XX区" alone is kept as it may be a name, like
    华润城市花园). Nothing is stripped that would leave the address empty.
    """
    value = unicodedata.normalize("NFKC", str(text)).upper().translate(_NOISE)
    value = re.sub(r"-{2,}", "-", value).strip("-")
    value = _NUMERAL_BEFORE_UNIT.sub(lambda m: str(chinese_numeral_to_int(m.group(1))), value)
    value = _BUILDING_WORDS.sub(r"\1栋", value)
    prefixes = sorted({p for p in strip_prefixes if p}, key=len, reverse=True)
    while True:
        before = value
        prefix = next((p for p in prefixes if value.startswith(p)), "")
        rest = value[len(prefix) :]
        if prefix and rest and not rest.startswith(_NAME_CONTINUATIONS):
            value = rest
        chain = _ADMIN_CHAIN.match(value)
        levels = [name for name in ("province", "city", "district") if chain.group(name)]
        if strip_admin_names and (len(levels) >= 2 or levels == ["province"]) and chain.end() < len(value):
            value = value[chain.end() :]
        if value == before:
            return value


def normalize_building(value: object) -> str:
    """Return the comparable form of a building number: "3号楼", "三栋", "3幢", "03", 3 → "3"."""
    text = normalize_address(str(value), strip_prefixes=(), strip_admin_names=False)
    text = re.sub(r"(?:栋|号|楼)+$", "", text)
    if text and all(c in _CN_DIGITS or c in _CN_UNITS for c in text):
        text = str(chinese_numeral_to_int(text))
    return text.lstrip("0") or text


def normalize_number(value: object) -> str:
    """Return the comparable form of a door number: 12, "12号", "十二号" → "12"; "12-3号" → "12-3"."""
    text = normalize_address(str(value), strip_prefixes=(), strip_admin_names=False)
    text = re.sub(r"号$", "", text)
    return "-".join(part.lstrip("0") or part for part in text.split("-"))


# ---- parsing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedAddress:
    """The parts of a normalised address; None where the address does not say."""

    normalized: str
    street: str | None = None  # 街道 (sub-district office)
    community: str | None = None  # 社区 / 居委会 / 村委会
    road: str | None = None
    number: str | None = None  # door number on `road`, "12" or "12-3"
    estate: str | None = None  # as written, e.g. "百合豪庭小区"
    building: str | None = None
    unit: str | None = None
    floor: str | None = None
    room: str | None = None
    rest: str | None = None  # what could not be read


_STREET = re.compile(r".{2,10}?街道")
_COMMUNITY = re.compile(r".{2,10}?(?:社区|居委会|村委会)")
_ROAD_NUMBER = re.compile(r"(?P<road>[^\d-]{1,14}?(?:大道|大街|路|街|巷|胡同|道))(?P<number>\d+(?:-\d+)?)(?:号|$)")
_ROAD_ONLY = re.compile(r"[^\d]{1,14}(?:大道|大街|路|街|巷|胡同)")
_BUILDING = re.compile(
    r"(?P<building>\d+|[A-Z])栋|(?P<b3>\d+)-(?P<u3>\d+)-(?P<r3>\d+)|(?P<b2>\d+)-(?P<x2>\d+)|(?P<bn>\d+)号"
)
_UNIT = re.compile(r"-?(\d+)(?:单元|门)")
_FLOOR = re.compile(r"-?(\d+)(?:层|楼)")
_ROOM = re.compile(r"-?(\d+)(?:室|号|户)?")
_ESTATE_SUFFIX = re.compile(
    r".+(?:小区|新村|花园|花苑|家园|公寓|大厦|广场|新城|大院|苑|里|庭|园|城|村|府|居|湾|邸|阁|轩|庄|坊|墅)"
    r"(?=(?:[东南西北]?门|门口|附近|对面|旁边|[东南西北]侧)?$)"
)


def parse_address(text: str, *, strip_prefixes: Iterable[str] = DEFAULT_PREFIXES) -> ParsedAddress:
    """Split an address into street, community, road + door number, estate, building, unit, floor and room.

    Read left to right: "XX街道", "XX社区", then "XX路/街/道/巷12号", then the first building token — "3栋"
    (after normalisation 3号楼/3幢/3座 too), "3-2-501" (building-unit-room), "3-501" (building-room when
    the second part has 3+ digits, else building-unit) or "3号" after an estate — with the text before it
    taken as the estate. Without a building token the rest is an estate only if it ends like one (小区, 新村,
    花园, 苑, 里, 庭, 园 ...). A street office written without 道 ("兴南街") reads as a road.
    """
    normalized = _require_text(text, strip_prefixes)
    parts: dict[str, str | None] = {}
    pos = 0
    if (m := _STREET.match(normalized, pos)) and m.end() < len(normalized):
        parts["street"], pos = m.group(0), m.end()
    if m := _COMMUNITY.match(normalized, pos):
        parts["community"], pos = m.group(0), m.end()
    m = _ROAD_NUMBER.match(normalized, pos)
    if m:
        parts["road"], parts["number"], pos = m.group("road"), m.group("number"), m.end()
        if "community" not in parts and (m := _COMMUNITY.match(normalized, pos)):
            parts["community"], pos = m.group(0), m.end()
    remainder = normalized[pos:]
    m = _BUILDING.search(remainder)
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


def _require_text(text: object, strip_prefixes: Iterable[str]) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"address must be text, not {type(text).__name__}")
    if not text.strip():
        raise InvalidInput("address is empty")
    normalized = normalize_address(text, strip_prefixes=strip_prefixes)
    if not normalized:
        raise InvalidInput(f"address {text!r} has nothing but spaces and punctuation")
    return normalized


# ---- gazetteer -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GazetteerEntry:
    """One point of the standard address list: a building, estate, door number, road, POI or community."""

    kind: str
    name: str  # as written
    lon: float  # WGS84
    lat: float
    road: str | None = None
    number: int | str | None = None  # door number on `road`: 12 or "12-3"
    estate: str | None = None  # estate a building belongs to
    building: str | None = None  # "3", "A"
    community_code: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass
class GeocodeResult:
    """The answer for one address; found=False (with lon/lat None) when nothing matched."""

    found: bool
    lon: float | None
    lat: float | None
    level: str | None  # one of LEVELS
    confidence: float
    entry: GazetteerEntry | None
    normalized: str
    candidates: list[GazetteerEntry] = field(default_factory=list)  # neighbours used, rivals, suggestions


@runtime_checkable
class Geocoder(Protocol):
    """Anything that turns an address into a point."""

    def geocode(self, address: str) -> GeocodeResult:
        """Return where `address` is; found=False when it cannot tell; InvalidInput for an empty address."""
        ...


@dataclass(frozen=True)
class _Name:
    kind: str  # estate, road, poi, community
    key: str  # canonical key in that kind's table
    quality: float  # 1 for a full name or alias, less for a core ("金源" for "金源社区")


def _estate_key(name: str, strip_prefixes: Iterable[str]) -> str:
    key = normalize_address(name, strip_prefixes=strip_prefixes)
    core = re.sub(r"(?:小区|社区)$", "", key)
    return core if len(core) >= 2 else key


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


class Gazetteer:
    """An in-memory gazetteer implementing Geocoder; build once, query many times."""

    def __init__(self, entries: Iterable[GazetteerEntry], *, strip_prefixes: Iterable[str] = DEFAULT_PREFIXES):
        self._strip = tuple(strip_prefixes)
        self._entries = list(entries)
        self._names: dict[str, list[_Name]] = {}
        self._estates: dict[str, list[GazetteerEntry]] = {}
        self._buildings: dict[tuple[str, str], list[GazetteerEntry]] = {}
        self._doors: dict[tuple[str, str], list[GazetteerEntry]] = {}
        self._road_doors: dict[str, list[tuple[int, GazetteerEntry]]] = {}
        self._roads: dict[str, list[GazetteerEntry]] = {}
        self._pois: dict[str, list[GazetteerEntry]] = {}
        self._communities: dict[str, list[GazetteerEntry]] = {}
        self._estate_bigrams: dict[str, set[str]] = {}
        self._estate_alias: dict[str, str] = {}  # any estate key (alias, full name) → canonical key
        by_kind: dict[str, list[GazetteerEntry]] = {kind: [] for kind in KINDS}
        for entry in self._entries:
            if entry.kind not in by_kind:
                raise InvalidInput(
                    f"gazetteer entry {entry.name!r}: kind {entry.kind!r} must be one of {', '.join(KINDS)}"
                )
            by_kind[entry.kind].append(entry)
        for entry in by_kind["estate"]:  # estates first: buildings name their estate by name or alias
            key = _estate_key(entry.name, self._strip)
            self._estates.setdefault(key, []).append(entry)
            for written in (entry.name, *entry.aliases):
                self._add_estate_name(written, key)
        for entry in by_kind["building"]:
            self._add_building(entry)
        for entry in by_kind["door"]:
            self._add_door(entry)
        for doors in self._road_doors.values():
            doors.sort(key=lambda pair: pair[0])
        for kind, table in (("road", self._roads), ("poi", self._pois), ("community", self._communities)):
            for entry in by_kind[kind]:
                key = self._norm(entry.name)
                table.setdefault(key, []).append(entry)
                for written in (entry.name, *entry.aliases):
                    self._add_name(self._norm(written), _Name(kind, key, 1.0))
                    core = re.sub(r"(?:社区|居委会|村委会)$", "", self._norm(written))
                    if kind == "community" and core != self._norm(written):
                        quality = CONFIDENCE["community_core"] / CONFIDENCE["community"]
                        self._add_name(core, _Name(kind, key, quality))
        # Name lengths by first character, so the scan tries only lengths some name could have there.
        lengths: dict[str, set[int]] = {}
        for key in self._names:
            lengths.setdefault(key[0], set()).add(len(key))
        self._lengths = {char: sorted(found, reverse=True) for char, found in lengths.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def _add_building(self, entry: GazetteerEntry) -> None:
        estate, building = entry.estate, entry.building
        if not estate or not building:  # "百合豪庭3栋" says both
            parsed = parse_address(entry.name, strip_prefixes=self._strip)
            estate, building = estate or parsed.estate, building or parsed.building
        if not estate or not building:
            raise InvalidInput(f"gazetteer building {entry.name!r}: needs its estate and building number")
        key = _estate_key(estate, self._strip)
        key = self._estate_alias.get(key, key)
        self._add_estate_name(estate, key)
        self._buildings.setdefault((key, normalize_building(building)), []).append(entry)

    def _add_door(self, entry: GazetteerEntry) -> None:
        road, number = entry.road, entry.number
        if not road or number in (None, ""):  # "长湖街12号" says both
            parsed = parse_address(entry.name, strip_prefixes=self._strip)
            road, number = road or parsed.road, parsed.number if number in (None, "") else number
        if not road or number in (None, ""):
            raise InvalidInput(f"gazetteer door {entry.name!r}: needs its road and door number")
        road_key, number_key = self._norm(road), normalize_number(number)
        self._add_name(road_key, _Name("road", road_key, 1.0))
        self._doors.setdefault((road_key, number_key), []).append(entry)
        main = number_key.split("-")[0]
        if main.isdigit():
            self._road_doors.setdefault(road_key, []).append((int(main), entry))

    def _norm(self, text: str) -> str:
        return normalize_address(text, strip_prefixes=self._strip)

    def _add_name(self, key: str, name: _Name) -> None:
        if len(key) < 2:
            return
        names = self._names.setdefault(key, [])
        if name not in names:
            names.append(name)

    def _add_estate_name(self, written: str, key: str) -> None:
        full = self._norm(written)
        for form in (full, _estate_key(written, self._strip)):
            self._estate_alias.setdefault(form, key)
            self._add_name(form, _Name("estate", key, 1.0))
            for bigram in _bigrams(form):
                self._estate_bigrams.setdefault(bigram, set()).add(form)

    # ---- lookup ------------------------------------------------------------------------------------
    def geocode(self, address: str) -> GeocodeResult:
        """Return the most precise match for `address` (see the module docstring for the order)."""
        text = _require_text(address, self._strip)
        found = self._scan(text)
        codes = {e.community_code for n, _ in found.get("community", []) for e in self._communities[n.key]}
        codes.discard(None)
        for name, end in reversed(found.get("estate", [])):
            result = self._estate_result(text, name.key, name.quality, end, codes)
            if result and result.level == "building":
                return result
        if found.get("poi"):
            name, _ = found["poi"][-1]
            return self._pick(text, "poi", self._pois[name.key], CONFIDENCE["poi"] * name.quality, codes)
        for name, end in reversed(found.get("estate", [])):
            result = self._estate_result(text, name.key, name.quality, end, codes)
            if result:
                return result
        fallbacks = [self._fuzzy_estate(text, codes) if not found.get("estate") else None]
        fallbacks += [self._road_result(text, name.key, end) for name, end in reversed(found.get("road", []))]
        for name, _ in reversed(found.get("community", [])):
            confidence = CONFIDENCE["community"] * name.quality
            fallbacks.append(self._pick(text, "community", self._communities[name.key], confidence, set()))
        results = [r for r in fallbacks if r is not None and r.found]
        if results:
            return max(results, key=lambda r: r.confidence)  # max keeps the first of equals: list order
        suggestions = next((r.candidates for r in fallbacks if r is not None and not r.found), [])
        return GeocodeResult(False, None, None, None, 0.0, None, text, suggestions)

    def _scan(self, text: str) -> dict[str, list[tuple[_Name, int]]]:
        # Every substring of the address looked up in the name table; the longest non-overlapping win.
        spans: list[tuple[int, int, list[_Name]]] = []
        n = len(text)
        for start in range(n):
            for length in self._lengths.get(text[start], ()):
                if start + length <= n and (names := self._names.get(text[start : start + length])):
                    if text.startswith("道", start + length) and text[start + length - 1] == "街":
                        names = [x for x in names if x.kind != "road"]  # 长虹街道 is a street office
                    if names:
                        spans.append((start, start + length, names))
        spans.sort(key=lambda s: (s[0] - s[1], s[0]))
        taken = [False] * n
        found: dict[str, list[tuple[int, _Name, int]]] = {}
        for start, end, names in spans:
            if any(taken[start:end]):
                continue
            taken[start:end] = [True] * (end - start)
            for name in names:
                found.setdefault(name.kind, []).append((start, name, end))
        return {
            kind: [(name, end) for _, name, end in sorted(items, key=lambda t: t[0])] for kind, items in found.items()
        }

    def _pick(
        self,
        text: str,
        level: str,
        entries: list[GazetteerEntry],
        confidence: float,
        codes: set[str],
        *,
        point: tuple[float, float] | None = None,
    ) -> GeocodeResult:
        # The same name can exist in several communities: a community named in the address decides.
        chosen = [e for e in entries if e.community_code in codes] or entries
        entry = chosen[0]
        if len(chosen) > 1:
            confidence *= _AMBIGUOUS_FACTOR
        lon, lat = point or (entry.lon, entry.lat)
        return GeocodeResult(
            True, lon, lat, level, round(confidence, 3), entry, text, [e for e in entries if e is not entry]
        )

    def _estate_result(self, text: str, key: str, quality: float, end: int, codes: set[str]) -> GeocodeResult | None:
        tail = re.sub(r"^(?:小区|社区)", "", text[end:])
        building = _building_at_start(tail)
        if building and (entries := self._buildings.get((key, building))):
            return self._pick(text, "building", entries, CONFIDENCE["building"] * quality, codes)
        if self._estates.get(key):
            return self._pick(text, "estate", self._estates[key], CONFIDENCE["estate"] * quality, codes)
        return None

    def _fuzzy_estate(self, text: str, codes: set[str]) -> GeocodeResult | None:
        parsed = parse_address(text, strip_prefixes=())
        written = parsed.estate or parsed.rest  # "百合豪亭" alone has no estate suffix to be recognised by
        if not written:
            return None
        query = _estate_key(written, ())
        counts: Counter[str] = Counter()
        for bigram in _bigrams(query):
            forms = self._estate_bigrams.get(bigram, ())
            if len(forms) <= _COMMON_BIGRAM:
                counts.update(forms)
        scored = sorted(
            ((SequenceMatcher(None, query, form).ratio(), form) for form, _ in counts.most_common(20)), reverse=True
        )
        if not scored or scored[0][0] < FUZZY_THRESHOLD:
            suggestions = []
            for ratio, form in scored:
                key = self._estate_alias[form]
                if ratio >= _SUGGESTION_THRESHOLD and self._estates.get(key):
                    suggestions += [e for e in self._estates[key] if e not in suggestions]
            return GeocodeResult(False, None, None, None, 0.0, None, text, suggestions[:_SUGGESTIONS])
        ratio, form = scored[0]
        key = self._estate_alias[form]
        building = normalize_building(parsed.building) if parsed.building else None
        if building and (entries := self._buildings.get((key, building))):
            return self._pick(text, "building", entries, CONFIDENCE["building"] * ratio, codes)
        if self._estates.get(key):
            return self._pick(text, "estate", self._estates[key], CONFIDENCE["estate"] * ratio, codes)
        return None

    def _road_result(self, text: str, key: str, end: int) -> GeocodeResult | None:
        m = re.match(r"(\d+)(?:-(\d+))?(?:号|$)", text[end:])
        doors = self._road_doors.get(key, [])
        if m:
            number = normalize_number(m.group(0))
            if entries := self._doors.get((key, number)):
                return self._pick(text, "door", entries, CONFIDENCE["door"], set())
            if m.group(2) and (entries := self._doors.get((key, normalize_number(m.group(1))))):
                return self._pick(text, "door", entries, CONFIDENCE["door_sub_number_missing"], set())
            if doors:
                return _nearest_door(text, int(m.group(1)), doors)
        if roads := self._roads.get(key):
            return self._pick(text, "road", roads, CONFIDENCE["road"], set())
        if doors:
            middle = doors[len(doors) // 2][1]
            return GeocodeResult(
                True,
                middle.lon,
                middle.lat,
                "road",
                CONFIDENCE["road_from_doors"],
                middle,
                text,
                [doors[0][1], doors[-1][1]],
            )
        return None


def _building_at_start(tail: str) -> str | None:
    m = _BUILDING.match(tail)
    if not m:
        return None
    return normalize_building(m.group("building") or m.group("b3") or m.group("b2") or m.group("bn"))


def _nearest_door(text: str, number: int, doors: list[tuple[int, GazetteerEntry]]) -> GeocodeResult:
    # Chinese roads number one side odd and the other even, so neighbours of the same parity are used
    # first; between two of them the point is interpolated along the straight line joining them (roads
    # bend, so this is approximate: hence the lower confidence).
    same_side = [(n, e) for n, e in doors if n % 2 == number % 2]
    lower = max(((n, e) for n, e in same_side if n < number), default=None, key=lambda p: p[0])
    upper = min(((n, e) for n, e in same_side if n > number), default=None, key=lambda p: p[0])
    if lower and upper:
        (n0, e0), (n1, e1) = lower, upper
        t = (number - n0) / (n1 - n0)
        lon, lat = e0.lon + t * (e1.lon - e0.lon), e0.lat + t * (e1.lat - e0.lat)
        confidence = max(CONFIDENCE["door_floor"], CONFIDENCE["door_interpolated"] - 0.005 * (n1 - n0))
        entry = e0 if number - n0 <= n1 - number else e1
        return GeocodeResult(True, lon, lat, "door", round(confidence, 3), entry, text, [e0, e1])
    n0, e0 = min(same_side or doors, key=lambda p: abs(p[0] - number))
    confidence = max(CONFIDENCE["door_floor"], CONFIDENCE["door_nearest"] - 0.01 * abs(n0 - number))
    return GeocodeResult(True, e0.lon, e0.lat, "door", round(confidence, 3), e0, text, [e0])


# ---- reading gazetteer files -----------------------------------------------------------------------
GAZETTEER_COLUMNS = ("kind", "name", "lon", "lat", "road", "number", "estate", "building", "community_code", "aliases")


def read_gazetteer_rows(
    rows: Iterable[Mapping[str, object]], *, first_row: int = 1, crs: str = "wgs84"
) -> list[GazetteerEntry]:
    """Turn CSV-like rows into entries, refusing the first bad row with its number and the problem.

    Columns: kind, name, lon, lat, road, number, estate, building, community_code, aliases ("|"-separated);
    header names are matched case-insensitively and a UTF-8 BOM is ignored. Rows are numbered from
    `first_row` (pass 2 for a CSV file whose line 1 is the header, so the number is the file's line).
    Coordinates given in `crs` (e.g. "gcj02" for a list taken from Amap) are converted to WGS84.
    A building needs estate and building, a door needs road and number.
    """
    source = crs_rules.canonical_crs(crs)
    entries = []
    for number, row in enumerate(rows, start=first_row):
        values = {str(k).lstrip("\ufeff").strip().lower(): _cell(v) for k, v in row.items() if k is not None}
        where = f"row {number}"
        kind = (values.get("kind") or "").lower()
        if kind not in KINDS:
            shown = repr(values.get("kind")) if values.get("kind") else "missing"
            raise InvalidInput(f"{where}: kind {shown} must be one of {', '.join(KINDS)}")
        name = values.get("name")
        if not name:
            raise InvalidInput(f"{where}: name is missing")
        where = f"row {number} ({name})"
        lon, lat = _coordinate(values, "lon", where), _coordinate(values, "lat", where)
        crs_rules.check_lonlat(lon=lon, lat=lat, where=where)
        lon, lat = crs_rules.to_wgs84(lon=lon, lat=lat, crs=source)
        if kind == "building" and not (values.get("estate") and values.get("building")):
            raise InvalidInput(f"{where}: a building needs its estate and building columns")
        if kind == "door" and not (values.get("road") and values.get("number")):
            raise InvalidInput(f"{where}: a door needs its road and number columns")
        door_number: int | str | None = values.get("number")
        if door_number is not None:
            door_number = normalize_number(door_number)
            door_number = int(door_number) if door_number.isdigit() else door_number
        aliases = tuple(a.strip() for a in (values.get("aliases") or "").split("|") if a.strip())
        entries.append(
            GazetteerEntry(
                kind=kind,
                name=name,
                lon=lon,
                lat=lat,
                road=values.get("road"),
                number=door_number,
                estate=values.get("estate"),
                building=values.get("building"),
                community_code=values.get("community_code"),
                aliases=aliases,
            )
        )
    return entries


def _cell(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _coordinate(values: dict[str, str | None], column: str, where: str) -> float:
    text = values.get(column)
    if text is None:
        raise InvalidInput(f"{where}: {column} is missing")
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{where}: {column} {text!r} is not a number") from None


# ---- the store-backed gazetteer ------------------------------------------------------------------------
def read_gazetteer_file(path: Path, *, crs: str = "wgs84") -> list[GazetteerEntry]:
    """Read a gazetteer from CSV (UTF-8 or GBK) or GeoJSON points, refusing the first bad row."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    from gridmap.incidents import decode_text  # the one place Chinese text files are decoded

    text = decode_text(path.read_bytes(), path.name)
    if path.suffix.lower() == ".csv":
        return read_gazetteer_rows(csv.DictReader(io.StringIO(text, newline="")), first_row=2, crs=crs)
    if path.suffix.lower() in (".geojson", ".json"):
        try:
            features = json.loads(text).get("features") or []
        except (json.JSONDecodeError, AttributeError) as exc:
            raise InvalidInput(f"{path.name}: not a GeoJSON FeatureCollection") from exc
        rows = []
        for feature in features:
            properties = dict(feature.get("properties") or {})
            coordinates = (feature.get("geometry") or {}).get("coordinates") or [None, None]
            properties.setdefault("lon", coordinates[0])
            properties.setdefault("lat", coordinates[1])
            rows.append(properties)
        return read_gazetteer_rows(rows, crs=crs)
    raise InvalidInput(f"{path.name}: a gazetteer is read from .csv or .geojson")


def _entry_row(entry: GazetteerEntry) -> dict:
    return {
        "kind": entry.kind,
        "name": entry.name,
        "lon": float(entry.lon),
        "lat": float(entry.lat),
        "road": entry.road,
        "number": None if entry.number is None else str(entry.number),
        "estate": entry.estate,
        "building": entry.building,
        "community_code": entry.community_code,
        "aliases": "|".join(entry.aliases),
    }


def load_gazetteer(store, path: Path, *, crs: str = "wgs84") -> int:
    """Replace the store's gazetteer with a file's entries (all or nothing)."""
    entries = read_gazetteer_file(path, crs=crs)
    if not entries:
        raise InvalidInput(f"{Path(path).name}: has no entries")
    return store.replace_gazetteer([_entry_row(e) for e in entries])


# ---- an online geocoder: Nominatim ---------------------------------------------------------------------
# Nominatim answers in OpenStreetMap's WGS84, so its points need no conversion. Its own ranking ("importance")
# says how notable a place is, not how well it matched, so confidence comes from the level matched, a notch
# below the offline gazetteer's for the same level.
ONLINE_CONFIDENCE_FACTOR = 0.9
_POI_CATEGORIES = {"amenity", "shop", "tourism", "office", "leisure", "healthcare", "craft", "historic"}


def nominatim_level(place: Mapping) -> str:
    """Map a Nominatim (format=jsonv2) place to one of LEVELS by its category, type and place rank."""
    category = place.get("category") or place.get("class") or ""
    kind = place.get("type") or ""
    rank = int(place.get("place_rank") or 0)
    if category == "building" or kind in ("apartments", "residential_building"):
        return "building"
    if kind == "house" or (category == "place" and kind == "house"):
        return "door"
    if category in _POI_CATEGORIES:
        return "poi"
    if kind in ("residential", "neighbourhood", "quarter", "allotments") or category == "landuse":
        return "estate"
    if category == "highway" or rank in (26, 27):
        return "road"
    return "community"


class NominatimGeocoder:
    """A Geocoder asking a Nominatim server, never faster than `min_interval`, remembering answers in a store."""

    provider = "nominatim"

    def __init__(
        self,
        base_url: str,
        *,
        store=None,
        min_interval: float = 1.0,
        user_agent: str = "gridmap",
        timeout: float = 10.0,
        country_codes: str = "cn",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.store = store
        self.min_interval = min_interval
        self.user_agent = user_agent
        self.timeout = timeout
        self.country_codes = country_codes
        self.requests_sent = 0
        self._lock = threading.Lock()
        self._last_request = float("-inf")

    def _host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc or self.base_url

    def _ask(self, query: str) -> str:
        params = urllib.parse.urlencode(
            {"q": query, "format": "jsonv2", "limit": 1, "countrycodes": self.country_codes, "accept-language": "zh"}
        )
        request = urllib.request.Request(
            f"{self.base_url}/search?{params}", headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        # One request at a time, spaced by min_interval: the service's usage policy, not a politeness.
        with self._lock:
            wait = self._last_request + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read().decode("utf-8")
            except urllib.error.HTTPError as exc:
                exc.close()  # an HTTPError holds the open response
                raise ServiceUnavailable(f"the geocoder at {self._host()} answered HTTP {exc.code}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ServiceUnavailable(f"the geocoder at {self._host()} did not answer ({reason})") from None
            finally:
                self._last_request = time.monotonic()
                self.requests_sent += 1
        return body

    def geocode(self, address: str) -> GeocodeResult:
        """Return where `address` is according to the server; found=False when it knows no such place."""
        parsed = parse_address(address)
        query = str(address).strip()
        body = self.store.cached_geocode(self.provider, query) if self.store is not None else None
        if body is None:
            body = self._ask(query)
            try:
                json.loads(body)
            except ValueError:
                raise ServiceUnavailable(f"the geocoder at {self._host()} sent something that is not JSON") from None
            if self.store is not None:
                self.store.cache_geocode(self.provider, query, body)
        places = json.loads(body)
        if not isinstance(places, list) or not places:
            return GeocodeResult(False, None, None, None, 0.0, None, parsed.normalized)
        place = places[0]
        try:
            lon, lat = float(place["lon"]), float(place["lat"])
        except (KeyError, TypeError, ValueError):
            raise ServiceUnavailable(f"the geocoder at {self._host()} sent a place without lon/lat") from None
        level = nominatim_level(place)
        entry = GazetteerEntry(kind=level, name=str(place.get("display_name") or query), lon=lon, lat=lat)
        confidence = round(CONFIDENCE[level] * ONLINE_CONFIDENCE_FACTOR, 3)
        return GeocodeResult(True, lon, lat, level, confidence, entry, parsed.normalized)


class FallbackGeocoder:
    """Ask each geocoder in turn and return the first that finds the address (else the first one's answer)."""

    def __init__(self, geocoders: Iterable[Geocoder]) -> None:
        self.geocoders = list(geocoders)

    def geocode(self, address: str) -> GeocodeResult:
        """Return the first found result, or the first geocoder's not-found result with its suggestions."""
        first = None
        for geocoder in self.geocoders:
            result = geocoder.geocode(address)
            if result.found:
                return result
            first = first or result
        return first


_gazetteers: dict[str, tuple[tuple, Gazetteer]] = {}
_gazetteer_lock = threading.Lock()
_online: dict[tuple[str, str], NominatimGeocoder] = {}


def store_gazetteer(store) -> Gazetteer:
    """Return the store's gazetteer, built once and rebuilt only when the gazetteer is replaced."""
    fingerprint = store.gazetteer_fingerprint()
    with _gazetteer_lock:
        cached = _gazetteers.get(store.url)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
    gazetteer = Gazetteer(read_gazetteer_rows(store.gazetteer_rows()))
    with _gazetteer_lock:
        _gazetteers[store.url] = (fingerprint, gazetteer)
    return gazetteer


def store_geocoder(store, settings=None) -> Geocoder:
    """Return the geocoder the settings ask for: the store's gazetteer, then Nominatim when configured."""
    gazetteer = store_gazetteer(store)
    choice = getattr(settings, "geocoder", "gazetteer")
    if choice == "gazetteer":
        return gazetteer
    if choice == "nominatim":
        key = (settings.nominatim_url, store.url)
        with _gazetteer_lock:
            # One client per server and database, so the spacing of requests holds across callers.
            online = _online.get(key)
            if online is None:
                online = _online[key] = NominatimGeocoder(
                    settings.nominatim_url,
                    store=store,
                    min_interval=settings.geocoder_min_interval,
                    user_agent=settings.geocoder_user_agent,
                )
        return FallbackGeocoder([gazetteer, online])
    raise InvalidInput(f"geocoder must be gazetteer or nominatim, not {choice!r}")
