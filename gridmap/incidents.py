"""Incident files in: read CSV (UTF-8 or GBK/GB18030), XLSX and GeoJSON, geocode, assign, import.

A 12345 hotline export arrives with Chinese headers (工单编号, 诉求内容, 地址, 经度, 纬度, 来电时间); they are
mapped to gridmap's fields. Rows that cannot be used are rejected with their row number and reason while the
good rows are written together in one transaction. Importing the same file again adds nothing: rows are
recognised by their source id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gridmap import crs as crs_rules
from gridmap.errors import GridmapError, InvalidInput

# gridmap field → headers seen in the field (lower-case for Latin names).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "source_id": ("source_id", "id", "工单编号", "工单号", "编号"),
    "title": ("title", "标题", "诉求标题", "事件标题"),
    "description": ("description", "诉求内容", "内容", "事件描述", "描述"),
    "address": ("address", "地址", "事发地址", "事发地点"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "lat": ("lat", "latitude", "纬度"),
    "reported_at": ("reported_at", "来电时间", "上报时间", "时间", "受理时间"),
    "category_code": ("category", "category_code", "类别", "分类", "事件类别"),
    "source": ("source", "来源", "渠道"),
    "reporter_name": ("reporter", "reporter_name", "来电人", "上报人", "姓名"),
    "reporter_phone": ("phone", "reporter_phone", "来电号码", "联系电话", "电话"),
}
SOURCES = ("patrol", "visit", "chat", "hotline", "video", "higher", "import", "web")
_SOURCE_WORDS = {
    "巡查": "patrol",
    "走访": "visit",
    "群聊": "chat",
    "12345": "hotline",
    "热线": "hotline",
    "视频": "video",
    "上级": "higher",
}
MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_ADDRESS = 300
_TITLE_FROM_DESCRIPTION = 30
_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
)


@dataclass
class IncidentImport:
    """The outcome of reading an incident file: rows to write and rows refused."""

    rows: list[dict] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    duplicates: int = 0
    geocoded: Counter = field(default_factory=Counter)
    unassigned: int = 0
    ambiguous: int = 0

    def summary(self) -> list[str]:
        """Describe the import for people."""
        lines = [f"rows to import: {len(self.rows)}"]
        if self.duplicates:
            lines.append(f"already imported (same source id): {self.duplicates}")
        if self.geocoded:
            lines.append("geocoded by level: " + ", ".join(f"{k} {v}" for k, v in sorted(self.geocoded.items())))
        lines.append(f"in no grid: {self.unassigned}; on a shared edge (ambiguous): {self.ambiguous}")
        lines.append(f"rejected: {len(self.rejected)}")
        lines += [f"  {reason}" for reason in self.rejected[:50]]
        if len(self.rejected) > 50:
            lines.append(f"  ... and {len(self.rejected) - 50} more")
        return lines


# ---- reading -------------------------------------------------------------------------------------------
def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (row number as people count it, {header: value}) from a CSV, XLSX or GeoJSON file."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_rows(path)
    elif suffix in (".xlsx", ".xlsm"):
        yield from _xlsx_rows(path)
    elif suffix in (".geojson", ".json"):
        yield from _geojson_rows(path)
    else:
        raise InvalidInput(f"{path.name}: incidents are read from .csv, .xlsx or .geojson files")


def decode_text(raw: bytes, filename: str) -> str:
    """Decode a text file that may be UTF-8 (with or without BOM) or GBK/GB18030, as Chinese exports are."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(f"{filename}: neither UTF-8 nor GBK/GB18030 text")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    text = decode_text(path.read_bytes(), path.name)
    if not text.strip():
        raise InvalidInput(f"{path.name}: the file is empty")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for number, row in enumerate(reader, start=2):
        yield number, {k.strip(): v for k, v in row.items() if k is not None}


def _xlsx_rows(path: Path) -> Iterator[tuple[int, dict]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a damaged file
        raise InvalidInput(f"{path.name}: cannot read it as an Excel workbook ({type(exc).__name__})") from exc
    sheet = workbook.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if not header:
        raise InvalidInput(f"{path.name}: the first sheet is empty")
    names = [str(h).strip() if h is not None else "" for h in header]
    for number, values in enumerate(rows, start=2):
        if values and any(v not in (None, "") for v in values):
            yield number, dict(zip(names, values, strict=False))
    workbook.close()


def _geojson_rows(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        document = json.loads(decode_text(path.read_bytes(), path.name))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise InvalidInput(f"{path.name}: not a GeoJSON FeatureCollection")
    for number, feature in enumerate(features, start=1):
        properties = dict((feature or {}).get("properties") or {})
        geometry = (feature or {}).get("geometry") or {}
        if geometry.get("type") == "Point" and len(geometry.get("coordinates") or []) >= 2:
            properties["lon"], properties["lat"] = geometry["coordinates"][:2]
        yield number, properties


# ---- validating -------------------------------------------------------------------------------------------
def header_map(headers: Iterable[str]) -> dict[str, str]:
    """Map gridmap fields to the file's headers, by the aliases above."""
    by_lower = {h.strip().lower(): h for h in headers}
    found = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias.lower() in by_lower:
                found[name] = by_lower[alias.lower()]
                break
    return found


def normalise_row(raw: Mapping, columns: Mapping[str, str], *, where: str, coordinates_crs: str = "wgs84") -> dict:
    """Turn one raw row into incident fields, raising InvalidInput that names the row and the problem."""

    def value(name: str) -> str:
        column = columns.get(name)
        cell = raw.get(column) if column else None
        if cell is None or (isinstance(cell, float) and math.isnan(cell)):
            return ""
        return str(cell).strip()

    description = value("description")
    title = value("title") or description[:_TITLE_FROM_DESCRIPTION]
    if not title:
        raise InvalidInput(f"{where}: has neither a title nor a description")
    for name, text, limit in (
        ("title", title, MAX_TITLE),
        ("description", description, MAX_DESCRIPTION),
        ("address", value("address"), MAX_ADDRESS),
    ):
        if len(text) > limit:
            raise InvalidInput(f"{where}: {name} has {len(text)} characters; at most {limit} are kept")
    row = {
        "source_id": value("source_id") or None,
        "title": title,
        "description": description,
        "address": value("address") or None,
        "category_code": value("category_code") or None,
        "source": _source(value("source")),
        "reporter_name": value("reporter_name") or None,
        "reporter_phone": value("reporter_phone") or None,
        "reported_at": parse_time(raw.get(columns["reported_at"]) if "reported_at" in columns else None, where),
        "lon": None,
        "lat": None,
    }
    lon_text, lat_text = value("lon"), value("lat")
    if lon_text or lat_text:
        try:
            lon, lat = float(lon_text), float(lat_text)
        except ValueError as exc:
            raise InvalidInput(f"{where}: coordinates lon={lon_text!r}, lat={lat_text!r} are not numbers") from exc
        lon, lat = crs_rules.to_wgs84(lon=lon, lat=lat, crs=coordinates_crs)
        crs_rules.check_lonlat(lon=lon, lat=lat, where=where)
        row["lon"], row["lat"] = float(lon), float(lat)
    elif not row["address"]:
        raise InvalidInput(f"{where}: has neither coordinates nor an address")
    return row


def parse_time(cell, where: str) -> dt.datetime:
    """Read a report time from a cell (a datetime from Excel, or text in the usual Chinese formats)."""
    if isinstance(cell, dt.datetime):
        return cell.replace(microsecond=0, tzinfo=None)
    if isinstance(cell, dt.date):
        return dt.datetime.combine(cell, dt.time())
    text = "" if cell is None else str(cell).strip()
    if not text:
        raise InvalidInput(f"{where}: has no report time")
    try:
        return dt.datetime.fromisoformat(text).replace(microsecond=0, tzinfo=None)
    except ValueError:
        pass
    for pattern in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise InvalidInput(f"{where}: report time {text!r} is not a date and time like 2026-03-01 09:30")


def _source(text: str) -> str:
    if not text:
        return "import"
    if text.lower() in SOURCES:
        return text.lower()
    for word, source in _SOURCE_WORDS.items():
        if word in text:
            return source
    return "import"


def prepare_import(
    rows: Iterable[tuple[int, dict]],
    *,
    filename: str,
    geocoder,
    locate,
    known_source_ids,
    coordinates_crs: str = "wgs84",
) -> IncidentImport:
    """Validate, geocode and assign rows; `locate(lon=, lat=)` returns an assignment, `known_source_ids(ids)`
    the ids already stored."""
    result = IncidentImport()
    columns: dict[str, str] | None = None
    seen: set[str] = set()
    pending: list[dict] = []
    for number, raw in rows:
        if columns is None:
            columns = header_map(raw.keys())
            if "title" not in columns and "description" not in columns:
                raise InvalidInput(
                    f"{filename}: no title or description column (looked for "
                    + ", ".join(COLUMN_ALIASES["title"] + COLUMN_ALIASES["description"])
                    + "); its columns are: "
                    + ", ".join(raw.keys())
                )
        where = f"{filename}: row {number}"
        try:
            row = normalise_row(raw, columns, where=where, coordinates_crs=coordinates_crs)
            if row["source_id"] and row["source_id"] in seen:
                raise InvalidInput(f"{where}: source id {row['source_id']} appears twice in the file")
            if row["lon"] is None:
                found = geocoder.geocode(row["address"])
                if not found.found:
                    raise InvalidInput(f"{where}: address {row['address']!r} was not found in the gazetteer")
                row.update(found.incident_fields())  # point, level, confidence, review flag
                result.geocoded[found.level] += 1
        except GridmapError as exc:
            result.rejected.append(exc.message)
            continue
        if row["source_id"]:
            seen.add(row["source_id"])
        pending.append(row)
    if columns is None:
        raise InvalidInput(f"{filename}: has no rows")
    already = known_source_ids([r["source_id"] for r in pending if r["source_id"]])
    for row in pending:
        if row["source_id"] in already:
            result.duplicates += 1
            continue
        assignment = locate(lon=row["lon"], lat=row["lat"])
        row.update(assignment.incident_fields())
        result.unassigned += assignment.grid_code is None
        result.ambiguous += bool(assignment.ambiguous)
        result.rows.append(row)
    return result


def import_incidents(store, path: Path, *, crs: str = "wgs84", settings=None) -> IncidentImport:
    """Read, geocode and assign an incident file and write its good rows in one transaction."""
    from gridmap import assign, geocode

    path = Path(path)
    index = assign.grid_index(store)
    current = store.current_edition()
    outcome = prepare_import(
        read_rows(path),
        filename=path.name,
        geocoder=geocode.store_geocoder(store, settings),
        locate=index.locate,
        known_source_ids=store.existing_source_ids,
        coordinates_crs=crs,
    )
    for row in outcome.rows:
        row["edition"] = row["original_edition"] = current.name if current else None
    store.add_incidents(outcome.rows)
    return outcome
