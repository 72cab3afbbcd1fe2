"""Files of points located in bulk (placeholder, rewritten below)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gridmap import crs as crs_module
from gridmap.errors import InvalidInput

from . import to_wgs84_point
OUTPUT_COLUMNS = ("grid_code", "community_code", "street_code", "ambiguous", "error")
CSV_CHUNK = 50_000


def _parse_point(raw_lon: str | None, raw_lat: str | None, crs: str) -> tuple[float, float]:
    try:
        lon, lat = float(raw_lon), float(raw_lat)
    except (TypeError, ValueError):
        raise InvalidInput(f"lon={raw_lon!r}, lat={raw_lat!r} is not a pair of numbers") from None
    return to_wgs84_point(lon=lon, lat=lat, crs=crs)


def locate_csv(
    index: GridIndex,
    input_path: Path,
    output_path: Path,
    *,
    columns: tuple[str, str, str] = ("id", "lon", "lat"),
    crs: str = "wgs84",
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Locate every row of a CSV file and write it back with the grid columns; a bad row gets an `error`."""
    from gridmap.incidents import decode_text

    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.exists():
        raise InvalidInput(f"{input_path}: no such file")
    crs_module.canonical_crs(crs)
    text = decode_text(input_path.read_bytes(), input_path.name)
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    id_column, lon_column, lat_column = columns
    missing = [c for c in (id_column, lon_column, lat_column) if c not in header]
    if missing:
        raise InvalidInput(
            f"{input_path.name}: no column {', '.join(missing)}; its columns are: {', '.join(header) or '(none)'}"
        )
    counts: Counter[str] = Counter()
    out_header = header + [c for c in OUTPUT_COLUMNS if c not in header]
    with output_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=out_header, extrasaction="ignore")
        writer.writeheader()
        chunk: list[dict] = []
        for row in reader:
            chunk.append(row)
            if len(chunk) == CSV_CHUNK:
                _write_chunk(index, chunk, writer, lon_column, lat_column, crs, counts, progress)
                chunk = []
        _write_chunk(index, chunk, writer, lon_column, lat_column, crs, counts, progress)
    return {
        "rows": counts["rows"],
        "in a grid": counts["located"],
        "in no grid": counts["outside"],
        "ambiguous": counts["ambiguous"],
        "errors": counts["errors"],
    }


def _write_chunk(index, rows, writer, lon_column, lat_column, crs, counts, progress) -> None:
    if not rows:
        return
    lons = np.full(len(rows), np.nan)
    lats = np.full(len(rows), np.nan)
    errors: dict[int, str] = {}
    for position, row in enumerate(rows):
        try:
            lons[position], lats[position] = _parse_point(row.get(lon_column), row.get(lat_column), crs)
        except InvalidInput as exc:
            errors[position] = exc.message
    result = index.locate_many(lons, lats, nearest=False)
    codes = result.grid_codes()
    for position, row in enumerate(rows):
        counts["rows"] += 1
        if position in errors:
            counts["errors"] += 1
            row.update(grid_code="", community_code="", street_code="", ambiguous="", error=errors[position])
        else:
            grid = int(result.grid[position])
            located = grid >= 0
            counts["located" if located else "outside"] += 1
            counts["ambiguous"] += bool(result.ambiguous[position])
            row.update(
                grid_code=codes[position] or "",
                community_code=(index.community_codes[grid] or "") if located else "",
                street_code=(index.street_codes[grid] or "") if located else "",
                ambiguous="true" if result.ambiguous[position] else "false",
                error="",
            )
        writer.writerow(row)
    if progress is not None:
        progress(len(rows))
