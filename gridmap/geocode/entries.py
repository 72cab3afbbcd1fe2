"""Gazetteer entries: reading them from CSV/GeoJSON, and tagging them with their district and street."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gridmap import crs as crs_rules
from gridmap.errors import InvalidInput

from .normalise import normalize_number

KINDS = ("building", "estate", "door", "road", "poi", "community")
GAZETTEER_COLUMNS = (
    "kind", "name", "lon", "lat", "road", "number", "estate", "building", "community_code", "aliases",
    "district", "street",
)  # fmt: skip
MAX_AREA_NAME = 100


@dataclass(frozen=True)
class GazetteerEntry:
    """One point of the standard address list: a building, estate, door number, road, POI or community."""

    kind: str
    name: str  # as written
    lon: float  # WGS84
    lat: float
    road: str | None = None
    number: int | str | None = None  # door number on `road`: 12, "12-3" or a lane "1999弄"
    estate: str | None = None  # estate a building belongs to
    building: str | None = None  # "3", "A"
    community_code: str | None = None
    aliases: tuple[str, ...] = ()
    district: str | None = None  # the district's name (区/县), from the file or tagged from the boundaries
    street: str | None = None  # the street office's name (街道/镇), likewise


def read_gazetteer_rows(
    rows: Iterable[Mapping[str, object]], *, first_row: int = 1, crs: str = "wgs84"
) -> list[GazetteerEntry]:
    """Turn CSV-like rows into entries, refusing the first bad row with its number and the problem.

    Columns: kind, name, lon, lat, road, number, estate, building, community_code, aliases ("|"-separated),
    district, street (both optional); header names are matched case-insensitively and a UTF-8 BOM is ignored.
    Rows are numbered from `first_row` (pass 2 for a CSV file whose line 1 is the header, so the number is the
    file's line). Coordinates given in `crs` (e.g. "gcj02" for a list taken from Amap) are converted to WGS84.
    A building needs estate and building, a door needs road and number.
    """
    source = crs_rules.canonical_crs(crs)
    entries = []
    for number, row in enumerate(rows, start=first_row):
        values = {str(k).lstrip("\ufeff").strip().lower(): _cell(v) for k, v in row.items() if k is not None}
        where = f"row {number}"
        kind = (values.get("kind") or "").lower()
        if kind not in KINDS:
            shown = repr(values.get("kind")) if values.get("kind") else "missing"
            raise InvalidInput(f"{where}: kind {shown} must be one of {', '.join(KINDS)}")
        name = values.get("name")
        if not name:
            raise InvalidInput(f"{where}: name is missing")
        where = f"row {number} ({name})"
        lon, lat = _coordinate(values, "lon", where), _coordinate(values, "lat", where)
        crs_rules.check_lonlat(lon=lon, lat=lat, where=where)
        lon, lat = crs_rules.to_wgs84(lon=lon, lat=lat, crs=source)
        if kind == "building" and not (values.get("estate") and values.get("building")):
            raise InvalidInput(f"{where}: a building needs its estate and building columns")
        if kind == "door" and not (values.get("road") and values.get("number")):
            raise InvalidInput(f"{where}: a door needs its road and number columns")
        for column in ("district", "street"):
            if len(values.get(column) or "") > MAX_AREA_NAME:
                raise InvalidInput(f"{where}: {column} is longer than {MAX_AREA_NAME} characters")
        door_number: int | str | None = values.get("number")
        if door_number is not None:
            door_number = normalize_number(door_number)
            door_number = int(door_number) if door_number.isdigit() else door_number
        aliases = tuple(a.strip() for a in (values.get("aliases") or "").split("|") if a.strip())
        entries.append(
            GazetteerEntry(
                kind=kind,
                name=name,
                lon=lon,
                lat=lat,
                road=values.get("road"),
                number=door_number,
                estate=values.get("estate"),
                building=values.get("building"),
                community_code=values.get("community_code"),
                aliases=aliases,
                district=values.get("district"),
                street=values.get("street"),
            )
        )
    return entries


def _cell(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _coordinate(values: dict[str, str | None], column: str, where: str) -> float:
    text = values.get(column)
    if text is None:
        raise InvalidInput(f"{where}: {column} is missing")
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{where}: {column} {text!r} is not a number") from None


def read_gazetteer_file(path: Path, *, crs: str = "wgs84") -> list[GazetteerEntry]:
    """Read a gazetteer from CSV (UTF-8 or GBK) or GeoJSON points, refusing the first bad row."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    from gridmap.incidents import decode_text  # the one place Chinese text files are decoded

    text = decode_text(path.read_bytes(), path.name)
    if path.suffix.lower() == ".csv":
        return read_gazetteer_rows(csv.DictReader(io.StringIO(text, newline="")), first_row=2, crs=crs)
    if path.suffix.lower() in (".geojson", ".json"):
        try:
            features = json.loads(text).get("features") or []
        except (json.JSONDecodeError, AttributeError) as exc:
            raise InvalidInput(f"{path.name}: not a GeoJSON FeatureCollection") from exc
        rows = []
        for feature in features:
            properties = dict(feature.get("properties") or {})
            coordinates = (feature.get("geometry") or {}).get("coordinates") or [None, None]
            properties.setdefault("lon", coordinates[0])
            properties.setdefault("lat", coordinates[1])
            rows.append(properties)
        return read_gazetteer_rows(rows, crs=crs)
    raise InvalidInput(f"{path.name}: a gazetteer is read from .csv or .geojson")


def entry_row(entry: GazetteerEntry) -> dict:
    """Return the stored form of an entry (the gazetteer table's columns)."""
    return {
        "kind": entry.kind,
        "name": entry.name,
        "lon": float(entry.lon),
        "lat": float(entry.lat),
        "road": entry.road,
        "number": None if entry.number is None else str(entry.number),
        "estate": entry.estate,
        "building": entry.building,
        "community_code": entry.community_code,
        "aliases": "|".join(entry.aliases),
        "district": entry.district,
        "street": entry.street,
    }


# ---- tagging from the boundaries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Area:
    """A district or street boundary as tagging needs it (geometry in WGS84 lon/lat)."""

    code: str
    name: str
    parent_code: str | None
    geometry: object  # shapely (Multi)Polygon


def tag_entries(
    entries: Sequence[GazetteerEntry], *, districts: Sequence[Area] = (), streets: Sequence[Area] = ()
) -> list[GazetteerEntry]:
    """Fill in the district and street of entries that lack them, from the boundaries that cover their points.

    The point-in-polygon rule is the one of `gridmap.assign` (boundary included, lowest code on a shared edge);
    a street's district is its parent when the district boundary itself is not loaded. Entries that already
    say their district or street keep what they say; points outside every boundary stay untagged.
    """
    from gridmap.assign import GridIndex  # THE point-in-polygon rule

    missing = [i for i, e in enumerate(entries) if e.district is None or e.street is None]
    if not missing or not (districts or streets):
        return list(entries)
    lons = [entries[i].lon for i in missing]
    lats = [entries[i].lat for i in missing]
    district_name = {a.code: a.name for a in districts}

    def covering(areas: Sequence[Area]) -> list[Area | None]:
        if not areas:
            return [None] * len(missing)
        index = GridIndex.build([a.code for a in areas], [a.geometry for a in areas])
        by_code = {a.code: a for a in areas}
        return [by_code.get(code) for code in index.locate_many(lons, lats, nearest=False).grid_codes()]

    in_street = covering(streets)
    in_district = covering(districts)
    tagged = list(entries)
    for position, street, district in zip(missing, in_street, in_district, strict=True):
        entry = tagged[position]
        street_district = district_name.get(street.parent_code or "") if street else None
        district_tag = district.name if district else street_district
        # A street is only taken when it lies in the district the entry says it is in.
        street_tag = (
            street.name if street and (street_district is None or entry.district in (None, street_district)) else None
        )
        tagged[position] = dataclasses.replace(
            entry, district=entry.district or district_tag, street=entry.street or street_tag
        )
    return tagged
