"""Reading incident files: CSV (UTF-8 or GBK/GB18030, strictly quoted), XLSX and GeoJSON, as rows of cells."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gridmap.errors import InvalidInput


@dataclass
class Table:
    """The rows of a file: a header and (row number as people count it, cells in header order)."""

    header: list[str]
    rows: Iterator[tuple[int, list]]


def open_table(path: Path) -> Table:
    """Open a CSV, XLSX or GeoJSON file of incidents."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"{path}: is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_table(path)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_table(path)
    if suffix in (".geojson", ".json"):
        return _geojson_table(path)
    raise InvalidInput(f"{path.name}: incidents are read from .csv, .xlsx or .geojson files")


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (row number as people count it, {header: value}) from a CSV, XLSX or GeoJSON file."""
    table = open_table(path)
    for number, cells in table.rows:
        yield number, dict(zip(table.header, cells, strict=False))


def decode_text(raw: bytes, filename: str) -> str:
    """Decode a text file that may be UTF-8 (with or without BOM) or GBK/GB18030, as Chinese exports are."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(f"{filename}: neither UTF-8 nor GBK/GB18030 text")


def _csv_table(path: Path) -> Table:
    text = decode_text(path.read_bytes(), path.name)
    if not text.strip():
        raise InvalidInput(f"{path.name}: the file is empty")
    # strict: an unterminated quote is an error at its line, not a row that swallows the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = [h.strip() for h in _next_record(reader, path.name) or []]

    def rows() -> Iterator[tuple[int, list]]:
        number = 1
        while True:
            record = _next_record(reader, path.name)
            if record is None:
                return
            number += 1
            if record:
                yield number, record

    return Table(header, rows())


def _next_record(reader, filename: str) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InvalidInput(
                f"{filename}: a quoted field that starts before line {reader.line_num} is never closed "
                '(an unterminated " quote); nothing was imported',
                reason="unterminated quote",
            ) from None
        raise InvalidInput(f"{filename}: line {reader.line_num}: malformed CSV ({exc}); nothing was imported") from None


def _xlsx_table(path: Path) -> Table:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a damaged file
        raise InvalidInput(f"{path.name}: cannot read it as an Excel workbook ({type(exc).__name__})") from exc
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    header = next(values, None)
    if not header:
        workbook.close()
        raise InvalidInput(f"{path.name}: the first sheet is empty")

    def rows() -> Iterator[tuple[int, list]]:
        try:
            for number, cells in enumerate(values, start=2):
                if cells and any(v not in (None, "") for v in cells):
                    yield number, list(cells)
        finally:
            workbook.close()

    return Table([str(h).strip() if h is not None else "" for h in header], rows())


def _geojson_table(path: Path) -> Table:
    try:
        document = json.loads(decode_text(path.read_bytes(), path.name))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError:
        raise InvalidInput(f"{path.name}: JSON nested too deep") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise InvalidInput(f"{path.name}: not a GeoJSON FeatureCollection")
    header: list[str] = []
    known: set[str] = set()
    for feature in features:
        properties = feature.get("properties") if isinstance(feature, dict) else None
        for key in properties if isinstance(properties, dict) else ():
            if key not in known:
                known.add(key)
                header.append(str(key))
    header += [k for k in ("lon", "lat") if k not in known]
    position = {name: i for i, name in enumerate(header)}

    def rows() -> Iterator[tuple[int, list]]:
        for number, feature in enumerate(features, start=1):
            feature = feature if isinstance(feature, dict) else {}
            properties = feature.get("properties")
            cells: list = [None] * len(header)
            for key, value in (properties if isinstance(properties, dict) else {}).items():
                cells[position[str(key)]] = value
            geometry = feature.get("geometry") if isinstance(feature.get("geometry"), dict) else {}
            coordinates = geometry.get("coordinates")
            if geometry.get("type") == "Point" and isinstance(coordinates, list) and len(coordinates) >= 2:
                cells[position["lon"]], cells[position["lat"]] = coordinates[:2]
            yield number, cells

    return Table(header, rows())
