"""An imported area and its parent: parents made from their children, children far outside, coverage warnings.

- `--create-parents`: a grids-only file makes each missing community (and its street) as the union of its grids,
  coded from the code prefix (GB/T 30428.1: 12 and 9 digits) unless the file names the parent, and named from the
  fields given.
- A child mostly outside the parent it names (a grid in Germany loaded into a Tianjin community, a file in
  GCJ-02 loaded as WGS84) is refused unless `--allow-outside-parent`.
- Gaps, overlaps and parts outside a parent are warned about, measured by the audit's own checks so an import
  and an audit never disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap import crs as crs_rules
from gridmap.audit.areas import Areas
from gridmap.audit.checks import Tally, check_gaps, check_outside, check_overlaps
from gridmap.boundaries.problems import Problem, refused, warning
from gridmap.boundaries.sources import SHIFT_STEP_DEG, SHIFT_TO_WGS84, SourceCRS, map_rings
from gridmap.boundaries.validate import as_multipolygon, name_issue
from gridmap.store import AreaRecord

# A child with less than this share of its area inside its parent is refused (unless allowed).
MIN_SHARE_INSIDE = 0.5
PREFIX_LENGTH = {"community": 12, "street": 9, "district": 6}  # GB/T 2260 + GB/T 30428.1
CODE_LENGTH = {"grid": 15, "community": 12, "street": 9}


def parent_from_code(code: str, level: str, parent_level: str) -> str | None:
    """Return the parent code a standard code starts with (grid 15 → community 12 → street 9), or None."""
    if level not in CODE_LENGTH or not code.isdigit() or len(code) != CODE_LENGTH[level]:
        return None
    return code[: PREFIX_LENGTH[parent_level]]


def make_parents(
    records: Sequence[AreaRecord],
    *,
    level: str,
    existing: dict[str, str],
    names: dict[str, Sequence[str]],
) -> tuple[list[AreaRecord], list[Problem]]:
    """Make each parent the records name but the edition lacks as the union of its children, and its own parent.

    `names` holds, per record, the name its file gives its community and its street (when fields were given).
    Grids make communities and then streets; communities make streets. A made street's district is set when
    the edition has the district its code starts with. Returns the made areas, parents first, and warnings.
    """
    chain = {"grid": ("community", "street"), "community": ("street",)}.get(level, ())
    existing = dict(existing)
    problems: list[Problem] = []
    created: list[AreaRecord] = []
    # (area, {level: [names its children give that level]})
    pool = [(record, {lv: [values[k]] for lv, values in names.items()}) for k, record in enumerate(records)]
    for parent_level in chain:
        groups: dict[str, list] = defaultdict(list)
        for child, child_names in pool:
            if child.parent_code and child.parent_code not in existing:
                groups[child.parent_code].append((child, child_names))
        pool = []
        for code in sorted(groups):
            members = groups[code]
            given = [n for _, child_names in members for n in child_names.get(parent_level, [])]
            name = _common_name(given, code, parent_level, problems)
            up = _parent_code_of(code, parent_level, existing)
            geometry = as_multipolygon(_union([child.geometry for child, _ in members]))
            record = AreaRecord(code=code, name=name, level=parent_level, parent_code=up, geometry=geometry)
            created.append(record)
            existing[code] = parent_level
            kind = members[0][0].level
            problems.append(
                warning(
                    "created_parent",
                    f"created {parent_level} {code} {name} from its {len(members)} "
                    f"{kind if len(members) == 1 else PLURAL[kind]}" + (f", in {up}" if up else ", at the top level"),
                    code=code,
                    name=name,
                )
            )
            merged: dict[str, list[str]] = defaultdict(list)
            for _, child_names in members:
                for lv, values in child_names.items():
                    merged[lv] += values
            pool.append((record, merged))
    order = {lv: k for k, lv in enumerate(("district", "street", "community", "grid"))}
    created.sort(key=lambda r: order[r.level])  # parents are written before their children
    return created, problems


def _union(geometries: list[shapely.Geometry]) -> shapely.Geometry:
    """Union children that tile: the coverage union when it is valid and keeps every m², else the full union."""
    try:
        union = shapely.coverage_union_all(geometries)
    except shapely.errors.GEOSException:
        union = None
    if union is not None and union.is_valid:
        expected = sum(g.area for g in geometries)
        if abs(union.area - expected) <= 1e-9 * max(expected, 1e-12):
            return union
    return shapely.union_all(geometries)


PLURAL = {"district": "districts", "street": "streets", "community": "communities", "grid": "grids"}


def _parent_code_of(code: str, level: str, existing: dict[str, str]) -> str | None:
    """A made community's street is its 9-digit prefix; a made street's district its 6-digit one, if loaded."""
    above = {"community": "street", "street": "district"}[level]
    if not (code.isdigit() and len(code) == CODE_LENGTH[level]):
        return None
    prefix = code[: PREFIX_LENGTH[above]]
    if above == "district" and existing.get(prefix) != "district":
        return None
    return prefix


def _common_name(names: list[str], code: str, level: str, problems: list[Problem]) -> str:
    counts = Counter(n for n in names if n and name_issue(n) is None)  # a name that cannot be stored is no name
    if not counts:
        problems.append(warning("parent_name", f"no name given for the {level}: named by its code", code=code))
        return code
    (name, _count), *others = counts.most_common()
    if others:
        variants = ", ".join(f"{n} ({c})" for n, c in counts.most_common())
        problems.append(
            warning("parent_name", f"its children name the {level} differently: {variants}; used {name}", code=code)
        )
    return name


# ---- children far outside their parent ---------------------------------------------------------------------------
def far_outside(
    records: Sequence[AreaRecord],
    features: Sequence[int],
    parents: dict[str, tuple[str, shapely.Geometry]],
    source: SourceCRS,
    *,
    allowed: bool,
) -> list[Problem]:
    """Refuse (or with `allowed` warn about) areas with less than half their area inside the parent they name."""
    chosen = [k for k, r in enumerate(records) if r.parent_code in parents]
    if not chosen:
        return []
    children = np.array([records[k].geometry for k in chosen], dtype=object)
    mothers = np.array([parents[records[k].parent_code][1] for k in chosen], dtype=object)
    shapely.prepare(mothers)
    inside = np.ones(len(chosen))
    # Most children lie inside their parent: only the others are intersected.
    loose = np.flatnonzero(~shapely.covers(mothers, children))
    if len(loose):
        shared = shapely.area(shapely.intersection(children[loose], mothers[loose]))
        inside[loose] = shared / np.maximum(shapely.area(children[loose]), 1e-300)
    problems = []
    for position in np.flatnonzero(inside < MIN_SHARE_INSIDE):
        k = chosen[position]
        record = records[k]
        parent_name, mother = parents[record.parent_code]
        share = float(inside[position])
        if share > 0:
            where = f"only {100 * share:.0f} % of it lies inside its {_level_above(record.level)}"
        else:
            near, far = shapely.shortest_line(record.geometry, mother).coords
            distance = crs_rules.geodesic_distance_m(lon1=near[0], lat1=near[1], lon2=far[0], lat2=far[1])
            where = f"it lies {_distance(distance)} from its {_level_above(record.level)}"
        message = (
            f"{where} {record.parent_code} {parent_name}".rstrip()
            + _shift_hint(record.geometry, mother, source)
            + ("" if allowed else "; fix its coordinates or its parent, or pass --allow-outside-parent")
        )
        make = warning if allowed else refused
        problems.append(make("far_outside_parent", message, feature=features[k], code=record.code, name=record.name))
    return problems


def _level_above(level: str) -> str:
    return {"grid": "community", "community": "street", "street": "district"}.get(level, "parent")


def _distance(metres: float) -> str:
    return f"{metres / 1000:,.0f} km" if metres >= 10_000 else f"{metres:,.0f} m"


def _shift_hint(geometry: shapely.Geometry, mother: shapely.Geometry, source: SourceCRS) -> str:
    """Suggest --crs gcj02/bd09 when the area lands inside its parent once converted from that system."""
    if source.shift or (source.crs is not None and not source.crs.is_geographic):
        return ""
    for name, option in (("GCJ-02", "gcj02"), ("BD-09", "bd09")):
        moved = map_rings(np.array([geometry], dtype=object), SHIFT_STEP_DEG, SHIFT_TO_WGS84[name])[0]
        if moved.area > 0 and shapely.intersection(moved, mother).area / moved.area >= 0.9:
            return f" (converted from {name} it would lie inside: is the file in {name}? then pass --crs {option})"
    return ""


# ---- warnings the audit would give ---------------------------------------------------------------------------------
def coverage_warnings(
    records: Sequence[AreaRecord],
    features: dict[str, int],
    context: gpd.GeoDataFrame,
) -> list[Problem]:
    """Warn about gaps, overlaps and parts outside parents, with the audit's checks and its 1 m² tolerance.

    `context` holds the parents of the records and their siblings already in the edition; findings that do not
    involve an area of the file (two old siblings overlapping) are left to the audit.
    """
    columns = ["code", "name", "level", "parent_code", "geometry"]
    rows = [{c: getattr(r, c) for c in columns} for r in records]
    frame = pd.concat([context[columns], pd.DataFrame(rows, columns=columns)], ignore_index=True)
    areas = Areas(gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326"))
    tally = Tally()
    new = {r.code for r in records}
    parents = {r.parent_code for r in records if r.parent_code}
    overlaps, overlapping = check_overlaps(areas, tally)
    gaps, _ = check_gaps(areas, overlapping, tally)
    outside = check_outside(areas, tally)
    problems = []
    for reason, found in (("overlap", overlaps), ("gap", gaps), ("outside_parent", outside)):
        for finding in found:
            codes = finding["codes"]
            if not (new & set(codes) or (reason == "gap" and codes[0] in parents)):
                continue
            code = codes[0]
            problems.append(
                warning(
                    reason,
                    f"{finding['area_m2']:,.0f} m²: {finding['detail']}",
                    feature=features.get(code),
                    code=code,
                    name=areas.name_for(code),
                )
            )
    return problems


def code_warnings(records: Sequence[AreaRecord], features: dict[str, int]) -> list[Problem]:
    """Warn about codes that do not start with their parent's code."""
    return [
        warning(
            "code_prefix",
            f"code does not start with its parent's code {r.parent_code}",
            feature=features.get(r.code),
            code=r.code,
            name=r.name,
        )
        for r in records
        if r.parent_code and not r.code.startswith(r.parent_code)
    ]
