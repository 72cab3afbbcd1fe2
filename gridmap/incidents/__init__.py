"""Incident files in: read CSV (UTF-8 or GBK/GB18030), XLSX and GeoJSON, check every row by the case rules,
geocode, assign, set deadlines, and import all-or-nothing.

A 12345 hotline export arrives with Chinese headers (工单编号, 诉求内容, 地址, 经度, 纬度, 来电时间, 类别); they
are mapped to gridmap's fields. Every row goes through the same rules as a case reported over the API
(gridmap.cases): a known category (by code or name), a phone number's shape, no control characters, a report
time not in the future beyond a small clock skew, and a place inside the jurisdiction (the current
edition's district or streets) unless --allow-outside. Deadlines come from the category table and the
working calendar, as for reported cases.

Every refused row is kept with its row number, a short reason and the particulars; by default one refused
row means nothing is written (`allow_partial` writes the good rows). Importing the same file again adds
nothing: rows are recognised by their source id.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gridmap import clock
from gridmap import crs as crs_rules
from gridmap.errors import GridmapError, InvalidInput

from .reading import Table, decode_text, open_table, read_rows
from .rows import COLUMN_ALIASES, SOURCES, RowChecker, header_map, parse_time, text_of

__all__ = [
    "COLUMN_ALIASES",
    "IMPORT_COLUMNS",
    "SOURCES",
    "IncidentImport",
    "Rejection",
    "Table",
    "decode_text",
    "header_map",
    "import_incidents",
    "open_table",
    "parse_time",
    "prepare_import",
    "read_rows",
]

# The incident columns an import writes, in this order; the store sets the original grid and edition to
# these, status to reported and the handling level to grid (Store.import_incident_rows).
IMPORT_COLUMNS = (
    "source_id", "source", "title", "description", "category_code", "reported_at", "reporter_name",
    "reporter_phone", "address", "lon", "lat", "geocode_level", "geocode_confidence", "geocode_review", "grid_code",
    "community_code", "street_code", "edition", "ambiguous", "deadline",
)  # fmt: skip
_COORDINATE_REASONS = {
    "not_finite": "coordinates not finite",
    "swapped": "lon and lat swapped",
    "projected": "coordinates not in degrees",
    "zero": "coordinates 0, 0",
}
_REPORT_LIMIT = 30  # row numbers shown per reason on the terminal; --report has them all


@dataclass(frozen=True)
class Rejection:
    """One refused row: its number as people count it (header = row 1), a short reason, the particulars."""

    row: int
    reason: str
    detail: str

    def message(self, filename: str) -> str:
        """Describe the rejection in one line."""
        return f"{filename}: row {self.row}: {self.detail}"


@dataclass
class IncidentImport:
    """The outcome of reading an incident file: rows to write, rows refused, and what was written."""

    filename: str = ""
    values: list[tuple] = field(default_factory=list)  # IMPORT_COLUMNS order
    rejected: list[Rejection] = field(default_factory=list)
    rows_read: int = 0
    duplicates: int = 0
    geocoded: Counter = field(default_factory=Counter)
    unassigned: int = 0
    ambiguous: int = 0
    outside: int = 0  # imported although outside the jurisdiction (allow_outside)
    written: int = 0
    refused: bool = False  # rows were rejected and allow_partial was not given: nothing written

    @property
    def rows(self) -> list[dict]:
        """Return the rows to write as dicts of incident fields."""
        return [dict(zip(IMPORT_COLUMNS, v, strict=True)) for v in self.values]

    def by_reason(self) -> list[tuple[str, list[Rejection]]]:
        """Group the rejections by reason, the most frequent first."""
        groups: dict[str, list[Rejection]] = defaultdict(list)
        for rejection in self.rejected:
            groups[rejection.reason].append(rejection)
        return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    def summary(self) -> list[str]:
        """Describe the import for people: counts, and every rejection grouped by reason."""
        lines = [f"rows read: {self.rows_read}", f"rows to import: {len(self.values)}"]
        if self.duplicates:
            lines.append(f"already imported (same source id): {self.duplicates}")
        if self.geocoded:
            lines.append("geocoded by level: " + ", ".join(f"{k} {v}" for k, v in sorted(self.geocoded.items())))
        lines.append(f"in no grid: {self.unassigned}; on a shared edge (ambiguous): {self.ambiguous}")
        if self.outside:
            lines.append(f"outside the jurisdiction, imported without a grid (--allow-outside): {self.outside}")
        lines.append(f"rejected: {len(self.rejected)}")
        for reason, items in self.by_reason():
            rows = _row_ranges([r.row for r in items])
            lines.append(f"  {reason}: {len(items)} row{'s' if len(items) != 1 else ''} ({rows})")
            lines.append(f"    e.g. {items[0].message(self.filename)}")
        return lines

    def write_report(self, path: Path) -> int:
        """Write every rejection (file, row, reason, detail) to a CSV file Excel opens; return how many."""
        with Path(path).open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "row", "reason", "detail"])
            for rejection in sorted(self.rejected, key=lambda r: r.row):
                writer.writerow([self.filename, rejection.row, rejection.reason, rejection.detail])
        return len(self.rejected)


def _row_ranges(rows: list[int]) -> str:
    """Write row numbers compactly: 3-7, 9, 12, … (at most _REPORT_LIMIT numbers)."""
    rows = sorted(rows)
    parts, shown, i = [], 0, 0
    while i < len(rows) and shown < _REPORT_LIMIT:
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
            j += 1
        parts.append(f"{rows[i]}-{rows[j]}" if j > i else str(rows[i]))
        shown += 1 if j == i else 2
        i = j + 1
    if i < len(rows):
        parts.append(f"… {len(rows) - i} more")
    return ", ".join(parts)


# ---- the whole file -------------------------------------------------------------------------------------------
@dataclass
class District:
    """What an import checks its rows against: the current edition's grids and the area it answers for."""

    edition: str | None = None
    grids: object = None  # GeoDataFrame of the edition's grids (Store.areas)
    communities: object = None
    area: object = None  # the jurisdiction: union of the top level (district, else streets …); None: nothing
    described: str = "any area"

    @classmethod
    def current(cls, store) -> District:
        """Read the current edition's grids and jurisdiction (empty when there is no current edition)."""
        import shapely

        edition = store.current_edition()
        if edition is None:
            return cls()
        district = cls(edition.name, store.areas(edition.name, "grid"), store.areas(edition.name, "community"))
        for level in ("district", "street", "community", "grid"):
            frame = district.grids if level == "grid" else store.areas(edition.name, level)
            if len(frame):
                district.area = shapely.union_all(frame.geometry.values)
                shapely.prepare(district.area)
                district.described = f"the {_PLURAL[level]} of edition {edition.name!r}"
                break
        return district

    def locate(self, lons: np.ndarray, lats: np.ndarray):
        """Return each point's grid (assign's rule) or None when there are no grids."""
        from gridmap import assign

        if self.grids is None or not len(self.grids):
            return None
        return assign.locate_batch(self.grids, self.communities, lons, lats)

    def inside(self, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
        """Whether each point lies in the jurisdiction (boundary included)."""
        import shapely

        if self.area is None:
            return np.zeros(len(lons), dtype=bool)
        return shapely.intersects_xy(self.area, lons, lats)


_PLURAL = {"district": "district", "street": "streets", "community": "communities", "grid": "grids"}


def prepare_import(
    table: Table,
    *,
    filename: str,
    district: District,
    geocoder,
    known_source_ids,
    coordinates_crs: str = "wgs84",
    category: str | None = None,
    allow_outside: bool = False,
    calendar=None,
    now: dt.datetime | None = None,
) -> IncidentImport:
    """Check, place, locate and give deadlines to the rows of a table.

    `geocoder()` returns the geocoder (built only when some row has an address but no coordinates);
    `known_source_ids(ids)` returns those already stored."""
    result = IncidentImport(filename=filename)
    kept = _checked_rows(table, result, category=category, now=now or clock.now())
    kept = _placed_rows(kept, result, coordinates_crs=coordinates_crs, geocoder=geocoder)
    already = known_source_ids([r["source_id"] for _, r in kept if r["source_id"]])
    if already:
        result.duplicates = sum(r["source_id"] in already for _, r in kept)
        kept = [(n, r) for n, r in kept if r["source_id"] not in already]
    _located_rows(kept, result, district=district, allow_outside=allow_outside, calendar=calendar)
    result.rejected.sort(key=lambda r: r.row)
    return result


def _checked_rows(table: Table, result: IncidentImport, *, category, now) -> list[tuple[int, dict]]:
    """Apply the case rules to every row; keep the good ones, record the others."""
    columns = header_map(table.header)
    filename = result.filename
    if "title" not in columns and "description" not in columns:
        raise InvalidInput(
            f"{filename}: no title or description column (looked for "
            + ", ".join(COLUMN_ALIASES["title"] + COLUMN_ALIASES["description"])
            + "); its columns are: "
            + ", ".join(table.header[:30])
        )
    if "category_code" not in columns and not category:
        raise InvalidInput(
            f"{filename}: no category column (looked for {', '.join(COLUMN_ALIASES['category_code'])}); "
            "give --category CODE for its rows (see `gridmap categories`)"
        )
    checker = RowChecker(table.header, columns, category=category, now=now)
    width = len(table.header)
    seen: set[str] = set()
    kept: list[tuple[int, dict]] = []
    reject = result.rejected.append
    for number, raw in table.rows:
        result.rows_read += 1
        if len(raw) > width and any(text_of(c).strip() for c in raw[width:]):
            reject(Rejection(number, "more fields than the header", f"has {len(raw)} fields; the header has {width}"))
            continue
        try:
            row = checker.check(raw)
        except GridmapError as exc:
            reject(Rejection(number, exc.reason, exc.message))
            continue
        source_id = row["source_id"]
        if source_id:
            if source_id in seen:
                reject(Rejection(number, "source id repeated in the file", f"source id {source_id} appears twice"))
                continue
            seen.add(source_id)
        kept.append((number, row))
    if not result.rows_read:
        raise InvalidInput(f"{filename}: has no rows")
    return kept


def _placed_rows(kept, result: IncidentImport, *, coordinates_crs: str, geocoder) -> list[tuple[int, dict]]:
    """Check coordinates as given and convert them to WGS84 all at once; geocode rows with only an address."""
    refused: set[int] = set()
    placed = [(n, r) for n, r in kept if r["lon"] is not None]
    if placed:
        x = np.array([r["lon"] for _, r in placed])
        y = np.array([r["lat"] for _, r in placed])
        problems = crs_rules.classify_lonlat(x, y)
        good = problems == ""
        for k in np.flatnonzero(~good).tolist():
            number, row = placed[k]
            detail = f"lon={row['lon']:g}, lat={row['lat']:g} {crs_rules.PROBLEMS[problems[k]]}"
            result.rejected.append(Rejection(number, _COORDINATE_REASONS[problems[k]], detail))
            refused.add(number)
        if good.any():
            lon, lat = crs_rules.to_wgs84(lon=x[good], lat=y[good], crs=coordinates_crs)
            rows = [r for (_, r), g in zip(placed, good.tolist(), strict=True) if g]
            for row, a, b in zip(rows, np.atleast_1d(lon).tolist(), np.atleast_1d(lat).tolist(), strict=True):
                row["lon"], row["lat"] = a, b
    unplaced = [(n, r) for n, r in kept if r["lon"] is None]
    if unplaced:
        finder = geocoder()
        for number, row in unplaced:
            found = finder.geocode(row["address"])
            if not found.found:
                detail = f"address {row['address']!r} was not found in the gazetteer"
                result.rejected.append(Rejection(number, "address not found", detail))
                refused.add(number)
                continue
            row.update(found.incident_fields())  # point, level, confidence, review flag
            result.geocoded[found.level] += 1
    return [(n, r) for n, r in kept if n not in refused]


def _located_rows(kept, result: IncidentImport, *, district: District, allow_outside: bool, calendar) -> None:
    """Find each row's grid, refuse rows outside the jurisdiction, set deadlines, and fill `result.values`."""
    from gridmap import cases
    from gridmap.categories import load_categories

    lons = np.array([r["lon"] for _, r in kept], dtype=float)
    lats = np.array([r["lat"] for _, r in kept], dtype=float)
    located = district.locate(lons, lats) if len(kept) else None
    grid = located.grid.tolist() if located is not None else [-1] * len(kept)
    ambiguous = located.ambiguous.tolist() if located is not None else [False] * len(kept)
    lost = [k for k, g in enumerate(grid) if g < 0]
    inside = dict(zip(lost, district.inside(lons[lost], lats[lost]).tolist(), strict=True)) if lost else {}
    index = located.index if located is not None else None
    calendar = calendar or cases.DEFAULT_CALENDAR
    limits = {row["code"]: (row["unit"], row["limit"]) for row in load_categories()}
    edition = district.edition
    values = result.values
    for k, (number, row) in enumerate(kept):
        g = grid[k]
        if g < 0:
            if not inside[k]:
                if not allow_outside:
                    detail = (
                        f"the point {row['lon']:.6f}, {row['lat']:.6f} lies outside {district.described}; "
                        "--allow-outside imports such rows without a grid"
                    )
                    result.rejected.append(Rejection(number, "outside the jurisdiction", detail))
                    continue
                result.outside += 1
            result.unassigned += 1
            code = community = street = None
        else:
            code, community, street = index.codes[g], index.community_codes[g], index.street_codes[g]
        result.ambiguous += ambiguous[k]
        unit, limit = limits[row["category_code"]]
        at = row["reported_at"]
        deadline = calendar.add_hours(at, limit) if unit == "hours" else calendar.add_days(at, limit)
        values.append(
            (
                row["source_id"], row["source"], row["title"], row["description"], row["category_code"], at,
                row["reporter_name"], row["reporter_phone"], row["address"], row["lon"], row["lat"],
                row.get("geocode_level"), row.get("geocode_confidence"), bool(row.get("geocode_review")), code,
                community, street, edition,
                ambiguous[k], deadline,
            )
        )  # fmt: skip


def import_incidents(
    store,
    path: Path,
    *,
    crs: str = "wgs84",
    settings=None,
    category: str | None = None,
    allow_partial: bool = False,
    allow_outside: bool = False,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> IncidentImport:
    """Read, check, geocode, locate and give deadlines to an incident file, then write it all-or-nothing.

    By default a single refused row means nothing is written (`refused` is set); with `allow_partial` the
    good rows are written. Rows outside the jurisdiction are refused unless `allow_outside`."""
    from gridmap import cases, geocode

    path = Path(path)
    crs = crs_rules.canonical_crs(crs)
    table = open_table(path)
    district = District.current(store)
    if district.edition is None and not allow_outside:
        raise InvalidInput(
            "no boundaries are loaded, so no row can be placed in a grid or checked against the district: "
            "load boundaries first, or give --allow-outside to import the rows without grids"
        )
    # Hundreds of thousands of small rows and dicts make the cyclic garbage collector run over and over
    # (a third of the import's time); they hold no cycles, so it rests until the import is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        outcome = prepare_import(
            table,
            filename=path.name,
            district=district,
            geocoder=lambda: geocode.store_geocoder(store, settings),
            known_source_ids=store.existing_source_ids,
            coordinates_crs=crs,
            category=category,
            allow_outside=allow_outside,
            calendar=cases.calendar_from_settings(settings),
            now=now,
        )
        if outcome.rejected and not allow_partial:
            outcome.refused = True
            return outcome
        if not dry_run:
            outcome.written = store.import_incident_rows(IMPORT_COLUMNS, outcome.values)
        return outcome
    finally:
        if collecting:
            gc.enable()
