"""Coverage audit, workload balance and plan-vs-plan comparison.

Every geometric question is asked of the stored lon/lat (EPSG:4326) geometry, where neighbouring grids share
their vertices exactly; only the pieces found (gaps, overlaps, parts outside a parent) and the grids themselves
are then measured in metres, as the lon/lat polygons they are, on the WGS84 ellipsoid (`measure.Metric`
integrates along each lon/lat edge). Projecting first, or projecting only the vertices, would bend straight
edges differently on each side of a shared boundary and invent gaps.

The package: `options` (kinds, thresholds), `measure` (metres, overlay parts), `areas` (an edition as arrays),
`checks` (the coverage checks), `balance` (incidents and workload), `compare` (plan against plan), `figures`
(the SVG figures of the pages); this module runs them and is what the CLI and the web call.

The checks are plain shapely so they run on any backend (Debian 12's PostGIS 3.3 has no `ST_Coverage*`):
- gaps: a community minus the union of its grids, a street minus the union of its communities;
- overlaps: pairs of areas of one level whose interiors meet (an STRtree finds the candidates);
- outside_parent: the part of an area outside its parent, and which other parents it lies in;
- invalid: invalid or empty geometries (the rest of the audit works on a repaired copy);
- slivers: grids with a low Polsby–Popper score (4πA/P²) or a tiny area;
- codes: duplicates, wrong lengths, codes that do not start with their parent's code, missing parents.
Pieces below the area tolerance are counted in the summary, not listed: floating-point noise along shared edges
must not drown the real findings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from gridmap.audit.areas import Areas, per_level
from gridmap.audit.balance import Located, incident_lists, is_open, workload_balance
from gridmap.audit.checks import (
    Tally,
    check_codes,
    check_gaps,
    check_invalid,
    check_outside,
    check_overlaps,
    check_slivers,
)
from gridmap.audit.compare import compare_areas, compare_lines
from gridmap.audit.options import (
    CLOSED_STATUSES,
    CODE_LENGTHS,
    DEDICATED_KIND,
    FAIL_KINDS,
    FINDING_KINDS,
    LEVEL_ORDER,
    AuditOptions,
)
from gridmap.errors import InvalidInput, NotFound

__all__ = [
    "CLOSED_STATUSES",
    "CODE_LENGTHS",
    "DEDICATED_KIND",
    "FAIL_KINDS",
    "FINDING_KINDS",
    "LEVEL_ORDER",
    "AuditOptions",
    "audit_areas",
    "audit_edition",
    "audit_page",
    "compare_areas",
    "compare_editions",
    "compare_lines",
    "compare_page",
    "failing",
    "parse_kinds",
    "summary_lines",
]


# ---- the audit -------------------------------------------------------------------------------------------
def audit_areas(
    frame, incidents: Sequence[dict] = (), *, options: AuditOptions | None = None, edition: str | None = None
) -> dict:
    """Audit one edition's areas (a GeoDataFrame like `Store.areas` returns) and the incidents lying in them."""
    started = time.perf_counter()
    options = options or AuditOptions()
    areas = Areas(frame, tolerance=options.area_tolerance_m2)
    tally = Tally()
    invalid = check_invalid(areas)
    overlaps, overlapping = check_overlaps(areas, tally)
    gaps, not_checked = check_gaps(areas, overlapping, tally)
    outside = check_outside(areas, tally)
    slivers = check_slivers(areas, options)
    codes = check_codes(areas)
    located = Located(areas, incidents)
    balance = workload_balance(areas, located, options)
    incidents_found = incident_lists(areas, located)
    report = {
        "gaps": gaps,
        "overlaps": overlaps,
        "outside_parent": outside,
        "invalid": invalid,
        "slivers": slivers,
        "codes": codes,
        "balance": balance,
        "incidents": incidents_found,
    }
    _add_names(report, areas)
    report["summary"] = {
        "edition": edition,
        "areas": per_level(areas.levels),
        "findings": {kind: len(report[kind]) for kind in FINDING_KINDS},
        "below_tolerance": tally.to_dict(),
        "outside_range": len(balance["outside_range"]),
        "incidents": {
            "located": len(located.incidents),
            "open": sum(is_open(p) for p in located.incidents),
            "unassigned": len(incidents_found["unassigned"]),
            "ambiguous": len(incidents_found["ambiguous"]),
        },
        "not_checked": not_checked,
        "options": options.to_dict(),
        "metric_crs": areas.metric.describe(),
        "clean": not any(report[kind] for kind in FINDING_KINDS),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return report


def _add_names(report: dict, areas: Areas) -> None:
    """Put each finding's area names beside its codes (`names[k]` names `codes[k]`; None when not in the edition)."""
    for kind in FINDING_KINDS:
        for finding in report[kind]:
            finding["names"] = [areas.name_for(code) for code in finding["codes"]]


def failing(report: dict, kinds: Iterable[str]) -> dict[str, int]:
    """Return {kind: number of findings} for the asked kinds that have any (what `--fail-on` acts on)."""
    counts = {kind: len(report[kind]) for kind in FINDING_KINDS}
    counts["balance"] = len(report["balance"]["outside_range"])
    counts["unassigned"] = len(report["incidents"]["unassigned"])
    counts["ambiguous"] = len(report["incidents"]["ambiguous"])
    return {kind: counts[kind] for kind in kinds if counts[kind]}


def parse_kinds(text: str | None) -> list[str]:
    """Parse a comma-separated list of kinds (e.g. "gaps,overlaps"); `all` means every finding kind."""
    kinds = [k.strip() for k in (text or "").split(",") if k.strip()]
    if kinds == ["all"]:
        return list(FINDING_KINDS)
    unknown = [k for k in kinds if k not in FAIL_KINDS]
    if unknown:
        raise InvalidInput(f"unknown kind(s) {', '.join(unknown)}; choose from all, {', '.join(FAIL_KINDS)}")
    return kinds


def summary_lines(report: dict, *, limit: int = 10) -> list[str]:
    """Describe an audit in a few lines of text (the CLI's default output)."""
    summary = report["summary"]
    counts = ", ".join(f"{n} {level} areas" for level, n in summary["areas"].items() if n) or "no areas"
    lines = [f"edition {summary['edition']}: {counts}; areas measured on the {summary['metric_crs']}"]
    for kind in FINDING_KINDS:
        found = report[kind]
        lines.append(f"{kind}: {len(found)}")
        for finding in found[:limit]:
            where = f" at {finding['point'][0]},{finding['point'][1]}" if finding["point"] else ""
            labels = " ".join(
                f"{code} {name}" if name and name != code else code
                for code, name in zip(finding["codes"], finding["names"], strict=True)
            )
            lines.append(f"  {finding['kind']} {labels} {finding['area_m2']:g} m²{where}")
            if finding["detail"]:
                lines.append(f"    {finding['detail']}")
        if len(found) > limit:
            lines.append(f"  … and {len(found) - limit} more (use --json or --html for all)")
    small = summary["below_tolerance"]
    tolerance = summary["options"]["area_tolerance_m2"]
    lines.append(
        f"below {tolerance:g} m² (counted, not listed): "
        + ", ".join(f"{v['count']} {k} pieces ({v['area_m2']:g} m²)" for k, v in small.items())
    )
    balance = report["balance"]
    low, high = balance["households_range"]
    totals = balance["totals"]
    lines.append(
        f"balance: {totals['grids']} grids, {totals['households']} households, "
        f"{summary['outside_range']} outside {low}–{high}, CV {totals['cv']}, max/min {totals['max_min_ratio']}"
    )
    if balance["staff_note"]:
        lines.append(f"  {balance['staff_note']}")
    incidents = summary["incidents"]
    lines.append(
        f"incidents: {incidents['located']} located, {incidents['unassigned']} in no grid, "
        f"{incidents['ambiguous']} on a shared edge"
    )
    if summary["not_checked"]:
        lines.append("gaps not checked for: " + "; ".join(summary["not_checked"]))
    lines.append(f"audited in {summary['seconds']:.2f} s")
    return lines


# ---- the store-backed front: what the CLI and the web call ----------------------------------------------
def _edition_name(store, edition: str | None) -> str:
    if edition:
        return store.get_edition(edition).name
    current = store.current_edition()
    if current is None:
        raise NotFound("there is no current edition to audit: load boundaries first, or name an edition")
    return current.name


def _load(store, edition: str | None):
    from gridmap import buildings

    name = _edition_name(store, edition)
    # Where the register has buildings, a grid's households and population are those of its buildings.
    return name, buildings.apply_to_frame(store, name, store.areas(name))


def audit_edition(store, edition: str | None = None, *, user=None, **options) -> dict:
    """Audit an edition (default: the current one) with today's incidents; the JSON shared by CLI and API.

    A scoped `user` (supervisor, grid worker) gets the report cut to their area (audit.scope)."""
    from gridmap.audit import scope as scoping

    settings = AuditOptions.from_values(**options)
    name, frame = _load(store, edition)
    area_scope = scoping.area_scope(user, [frame])
    incidents = scoping.scoped_incidents(store.incident_points(), user)
    return scoping.cut_audit(audit_areas(frame, incidents, options=settings, edition=name), area_scope)


def audit_page(store, edition: str | None = None, *, user=None, **options) -> dict:
    """Return what the HTML report needs: the audit, its figures and the editions to choose from."""
    from gridmap.audit import scope as scoping
    from gridmap.audit.figures import audit_figures

    settings = AuditOptions.from_values(**options)
    name, frame = _load(store, edition)
    area_scope = scoping.area_scope(user, [frame])
    incidents = scoping.scoped_incidents(store.incident_points(), user)
    report = scoping.cut_audit(audit_areas(frame, incidents, options=settings, edition=name), area_scope)
    return {
        "edition": name,
        "report": report,
        "figures": audit_figures(frame, report),
        "editions": [e.to_dict() for e in store.list_editions()],
        "kinds": FINDING_KINDS,
    }


def _compared(store, a: str, b: str, user, options: dict):
    from gridmap.audit import scope as scoping

    settings = AuditOptions.from_values(**options)
    name_a, old = _load(store, a)
    name_b, new = _load(store, b)
    area_scope = scoping.area_scope(user, [old, new])
    incidents = scoping.scoped_incidents(store.incident_points(), user)
    report = compare_areas(old, new, incidents, options=settings, a=name_a, b=name_b)
    return name_a, old, name_b, new, scoping.cut_comparison(report, area_scope)


def compare_editions(store, a: str, b: str, *, user=None, **options) -> dict:
    """Compare edition `a` (before) with edition `b` (after); the JSON shared by CLI and API (cut to a scoped
    `user`'s area)."""
    return _compared(store, a, b, user, options)[4]


def compare_page(store, a: str, b: str, *, user=None, **options) -> dict:
    """Return what the comparison page needs: the comparison and its figures."""
    from gridmap.audit.figures import compare_figures

    name_a, old, name_b, new, report = _compared(store, a, b, user, options)
    return {
        "a": name_a,
        "b": name_b,
        "report": report,
        "figures": compare_figures(old, new, report),
        "editions": [e.to_dict() for e in store.list_editions()],
    }
