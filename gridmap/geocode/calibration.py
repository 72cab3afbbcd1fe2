"""Held-out checks of the geocoder's confidence: is an answer at 0.85 really within 300 m?

`build_heldout` makes a two-district test bed from the demo: the demo district (南开区) and a second one (西青区,
made from the demo's outline shifted 14 km west and shrunk, with its own estates) whose 16 roads carry the same
names, so many road names, and some estate names, exist twice. Chains (the same shop name many times), generic
names and district-qualified hospitals are added. Part of the gazetteer is hidden (doors, buildings, whole
estates); queries are written the way residents write them, in every form the matcher reads (door numbers, 弄,
支弄, 号楼, 室, bare numbers, ranges, junctions with offsets, POIs, chains beside a door) and with traps (a road
name inside a longer one, a generic word, a chain alone, another city, a repeated road without its district)
whose true place is far from anything in the gazetteer. `calibration_table` says, per confidence band, how far
the answers are from the truth. bench/bench_geocode.py prints it; a test checks the targets on a smaller run.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from shapely import affinity

from .entries import Area, GazetteerEntry, read_gazetteer_file, read_gazetteer_rows, tag_entries
from .jurisdiction import Jurisdiction
from .parse import apply_offset, metres_between
from .result import GeocodeResult

SECOND_DISTRICT = ("120111", "西青区")
SECOND_STREETS = (
    "西营门街道", "李七庄街道", "赤龙南街道", "津门湖街道", "中北镇", "杨柳青镇",
    "辛口镇", "张家窝镇", "精武镇", "大寺镇", "王稳庄镇", "凌口街道",
)  # fmt: skip
SHIFT = (-0.16, 0.01)  # degrees: about 14 km west, 1 km north
SHRINK = 0.8
CHAINS = ("蜜雪冰城", "瑞幸咖啡", "华润万家")
BANDS = ((0.95, 1.01), (0.9, 0.95), (0.85, 0.9), (0.8, 0.85), (0.7, 0.8), (0.5, 0.7), (0.0, 0.5))
TARGET_SHARE_300M = 0.95  # among answers at 0.85 or more
TARGET_MAX_M = 1000.0  # no answer at 0.85 or more further than this
HIGH = 0.85
FAR_AWAY = (0.3, 0.0)  # degrees added to a trap's place: its truth is nowhere near the gazetteer


@dataclass(frozen=True)
class Query:
    """An address as a resident writes it, where it really is, and which form it tests."""

    text: str
    lon: float
    lat: float
    form: str


@dataclass
class HeldOut:
    """A gazetteer with parts hidden, the queries written about the whole, and the jurisdiction of both."""

    entries: list[GazetteerEntry]
    queries: list[Query]
    jurisdiction: Jurisdiction
    hidden: int


# ---- the two districts ---------------------------------------------------------------------------------------
def areas_of(district: dict) -> tuple[list[Area], list[Area]]:
    """Return the district and street boundaries of a district's frames (as `gridmap.demo` reads them)."""

    def of(frame) -> list[Area]:
        return [
            Area(str(r.code), str(r.name), str(r.parent_code or "") or None, r.geometry) for r in frame.itertuples()
        ]

    return of(district["district"]), of(district["street"])


def second_district(first: dict) -> dict:
    """Return the demo district's frames moved 14 km west, shrunk, renamed 西青区 with its own streets."""
    code, name = SECOND_DISTRICT
    centre = first["district"].geometry.iloc[0].centroid
    moved = {}
    for level, frame in first.items():
        frame = frame.copy()
        frame["geometry"] = [
            affinity.translate(affinity.scale(g, SHRINK, SHRINK, origin=centre), *SHIFT) for g in frame.geometry
        ]
        for column in ("code", "parent_code"):
            frame[column] = [str(v).replace("120104", code, 1) if v else v for v in frame[column]]
        moved[level] = frame
    moved["district"]["name"] = [name]
    moved["street"]["name"] = list(SECOND_STREETS[: len(moved["street"])])
    moved["community"]["name"] = ["西" + n for n in moved["community"]["name"]]
    places = ("杨柳青", "精武", "中北", "大寺", "辛口", "王稳庄", "张家窝", "李七庄", "赤龙", "津门湖", "凌口")
    kinds = ("中学", "小学", "医院", "公园", "工业园", "物流园", "商贸城", "菜市场")
    own = (f"{p}{k}专属网格" for k in kinds for p in places)
    moved["grid"]["name"] = [
        next(own) if k == "专属" else n for n, k in zip(moved["grid"]["name"], moved["grid"]["kind"], strict=True)
    ]
    return moved


def _extras(entries: list[GazetteerEntry], district: str, rng: random.Random) -> list[GazetteerEntry]:
    # Chains beside doors, two district-qualified hospitals, and generic names nobody can match alone.
    doors = [e for e in entries if e.kind == "door"]
    added = []
    for chain in CHAINS:
        for door in rng.sample(doors, 8):
            lon, lat = apply_offset(door.lon, door.lat, (rng.choice("东西南北"), rng.uniform(5, 30)))
            added.append(GazetteerEntry("poi", chain, lon, lat, district=district))
    for name in (f"{district}中心医院", f"{district}人民医院", "诊所", "药店"):
        door = rng.choice(doors)
        added.append(GazetteerEntry("poi", name, door.lon, door.lat, district=district if "区" in name else None))
    return added


def two_districts(seed: int = 13) -> tuple[list[GazetteerEntry], Jurisdiction, dict[str, dict]]:
    """Return the full two-district gazetteer (tagged from the boundaries), its jurisdiction, and the frames."""
    from gridmap.demo.district import demo_boundary_dir, read_district
    from gridmap.demo.gazetteer import GAZETTEER_FILE, generate_gazetteer

    first = read_district(demo_boundary_dir())
    second = second_district(first)
    rng = random.Random(seed)
    entries_a = read_gazetteer_file(demo_boundary_dir() / GAZETTEER_FILE)
    entries_b = read_gazetteer_rows(generate_gazetteer(second, seed=seed))
    districts_a, streets_a = areas_of(first)
    districts_b, streets_b = areas_of(second)
    districts, streets = districts_a + districts_b, streets_a + streets_b
    entries = tag_entries(entries_a + entries_b, districts=districts, streets=streets)
    entries += _extras([e for e in entries if e.district == "南开区"], "南开区", rng)
    entries += _extras([e for e in entries if e.district == SECOND_DISTRICT[1]], SECOND_DISTRICT[1], rng)
    district_names = {a.code: a.name for a in districts}
    jurisdiction = Jurisdiction().with_data(
        districts=[(a.code, a.name) for a in districts],
        streets=[(a.name, district_names.get(a.parent_code or "")) for a in streets],
    )
    return entries, jurisdiction, {"南开区": first, SECOND_DISTRICT[1]: second}


# ---- hiding part of it, and writing queries ------------------------------------------------------------------
def build_heldout(*, queries: int = 6000, seed: int = 13, hide: float = 0.2) -> HeldOut:
    """Return the two-district gazetteer with `hide` of its doors and buildings (and some estates) hidden, and
    `queries` resident-style queries whose true places are known."""
    entries, jurisdiction, _ = two_districts(seed)
    rng = random.Random(seed + 1)
    estates = [e for e in entries if e.kind == "estate"]
    hidden_estates = {(e.name, e.district) for e in rng.sample(estates, len(estates) // 20)}

    def hidden(entry: GazetteerEntry) -> bool:
        if entry.kind in ("estate", "building") and (entry.estate or entry.name, entry.district) in hidden_estates:
            return True
        return entry.kind in ("door", "building") and rng.random() < hide

    hide_flags = [hidden(e) for e in entries]
    kept = [e for e, h in zip(entries, hide_flags, strict=True) if not h]
    writer = _Writer(entries, hide_flags, jurisdiction, rng)
    return HeldOut(kept, writer.write(queries), jurisdiction, sum(hide_flags))


_NUMERALS = "零一二三四五六七八九"
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _chinese(number: int) -> str:
    if number < 10:
        return _NUMERALS[number]
    tens, ones = divmod(number, 10)
    return ("" if tens == 1 else _NUMERALS[tens]) + "十" + (_NUMERALS[ones] if ones else "")


class _Writer:
    """Writes queries in the forms residents and 12345 operators use."""

    FORMS: ClassVar[dict[str, int]] = {  # form: weight
        "building": 14, "building_hidden": 5, "estate": 4, "estate_hidden": 2,
        "door": 10, "door_hidden": 8, "door_with_room": 4, "bare_number": 4, "sub_number": 3, "range": 4,
        "lane": 6, "junction": 6, "junction_offset": 4, "poi": 3, "district_hospital": 2, "chain_near_door": 4,
        "chain_on_road": 2, "community": 2, "repeated_road_no_district": 4, "repeated_estate_no_district": 3,
        "trap_longer_road": 2, "trap_generic": 2, "trap_chain_alone": 2, "trap_foreign": 2,
    }  # fmt: skip

    def __init__(self, entries, hide_flags, jurisdiction: Jurisdiction, rng: random.Random) -> None:
        self.rng = rng
        self.jurisdiction = jurisdiction
        self.by_kind: dict[str, list[GazetteerEntry]] = {}
        self.hidden: dict[str, list[GazetteerEntry]] = {}
        for entry, is_hidden in zip(entries, hide_flags, strict=True):
            (self.hidden if is_hidden else self.by_kind).setdefault(entry.kind, []).append(entry)
        every = [e for e in entries if e.kind == "door"]
        self.doors: dict[tuple[str | None, str], dict[int, GazetteerEntry]] = {}
        for door in every:
            if isinstance(door.number, int):
                self.doors.setdefault((door.district, door.road), {})[door.number] = door
        self.buildings: dict[tuple[str | None, str], list[GazetteerEntry]] = {}
        for entry in entries:
            if entry.kind == "building":
                self.buildings.setdefault((entry.district, entry.estate), []).append(entry)
        self.estate_districts: dict[str, set[str | None]] = {}
        for entry in entries:
            if entry.kind == "estate":
                self.estate_districts.setdefault(entry.name, set()).add(entry.district)
        self.chains = [e for e in entries if e.kind == "poi" and e.name in CHAINS]
        self.junctions = self._junctions()

    def write(self, count: int) -> list[Query]:
        forms, weights = zip(*self.FORMS.items(), strict=True)
        found: list[Query] = []
        while len(found) < count:
            query = getattr(self, "_" + self.rng.choices(forms, weights)[0])()
            if query is not None:
                found.append(query)
        return found

    # ---- prefixes ----------------------------------------------------------------------------------------
    def _prefix(self, entry: GazetteerEntry, *, district_required: bool = False) -> str:
        district = entry.district or ""
        short = district.removesuffix("区")
        street = entry.street or ""
        choices = [f"天津市{district}", district, short, f"天津{district}", f"{district}{street}", street]
        choices = [c for c in choices if c]
        if not district_required:
            choices += ["", "", "天津市"] if district == "南开区" else [""]
        return self.rng.choice([c for c in choices if c is not None])

    def _pick(self, kind: str, *, hidden: bool = False) -> GazetteerEntry | None:
        pool = (self.hidden if hidden else self.by_kind).get(kind, [])
        return self.rng.choice(pool) if pool else None

    def _query(self, text: str, lon: float, lat: float, form: str) -> Query:
        if self.rng.random() < 0.15:
            text = text.translate(_FULL_WIDTH)
        return Query(text, lon, lat, form)

    # ---- forms -------------------------------------------------------------------------------------------
    def _building_text(self, entry: GazetteerEntry) -> str:
        number = int(entry.building) if str(entry.building).isdigit() else None
        style = self.rng.choice(["numeral", "dash", "word", "room"]) if number else "word"
        unit, room = self.rng.randint(1, 4), self.rng.randint(101, 1802)
        if style == "numeral":
            return f"{entry.estate}{_chinese(number)}栋{unit}单元{room}"
        if style == "dash":
            return f"{entry.estate}{number}-{unit}-{room}"
        if style == "room":
            return f"{entry.estate}{number}号楼{unit}单元{room}室"
        return f"{entry.estate}{entry.building}{self.rng.choice(['幢', '号楼', '栋', '座'])}"

    def _building(self, hidden: bool = False) -> Query | None:
        entry = self._pick("building", hidden=hidden)
        if entry is None or (len(self.estate_districts.get(entry.estate, ())) > 1 and not hidden):
            return None
        prefix = self._prefix(entry, district_required=entry.district != "南开区")
        form = "building_hidden" if hidden else "building"
        return self._query(prefix + self._building_text(entry), entry.lon, entry.lat, form)

    def _building_hidden(self) -> Query | None:
        return self._building(hidden=True)

    def _estate(self, hidden: bool = False) -> Query | None:
        entry = self._pick("estate", hidden=hidden)
        if entry is None:
            return None
        buildings = self.buildings.get((entry.district, entry.name)) or [entry]
        truth = self.rng.choice(buildings)  # residents live in buildings, anywhere in the estate
        tail = self.rng.choice(["", "", "东门", "小区", "附近", "北侧"])
        prefix = self._prefix(entry, district_required=entry.district != "南开区")
        return self._query(f"{prefix}{entry.name}{tail}", truth.lon, truth.lat, "estate_hidden" if hidden else "estate")

    def _estate_hidden(self) -> Query | None:
        return self._estate(hidden=True)

    def _door_entry(self, hidden: bool) -> GazetteerEntry | None:
        entry = self._pick("door", hidden=hidden)
        return entry if entry is not None and isinstance(entry.number, int) else None

    def _door(self, hidden: bool = False, form: str = "door", tail: str = "号") -> Query | None:
        entry = self._door_entry(hidden)
        if entry is None:
            return None
        prefix = self._prefix(entry, district_required=True)
        return self._query(f"{prefix}{entry.road}{entry.number}{tail}", entry.lon, entry.lat, form)

    def _door_hidden(self) -> Query | None:
        return self._door(hidden=True, form="door_hidden")

    def _door_with_room(self) -> Query | None:
        tail = self.rng.choice(["号院3号楼201室", "号2单元", "号楼5层", "号(门面房)", "号东侧"])
        return self._door(hidden=self.rng.random() < 0.5, form="door_with_room", tail=tail)

    def _bare_number(self) -> Query | None:
        tail = self.rng.choice(["职业学院", "便民超市", "理发店", "门市部", ""])
        return self._door(hidden=self.rng.random() < 0.5, form="bare_number", tail=tail)

    def _sub_number(self) -> Query | None:
        entry = self._door_entry(self.rng.random() < 0.3)
        if entry is None:
            return None
        prefix = self._prefix(entry, district_required=True)
        text = f"{prefix}{entry.road}{entry.number}{self.rng.choice(['-2号', '号之1', '-1号'])}"
        return self._query(text, entry.lon, entry.lat, "sub_number")

    def _range(self) -> Query | None:
        entry = self._door_entry(self.rng.random() < 0.5)
        if entry is None:
            return None
        last = self.doors[(entry.district, entry.road)].get(entry.number + 2 * self.rng.randint(1, 3))
        if last is None:
            return None
        prefix = self._prefix(entry, district_required=True)
        text = f"{prefix}{entry.road}{entry.number}{self.rng.choice(['-', '至', '号-', '号至'])}{last.number}号"
        return self._query(text, (entry.lon + last.lon) / 2, (entry.lat + last.lat) / 2, "range")

    def _lane(self) -> Query | None:
        entry = self._door_entry(self.rng.random() < 0.5)
        if entry is None:
            return None
        prefix = self._prefix(entry, district_required=True)
        sub = self.rng.choice(["", "", f"{self.rng.randint(1, 5)}支弄"])
        house = self.rng.choice([f"{self.rng.randint(1, 30)}号楼{self.rng.randint(101, 1202)}室", "", "5号"])
        return self._query(f"{prefix}{entry.road}{entry.number}弄{sub}{house}", entry.lon, entry.lat, "lane")

    def _junctions(self) -> list[tuple[str, str, str, float, float]]:
        # Where an east-west and a north-south road of one district cross within both roads' known doors.
        roads: dict[tuple[str | None, str], list[GazetteerEntry]] = {}
        for (district, road), doors in self.doors.items():
            roads[(district, road)] = list(doors.values())
        found = []
        for (district, a), doors_a in roads.items():
            lats_a = [d.lat for d in doors_a]
            lons_a = [d.lon for d in doors_a]
            if max(lats_a) - min(lats_a) > 0.001:  # not east-west
                continue
            for (other, b), doors_b in roads.items():
                lons_b = [d.lon for d in doors_b]
                lats_b = [d.lat for d in doors_b]
                if other != district or max(lons_b) - min(lons_b) > 0.001:
                    continue
                lat, lon = statistics.fmean(lats_a), statistics.fmean(lons_b)
                margin = 0.002  # about 200 m inside each road's doors
                if (
                    min(lons_a) + margin < lon < max(lons_a) - margin
                    and min(lats_b) + margin < lat < max(lats_b) - margin
                ):
                    found.append((district, a, b, lon, lat))
        return found

    def _junction(self, offset: bool = False) -> Query | None:
        if not self.junctions:
            return None
        district, a, b, lon, lat = self.rng.choice(self.junctions)
        if self.rng.random() < 0.5:
            a, b = b, a
        text = self.rng.choice([f"{a}与{b}交叉口", f"{a}{b}路口", f"{a}和{b}交口", f"{a}与{b}十字路口"])
        form = "junction"
        if offset:
            direction, metres = self.rng.choice("东西南北"), self.rng.choice([50, 100, 150, 200])
            text += f"{direction}{self.rng.choice(['', '侧', '约'])}{metres}米"
            lon, lat = apply_offset(lon, lat, (direction, metres))
            form = "junction_offset"
        prefix = self._prefix(GazetteerEntry("road", a, lon, lat, district=district), district_required=True)
        return self._query(prefix + text, lon, lat, form)

    def _junction_offset(self) -> Query | None:
        return self._junction(offset=True)

    def _poi(self) -> Query | None:
        entry = self._pick("poi")
        if entry is None or entry.name in CHAINS or "医院" in entry.name or entry.name in ("诊所", "药店"):
            return None
        prefix = self._prefix(entry) if entry.district == "南开区" else self._prefix(entry, district_required=True)
        return self._query(prefix + entry.name + self.rng.choice(["", "", "东门", "附近"]), entry.lon, entry.lat, "poi")

    def _district_hospital(self) -> Query | None:
        pool = [e for e in self.by_kind.get("poi", []) if e.name.endswith(("中心医院", "人民医院"))]
        entry = self.rng.choice(pool)
        short = entry.name.removeprefix(entry.district or "")
        text = self.rng.choice([entry.name, f"天津市{entry.name}", f"{entry.district.removesuffix('区')}{short}"])
        return self._query(text, entry.lon, entry.lat, "district_hospital")

    def _chain_near_door(self) -> Query | None:
        entry = self._door_entry(self.rng.random() < 0.5)
        if entry is None:
            return None
        prefix = self._prefix(entry, district_required=True)
        chain = self.rng.choice(CHAINS)
        text = f"{prefix}{entry.road}{entry.number}号({chain}{self.rng.choice(['旁', '对面', '楼上'])})"
        return self._query(text, entry.lon, entry.lat, "chain_near_door")

    def _chain_on_road(self) -> Query | None:
        branch = self.rng.choice(self.chains)
        roads = {
            d.road
            for (district, _), doors in self.doors.items()
            if district == branch.district
            for d in doors.values()
            if metres_between(d.lon, d.lat, branch.lon, branch.lat) < 60
        }
        if not roads:
            return None
        prefix = self._prefix(branch, district_required=True)
        return self._query(f"{prefix}{sorted(roads)[0]}{branch.name}", branch.lon, branch.lat, "chain_on_road")

    def _community(self) -> Query | None:
        entry = self._pick("community")
        if entry is None:
            return None
        prefix = self._prefix(entry, district_required=entry.district != "南开区")
        return self._query(prefix + entry.name, entry.lon, entry.lat, "community")

    def _repeated_road_no_district(self) -> Query | None:
        entry = self._door_entry(self.rng.random() < 0.5)
        if entry is None or entry.district == "南开区":
            return None
        return self._query(f"{entry.road}{entry.number}号", entry.lon, entry.lat, "repeated_road_no_district")

    def _repeated_estate_no_district(self) -> Query | None:
        entry = self._pick("building")
        if entry is None or len(self.estate_districts.get(entry.estate, ())) < 2:
            return None
        return self._query(self._building_text(entry), entry.lon, entry.lat, "repeated_estate_no_district")

    # ---- traps: the true place is far from anything in the gazetteer --------------------------------------
    def _trap(self, text: str, form: str) -> Query:
        anchor = self.rng.choice(self.by_kind["road"])
        return self._query(text, anchor.lon + FAR_AWAY[0], anchor.lat + FAR_AWAY[1], form)

    def _trap_longer_road(self) -> Query | None:
        entry = self._door_entry(False)
        if entry is None:
            return None
        first = self.rng.choice(["张家", "李家", "老", "新", "小"])
        return self._trap(
            f"{self._prefix(entry, district_required=True)}{first}{entry.road}{entry.number}号", "trap_longer_road"
        )

    def _trap_generic(self) -> Query:
        name = self.rng.choice(["王氏", "康民", "仁和", "百姓", "惠民"]) + self.rng.choice(
            ["诊所", "药店", "医院", "超市"]
        )
        return self._trap(self.rng.choice(["", "南开区", "西青区"]) + name, "trap_generic")

    def _trap_chain_alone(self) -> Query:
        return self._trap(self.rng.choice(["", "南开区", "西青区"]) + self.rng.choice(CHAINS), "trap_chain_alone")

    def _trap_foreign(self) -> Query | None:
        entry = self._door_entry(False)
        if entry is None:
            return None
        city = self.rng.choice(["北京市朝阳区", "河北省廊坊市", "上海市浦东新区", "天津市河西区"])
        return self._trap(f"{city}{entry.road}{entry.number}号", "trap_foreign")


# ---- the tables ---------------------------------------------------------------------------------------------
def errors_m(queries: Sequence[Query], results: Sequence[GeocodeResult]) -> list[float | None]:
    """Return each answer's distance from the truth in metres (None when not found)."""
    return [
        metres_between(q.lon, q.lat, r.lon, r.lat) if r.found else None for q, r in zip(queries, results, strict=True)
    ]


def calibration_table(results: Sequence[GeocodeResult], errors: Sequence[float | None]) -> list[dict]:
    """Return per confidence band: answers, share within 100 m / 300 m / 1 km, median and largest error."""
    rows = []
    for low, high in BANDS:
        band = [e for r, e in zip(results, errors, strict=True) if r.found and low <= r.confidence < high]
        rows.append(_row(f"{low:.2f}–{min(high, 1):.2f}", band))
    missing = sum(not r.found for r in results)
    rows.append({"band": "not found", "answers": missing})
    return rows


def form_table(queries: Sequence[Query], results: Sequence[GeocodeResult], errors: Sequence[float | None]) -> list:
    """Return per query form: queries, share answered, share answered at ≥ 0.85, and their errors."""
    rows = []
    for form in dict.fromkeys(q.form for q in sorted(queries, key=lambda q: q.form)):
        picked = [(r, e) for q, r, e in zip(queries, results, errors, strict=True) if q.form == form]
        high = [e for r, e in picked if r.found and r.confidence >= HIGH]
        answered = [e for r, e in picked if r.found]
        rows.append(
            {
                "form": form,
                "queries": len(picked),
                "answered": len(answered) / len(picked),
                "high": len(high) / len(picked),
                "high_within_300m": (sum(e <= 300 for e in high) / len(high)) if high else None,
                "median_m": statistics.median(answered) if answered else None,
            }
        )
    return rows


def summary(results: Sequence[GeocodeResult], errors: Sequence[float | None]) -> dict:
    """Return the targets' figures: answers at ≥ 0.85, share within 300 m, how many beyond 1 km, the worst."""
    high = [e for r, e in zip(results, errors, strict=True) if r.found and r.confidence >= HIGH]
    return {
        "high": len(high),
        "within_300m": (sum(e <= 300 for e in high) / len(high)) if high else 1.0,
        "beyond_1km": sum(e > TARGET_MAX_M for e in high),
        "max_m": max(high, default=0.0),
    }


def _row(band: str, errors: list[float]) -> dict:
    if not errors:
        return {"band": band, "answers": 0}
    return {
        "band": band,
        "answers": len(errors),
        "within_100m": sum(e <= 100 for e in errors) / len(errors),
        "within_300m": sum(e <= 300 for e in errors) / len(errors),
        "within_1km": sum(e <= 1000 for e in errors) / len(errors),
        "median_m": statistics.median(errors),
        "max_m": max(errors),
    }


def worst(queries: Sequence[Query], results: Sequence[GeocodeResult], errors, *, limit: int = 10) -> list[tuple]:
    """Return the confident answers furthest from the truth (query, answer, metres), worst first."""
    high = [(e, q, r) for q, r, e in zip(queries, results, errors, strict=True) if r.found and r.confidence >= HIGH]
    high.sort(key=lambda t: -t[0])
    return [(q, r, e) for e, q, r in high[:limit]]


__all__ = ["HeldOut", "Query", "build_heldout", "calibration_table", "form_table", "summary", "two_districts", "worst"]
