"""Geocode addresses against the demo gazetteer: addresses per second and how many land on the right entry.

    .venv/bin/python bench/bench_geocode.py [--queries 5000]

Queries are written the way residents and 12345 operators write them: province/city/district prefixes,
Chinese numerals (三栋), full-width digits, 号楼/幢 for 栋, "3-2-501" building-unit-room, door numbers on
roads. A query counts as right when the point returned is within 1 m of the entry it was written from.
"""

from __future__ import annotations

import argparse
import random
import time

from gridmap import crs, geocode
from gridmap.demo import GAZETTEER_FILE, demo_boundary_dir

NUMERALS = "零一二三四五六七八九"
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def chinese(number: int) -> str:
    if number < 10:
        return NUMERALS[number]
    tens, ones = divmod(number, 10)
    return ("" if tens == 1 else NUMERALS[tens]) + "十" + (NUMERALS[ones] if ones else "")


def write_query(entry: geocode.GazetteerEntry, rng: random.Random) -> str:
    prefix = rng.choice(["", "天津市", "天津市南开区", "南开区"])
    if entry.kind == "building" and str(entry.building).isdigit():
        number = int(entry.building)
        style = rng.choice(["numeral", "dash", "full_width", "word"])
        if style == "numeral":
            return f"{prefix}{entry.estate}{chinese(number)}栋{rng.randint(1, 4)}单元{rng.randint(101, 1802)}"
        if style == "dash":
            return f"{prefix}{entry.estate}{number}-{rng.randint(1, 4)}-{rng.randint(101, 1802)}"
        if style == "full_width":
            return f"{prefix}{entry.estate}{str(number).translate(FULL_WIDTH)}号楼"
        return f"{prefix}{entry.estate}{number}{rng.choice(['幢', '号楼', '栋'])}"
    if entry.kind == "door":
        return f"{prefix}{entry.road}{entry.number}号".translate(FULL_WIDTH if rng.random() < 0.3 else {})
    return f"{prefix}{entry.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=5000)
    args = parser.parse_args()
    entries, load = timed(lambda: geocode.read_gazetteer_file(demo_boundary_dir() / GAZETTEER_FILE))
    gazetteer, build = timed(lambda: geocode.Gazetteer(entries))
    print(f"{len(entries):,} gazetteer entries read in {load:.2f} s, indexed in {build:.2f} s")
    rng = random.Random(11)
    wanted = [e for e in entries if e.kind in ("building", "door", "estate", "poi", "road")]
    sample = [rng.choice(wanted) for _ in range(args.queries)]
    queries = [write_query(e, rng) for e in sample]
    results, seconds = timed(lambda: [gazetteer.geocode(q) for q in queries])
    print(f"{len(queries):,} queries in {seconds:.2f} s: {len(queries) / seconds:,.0f} addresses/s")
    by_kind: dict[str, list[int]] = {}
    for entry, result in zip(sample, results, strict=True):
        right = (
            result.found
            and crs.geodesic_distance_m(lon1=entry.lon, lat1=entry.lat, lon2=result.lon, lat2=result.lat) < 1
        )
        by_kind.setdefault(entry.kind, [0, 0])[0] += right
        by_kind[entry.kind][1] += 1
    for kind, (right, total) in sorted(by_kind.items()):
        print(f"  {kind:<9} {right:5d}/{total:<5d} right ({right / total:.1%})")
    for query, result in list(zip(queries, results, strict=True))[:5]:
        print(f"  e.g. {query} -> {result.level} {result.entry.name if result.entry else '-'}")


def timed(function):
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


if __name__ == "__main__":
    main()
