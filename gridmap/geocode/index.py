"""The offline gazetteer: every known name of the standard address list in dictionaries, built once.

Entries are indexed by the comparable form of their names (jurisdiction prefixes removed; a full name that says
its district is kept too, so "西青区人民医院" limits "人民医院" to 西青区), roads by name and district with their
doors and lanes in number order, estates with their buildings, POIs, communities, and estate bigrams for the fuzzy
guess. `match.Matcher` reads addresses against these tables (see its docstring for the order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gridmap.errors import InvalidInput

from .entries import KINDS, GazetteerEntry
from .jurisdiction import Jurisdiction, Prefix
from .match import Matcher, _bigrams, _Name, _Query, _Span
from .normalise import clean, normalize_building, normalize_number, require_text
from .parse import metres_between, parse_address
from .result import CONFIDENCE, GeocodeResult
from .roads import Road, Spot

# Names that say what a place is, not which one: never matched alone.
GENERIC_NAMES = frozenset((
    "医院", "诊所", "卫生院", "卫生室", "卫生站", "卫生服务站", "社区卫生服务中心", "药店", "药房", "学校", "小学",
    "中学", "大学", "幼儿园", "中心", "服务中心", "党群服务中心", "超市", "便利店", "银行", "酒店", "宾馆", "饭店",
    "餐厅", "公园", "广场", "市场", "菜市场", "农贸市场", "派出所", "加油站", "停车场", "公厕", "厕所", "车站",
    "公交站", "地铁站", "小区", "社区", "居委会", "村委会", "物业", "商场", "商店", "快递", "菜场", "写字楼",
    "大厦", "工地",
))  # fmt: skip
UNTAGGED_JOIN_M = 1000  # an untagged door this close to a tagged road of its name belongs to it


class Gazetteer(Matcher):
    """An in-memory gazetteer implementing Geocoder; build once, query many times."""

    def __init__(self, entries: Iterable[GazetteerEntry], *, jurisdiction: Jurisdiction | None = None) -> None:
        self._entries = list(entries)
        for entry in self._entries:
            if entry.kind not in KINDS:
                raise InvalidInput(
                    f"gazetteer entry {entry.name!r}: kind {entry.kind!r} must be one of {', '.join(KINDS)}"
                )
        self.jurisdiction = (jurisdiction or Jurisdiction()).with_data(
            districts=[(None, e.district) for e in self._entries if e.district],
            streets=[(e.street, e.district) for e in self._entries if e.street],
        )
        self._keys: dict[str, Prefix] = {}  # name as written → its prefix and key (every building names its estate)
        self._estate_names: set[tuple[str, str]] = set()
        self._junctions: dict[tuple[int, int], Spot | None] = {}
        self._names: dict[str, list[_Name]] = {}
        self._lengths: dict[str, list[int]] = {}
        self._district: dict[GazetteerEntry, str | None] = {}
        self._street: dict[GazetteerEntry, str | None] = {}
        self._estates: dict[str, list[GazetteerEntry]] = {}
        self._buildings: dict[tuple[str, str], list[GazetteerEntry]] = {}
        self._roads: dict[str, dict[str | None, Road]] = {}
        self._pois: dict[str, list[GazetteerEntry]] = {}
        self._communities: dict[str, list[GazetteerEntry]] = {}
        self._estate_bigrams: dict[str, set[str]] = {}
        self._estate_alias: dict[str, str] = {}  # any estate key (alias, full name) → canonical key
        by_kind: dict[str, list[GazetteerEntry]] = {kind: [] for kind in KINDS}
        for entry in self._entries:
            self._place(entry)
            by_kind[entry.kind].append(entry)
        for entry in by_kind["estate"]:  # estates first: buildings name their estate by name or alias
            key = self._estate_key(entry.name)
            self._estates.setdefault(key, []).append(entry)
            for written in (entry.name, *entry.aliases):
                self._add_estate_name(written, key)
        for entry in by_kind["building"]:
            self._add_building(entry)
        # Entries that say their district first; an untagged door (just outside the boundaries, say) then joins
        # the road of its name nearest to it, so one road is not split into a tagged and an untagged half.
        for entry in sorted(by_kind["road"] + by_kind["door"], key=lambda e: self._district[e] is None):
            if entry.kind == "road":
                self._road(entry.name, entry).entries.append(entry)
            else:
                self._add_door(entry)
        frame = (self._entries[0].lon, self._entries[0].lat) if self._entries else (0.0, 0.0)
        for roads in self._roads.values():
            for road in roads.values():
                road.finish(frame)
        for kind, table in (("poi", self._pois), ("community", self._communities)):
            for entry in by_kind[kind]:
                key = self._key(entry.name)
                table.setdefault(key, []).append(entry)
                for written in (entry.name, *entry.aliases):
                    for form in {self._key(written), clean(written)}:
                        if kind == "poi" and form in GENERIC_NAMES:
                            continue
                        says = self._prefix(written).district if form != self._key(written) else None
                        self._add_name(form, _Name(kind, key, 1.0, says))
                        core = re.sub(r"(?:社区|居委会|村委会)$", "", form)
                        if kind == "community" and core != form:
                            quality = CONFIDENCE["community_core"] / CONFIDENCE["community"]
                            self._add_name(core, _Name(kind, key, quality))
        # Name lengths by first character, so the scan tries only lengths some name could have there.
        lengths: dict[str, set[int]] = {}
        for key in self._names:
            lengths.setdefault(key[0], set()).add(len(key))
        self._lengths = {char: sorted(found, reverse=True) for char, found in lengths.items()}

    def __len__(self) -> int:
        return len(self._entries)

    # ---- building the tables ----------------------------------------------------------------------------------
    def _place(self, entry: GazetteerEntry) -> None:
        # The district an entry is in: its own column (any of the district's names), else a prefix of its name.
        district = self.jurisdiction.district_name(entry.district) or entry.district
        if district is None:
            district = self._prefix(entry.name).district
        street = self.jurisdiction.street(entry.street)
        self._district[entry] = district
        self._street[entry] = street.name if street else entry.street

    def _prefix(self, name: str) -> Prefix:
        found = self._keys.get(name)
        if found is None:
            found = self._keys[name] = self.jurisdiction.read(clean(name))
        return found

    def _key(self, name: str) -> str:
        return self._prefix(name).rest

    def _estate_key(self, name: str) -> str:
        key = self._key(name)
        core = re.sub(r"(?:小区|社区)$", "", key)
        return core if len(core) >= 2 else key

    def _add_name(self, key: str, name: _Name) -> None:
        if len(key) < 2:
            return
        names = self._names.setdefault(key, [])
        if name not in names:
            names.append(name)

    def _add_estate_name(self, written: str, key: str) -> None:
        if (written, key) in self._estate_names:
            return
        self._estate_names.add((written, key))
        says = self._prefix(written).district
        for form in (self._key(written), self._estate_key(written), clean(written)):
            self._estate_alias.setdefault(form, key)
            self._add_name(
                form, _Name("estate", key, 1.0, says if form == clean(written) != self._key(written) else None)
            )
            for bigram in _bigrams(form):
                self._estate_bigrams.setdefault(bigram, set()).add(form)

    def _add_building(self, entry: GazetteerEntry) -> None:
        estate, building = entry.estate, entry.building
        if not estate or not building:  # "百合豪庭3栋" says both
            parsed = parse_address(entry.name, jurisdiction=self.jurisdiction)
            estate, building = estate or parsed.estate, building or parsed.building
        if not estate or not building:
            raise InvalidInput(f"gazetteer building {entry.name!r}: needs its estate and building number")
        key = self._estate_key(estate)
        key = self._estate_alias.get(key, key)
        self._add_estate_name(estate, key)
        self._buildings.setdefault((key, normalize_building(building)), []).append(entry)

    def _road(self, name: str, entry: GazetteerEntry) -> Road:
        key = self._key(name)
        self._add_name(key, _Name("road", key, 1.0))
        roads = self._roads.setdefault(key, {})
        district = self._district[entry]
        if district is None:
            near = [
                (min(metres_between(entry.lon, entry.lat, e.lon, e.lat) for e in known), tagged)
                for tagged, road in roads.items()
                if tagged is not None and (known := road.entries + [e for _, e in road.doors])
            ]
            if near and min(near)[0] <= UNTAGGED_JOIN_M:
                district = self._district[entry] = min(near)[1]
        return roads.setdefault(district, Road(name, district))

    def _add_door(self, entry: GazetteerEntry) -> None:
        road, number = entry.road, entry.number
        if not road or number in (None, ""):  # "长湖街12号" says both
            parsed = parse_address(entry.name, jurisdiction=self.jurisdiction)
            road = road or parsed.road
            if number in (None, ""):
                number = f"{parsed.lane}弄" if parsed.lane else parsed.number
        if not road or number in (None, ""):
            raise InvalidInput(f"gazetteer door {entry.name!r}: needs its road and door number")
        self._road(road, entry).add_door(normalize_number(number), entry)

    # ---- reading an address -----------------------------------------------------------------------------------
    def _longer_name(self, text: str, start: int, end: int) -> bool:
        # Whether a known name starts at `start` and runs past `end` (南开大学 starts with the district's 南开).
        return any(
            length > end - start and text[start : start + length] in self._names
            for length in self._lengths.get(text[start], ())
        )

    def _scan(self, text: str) -> list[_Span]:
        # Every substring of the address looked up in the name table; the longest non-overlapping win.
        spans: list[_Span] = []
        n = len(text)
        for start in range(n):
            for length in self._lengths.get(text[start], ()):
                if start + length <= n and (names := self._names.get(text[start : start + length])):
                    if text.startswith("道", start + length) and text[start + length - 1] == "街":
                        names = [x for x in names if x.kind != "road"]  # 长虹街道 is a street office
                    if names:
                        spans.append(_Span(start, start + length, tuple(names)))
        # Longest first; of equal length a road first ("长江道和华苑路": 华苑路, not the estate 和华苑), then leftmost.
        spans.sort(key=lambda s: (s.start - s.end, s.of("road") is None, s.start))
        taken = [False] * n
        chosen = []
        for span in spans:
            if any(taken[span.start : span.end]):
                continue
            taken[span.start : span.end] = [True] * (span.end - span.start)
            chosen.append(span)
        return sorted(chosen, key=lambda s: s.start)

    def _query(self, address: str) -> _Query | GeocodeResult:
        normalized = require_text(address)
        prefix = self.jurisdiction.read(normalized, longer_name=self._longer_name)
        if prefix.foreign:
            note = f"{prefix.foreign} is outside the jurisdiction ({self.jurisdiction.describe() or 'not set'})"
            return GeocodeResult(False, None, None, None, 0.0, None, normalized, note=note)
        spans = self._scan(prefix.rest)
        codes = set()
        for span in spans:
            if name := span.of("community"):
                entries = self._allowed(self._communities[name.key], prefix.district, None)
                codes.update(e.community_code for e in entries if e.community_code)
        return _Query(normalized, prefix.rest, prefix.district, prefix.street, spans, codes)
