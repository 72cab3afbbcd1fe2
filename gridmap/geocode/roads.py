"""One road of one district: its door numbers and lanes, where a number not in the gazetteer lies, junctions."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely

from .entries import GazetteerEntry
from .parse import METRES_PER_DEGREE_LAT, METRES_PER_DEGREE_LON, DoorNumber, metres_between
from .result import CONFIDENCE, EXTRAPOLATION, INTERPOLATION, JUNCTION, by_distance

SAME_NUMBER_M = 300  # one door number listed twice further apart than this: two roads, not one


@dataclass(frozen=True)
class Spot:
    """A point on a road and how it was found."""

    lon: float
    lat: float
    confidence: float
    entry: GazetteerEntry  # the known door nearest to the point (or the road entry)
    matched: str
    note: str | None = None
    neighbours: tuple[GazetteerEntry, ...] = ()


@dataclass
class Road:
    """A road's entries within one district (a road of the same name elsewhere is another Road)."""

    name: str  # as the gazetteer writes it
    district: str | None
    entries: list[GazetteerEntry] = field(default_factory=list)  # kind road
    doors: list[tuple[int, GazetteerEntry]] = field(default_factory=list)  # main number, entry; lanes too
    exact: dict[str, list[GazetteerEntry]] = field(default_factory=dict)  # "12", "12-3", "1999弄"

    def add_door(self, number: str, entry: GazetteerEntry) -> None:
        """Index a door (or lane) entry under its normalised number."""
        self.exact.setdefault(number, []).append(entry)
        main = number.removesuffix("弄").split("-")[0]
        if main.isdigit() and (number.endswith("弄") or "-" not in number):
            self.doors.append((int(main), entry))

    def finish(self, frame: tuple[float, float]) -> None:
        """Sort the doors by number once every entry is in; `frame` (lon, lat) is the origin of local metres."""
        self.doors.sort(key=lambda pair: pair[0])
        self._sides = {p: [(n, e) for n, e in self.doors if n % 2 == p] for p in (0, 1)}
        self._side_numbers = {p: [n for n, _ in side] for p, side in self._sides.items()}
        self.frame = frame
        points = np.array(self.points, dtype=float).reshape(-1, 2)
        self._scale = METRES_PER_DEGREE_LON * math.cos(math.radians(frame[1]))
        self._local = np.column_stack(
            ((points[:, 0] - frame[0]) * self._scale, (points[:, 1] - frame[1]) * METRES_PER_DEGREE_LAT)
        )

    def local(self, lon: float, lat: float) -> tuple[float, float]:
        """Return a WGS84 point in the gazetteer's local metres."""
        return (lon - self.frame[0]) * self._scale, (lat - self.frame[1]) * METRES_PER_DEGREE_LAT

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        """Return a point of local metres in WGS84."""
        return self.frame[0] + x / self._scale, self.frame[1] + y / METRES_PER_DEGREE_LAT

    # ---- where things are -------------------------------------------------------------------------------------
    def middle(self) -> Spot:
        """Return the road's own point, or the middle known door when the road has no entry of its own."""
        if self.entries:
            entry = self.entries[0]
            return Spot(entry.lon, entry.lat, CONFIDENCE["road"], entry, self.name)
        entry = self.doors[len(self.doors) // 2][1]
        ends = (self.doors[0][1], self.doors[-1][1])
        return Spot(entry.lon, entry.lat, CONFIDENCE["road_from_doors"], entry, self.name, None, ends)

    @cached_property
    def points(self) -> list[tuple[float, float]]:
        """Return every known point of the road: its doors by number, else its own entries."""
        found = [(e.lon, e.lat) for _, e in self.doors] or [(e.lon, e.lat) for e in self.entries]
        return found

    @cached_property
    def shape(self) -> shapely.Geometry:
        """Return the road in local metres: one line per side through its doors in number order, else points."""
        sides = []
        for parity in (0, 1):
            side = [self.local(e.lon, e.lat) for n, e in self.doors if n % 2 == parity]
            if len(side) > 1:
                sides.append(side)
        if sides:
            return shapely.MultiLineString(sides)
        return shapely.MultiPoint([self.local(x, y) for x, y in self.points])

    def distance_to(self, lon: float, lat: float) -> float:
        """Return the metres from a point to the nearest known point of the road."""
        x, y = self.local(lon, lat)
        return float(np.sqrt(((self._local - (x, y)) ** 2).sum(axis=1)).min())

    @cached_property
    def metres_per_number(self) -> float | None:
        """Return the road's typical metres between consecutive numbers on one side (None with too few doors)."""
        steps = []
        for parity in (0, 1):
            side = [(n, e) for n, e in self.doors if n % 2 == parity]
            for (n0, e0), (n1, e1) in itertools.pairwise(side):
                if n1 > n0:
                    steps.append(metres_between(e0.lon, e0.lat, e1.lon, e1.lat) / (n1 - n0))
        if not steps:
            return None
        steps.sort()
        return steps[len(steps) // 2]

    def door(self, number: DoorNumber) -> Spot | None:
        """Return where a door number or lane is: known, interpolated, extrapolated; None without doors."""
        if number.is_range:
            return self._range(number)
        key = f"{number.number}弄" if number.lane else str(number.number)
        if number.second is not None and not number.lane:
            key = f"{number.number}-{number.second}"
        if entries := self.exact.get(key):
            first = entries[0]
            apart = max(metres_between(first.lon, first.lat, e.lon, e.lat) for e in entries)
            if apart > SAME_NUMBER_M:
                # One number listed at places far apart: two roads of this name that nothing tells apart.
                note = f"{first.name} is listed at {len(entries)} places up to {apart:.0f} m apart"
                confidence = CONFIDENCE["one_of_several"]
                return Spot(
                    first.lon, first.lat, confidence, first, self.name + number.written, note, tuple(entries[1:])
                )
            return Spot(first.lon, first.lat, CONFIDENCE["door"], first, self.name + number.written)
        if number.second is not None and (entries := self.exact.get(str(number.number))):
            entry = entries[0]
            return Spot(entry.lon, entry.lat, CONFIDENCE["door_sub_number_missing"], entry, self.name + number.written)
        if number.lane and (entries := self.exact.get(str(number.number))):
            # A lane's entrance carries the door number of the same value (Shanghai numbers both in one series).
            entry = entries[0]
            return Spot(entry.lon, entry.lat, CONFIDENCE["door"], entry, self.name + number.written)
        if not self.doors:
            return None
        return self._between(number.number, self.name + number.written)

    def _range(self, number: DoorNumber) -> Spot | None:
        first = self.door(DoorNumber(number.number))
        last = self.door(DoorNumber(number.second or number.number))
        if first is None or last is None:
            return first or last
        span = metres_between(first.lon, first.lat, last.lon, last.lat)
        confidence = min(first.confidence, last.confidence, by_distance(INTERPOLATION, span))
        return Spot(
            (first.lon + last.lon) / 2,
            (first.lat + last.lat) / 2,
            confidence,
            first.entry,
            self.name + number.written,
            f"the middle of {first.matched} and {last.matched}",
            (first.entry, last.entry),
        )

    def _between(self, number: int, matched: str) -> Spot:
        # Chinese roads number one side odd and the other even, so neighbours of the same parity are used first;
        # between two of them the point is interpolated along the straight line joining them. Roads bend, so the
        # error can reach the distance between the two: confidence follows that distance.
        parity = number % 2
        same_side, numbers = self._sides[parity], self._side_numbers[parity]
        if not same_side:
            same_side, numbers = self.doors, [n for n, _ in self.doors]
        at = bisect.bisect_left(numbers, number)
        lower = same_side[at - 1] if at > 0 else None
        upper = same_side[at] if at < len(same_side) and numbers[at] > number else None
        if upper is None and at + 1 < len(same_side):
            upper = same_side[at + 1]
        if lower and upper:
            (n0, e0), (n1, e1) = lower, upper
            t = (number - n0) / (n1 - n0)
            lon, lat = e0.lon + t * (e1.lon - e0.lon), e0.lat + t * (e1.lat - e0.lat)
            span = metres_between(e0.lon, e0.lat, e1.lon, e1.lat)
            entry = e0 if number - n0 <= n1 - number else e1
            note = f"between {e0.name} and {e1.name}"
            return Spot(lon, lat, by_distance(INTERPOLATION, span), entry, matched, note, (e0, e1))
        # Beyond the known numbers: continue the line of the two nearest known doors by the road's metres per
        # number; the further out, the likelier the road bends or ends, so the confidence drops with the distance.
        ordered = sorted(same_side[max(0, at - 2) : at + 2], key=lambda p: abs(p[0] - number))
        n0, e0 = ordered[0]
        per_number = self.metres_per_number
        away = abs(number - n0) * per_number if per_number else float("inf")
        lon, lat = e0.lon, e0.lat
        if len(ordered) > 1 and per_number and away <= 400:
            n1, e1 = ordered[1]
            apart = metres_between(e0.lon, e0.lat, e1.lon, e1.lat)
            if apart > 0 and n1 != n0:
                sign = 1 if (number - n0) * (n0 - n1) > 0 else -1
                scale = sign * away / apart
                lon, lat = e0.lon + (e0.lon - e1.lon) * scale, e0.lat + (e0.lat - e1.lat) * scale
        note = f"beyond {e0.name}, about {away:.0f} m" if math.isfinite(away) else f"nearest known: {e0.name}"
        return Spot(lon, lat, by_distance(EXTRAPOLATION, away), e0, matched, note, (e0,))


def junction(first: Road, second: Road) -> Spot | None:
    """Return where two roads meet: where lines through their known points cross, or their nearest approach.

    Each side of a road (odd, even numbers) is a line through its doors in number order; the two sides of one
    road never cross, so the crossings of two roads surround the junction and their centre is taken.
    """
    if not first.points or not second.points:
        return None
    crossing = first.shape.intersection(second.shape)
    if not crossing.is_empty:
        where, gap = crossing.centroid, 0.0
        x, y = where.x, where.y
    else:
        near_a, near_b = shapely.shortest_line(first.shape, second.shape).coords
        x, y = (near_a[0] + near_b[0]) / 2, (near_a[1] + near_b[1]) / 2
        gap = math.dist(near_a, near_b)
    lon, lat = first.lonlat(x, y)
    known = first.entries + [e for _, e in first.doors]
    nearest = min(known, key=lambda e: metres_between(lon, lat, e.lon, e.lat))
    note = None if gap == 0 else f"the roads' known points come within {gap:.0f} m of each other"
    ends = tuple(road.entries[0] if road.entries else road.doors[0][1] for road in (first, second))
    return Spot(lon, lat, by_distance(JUNCTION, gap), nearest, f"{first.name}与{second.name}交叉口", note, ends)
