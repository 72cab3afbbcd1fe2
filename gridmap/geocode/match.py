"""Reading an address against the gazetteer's tables, structure first, never a guess.

An address is cleaned (`normalise`), its leading place names are read by the jurisdiction (which remembers the
district or street named), then every substring is looked up in one dictionary of known names (longest first,
so no query scans the entries). What was found is read in this order, so structure wins over loose names:

1. a junction of two known roads ("A路与B路交叉口东150米");
2. a road with a number after it (号, 弄, 支弄, 号楼/栋, ranges, a bare number): the door, lane, or a point
   interpolated between known numbers;
3. names of estates, buildings and POIs: near a door or road they only refine its point (a chain's branch
   within REFINE_M, an estate within NEAR_M); far from it they lower the confidence instead of moving the
   point kilometres; alone they answer if exactly one place of that name lies in the districts allowed;
4. a road alone, a fuzzy estate name, a community.

A district or street named in the address restricts candidates to it. Several equally good places are "not
found" with candidates, never a guess; generic words (医院, 诊所 ...) never match alone (they are not indexed).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from .entries import GazetteerEntry
from .jurisdiction import Jurisdiction
from .normalise import normalize_building
from .parse import (
    BUILDING,
    CONNECTORS,
    JUNCTION_WORDS,
    apply_offset,
    metres_between,
    parse_address,
    read_number,
    read_offset,
)
from .result import CONFIDENCE, GeocodeResult
from .roads import Road, Spot, junction

# A name followed by one of these is another place (南开大学 → 南开大学附属医院): the match is only partial.
_OTHER_PLACE = re.compile(r"^[^\d]{0,6}?(?:医院|诊所|学校|小学|中学|幼儿园|分店|分院|校区|超市|药店|银行|公司|店)")
# Characters that may stand right before a road's name without being part of it ("…区卫津路", "…口卫津路").
_BEFORE_ROAD = set("区道村镇乡市省县号室楼栋门口旁边侧近在于与和及跟同至到的园苑里庭居府湾城寓墅-")
CHAIN_MIN = 3  # this many places of one name in the allowed districts: a chain (or a generic name)
SAME_PLACE_M = 300  # entries of one name closer than this are one place
NEAR_M = 500  # a named estate or POI this close to the door agrees with it
REFINE_M = 150  # a chain's branch this close to the door or road is the one meant
FUZZY_THRESHOLD = 0.7  # difflib ratio for a misspelt estate ("百合豪亭" vs "百合豪庭" is 0.75)
_SUGGESTION_THRESHOLD = 0.5
_SUGGESTIONS = 5
_COMMON_BIGRAM = 2000  # a bigram shared by more estates than this ("花园") says nothing about which one


@dataclass(frozen=True)
class _Name:
    kind: str  # estate, road, poi, community
    key: str  # canonical key in that kind's table
    quality: float  # 1 for a full name or alias, less for a core ("金源" for "金源社区")
    district: str | None = None  # a full name that says its district ("西青区人民医院") limits the key to it


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    names: tuple[_Name, ...]

    def of(self, kind: str) -> _Name | None:
        return next((n for n in self.names if n.kind == kind), None)


@dataclass
class _Doors:
    spot: Spot | None = None  # the door (or lane, range) read
    roads_alone: list = field(default_factory=list)  # (span, roads) of roads named without a usable number
    ambiguous: GeocodeResult | None = None  # the same road and number in several districts: not found …
    rivals: list[Spot] = field(default_factory=list)  # … with these places


@dataclass
class _Query:
    normalized: str  # the cleaned address
    text: str  # what is left after the jurisdiction's prefixes
    district: str | None
    street: str | None
    spans: list[_Span]
    codes: set[str]  # community codes named


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


class Matcher:
    """The matching half of the Gazetteer: reads a query against the tables `index.Gazetteer` builds."""

    # The tables (built by index.Gazetteer.__init__).
    jurisdiction: Jurisdiction
    _names: dict[str, list[_Name]]  # every known name → what it names
    _district: dict[GazetteerEntry, str | None]  # an entry's district (its column, its name, or the boundaries)
    _street: dict[GazetteerEntry, str | None]
    _estates: dict[str, list[GazetteerEntry]]
    _buildings: dict[tuple[str, str], list[GazetteerEntry]]  # (estate key, building) → entries
    _roads: dict[str, dict[str | None, Road]]  # road key → district → road
    _pois: dict[str, list[GazetteerEntry]]
    _communities: dict[str, list[GazetteerEntry]]
    _estate_bigrams: dict[str, set[str]]
    _estate_alias: dict[str, str]
    _junctions: dict[tuple[int, int], Spot | None]

    def _is_road(self, q: _Query, span: _Span) -> bool:
        # A known road inside a longer road's name is not that road: "张家花园路" is not "花园路".
        if span.of("road") is None:
            return False
        if span.start == 0:
            return True
        before = q.text[span.start - 1]
        after_span = any(other.end == span.start for other in q.spans)
        return after_span or before in _BEFORE_ROAD or not ("\u4e00" <= before <= "\u9fff")

    # ---- filters ----------------------------------------------------------------------------------------------
    def _allowed(self, entries: list[GazetteerEntry], district: str | None, street: str | None) -> list:
        # A district named is a hard limit (untagged entries pass); a street only narrows when it leaves something.
        if district is not None:
            entries = [e for e in entries if self._district[e] in (None, district)]
        if street is not None:
            narrowed = [e for e in entries if self._street[e] == street]
            entries = narrowed or entries
        return entries

    def _roads_for(self, q: _Query, key: str) -> list[Road]:
        roads = list(self._roads.get(key, {}).values())
        if q.district is not None:
            roads = [r for r in roads if r.district in (None, q.district)]
        return [r for r in roads if r.points]

    @staticmethod
    def _groups(entries: list[GazetteerEntry]) -> list[list[GazetteerEntry]]:
        # Entries of one name within SAME_PLACE_M of a group's first entry are one place.
        groups: list[list[GazetteerEntry]] = []
        for entry in entries:
            for group in groups:
                if metres_between(group[0].lon, group[0].lat, entry.lon, entry.lat) <= SAME_PLACE_M:
                    group.append(entry)
                    break
            else:
                groups.append([entry])
        return groups

    def _narrow(self, q: _Query, groups: list[list[GazetteerEntry]], anchor: Spot | None) -> list[list]:
        # Cues that choose between places of one name: a community named, a nearby door or road.
        if len(groups) > 1 and q.codes:
            named = [g for g in groups if any(e.community_code in q.codes for e in g)]
            groups = named or groups
        if len(groups) > 1 and anchor is not None:
            near = [g for g in groups if metres_between(anchor.lon, anchor.lat, g[0].lon, g[0].lat) <= NEAR_M]
            groups = near or groups
        return groups

    # ---- the answer -------------------------------------------------------------------------------------------
    def geocode(self, address: str) -> GeocodeResult:
        """Return the best answer for `address` (see the module docstring for the order)."""
        q = self._query(address)
        if isinstance(q, GeocodeResult):
            return q
        road_spans = [s for s in q.spans if self._is_road(q, s)]
        if result := self._junction(q, road_spans):
            return result
        doors = self._door(q, road_spans)
        if doors.ambiguous is not None:
            doors.spot = self._settle_roads(q, doors.rivals)
            if doors.spot is None:
                return doors.ambiguous
        if doors.spot is not None:
            return self._refine(q, doors.spot)
        if doors.roads_alone:
            return self._near_road(q, doors.roads_alone)
        return self._unplaced(q, self._by_name(q))

    def _unplaced(self, q: _Query, result: GeocodeResult) -> GeocodeResult:
        # A name alone, in a jurisdiction of several districts, with no district, street or community named:
        # the same name may well exist, unlisted, in another district, so a person checks the point.
        if (
            not result.found
            or result.confidence <= CONFIDENCE["unplaced"]
            or len(self.jurisdiction.districts) < 2
            or q.district is not None
            or q.codes
            or any(name.district for span in q.spans for name in span.names)
        ):
            return result
        note = "; ".join(filter(None, [result.note, "no district named"]))
        return dataclasses.replace(result, confidence=CONFIDENCE["unplaced"], note=note)

    def _found(self, q: _Query, spot: Spot, level: str, **extra) -> GeocodeResult:
        own = self._district.get(spot.entry)
        district = extra.pop("district", None) or own or q.district
        confidence = extra.pop("confidence", spot.confidence)
        note = extra.pop("note", spot.note)
        if q.district is not None and own is None and len(self.jurisdiction.districts) > 1:
            # The address names a district but the gazetteer does not say where this entry is: unverified.
            confidence = min(confidence, CONFIDENCE["unplaced"])
            note = "; ".join(filter(None, [note, f"the gazetteer does not say which district {spot.entry.name} is in"]))
        return GeocodeResult(
            True,
            spot.lon,
            spot.lat,
            level,
            round(confidence, 3),
            spot.entry,
            q.normalized,
            list(extra.pop("candidates", spot.neighbours)),
            district=district,
            matched=spot.matched,
            note=note,
        )

    def _entry_spot(self, entry: GazetteerEntry, confidence: float) -> Spot:
        return Spot(entry.lon, entry.lat, confidence, entry, entry.name)

    @staticmethod
    def _not_found(q: _Query, candidates: list[GazetteerEntry], note: str | None = None) -> GeocodeResult:
        shown = candidates[: 2 * _SUGGESTIONS]
        return GeocodeResult(False, None, None, None, 0.0, None, q.normalized, shown, district=q.district, note=note)

    # ---- junctions --------------------------------------------------------------------------------------------
    def _junction(self, q: _Query, road_spans: list[_Span]) -> GeocodeResult | None:
        for first, second in itertools.pairwise(road_spans):
            between = q.text[first.end : second.start]
            word = q.text.startswith(JUNCTION_WORDS, second.end)
            if between not in CONNECTORS or not (word or between):
                continue
            if read_number(q.text, first.end) or (not word and read_number(q.text, second.end)):
                continue
            pairs = []
            for a in self._roads_for(q, first.of("road").key):
                for b in self._roads_for(q, second.of("road").key):
                    if a.district == b.district or None in (a.district, b.district):
                        pair = (id(a), id(b))
                        if pair not in self._junctions:  # two roads meet in one place: worked out once
                            self._junctions[pair] = junction(a, b)
                        spot = self._junctions[pair]
                        if spot is not None:
                            pairs.append(spot)
            if not pairs:
                continue
            pairs.sort(key=lambda s: -s.confidence)
            best = [s for s in pairs if s.confidence == pairs[0].confidence]
            if len(self._groups([s.entry for s in best])) > 1:
                return self._not_found(
                    q, [s.entry for s in best], f"{best[0].matched} exists in several districts: name the district"
                )
            return self._found(q, self._offset(best[0], read_offset(q.text, second.end)), "junction")
        return None

    # ---- doors ------------------------------------------------------------------------------------------------
    def _door(self, q: _Query, road_spans: list[_Span]) -> _Doors:
        """Read the first road followed by a number: its door, or why not (several districts, no number)."""
        found = _Doors()
        for span in road_spans:
            roads = self._roads_for(q, span.of("road").key)
            if not roads:
                continue
            number = read_number(q.text, span.end)
            spots = [(road, road.door(number)) for road in roads] if number is not None else []
            spots = [(road, spot) for road, spot in spots if spot is not None]
            if not spots:
                found.roads_alone.append((span, roads))
                continue
            offset = read_offset(q.text, number.end)
            spots = sorted(((road, self._offset(spot, offset)) for road, spot in spots), key=lambda p: -p[1].confidence)
            if len(spots) == 1:
                found.spot = spots[0][1]
                return found
            top = [s for _, s in spots if s.confidence == spots[0][1].confidence]
            note = f"{spots[0][0].name} is in several districts ({self._district_list(r.district for r, _ in spots)})"
            if len(top) == 1:
                # The number fits one of the roads best; the others are still possible, so a person checks.
                confidence = min(top[0].confidence, CONFIDENCE["one_of_several"])
                others = tuple(s.entry for _, s in spots[1:])
                found.spot = dataclasses.replace(top[0], confidence=confidence, note=note, neighbours=others)
                return found
            found.rivals = [s for _, s in spots]
            found.ambiguous = self._not_found(q, [s.entry for s in found.rivals], note + ": name the district")
            return found
        return found

    @staticmethod
    def _offset(spot: Spot, offset: tuple[str, float] | None) -> Spot:
        if offset is None:
            return spot
        lon, lat = apply_offset(spot.lon, spot.lat, offset)
        matched = f"{spot.matched}{offset[0]}{offset[1]:.0f}米"
        return Spot(lon, lat, spot.confidence, spot.entry, matched, spot.note, spot.neighbours)

    @staticmethod
    def _district_list(districts: Iterable[str | None]) -> str:
        return ", ".join(sorted({d or "?" for d in districts}))

    def _settle_roads(self, q: _Query, rivals: list[Spot]) -> Spot | None:
        # Same road and number in several districts: a named estate, POI or community near one of them decides.
        named = []
        for span in q.spans:
            for name in span.names:
                table = {"estate": self._estates, "poi": self._pois, "community": self._communities}.get(name.kind)
                if table is not None:
                    named += table.get(name.key, [])
        near = [s for s in rivals if any(metres_between(s.lon, s.lat, e.lon, e.lat) <= NEAR_M for e in named)]
        return near[0] if len(near) == 1 else None

    def _refine(self, q: _Query, spot: Spot) -> GeocodeResult:
        # A door is the anchor: names in the address only refine it nearby, and lower confidence when far.
        conflict = None
        for span in q.spans:
            if estate := span.of("estate"):
                found = self._estate_near(q, estate, span, spot)
                if found is not None:
                    result, distance = found
                    if distance <= NEAR_M and result.level == "building":
                        return result
                    if distance > NEAR_M:
                        conflict = f"{result.matched} is {distance:.0f} m from {spot.matched}"
                    continue
            if poi := span.of("poi"):
                entries = self._allowed(self._pois[poi.key], poi.district or q.district, q.street)
                if not entries:
                    continue
                nearest = min(entries, key=lambda e: metres_between(spot.lon, spot.lat, e.lon, e.lat))
                distance = metres_between(spot.lon, spot.lat, nearest.lon, nearest.lat)
                several = len(self._groups(entries)) >= 2
                if distance <= (REFINE_M if several else NEAR_M):
                    confidence = max(spot.confidence, CONFIDENCE["poi"]) if not several else spot.confidence
                    return self._found(
                        q,
                        self._entry_spot(nearest, confidence),
                        "poi",
                        note=f"{nearest.name} at {spot.matched}",
                        candidates=[spot.entry],
                    )
                if not several:
                    conflict = f"{nearest.name} is {distance:.0f} m from {spot.matched}"
        if conflict:
            return self._found(q, spot, "door", confidence=min(spot.confidence, CONFIDENCE["conflict"]), note=conflict)
        return self._found(q, spot, "door")

    def _estate_near(self, q: _Query, name: _Name, span: _Span, anchor: Spot):
        # The estate (or its building) of this name nearest the anchor, and how far it is.
        answer = self._estate(q, name, span, anchor)
        if answer is None or not answer.found:
            return None
        return answer, metres_between(anchor.lon, anchor.lat, answer.lon, answer.lat)

    # ---- roads without a number ------------------------------------------------------------------------------
    def _near_road(self, q: _Query, roads_alone: list[tuple[_Span, list[Road]]]) -> GeocodeResult:
        span, roads = roads_alone[0]
        # Estates and POIs named beside a road: the ones on that road are meant.
        for other in q.spans:
            if other is span:
                continue
            if estate := other.of("estate"):
                answer = self._estate(q, estate, other, None, roads=roads)
                if answer is not None and answer.found:
                    return answer
            if poi := other.of("poi"):
                entries = self._allowed(self._pois[poi.key], poi.district or q.district, q.street)
                on_road = [e for e in entries if min(r.distance_to(e.lon, e.lat) for r in roads) <= REFINE_M]
                groups = self._groups(on_road)
                if len(groups) == 1:
                    entry = groups[0][0]
                    return self._found(
                        q, self._entry_spot(entry, CONFIDENCE["poi"]), "poi", note=f"{entry.name} on {roads[0].name}"
                    )
        groups = self._road_groups(roads)
        if len(groups) > 1:
            where = self._district_list(r.district for r in roads)
            note = f"{roads[0].name} is in several districts ({where}): name the district"
            return self._not_found(q, [g[0].middle().entry for g in groups], note)
        by_name = self._by_name(q, exclude=span)
        if by_name.found and by_name.confidence > CONFIDENCE["road"]:
            return by_name
        return self._found(q, roads[0].middle(), "road")

    @staticmethod
    def _road_groups(roads: list[Road]) -> list[list[Road]]:
        # Roads of one name in different districts are different roads unless their known points meet.
        groups: list[list[Road]] = []
        for road in roads:
            for group in groups:
                if group[0].shape.distance(road.shape) <= 1000:
                    group.append(road)
                    break
            else:
                groups.append([road])
        return groups

    # ---- names alone ------------------------------------------------------------------------------------------
    def _by_name(self, q: _Query, exclude: _Span | None = None) -> GeocodeResult:
        spans = [s for s in q.spans if s is not exclude]
        estates = [(s, s.of("estate")) for s in spans if s.of("estate")]
        not_found: list[GeocodeResult] = []
        for span, name in reversed(estates):
            answer = self._estate(q, name, span, None)
            if answer is not None and answer.found and answer.level == "building":
                return answer
            if answer is not None and not answer.found:
                not_found.append(answer)
        for span in reversed(spans):
            if poi := span.of("poi"):
                answer = self._poi(q, poi, span)
                if answer.found:
                    return answer
                not_found.append(answer)
        for span, name in reversed(estates):
            answer = self._estate(q, name, span, None)
            if answer is not None and answer.found:
                return answer
        fallbacks = [self._fuzzy_estate(q) if not estates else None]
        for span in reversed(spans):
            if name := span.of("community"):
                entries = self._allowed(self._communities[name.key], name.district or q.district, q.street)
                confidence = CONFIDENCE["community"] * name.quality
                groups = self._narrow(q, self._groups(entries), None)
                if len(groups) == 1:
                    fallbacks.append(self._found(q, self._entry_spot(groups[0][0], confidence), "community"))
                elif groups:
                    fallbacks.append(self._not_found(q, [g[0] for g in groups], f"several communities {name.key}"))
        results = [r for r in fallbacks if r is not None and r.found]
        if results:
            return max(results, key=lambda r: r.confidence)  # max keeps the first of equals: list order
        for answer in not_found + [r for r in fallbacks if r is not None]:
            if answer.candidates or answer.note:
                return answer
        return self._not_found(q, [])

    def _estate(self, q: _Query, name: _Name, span: _Span, anchor: Spot | None, roads=None) -> GeocodeResult | None:
        tail = re.sub(r"^(?:小区|社区)", "", q.text[span.end :])
        building = _building_at_start(tail)
        district = name.district or q.district
        estates = self._allowed(self._estates.get(name.key, []), district, q.street)
        buildings = self._buildings.get((name.key, building), []) if building else []
        every = self._groups(estates + self._allowed(buildings, district, q.street))
        places = every
        if roads:
            places = [g for g in places if min(r.distance_to(g[0].lon, g[0].lat) for r in roads) <= NEAR_M] or places
        places = self._narrow(q, places, anchor)
        if not places:
            return None
        rivals = [g[0] for g in every if g not in places]
        with_building = [g for g in places if any(e.kind == "building" for e in g)]
        if building and with_building:
            entry = next(e for e in with_building[0] if e.kind == "building")
            confidence = CONFIDENCE["building"] * name.quality
            if len(places) > 1:
                # Only one estate of the name has this building in the list; the other may have it unlisted.
                confidence = min(confidence, CONFIDENCE["one_of_several"])
            others = [g[0] for g in places if g is not with_building[0]] + rivals
            return self._found(q, self._entry_spot(entry, confidence), "building", candidates=others)
        if len(places) > 1:
            where = self._district_list(self._district[g[0]] for g in places)
            return self._not_found(q, [g[0] for g in places], f"several places are called {name.key} ({where})")
        entry = next((e for e in places[0] if e.kind == "estate"), places[0][0])  # buildings only: where they are
        confidence = CONFIDENCE["estate"] * name.quality
        return self._found(q, self._entry_spot(entry, confidence), "estate", candidates=rivals)

    def _poi(self, q: _Query, name: _Name, span: _Span) -> GeocodeResult:
        district = name.district or q.district
        entries = self._allowed(self._pois[name.key], district, q.street)
        if not entries:
            others = self._pois[name.key]
            return self._not_found(q, others, f"no {name.key} in {district}" if district else None)
        groups = self._narrow(q, self._groups(entries), None)
        if len(groups) >= CHAIN_MIN:
            return self._not_found(q, [g[0] for g in groups], f"{name.key} has {len(groups)} places: give the road")
        if len(groups) > 1:
            return self._not_found(q, [g[0] for g in groups], f"several places are called {name.key}")
        confidence = CONFIDENCE["poi"] * name.quality
        note = None
        if _OTHER_PLACE.match(q.text[span.end :]):
            confidence *= 0.75  # "南开大学附属医院" is not 南开大学
            note = f"the address names something at or near {groups[0][0].name}"
        return self._found(q, self._entry_spot(groups[0][0], confidence), "poi", note=note)

    def _fuzzy_estate(self, q: _Query) -> GeocodeResult | None:
        parsed = parse_address(q.text)
        written = parsed.estate or parsed.rest  # "百合豪亭" alone has no estate suffix to be recognised by
        if not written:
            return None
        query = self._estate_key(written)
        counts: Counter[str] = Counter()
        for bigram in _bigrams(query):
            forms = self._estate_bigrams.get(bigram, ())
            if len(forms) <= _COMMON_BIGRAM:
                counts.update(forms)
        scored = sorted(
            ((SequenceMatcher(None, query, form).ratio(), form) for form, _ in counts.most_common(20)), reverse=True
        )
        if not scored or scored[0][0] < FUZZY_THRESHOLD:
            suggestions: list[GazetteerEntry] = []
            for ratio, form in scored:
                key = self._estate_alias[form]
                if ratio >= _SUGGESTION_THRESHOLD:
                    found = self._allowed(self._estates.get(key, []), q.district, q.street)
                    suggestions += [e for e in found if e not in suggestions]
            return self._not_found(q, suggestions[:_SUGGESTIONS])
        ratio, form = scored[0]
        key = self._estate_alias[form]
        building = normalize_building(parsed.building) if parsed.building else None
        cap = CONFIDENCE["fuzzy"]
        if building and (entries := self._allowed(self._buildings.get((key, building), []), q.district, q.street)):
            confidence = min(cap, CONFIDENCE["building"] * ratio)
            return self._found(q, self._entry_spot(entries[0], confidence), "building", note=f"read as {form}")
        if entries := self._allowed(self._estates.get(key, []), q.district, q.street):
            confidence = min(cap, CONFIDENCE["estate"] * ratio)
            return self._found(q, self._entry_spot(entries[0], confidence), "estate", note=f"read as {form}")
        return None


def _building_at_start(tail: str) -> str | None:
    m = BUILDING.match(tail)
    if not m:
        return None
    return normalize_building(m.group("building") or m.group("b3") or m.group("b2") or m.group("bn"))
