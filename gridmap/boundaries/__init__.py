"""Boundary files in and out: read, validate, normalise, import (dry run or one transaction), export.

An import reads the whole file and checks every feature before it decides: every refusal is listed at once
(feature, code, name, reason; grouped by reason with counts), and a file with any refusal writes nothing. Things
real boundary files have (gaps, overlaps, areas reaching outside their parent, codes that do not start with the
parent's code) are warnings, not refusals: the import loads them and the audit reports them.

The package: `sources` (formats, encodings, coordinate systems), `esrijson` (ArcGIS JSON and its curves),
`validate` (one feature's checks), `parents` (parents made from children, children far outside, coverage
warnings), `problems` (refusals, warnings, the CSV report), `exporting`; this module runs an import.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from gridmap import crs as crs_rules
from gridmap.boundaries.exporting import EXPORT_FORMATS, export_boundaries
from gridmap.boundaries.parents import code_warnings, coverage_warnings, far_outside, make_parents, parent_from_code
from gridmap.boundaries.problems import ImportRefused, Problem, counts_line, grouped_lines, refused, write_report
from gridmap.boundaries.sources import parse_crs, read_features
from gridmap.boundaries.validate import (
    GRID_KINDS,
    FieldMap,
    code_issue,
    corner_problems,
    geometry_issue,
    kind_of,
    name_issue,
    text,
    validity_issue,
    whole_number,
)
from gridmap.errors import InvalidInput
from gridmap.store import AreaRecord, Store, check_edition_name

__all__ = [
    "DEFAULT_EDITION",
    "EXPORT_FORMATS",
    "GRID_KINDS",
    "IMPORT_LEVELS",
    "ImportPlan",
    "ImportRefused",
    "Problem",
    "commit_import",
    "export_boundaries",
    "grouped_lines",
    "load_demo",
    "parse_crs",
    "plan_import",
    "read_features",
    "write_report",
]

IMPORT_LEVELS = ("district", "street", "community", "grid")
PARENT_LEVEL = {"district": "", "street": "district", "community": "street", "grid": "community"}
DEFAULT_EDITION = "main"
DEMO_FILES = {
    "district": "district.geojson",
    "street": "streets.geojson",
    "community": "communities.geojson",
    "grid": "grids.geojson",
}
PLURAL = {"district": "districts", "street": "streets", "community": "communities", "grid": "grids"}


@dataclass
class ImportPlan:
    """What an import would do; `commit_import` writes it."""

    path: Path
    level: str
    edition: str
    edition_status: str | None  # status the edition is created with, None when it exists already
    records: list[AreaRecord]  # parents made with --create-parents first, then the file's areas
    problems: list[Problem] = field(default_factory=list)  # warnings and repairs (a plan has no refusals)
    source: str = ""  # how the coordinates were read
    shape_area: dict | None = None

    @property
    def warnings(self) -> list[Problem]:
        """The warnings, each naming its feature, code and name."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def repairs(self) -> list[Problem]:
        """What --fix-invalid changed."""
        return [p for p in self.problems if p.severity == "repaired"]

    def counts_text(self) -> str:
        """Return "1 street, 13 communities, 1300 grids"."""
        return ", ".join(_count(n, level) for level, n in self.counts().items())

    def counts(self) -> dict[str, int]:
        """Return how many areas of each level the plan writes."""
        found = Counter(r.level for r in self.records)
        return {level: found[level] for level in IMPORT_LEVELS if found[level]}

    def summary(self) -> list[str]:
        """Describe the plan for people: what it writes, how it read the file, and every warning with counts."""
        if self.edition_status:
            target = f"new edition {self.edition!r} (created as {self.edition_status})"
        else:
            target = f"edition {self.edition!r}"
        mine = sum(1 for r in self.records if r.level == self.level)
        lines = [f"{mine} {self.level} areas from {self.path.name} into {target}"]
        made = {level: n for level, n in self.counts().items() if level != self.level}
        if made:
            lines.append("plus " + ", ".join(_count(n, lv) for lv, n in made.items()) + " made from their children")
        if self.source:
            lines.append(f"coordinates: {self.source}")
        if self.shape_area:
            s = self.shape_area
            lines.append(
                f"{s['field']}: {s['within_tolerance']} of {s['compared']} areas within 0.2 % "
                f"(largest difference {s['largest_difference_percent']:g} %)"
            )
        if self.problems:
            lines.append(counts_line(self.problems) + ":")
            lines += grouped_lines(self.problems)
        return lines


# ---- validating -----------------------------------------------------------------------------------------------
def plan_import(
    store: Store,
    path: Path,
    *,
    level: str,
    edition: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str = "parent_code",
    crs: str | None = None,
    fix_invalid: bool = False,
    create_parents: bool = False,
    community_name_field: str | None = None,
    street_name_field: str | None = None,
    allow_outside_parent: bool = False,
) -> ImportPlan:
    """Read and check a whole boundary file against the database; raise ImportRefused listing every refusal.

    Nothing is written either way; `commit_import` writes a plan.
    """
    if level not in IMPORT_LEVELS:
        raise InvalidInput(f"--level must be one of {', '.join(IMPORT_LEVELS)}, not {level!r}")
    if create_parents and level not in ("grid", "community"):
        raise InvalidInput(
            "--create-parents makes communities from grids and streets from communities: use it with "
            "--level grid or --level community"
        )
    path = Path(path)
    source = read_features(path, crs=crs)
    extra = {"--community-name-field": community_name_field, "--street-name-field": street_name_field}
    fields = FieldMap(
        source.frame, path, code=code_field, name=name_field, parent=parent_field, aliases=source.aliases, extra=extra
    )
    edition_name, edition_status = _target_edition(store, edition)
    existing = store.area_codes(edition_name) if edition_status is None else {}
    checker = _Checker(level, edition_name, existing, fields, fix_invalid=fix_invalid, create_parents=create_parents)
    checker.unreadable = {p.feature for p in source.problems}
    corners = corner_problems(np.array(source.frame.geometry, dtype=object))
    for index, row in enumerate(source.frame.to_dict("records")):
        checker.check(index + 1, row, corners[index])
    problems = [_named(p, checker.labels) for p in source.problems] + checker.problems

    records, features = _as_multipolygons(checker.records), checker.features
    made: list[AreaRecord] = []
    if create_parents:
        names = {"community": checker.community_names, "street": checker.street_names}
        made, notes = make_parents(records, level=level, existing=existing, names=names)
        problems += notes
        made_codes = {m.code: m for m in made}
        problems += [
            refused(
                "code_exists",
                f"code {r.code} is also the code of the {made_codes[r.code].level} made for its children",
                feature=f,
                code=r.code,
                name=r.name,
            )
            for r, f in zip(records, features, strict=True)
            if r.code in made_codes
        ]
    parents = _parent_geometries(store, edition_name, edition_status, level, records, made)
    problems += far_outside(records, features, parents, source.crs, allowed=allow_outside_parent)
    problems += [_named(p, checker.labels) for p in source.notes]
    refusals = [p for p in problems if p.severity == "refused"]
    refused_features = {p.feature for p in refusals}
    accepted = [r for r, f in zip(records, features, strict=True) if f not in refused_features]
    feature_of = {r.code: f for r, f in zip(records, features, strict=True)}
    problems += code_warnings(accepted, feature_of)
    context = _context(store, edition_name, edition_status, level, accepted, made)
    problems += coverage_warnings([*made, *accepted], feature_of, context) if accepted else []
    if refusals:
        raise ImportRefused(path.name, problems)
    return ImportPlan(
        path,
        level,
        edition_name,
        edition_status,
        [*made, *records],
        problems,
        source=source.crs.describe(),
        shape_area=source.shape_area,
    )


class _Checker:
    """Checks features one by one, keeping the good ones as records and every problem."""

    def __init__(self, level, edition, existing, fields, *, fix_invalid, create_parents) -> None:
        self.level, self.edition, self.existing, self.fields = level, edition, existing, fields
        self.fix_invalid, self.create_parents = fix_invalid, create_parents
        self.parent_level = PARENT_LEVEL[level]
        self.parents = {code for code, lvl in existing.items() if lvl == self.parent_level}
        self.seen: dict[str, int] = {}
        self.records: list[AreaRecord] = []
        self.features: list[int] = []
        self.problems: list[Problem] = []
        self.labels: dict[int, tuple[str | None, str | None]] = {}
        self.community_names: list[str] = []
        self.street_names: list[str] = []
        self.unreadable: set[int | None] = set()  # features whose geometry the reader refused already

    def check(self, feature: int, row: dict, corners: set[str]) -> None:
        fields = self.fields
        code, name = text(row[fields.code]), text(row[fields.name])
        shown_code = code if len(code) <= 40 else code[:37] + "…"
        shown_name = name if len(name) <= 40 else name[:37] + "…"
        self.labels[feature] = (shown_code or None, shown_name or None)
        issues: list[tuple[str, str]] = []
        if not code:
            issues.append(("empty_code", f"the code field {fields.code!r} is empty"))
        elif issue := code_issue(code):
            issues.append(issue)
        elif code in self.seen:
            issues.append(("duplicate_code", f"duplicate code {code} (also feature {self.seen[code]})"))
        elif code in self.existing:
            issues.append(("code_exists", f"code {code} already exists in edition {self.edition!r}"))
        if code and code not in self.seen:
            self.seen[code] = feature
        if name and (issue := name_issue(name)):
            issues.append(issue)
        parent, issue = self._parent(code, row)
        if issue:
            issues.append(issue)
        kind, issue = kind_of(row.get(fields.kind) if fields.kind else None, self.level)
        if issue:
            issues.append(issue)
        counts = {}
        for attribute, column in fields.optional_ints.items():
            counts[attribute], issue = whole_number(row.get(column), attribute)
            if issue:
                issues.append(issue)
        geometry, issue = geometry_issue(row["geometry"], corners)
        repaired_because = ""
        if feature in self.unreadable:
            geometry = None
        elif issue:
            issues.append(issue)
        else:
            geometry, issue, repaired_because = validity_issue(geometry, self.fix_invalid)
            if issue:
                issues.append(issue)
        where = {"feature": feature, "code": shown_code or None, "name": shown_name or None}
        for reason, message in issues:
            self.problems.append(refused(reason, message, **where))
        if repaired_because:
            before, after = _area_m2(row["geometry"].buffer(0)), _area_m2(geometry)
            self.problems.append(
                Problem("repaired", "repaired", f"{repaired_because}; area {before:,.0f} m² → {after:,.0f} m²", **where)
            )
        if issues or geometry is None:
            return
        self.records.append(
            AreaRecord(
                code=code,
                name=name or code,
                level=self.level,
                parent_code=parent or None,
                geometry=geometry,  # made a MultiPolygon with the others, at once (see `_as_multipolygons`)
                kind=kind,
                **counts,
            )
        )
        self.features.append(feature)
        extra = fields.extra
        self.community_names.append(text(row.get(extra.get("--community-name-field", ""), "")))
        self.street_names.append(text(row.get(extra.get("--street-name-field", ""), "")))

    def _parent(self, code: str, row: dict) -> tuple[str, tuple[str, str] | None]:
        fields, level, parent_level = self.fields, self.level, self.parent_level
        parent = text(row[fields.parent]) if fields.parent else ""
        if parent and level == "district":
            return "", ("parent_at_top", f"a district is the top level and has no parent (found {parent})")
        if not parent and self.create_parents:
            parent = parent_from_code(code, level, parent_level) or ""
            if not parent:
                return "", (
                    "no_parent",
                    f"cannot tell its {parent_level}: the code is not a {15 if level == 'grid' else 12}-digit code to "
                    f"take the {parent_level} code from, and the file has no {fields.parent or 'parent'} value",
                )
        if not parent:
            if level == "grid":
                return "", (
                    "no_parent",
                    f"a grid needs the code of its community in {fields.parent or 'parent_code'!r}",
                )
            return "", None
        if issue := code_issue(parent, "parent code"):
            return "", issue
        if parent in self.parents:
            return parent, None
        if parent in self.existing:
            return parent, (
                "unknown_parent",
                f"parent code {parent} is a {self.existing[parent]}, not a {parent_level}",
            )
        if self.create_parents:
            return parent, None
        hint = "" if self.parents else f" (it has no {parent_level} areas: load them first"
        if level in ("grid", "community"):
            hint += (" or" if hint else " (load it first, or") + (
                f" add --create-parents to make each missing {parent_level} from its {PLURAL[level]})"
            )
        elif hint:
            hint += ")"
        return parent, (
            "unknown_parent",
            f"parent code {parent} is not a {parent_level} of edition {self.edition!r}{hint}",
        )


def _count(n: int, level: str) -> str:
    """Return "1 street" or "13 communities"."""
    return f"{n} {level if n == 1 else PLURAL[level]}"


def _as_multipolygons(records: list[AreaRecord]) -> list[AreaRecord]:
    """Return the records with every Polygon made a MultiPolygon (the store keeps every area as one)."""
    geometries = np.array([r.geometry for r in records], dtype=object)
    single = np.flatnonzero(shapely.get_type_id(geometries) == 3) if len(records) else []
    if not len(single):
        return records
    made = shapely.multipolygons(geometries[single], indices=np.arange(len(single)))
    out = list(records)
    for k, geometry in zip(single.tolist(), made, strict=True):
        out[k] = dataclasses.replace(out[k], geometry=geometry)
    return out


def _named(problem: Problem, labels: dict[int, tuple[str | None, str | None]]) -> Problem:
    """Put the feature's code and name on a problem found before the fields were known."""
    if problem.feature is None or problem.code:
        return problem
    code, name = labels.get(problem.feature, (None, None))
    return dataclasses.replace(problem, code=code, name=name)


def _parent_geometries(store, edition, status, level, records, made) -> dict[str, tuple[str, shapely.Geometry]]:
    """Return {code: (name, geometry)} of the parents the records name, from the edition (made ones excluded)."""
    wanted = sorted({r.parent_code for r in records if r.parent_code} - {m.code for m in made})
    if status is not None or not wanted or not PARENT_LEVEL[level]:
        return {}
    frame = store.areas(edition, PARENT_LEVEL[level], codes=wanted)
    return {c: (n, g) for c, n, g in zip(frame.code, frame.name, frame.geometry, strict=True)}


def _context(store, edition, status, level, records, made) -> gpd.GeoDataFrame:
    """The parents of the records and their other children already in the edition, for the coverage warnings."""
    columns = ["code", "name", "level", "parent_code", "geometry"]
    empty = gpd.GeoDataFrame(columns=columns, geometry="geometry", crs="EPSG:4326")
    parent_codes = sorted({r.parent_code for r in records if r.parent_code} - {m.code for m in made})
    if status is not None or not parent_codes or not PARENT_LEVEL[level]:
        return empty
    parents = store.areas(edition, PARENT_LEVEL[level], codes=parent_codes)
    siblings = store.areas(edition, level)
    siblings = siblings[siblings.parent_code.isin(parent_codes)]
    frame = pd.concat([parents[columns], siblings[columns]], ignore_index=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs="EPSG:4326") if len(frame) else empty


def commit_import(store: Store, plan: ImportPlan) -> int:
    """Write a checked plan in one transaction; return how many areas were written."""
    return store.add_areas(plan.edition, plan.records, create_edition_status=plan.edition_status)


def _target_edition(store: Store, edition: str | None) -> tuple[str, str | None]:
    """Return the edition to load into and, when it must be created, its status.

    Without --edition the current edition is used; in a database with no editions at all a first edition
    named `main` is created as current (there is nothing it could replace). A named edition that does not
    exist yet is created as a draft, invisible to lookups until it is activated.
    """
    if edition:
        found = store.find_edition(edition)
        if found is None:
            return check_edition_name(edition), "draft"  # refused in the dry run already, not at --commit
        if found.status == "retired":
            raise InvalidInput(f"edition {edition!r} is retired; load into a new edition instead")
        return edition, None
    current = store.current_edition()
    if current is not None:
        return current.name, None
    if store.list_editions():
        raise InvalidInput("no edition is current: name one with --edition")
    return DEFAULT_EDITION, "current"


def _area_m2(geometry: shapely.Geometry) -> float:
    """Return the area of a lon/lat geometry in m² in a transverse Mercator around it (for messages)."""
    if geometry.is_empty:
        return 0.0
    centre = geometry.centroid
    key = (round(centre.x, 1), round(centre.y, 1))
    if key not in _METRIC_TRANSFORMERS:
        # One transverse Mercator per 0.1° cell: building a pyproj transformer costs milliseconds.
        metric = crs_rules.local_metric_crs(lon=key[0], lat=key[1])
        _METRIC_TRANSFORMERS[key] = Transformer.from_crs("EPSG:4326", metric, always_xy=True)
    transformer = _METRIC_TRANSFORMERS[key]
    return float(
        shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))).area
    )


_METRIC_TRANSFORMERS: dict[tuple[float, float], Transformer] = {}


def load_demo(store: Store, directory: Path, *, edition: str = DEFAULT_EDITION) -> dict[str, int]:
    """Load the demo district's streets, communities and grids into an edition and make it current."""
    counts: dict[str, int] = {}
    if store.find_edition(edition) is not None and store.area_codes(edition):
        raise InvalidInput(f"edition {edition!r} already has areas; the demo loads into an empty edition")
    for level, filename in DEMO_FILES.items():
        plan = plan_import(store, directory / filename, level=level, edition=edition)
        counts[level] = commit_import(store, plan)
    if store.get_edition(edition).status != "current":
        store.activate_edition(edition)
    return counts
