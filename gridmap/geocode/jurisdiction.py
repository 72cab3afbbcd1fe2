"""The jurisdiction a deployment serves: province, city, districts and streets, with the names people use.

It does two things with an address: strips the leading place names that say nothing within the jurisdiction
("天津市", "天津"), and remembers the district or street that was named ("南开区", "南开", "长虹街道") so the
matcher can restrict candidates to it. An address that names a province, city or district outside the
jurisdiction is recognised as foreign instead of being matched to a same-named road at home.

The setting (GRIDMAP_JURISDICTION) is written `province=广东省|广东; city=惠州市|惠州; districts=惠城区|惠城,
惠阳区|惠阳`: parts separated by ";", alternative names by "|", districts by ",". Districts and streets are also
taken from the loaded boundaries and the gazetteer's district/street columns, and a province from the first two
digits of a GB/T 2260 district code, so a deployment that loads its data needs no setting at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gridmap.errors import ConfigError

from .normalise import ADMIN_CHAIN, NAME_CONTINUATIONS, clean

# GB/T 2260 province-level divisions by the first two digits of a division code: (name, short names).
PROVINCES = {
    "11": ("北京市", ("北京",)),
    "12": ("天津市", ("天津",)),
    "13": ("河北省", ("河北",)),
    "14": ("山西省", ("山西",)),
    "15": ("内蒙古自治区", ("内蒙古",)),
    "21": ("辽宁省", ("辽宁",)),
    "22": ("吉林省", ("吉林",)),
    "23": ("黑龙江省", ("黑龙江",)),
    "31": ("上海市", ("上海",)),
    "32": ("江苏省", ("江苏",)),
    "33": ("浙江省", ("浙江",)),
    "34": ("安徽省", ("安徽",)),
    "35": ("福建省", ("福建",)),
    "36": ("江西省", ("江西",)),
    "37": ("山东省", ("山东",)),
    "41": ("河南省", ("河南",)),
    "42": ("湖北省", ("湖北",)),
    "43": ("湖南省", ("湖南",)),
    "44": ("广东省", ("广东",)),
    "45": ("广西壮族自治区", ("广西",)),
    "46": ("海南省", ("海南",)),
    "50": ("重庆市", ("重庆",)),
    "51": ("四川省", ("四川",)),
    "52": ("贵州省", ("贵州",)),
    "53": ("云南省", ("云南",)),
    "54": ("西藏自治区", ("西藏",)),
    "61": ("陕西省", ("陕西",)),
    "62": ("甘肃省", ("甘肃",)),
    "63": ("青海省", ("青海",)),
    "64": ("宁夏回族自治区", ("宁夏",)),
    "65": ("新疆维吾尔自治区", ("新疆",)),
    "71": ("台湾省", ("台湾",)),
    "81": ("香港特别行政区", ("香港",)),
    "82": ("澳门特别行政区", ("澳门",)),
}
MUNICIPALITIES = ("11", "12", "31", "50")  # the province is also the city
_SUFFIX = re.compile(r"(?:新区|自治县|区|县|市|旗)$")
_SETTING_PARTS = ("province", "city", "districts")


@dataclass(frozen=True)
class Place:
    """A named place with the other names people write for it; `parent` is a street's district."""

    name: str
    aliases: tuple[str, ...] = ()
    parent: str | None = None

    @property
    def forms(self) -> tuple[str, ...]:
        """Return every comparable form of the name: the name, its aliases and its name without 区/县/市."""
        found = [clean(self.name), *(clean(a) for a in self.aliases)]
        short = _SUFFIX.sub("", found[0])
        if len(short) >= 2 and short != found[0]:
            found.append(short)
        return tuple(dict.fromkeys(f for f in found if f))


@dataclass(frozen=True)
class Prefix:
    """What the start of an address said: the district and street named, and what is left to match."""

    rest: str
    district: str | None = None
    street: str | None = None
    foreign: str | None = None  # a place outside the jurisdiction, as written


@dataclass(frozen=True)
class Jurisdiction:
    """Province, city, districts and streets of a deployment (any of them may be unknown)."""

    province: Place | None = None
    city: Place | None = None
    districts: tuple[Place, ...] = ()
    streets: tuple[Place, ...] = ()
    _forms: list = field(default_factory=list, init=False, repr=False, compare=False)
    _district_of: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _street_of: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_first: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        forms = []
        for kind, places in (
            ("province", [self.province] if self.province else []),
            ("city", [self.city] if self.city else []),
            ("district", self.districts),
            ("street", self.streets),
        ):
            for place in places:
                for position, form in enumerate(place.forms):
                    forms.append((form, kind, place, position > 0))
        forms.sort(key=lambda f: len(f[0]), reverse=True)  # longest first: 南开区 before 南开
        self._forms.extend(forms)
        for form in forms:  # by first character, so reading an address tries only the forms that could start there
            self._by_first.setdefault(form[0][0], []).append(form)
        self._district_of.update({form: place.name for place in self.districts for form in place.forms})
        self._street_of.update({form: place for place in self.streets for form in place.forms})

    # ---- building one ----------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | None, *, setting: str = "GRIDMAP_JURISDICTION") -> Jurisdiction:
        """Read the setting `province=…|…; city=…|…; districts=…|…, …|…` (every part optional)."""
        if not text or not text.strip():
            return cls()
        values: dict[str, str] = {}
        for part in re.split(r"[;；]", text):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or key not in _SETTING_PARTS:
                raise ConfigError(
                    f"{setting}: {part.strip()!r} is not one of {', '.join(p + '=…' for p in _SETTING_PARTS)} "
                    "(example: province=广东省|广东; city=惠州市|惠州; districts=惠城区|惠城, 惠阳区)"
                )
            if key in values:
                raise ConfigError(f"{setting}: {key} is given twice")
            values[key] = value

        def place(value: str, what: str) -> Place:
            names = [n.strip() for n in re.split(r"[|｜]", value) if n.strip()]
            if not names:
                raise ConfigError(f"{setting}: {what} has no name")
            for name in names:
                if len(name) > 50 or not clean(name):
                    raise ConfigError(f"{setting}: {what} name {name!r} is empty or longer than 50 characters")
            return Place(names[0], tuple(names[1:]))

        districts = tuple(
            place(d, "a district") for d in re.split(r"[,，、]", values.get("districts", "")) if d.strip()
        )
        return cls(
            province=place(values["province"], "province") if "province" in values else None,
            city=place(values["city"], "city") if "city" in values else None,
            districts=districts,
        )

    def with_data(
        self,
        *,
        districts: Iterable[tuple[str | None, str]] = (),
        streets: Iterable[tuple[str, str | None]] = (),
    ) -> Jurisdiction:
        """Add what the loaded data says: districts as (GB/T 2260 code or None, name), streets as (name, district).

        Declared names win; a district code's first two digits give the province (and the city for the four
        municipalities) when the setting does not say them.
        """
        known = {place.name for place in self.districts}
        added = list(self.districts)
        province, city = self.province, self.city
        for code, name in districts:
            if not name:
                continue
            canonical = self.district_name(name)
            if canonical is None and name not in known:
                known.add(name)
                added.append(Place(name))
            prefix = (code or "")[:2]
            if len(code or "") >= 6 and prefix in PROVINCES:
                official, short = PROVINCES[prefix]
                province = province or Place(official, short)
                if prefix in MUNICIPALITIES:
                    city = city or Place(official, short)
        with_districts = Jurisdiction(province=province, city=city, districts=tuple(added))
        street_places = {place.name: place for place in self.streets}
        for name, district in streets:
            if name and name not in street_places:
                parent = (with_districts.district_name(district) or district) if district else None
                street_places[name] = Place(name, parent=parent)
        return Jurisdiction(province=province, city=city, districts=tuple(added), streets=tuple(street_places.values()))

    def describe(self) -> str:
        """Return the jurisdiction in the setting's own syntax (for messages and `--help`)."""
        parts = []
        for key, place in (("province", self.province), ("city", self.city)):
            if place:
                parts.append(f"{key}={'|'.join((place.name, *place.aliases))}")
        if self.districts:
            parts.append("districts=" + ", ".join("|".join((d.name, *d.aliases)) for d in self.districts))
        return "; ".join(parts)

    # ---- reading addresses -----------------------------------------------------------------------------------
    def district_name(self, value: str | None) -> str | None:
        """Return the district's name for any of its names ("南开" → "南开区"), or None when it is not ours."""
        if not value:
            return None
        found = self._district_of.get(value)
        return found if found is not None else self._district_of.get(clean(value))

    def street(self, value: str | None) -> Place | None:
        """Return the street for any of its names, or None when it is not known."""
        if not value:
            return None
        found = self._street_of.get(value)
        return found if found is not None else self._street_of.get(clean(value))

    def read(self, text: str, *, longer_name: Callable[[str, int, int], bool] = lambda t, s, e: False) -> Prefix:
        """Strip the leading place names of a cleaned address and say which district and street they name.

        A name is not stripped when it is the start of a longer name (`longer_name(text, start, end)` says so for
        the gazetteer's names, NAME_CONTINUATIONS for roads and institutions: 天津大道, 南开大学), nor when it is
        all there is. A generic province/city/district chain that is not ours ("北京市朝阳区") marks the address
        foreign when the jurisdiction declares any of its own; unknown chains are just stripped.
        """
        position, district, street, after_city = 0, None, None, False
        declared = bool(self.province or self.city or self.districts)
        while position < len(text):
            found, refused = None, set()
            for form, kind, place, short in self._by_first.get(text[position], ()):
                if place.name in refused or not text.startswith(form, position):
                    continue  # a longer name of this place was refused here: its shorter ones are too (南开区)
                end = position + len(form)
                if end >= len(text) or longer_name(text, position, end):
                    refused.add(place.name)
                    continue
                if short and text.startswith(NAME_CONTINUATIONS, end):
                    continue
                found = (end, kind, place)
                break
            if found is not None:
                position, kind, place = found
                if kind == "district":
                    district = district or place.name
                elif kind == "street":
                    street = street or place.name
                    district = district or place.parent
                after_city = kind in ("province", "city")
                continue
            chain = ADMIN_CHAIN.match(text[position:])
            if not chain.end():
                break
            levels = [name for name in ("province", "city", "district") if chain.group(name)]
            if not levels or position + chain.end() >= len(text):
                break
            if levels == ["district"] and not after_city:
                break  # one "XX区" alone may be a name (华苑小区)
            ours = self.district_name(chain.group("district"))
            if declared and (
                (chain.group("province") and self.province and chain.group("province") not in self.province.forms)
                or (chain.group("city") and self.city and chain.group("city") not in self.city.forms)
                or (chain.group("district") and self.districts and ours is None)
            ):
                return Prefix(rest=text[position:], district=district, street=street, foreign=chain.group(0))
            start = position
            for level in levels:  # level by level, stopping where a known name begins (南开区人民医院)
                written = chain.group(level)
                if longer_name(text, position, position + len(written)):
                    break
                position += len(written)
                if level == "district":
                    district = district or ours
            if position == start:
                break
            after_city = False
        return Prefix(rest=text[position:], district=district, street=street)
