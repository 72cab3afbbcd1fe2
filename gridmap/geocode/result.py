"""What a geocoder answers: the point, what it stands for, how sure it is, and what else it could have been."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .entries import GazetteerEntry

LEVELS = ("building", "poi", "estate", "door", "junction", "road", "community")

# Confidence by what was matched. Calibrated on held-out queries (bench/bench_geocode.py prints the table):
# answers at 0.85 or more land within 300 m; below REVIEW_BELOW a person checks the point.
CONFIDENCE = {
    "building": 0.97,
    "door": 0.93,  # the door number (or lane, 1999弄) is in the gazetteer
    "door_sub_number_missing": 0.88,  # 12-3号 asked, 12号 known
    "poi": 0.88,  # one place of that name in the districts the address allows
    "estate": 0.8,  # an estate's representative point: most of an estate lies within 300 m, not all
    "road": 0.5,  # the road's point (its middle): says little
    "road_from_doors": 0.4,  # no road entry: the door in the middle of the road's known numbers
    "community": 0.3,
    "community_core": 0.27,  # "金源" matched "金源社区"
    "one_of_several": 0.6,  # several places of the name; only one fits what the address says
    "conflict": 0.7,  # the address names a place far from the door it gives: something is wrong
    "fuzzy": 0.8,  # a misspelt estate name is a guess, whatever the spelling distance
    "unplaced": 0.8,  # a name alone, several districts, none named: the name may exist unlisted elsewhere
}
# Door numbers not in the gazetteer: placed between the two nearest known numbers on the same side; the error is
# at most the distance between them, so confidence follows that distance (metres → confidence).
INTERPOLATION = ((100, 0.92), (250, 0.88), (500, 0.78), (1000, 0.68), (float("inf"), 0.55))
# Beyond the known numbers: placed on the line of the two nearest, by the road's metres per number.
EXTRAPOLATION = ((60, 0.8), (150, 0.72), (400, 0.6), (float("inf"), 0.45))
# Junctions: the roads' known points drawn as lines; confidence follows how close the lines come (metres).
JUNCTION = ((1, 0.92), (60, 0.88), (200, 0.75), (float("inf"), 0.5))
REVIEW_BELOW = 0.85


def by_distance(table: tuple[tuple[float, float], ...], metres: float) -> float:
    """Return the confidence of the first row of `table` whose distance is at least `metres`."""
    for limit, confidence in table:
        if metres <= limit:
            return confidence
    return table[-1][1]


@dataclass
class GeocodeResult:
    """The answer for one address; found=False (with lon/lat None) when nothing matched or it is ambiguous."""

    found: bool
    lon: float | None
    lat: float | None
    level: str | None  # one of LEVELS
    confidence: float
    entry: GazetteerEntry | None
    normalized: str
    candidates: list[GazetteerEntry] = field(default_factory=list)  # neighbours used, rivals, suggestions
    district: str | None = None  # the district of the answer (or the one the address named)
    matched: str | None = None  # what the point stands for: "卫津路16号", "卫津路与白堤路交叉口东150米"
    note: str | None = None  # why: "between 卫津路14号 and 卫津路18号", "黄河道 is in 南开区 and 西青区"
    review: bool = field(default=False)  # low confidence: a person should check the point

    def __post_init__(self) -> None:
        if self.matched is None and self.entry is not None:
            self.matched = self.entry.name
        if self.district is None and self.entry is not None:
            self.district = self.entry.district
        self.review = (not self.found) or self.confidence < REVIEW_BELOW

    @property
    def suggestions(self) -> list[str]:
        """Return the names a not-found answer offers instead (empty when found)."""
        return [] if self.found else list(dict.fromkeys(c.name for c in self.candidates))

    def to_dict(self) -> dict:
        """Return the JSON shape shared by the CLI and the API."""
        return {
            "found": self.found,
            "lon": self.lon,
            "lat": self.lat,
            "level": self.level,
            "confidence": round(self.confidence, 3),
            "matched": self.matched,
            "district": self.district,
            "street": self.entry.street if self.entry else None,
            "review": self.review,
            "note": self.note,
            "normalized": self.normalized,
            "suggestions": self.suggestions,
            "candidates": [
                {"name": c.name, "kind": c.kind, "district": c.district, "street": c.street, "lon": c.lon, "lat": c.lat}
                for c in self.candidates
            ],
        }

    def incident_fields(self) -> dict:
        """Return the incident columns this answer sets (point, level, confidence, review flag)."""
        return {
            "lon": self.lon,
            "lat": self.lat,
            "geocode_level": self.level,
            "geocode_confidence": round(self.confidence, 3),
            "geocode_review": bool(self.review),
        }


@runtime_checkable
class Geocoder(Protocol):
    """Anything that turns an address into a point."""

    def geocode(self, address: str) -> GeocodeResult:
        """Return where `address` is; found=False when it cannot tell; InvalidInput for an empty address."""
        ...
