"""Geocode addresses: speed on the demo gazetteer, and how far confident answers land on held-out queries.

    .venv/bin/python bench/bench_geocode.py [--queries 5000] [--heldout 6000] [--seed 13]

1. Speed: resident-style queries (prefixes, Chinese numerals, full-width digits, 号楼/幢, 3-2-501, door numbers,
   弄, ranges, junctions) against the demo gazetteer (one district, 15,158 entries), one process, one thread.
   Target: ≥ 4,000 queries/s. The peer is gridmap's previous geocoder (commit PEER_COMMIT, loaded from git
   history), run on the same queries in the same process.
2. Calibration: `gridmap.geocode.calibration` builds two districts sharing their 16 road names (and many estate
   names), hides 20 % of doors and buildings and 5 % of estates, and writes queries the way residents do, with
   traps whose true place is far from anything listed. Per confidence band: how many answers lie within
   100 m / 300 m / 1 km of the truth. Targets: among answers at confidence ≥ 0.85, ≥ 95 % within 300 m and none
   beyond 1 km.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from gridmap import geocode
from gridmap.demo.district import demo_boundary_dir, read_district
from gridmap.demo.gazetteer import GAZETTEER_FILE
from gridmap.geocode import calibration
from gridmap.geocode.parse import metres_between

TARGET_QPS = 4000
PEER_COMMIT = "25fa321"  # the last commit before issue 13: gridmap/geocode.py as one module
NUMERALS = "零一二三四五六七八九"
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def chinese(number: int) -> str:
    if number < 10:
        return NUMERALS[number]
    tens, ones = divmod(number, 10)
    return ("" if tens == 1 else NUMERALS[tens]) + "十" + (NUMERALS[ones] if ones else "")


def write_query(entry: geocode.GazetteerEntry, rng: random.Random) -> str:
    prefix = rng.choice(["", "天津市", "天津市南开区", "南开区", "南开"])
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
        tail = rng.choice(["号", "号", "弄3号楼201室", "号院", "-2号", f"-{int(entry.number) + 4}号", "号(蜜雪冰城旁)"])
        return f"{prefix}{entry.road}{entry.number}{tail}".translate(FULL_WIDTH if rng.random() < 0.3 else {})
    if entry.kind == "road":
        return f"{prefix}{entry.name}与{rng.choice(['白堤路', '卫津路', '南丰路', '红旗路'])}交叉口东100米"
    return f"{prefix}{entry.name}"


def load_peer():
    """Return the previous geocoder module from git history, or None when git or the commit is not there."""
    import importlib.util
    import subprocess
    import sys

    try:
        source = subprocess.run(
            ["git", "show", f"{PEER_COMMIT}:gridmap/geocode.py"], capture_output=True, check=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    spec = importlib.util.spec_from_loader("gridmap_geocode_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    exec(compile(source, f"{PEER_COMMIT}:gridmap/geocode.py", "exec"), module.__dict__)
    return module


def peer_gazetteer(peer, entries):
    """Build the previous geocoder's gazetteer from today's entries (it has no district or street)."""
    old = [
        peer.GazetteerEntry(
            e.kind, e.name, e.lon, e.lat, e.road, e.number, e.estate, e.building, e.community_code, e.aliases
        )
        for e in entries
    ]
    return peer.Gazetteer(old)


def speed(args, peer) -> None:
    entries, load = timed(lambda: geocode.read_gazetteer_file(demo_boundary_dir() / GAZETTEER_FILE))
    # As `gridmap demo` does: entries tagged from the boundaries, the jurisdiction read from them (no setting).
    districts, streets = calibration.areas_of(read_district(demo_boundary_dir()))
    entries, tag = timed(lambda: geocode.tag_entries(entries, districts=districts, streets=streets))
    names = {a.code: a.name for a in districts}
    jurisdiction = geocode.Jurisdiction().with_data(
        districts=[(a.code, a.name) for a in districts], streets=[(a.name, names.get(a.parent_code)) for a in streets]
    )
    gazetteer, build = timed(lambda: geocode.Gazetteer(entries, jurisdiction=jurisdiction))
    print(
        f"demo gazetteer: {len(entries):,} entries read in {load:.2f} s, tagged from the boundaries in {tag:.2f} s, "
        f"indexed in {build:.2f} s; jurisdiction from the data: {jurisdiction.describe()}"
    )
    rng = random.Random(args.seed)
    wanted = [e for e in entries if e.kind in ("building", "door", "estate", "poi", "road")]
    sample = [rng.choice(wanted) for _ in range(args.queries)]
    queries = [write_query(e, rng) for e in sample]
    gazetteer.geocode(queries[0])  # warm the regular expressions' caches
    cpu = time.process_time()
    results, seconds = timed(lambda: [gazetteer.geocode(q) for q in queries])
    cpu = time.process_time() - cpu
    rate = len(queries) / seconds
    verdict = "met" if rate >= TARGET_QPS else "NOT met"
    print(
        f"  {len(queries):,} queries in {seconds:.2f} s: {rate:,.0f} queries/s (target ≥ {TARGET_QPS:,}: {verdict}); "
        f"{len(queries) / cpu:,.0f} queries per CPU second (what a quiet machine would give)"
    )
    near = sum(
        r.found and metres_between(e.lon, e.lat, r.lon, r.lat) <= 300 for e, r in zip(sample, results, strict=True)
    )
    print(f"  answers within 300 m of the entry written: {near / len(queries):.1%}")
    if peer is not None:
        before = peer_gazetteer(peer, entries)
        old_cpu = time.process_time()
        old_results, old_seconds = timed(lambda: [before.geocode(q) for q in queries])
        old_cpu = time.process_time() - old_cpu
        old_near = sum(
            r.found and metres_between(e.lon, e.lat, r.lon, r.lat) <= 300
            for e, r in zip(sample, old_results, strict=True)
        )
        print(
            f"  peer (gridmap {PEER_COMMIT}) on the same queries: {len(queries) / old_seconds:,.0f} queries/s, "
            f"{old_near / len(queries):.1%} within 300 m; ratio new/peer speed {old_seconds / seconds:.2f} "
            f"(by CPU time {old_cpu / cpu:.2f})"
        )
    for query, result in list(zip(queries, results, strict=True))[:6]:
        print(f"  e.g. {query} → {result.level} {result.matched or '-'} ({result.confidence:.2f})")


def calibrate(args, peer) -> None:
    heldout, build = timed(lambda: calibration.build_heldout(queries=args.heldout, seed=args.seed))
    gazetteer, index = timed(lambda: geocode.Gazetteer(heldout.entries, jurisdiction=heldout.jurisdiction))
    print(
        f"\nheld-out test bed: {len(heldout.entries):,} entries kept, {heldout.hidden:,} hidden "
        f"(built in {build:.1f} s, indexed in {index:.1f} s); jurisdiction: {heldout.jurisdiction.describe()}"
    )
    results, seconds = timed(lambda: [gazetteer.geocode(q.text) for q in heldout.queries])
    print(f"  {len(results):,} queries in {seconds:.2f} s: {len(results) / seconds:,.0f} queries/s")
    errors = calibration.errors_m(heldout.queries, results)
    print("\n  confidence   answers  ≤100 m  ≤300 m   ≤1 km   median m      max m")
    for row in calibration.calibration_table(results, errors):
        if "median_m" not in row:
            print(f"  {row['band']:<11} {row['answers']:>8}")
            continue
        print(
            f"  {row['band']:<11} {row['answers']:>8} {row['within_100m']:>7.1%} {row['within_300m']:>7.1%} "
            f"{row['within_1km']:>7.1%} {row['median_m']:>10.0f} {row['max_m']:>10.0f}"
        )
    print("\n  form                         queries answered  ≥0.85  ≥0.85 within 300 m  median m")
    for row in calibration.form_table(heldout.queries, results, errors):
        within = "-" if row["high_within_300m"] is None else f"{row['high_within_300m']:.1%}"
        median = "-" if row["median_m"] is None else f"{row['median_m']:.0f}"
        print(
            f"  {row['form']:<28} {row['queries']:>7} {row['answered']:>8.0%} {row['high']:>6.0%} "
            f"{within:>18} {median:>9}"
        )
    figures = calibration.summary(results, errors)
    share_ok = figures["within_300m"] >= calibration.TARGET_SHARE_300M
    none_far = figures["beyond_1km"] == 0
    print(
        f"\n  answers at ≥ 0.85: {figures['high']:,}; within 300 m: {figures['within_300m']:.2%} "
        f"(target ≥ 95 %: {'met' if share_ok else 'NOT met'}); beyond 1 km: {figures['beyond_1km']} "
        f"(target 0: {'met' if none_far else 'NOT met'}); largest error {figures['max_m']:.0f} m"
    )
    for query, result, metres in calibration.worst(heldout.queries, results, errors, limit=5):
        print(f"  worst: {query.form} {query.text} → {result.matched} ({result.confidence:.2f}), {metres:.0f} m")
    if peer is not None:
        before = peer_gazetteer(peer, heldout.entries)
        old_results = [before.geocode(q.text) for q in heldout.queries]
        old_figures = calibration.summary(old_results, calibration.errors_m(heldout.queries, old_results))
        print(
            f"  peer (gridmap {PEER_COMMIT}) on the same held-out queries: {old_figures['high']:,} answers at ≥ 0.85, "
            f"{old_figures['within_300m']:.2%} within 300 m, {old_figures['beyond_1km']} beyond 1 km"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=5000, help="speed queries on the demo gazetteer")
    parser.add_argument("--heldout", type=int, default=6000, help="held-out calibration queries")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--no-peer", action="store_true", help="skip the previous geocoder from git history")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    peer = None if args.no_peer else load_peer()
    speed(args, peer)
    calibrate(args, peer)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def timed(function):
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


if __name__ == "__main__":
    main()
