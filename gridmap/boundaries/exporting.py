"""Writing one level of an edition to GeoJSON, GeoPackage or Shapefile."""

from __future__ import annotations

from pathlib import Path

from gridmap.boundaries.validate import DBF_NAME_LENGTH, OPTIONAL_INT_FIELDS
from gridmap.errors import InvalidInput
from gridmap.store import LEVELS, Store

EXPORT_FORMATS = {"geojson": ("GeoJSON", ".geojson"), "gpkg": ("GPKG", ".gpkg"), "shp": ("ESRI Shapefile", ".shp")}


def export_boundaries(
    store: Store, out: Path, *, level: str, edition: str | None = None, fmt: str | None = None
) -> int:
    """Write one level of an edition to a GeoJSON, GeoPackage or Shapefile; return the feature count."""
    if level not in LEVELS:
        raise InvalidInput(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    out = Path(out)
    fmt = (fmt or _format_from_suffix(out)).lower()
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    edition_name = edition or _current_edition_name(store)
    store.get_edition(edition_name)
    frame = store.areas(edition_name, level)
    if frame.empty:
        raise InvalidInput(f"edition {edition_name!r} has no {level} areas to export")
    frame = frame.drop(columns=["level"])
    for column in OPTIONAL_INT_FIELDS:
        frame[column] = frame[column].astype("Int64")
    driver, _suffix = EXPORT_FORMATS[fmt]
    if fmt == "shp":
        frame = frame.rename(columns={"parent_code": "parent_code"[:DBF_NAME_LENGTH]})
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {"encoding": "UTF-8"} if fmt == "shp" else {}
    frame.to_file(out, driver=driver, engine="pyogrio", **options)
    return len(frame)


def _format_from_suffix(out: Path) -> str:
    for fmt, (_driver, suffix) in EXPORT_FORMATS.items():
        if out.suffix.lower() == suffix or (fmt == "geojson" and out.suffix.lower() == ".json"):
            return fmt
    raise InvalidInput(f"cannot tell the format of {out.name}: give --format geojson, gpkg or shp")


def _current_edition_name(store: Store) -> str:
    current = store.current_edition()
    if current is None:
        raise InvalidInput("no edition is current: name one with --edition")
    return current.name
