"""The household register: buildings with their households, where they stand, and what grid they fall in.

`gridmap load-buildings FILE` reads CSV (UTF-8 or GBK), XLSX or GeoJSON: a code, a name or an address, the
estate (小区) when known, lon/lat or a footprint polygon, households and population. Rows without coordinates
are placed with the geocoder (the offline gazetteer by default). Every refused row is listed with its row
number and reason while the good rows are written together in one transaction; loading the same file again
changes nothing, because buildings are recognised by their code (a changed row is updated in place).

Buildings fall in grids by THE rule of `gridmap.assign` (their point; a footprint's representative point).
Where a community's grids hold buildings of the register, its grids' households and population are the sums of
their buildings (`grid_figures`); elsewhere the figures stored with the grids stand.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

from gridmap import crs as crs_rules
from gridmap.errors import GridmapError, InvalidInput

# gridmap field → headers seen in registers (lower-case for Latin names).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "id", "building_code", "编码", "楼栋编码", "建筑编码", "楼栋代码", "地址编码"),
    "name": ("name", "building", "名称", "楼栋名称", "建筑名称", "楼栋"),
    "address": ("address", "地址", "楼栋地址", "门牌地址", "标准地址"),
    "estate": ("estate", "小区", "小区名称", "所属小区"),
    "community_code": ("community", "community_code", "社区编码", "所属社区编码", "社区"),
    "households": ("households", "户数", "住户数", "总户数", "户"),
    "population": ("population", "人口", "人数", "常住人口", "人口数"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "lat": ("lat", "latitude", "纬度"),
    "footprint": ("footprint", "wkt", "geometry", "轮廓", "建筑轮廓"),
}
MAX_CODE, MAX_NAME, MAX_ADDRESS, MAX_ESTATE = 64, 200, 300, 100
MAX_HOUSEHOLDS = 100_000  # more than any building holds: a typo, or a whole community in one row
MAX_FOOTPRINT_M2 = 1_000_000.0  # a footprint bigger than 1 km² is not a building
# A building geocoded to a road or a whole community would stand at a made-up point: those rows need coordinates.
PLACEABLE_LEVELS = ("building", "poi", "estate", "door")
# Who may see single buildings on the map; every other role sees counts per grid only.
SEES_BUILDINGS = ("admin", "planner", "supervisor", "grid_worker")


@dataclass
class BuildingLoad:
    """The outcome of reading a building file: rows to write, rows refused, and what writing did."""

    rows: list[dict] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    geocoded: Counter = field(default_factory=Counter)
    written: dict[str, int] = field(default_factory=dict)
    in_no_grid: list[str] = field(default_factory=list)
    edition: str | None = None

    def summary(self) -> list[str]:
        """Describe the load for people: counts, then every refused row."""
        lines = [f"buildings read: {len(self.rows) + len(self.refused)}; usable: {len(self.rows)}"]
        if self.geocoded:
            lines.append("placed by the geocoder: " + ", ".join(f"{k} {v}" for k, v in sorted(self.geocoded.items())))
        if self.written:
            lines.append(", ".join(f"{k} {v}" for k, v in self.written.items()))
        if self.edition is not None:
            lines.append(f"in no grid of edition {self.edition!r}: {len(self.in_no_grid)}")
            lines += [f"  {code}" for code in self.in_no_grid[:20]]
            if len(self.in_no_grid) > 20:
                lines.append(f"  … and {len(self.in_no_grid) - 20} more")
        lines.append(f"refused: {len(self.refused)}")
        lines += [f"  {reason}" for reason in self.refused]
        return lines


# ---- reading ----------------------------------------------------------------------------------------------
def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (row number as people count it, {header: value}) from a CSV, XLSX or GeoJSON file."""
    from gridmap import incidents

    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        yield from _geojson_rows(path)
    elif suffix in (".csv", ".xlsx", ".xlsm"):
        yield from incidents.read_rows(path)
    else:
        raise InvalidInput(f"{path.name}: buildings are read from .csv, .xlsx or .geojson files")


def _geojson_rows(path: Path) -> Iterator[tuple[int, dict]]:
    from gridmap import incidents

    try:
        document = json.loads(incidents.decode_text(path.read_bytes(), path.name))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise InvalidInput(f"{path.name}: not a GeoJSON FeatureCollection")
    for number, feature in enumerate(features, start=1):
        feature = feature if isinstance(feature, dict) else {}
        properties = dict(feature.get("properties") or {})
        geometry = feature.get("geometry") or {}
        if isinstance(geometry, dict) and geometry.get("type") == "Point":
            coordinates = geometry.get("coordinates") or []
            if len(coordinates) >= 2:
                properties["lon"], properties["lat"] = coordinates[:2]
        elif isinstance(geometry, dict) and geometry.get("type"):
            properties["footprint"] = geometry
        yield number, properties


def header_map(headers: Iterable[str]) -> dict[str, str]:
    """Map gridmap fields to the file's headers, by the aliases above."""
    by_lower = {str(h).strip().lower(): h for h in headers if h is not None}
    found = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias.lower() in by_lower:
                found[name] = by_lower[alias.lower()]
                break
    return found


# ---- checking one row ---------------------------------------------------------------------------------------
def _count(value, what: str, where: str, *, required: bool) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{where}: has no {what}")
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{where}: {what} {value!r} is not a whole number")
    try:
        number = float(str(value).strip()) if not isinstance(value, int | float) else float(value)
    except ValueError:
        raise InvalidInput(f"{where}: {what} {value!r} is not a whole number") from None
    if math.isnan(number) or number != int(number) or number < 0:
        raise InvalidInput(f"{where}: {what} {value!r} is not a whole number ≥ 0")
    if number > MAX_HOUSEHOLDS * (3 if what == "population" else 1):
        raise InvalidInput(f"{where}: {what} {int(number)} is far more than one building holds")
    return int(number)


def _text(raw: Mapping, columns: Mapping[str, str], name: str) -> str:
    column = columns.get(name)
    cell = raw.get(column) if column else None
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ""
    if isinstance(cell, float) and cell == int(cell) and name == "code":
        cell = int(cell)  # Excel turns a numeric code into 1234.0
    return str(cell).strip()


def _footprint(value, where: str, coordinates_crs: str) -> shapely.Geometry:
    try:
        geometry = shape(value) if isinstance(value, Mapping) else shapely.from_wkt(str(value))
    except Exception as exc:  # shapely raises several types for malformed input
        raise InvalidInput(f"{where}: the footprint is neither GeoJSON nor WKT ({type(exc).__name__})") from None
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty:
        raise InvalidInput(f"{where}: the footprint is a {geometry.geom_type}; give a Polygon or lon/lat")
    geometry = shapely.force_2d(geometry)
    if coordinates_crs != "wgs84":
        geometry = shapely.transform(
            geometry, lambda xy: np.column_stack(crs_rules.to_wgs84(lon=xy[:, 0], lat=xy[:, 1], crs=coordinates_crs))
        )
    crs_rules.check_bounds(*geometry.bounds, where=f"{where}: footprint")
    if not geometry.is_valid:
        raise InvalidInput(f"{where}: the footprint is invalid: {shapely.is_valid_reason(geometry)}")
    area = _area_m2(geometry)
    if area > MAX_FOOTPRINT_M2:
        raise InvalidInput(f"{where}: the footprint covers {area / 1e6:.1f} km², far more than a building")
    return geometry


def _area_m2(geometry: shapely.Geometry) -> float:
    lat = geometry.centroid.y
    scale = 111_320.0**2 * math.cos(math.radians(lat))  # m² per square degree at this latitude
    return geometry.area * scale


def normalise_row(raw: Mapping, columns: Mapping[str, str], *, where: str, coordinates_crs: str = "wgs84") -> dict:
    """Turn one raw row into building fields, raising InvalidInput that names the row and the problem."""
    code = _text(raw, columns, "code")
    if not code:
        raise InvalidInput(f"{where}: has no building code")
    if len(code) > MAX_CODE:
        raise InvalidInput(f"{where}: code has {len(code)} characters; at most {MAX_CODE}")
    where = f"{where} ({code})"
    name, address, estate = (_text(raw, columns, f) for f in ("name", "address", "estate"))
    if not name and not address:
        raise InvalidInput(f"{where}: has neither a name nor an address")
    for what, text, limit in (
        ("name", name, MAX_NAME),
        ("address", address, MAX_ADDRESS),
        ("estate", estate, MAX_ESTATE),
    ):
        if len(text) > limit:
            raise InvalidInput(f"{where}: {what} has {len(text)} characters; at most {limit}")
    row = {
        "code": code,
        "name": name or address,
        "address": address or None,
        "estate": estate or None,
        "community_code": _text(raw, columns, "community_code") or None,
        "households": _count(raw.get(columns.get("households", "")), "households", where, required=True),
        "population": _count(raw.get(columns.get("population", "")), "population", where, required=False),
        "lon": None,
        "lat": None,
        "footprint": None,
        "geocode_level": None,
    }
    footprint = raw.get(columns["footprint"]) if "footprint" in columns else None
    if footprint not in (None, ""):
        row["footprint"] = _footprint(footprint, where, coordinates_crs)
        point = row["footprint"].representative_point()
        row["lon"], row["lat"] = point.x, point.y
        return row
    lon_text, lat_text = _text(raw, columns, "lon"), _text(raw, columns, "lat")
    if lon_text or lat_text:
        lon = crs_rules.parse_number(lon_text, f"{where}: lon") if lon_text else None
        lat = crs_rules.parse_number(lat_text, f"{where}: lat") if lat_text else None
        if lon is None or lat is None:
            raise InvalidInput(f"{where}: give both lon and lat, or neither (then the address is geocoded)")
        lon, lat = crs_rules.to_wgs84(lon=lon, lat=lat, crs=coordinates_crs)
        crs_rules.check_lonlat(lon=lon, lat=lat, where=where)
        row["lon"], row["lat"] = float(lon), float(lat)
    return row


def prepare_buildings(
    rows: Iterable[tuple[int, dict]], *, filename: str, geocoder, coordinates_crs: str = "wgs84"
) -> BuildingLoad:
    """Check every row, place rows without coordinates with the geocoder, and list every refusal."""
    result = BuildingLoad()
    columns: dict[str, str] | None = None
    seen: dict[str, int] = {}
    for number, raw in rows:
        if columns is None:
            columns, columns_of = header_map(raw.keys()), raw.keys()
            missing = [f for f in ("code", "households") if f not in columns]
            if missing:
                raise InvalidInput(
                    f"{filename}: no {' or '.join(missing)} column (looked for "
                    + "; ".join(", ".join(COLUMN_ALIASES[f]) for f in missing)
                    + "); its columns are: "
                    + ", ".join(str(k) for k in raw)
                )
        where = f"{filename}: row {number}"
        # GeoJSON features carry their own keys (a point has lon/lat, a footprint has none): map each row's own.
        row_columns = columns if len(raw) == len(columns_of) and raw.keys() == columns_of else header_map(raw.keys())
        try:
            row = normalise_row(raw, row_columns, where=where, coordinates_crs=coordinates_crs)
            if row["code"] in seen:
                first = seen[row["code"]]
                raise InvalidInput(
                    f"{where} ({row['code']}): the code appears twice in the file (first in row {first})"
                )
            if row["lon"] is None:
                _place(row, geocoder, where=f"{where} ({row['code']})")
                result.geocoded[row["geocode_level"]] += 1
        except GridmapError as exc:
            result.refused.append(exc.message)
            continue
        seen[row["code"]] = number
        result.rows.append(row)
    if columns is None:
        raise InvalidInput(f"{filename}: has no rows")
    return result


def _place(row: dict, geocoder, *, where: str) -> None:
    query = row["address"] or row["name"]
    found = geocoder.geocode(query)
    if not found.found:
        raise InvalidInput(f"{where}: address {query!r} was not found in the gazetteer; give lon/lat")
    if found.level not in PLACEABLE_LEVELS:
        raise InvalidInput(
            f"{where}: address {query!r} only matched a {found.level} ({found.entry.name if found.entry else '?'}), "
            "too coarse to place a building; give lon/lat"
        )
    row.update(lon=float(found.lon), lat=float(found.lat), geocode_level=found.level)


def load_buildings(store, path: Path, *, crs: str = "wgs84", settings=None, dry_run: bool = False) -> BuildingLoad:
    """Read, check and place a building file, then write its good rows in one transaction (unless dry_run)."""
    from gridmap import geocode

    path = Path(path)
    outcome = prepare_buildings(
        read_rows(path),
        filename=path.name,
        geocoder=geocode.store_geocoder(store, settings),
        coordinates_crs=crs,
    )
    current = store.current_edition()
    if current is not None and outcome.rows:
        index = _index(store, current.name)
        grids = located_grids(index, outcome.rows)
        outcome.edition = current.name
        outcome.in_no_grid = [r["code"] for r, g in zip(outcome.rows, grids, strict=True) if g is None]
    if not dry_run:
        outcome.written = store.save_buildings(outcome.rows)
    return outcome


# ---- buildings in grids ---------------------------------------------------------------------------------------
def _index(store, edition: str):
    from gridmap import assign

    return assign.grid_index(store, edition)


def located_grids(index, buildings: list[dict]) -> list[str | None]:
    """Return the grid of each building by THE rule (its point), None when it lies in no grid."""
    if not buildings:
        return []
    result = index.locate_many([b["lon"] for b in buildings], [b["lat"] for b in buildings], nearest=False)
    return result.grid_codes()


_figures: dict[tuple, dict] = {}
_figures_lock = threading.Lock()


def grid_figures(store, edition: str) -> dict[str, dict]:
    """Return {grid code: {households, population, buildings}} for the grids of every community that has
    buildings in the register; grids of other communities are left out (their stored figures stand)."""
    key = (store.url, edition)
    fingerprint = (store.edition_fingerprint(edition), store.buildings_fingerprint())
    with _figures_lock:
        cached = _figures.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
    figures = _compute_figures(store, edition) if fingerprint[1][0] else {}
    with _figures_lock:
        _figures[key] = (fingerprint, figures)
    return figures


def _compute_figures(store, edition: str) -> dict[str, dict]:
    index = _index(store, edition)
    buildings = store.buildings()
    grids = located_grids(index, buildings)
    totals: dict[str, dict] = defaultdict(lambda: {"households": 0, "population": 0, "buildings": 0})
    population_known: dict[str, bool] = defaultdict(lambda: True)
    for building, grid in zip(buildings, grids, strict=True):
        if grid is None:
            continue
        entry = totals[grid]
        entry["households"] += building["households"]
        entry["buildings"] += 1
        if building["population"] is None:
            population_known[grid] = False
        else:
            entry["population"] += building["population"]
    communities = {index.community_codes[index.position[g]] for g in totals}
    figures = {}
    for position, code in enumerate(index.codes):
        if index.community_codes[position] in communities:
            entry = dict(totals.get(code) or {"households": 0, "population": 0, "buildings": 0})
            if not population_known[code]:
                entry["population"] = None
            figures[code] = entry
    return figures


def with_building_figures(rows: list[dict], figures: Mapping[str, dict]) -> list[dict]:
    """Return grid rows (dicts with code, households, population) with the building figures where known."""
    if not figures:
        return rows
    out = []
    for row in rows:
        found = figures.get(row.get("code"))
        out.append({**row, "households": found["households"], "population": found["population"]} if found else row)
    return out


def apply_to_frame(store, edition: str, frame):
    """Return an areas GeoDataFrame with its grids' households and population from buildings where known."""
    figures = grid_figures(store, edition)
    if not figures or not len(frame):
        return frame
    frame = frame.copy()
    households = frame["households"].astype(object).tolist()
    population = frame["population"].astype(object).tolist()
    for i, code in enumerate(frame["code"]):
        found = figures.get(code)
        if found is not None:
            households[i], population[i] = found["households"], found["population"]
    frame["households"] = households
    frame["population"] = population
    return frame


# ---- the map layer ------------------------------------------------------------------------------------------
def map_layer(store, edition: str, user, *, grid_labels: Mapping[str, list[float]], to_gcj02: bool = False) -> dict:
    """Return the buildings layer of the map as GeoJSON points, as the user may see it.

    Roles in SEES_BUILDINGS get each building in their scope (code, name, estate, households, population,
    grid); outside their scope, and for every other role, one point per grid at its label with counts only.
    """
    index = _index(store, edition)
    buildings = store.buildings()
    grids = located_grids(index, buildings)
    detail = user.role in SEES_BUILDINGS
    features: list[dict] = []
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for building, grid in zip(buildings, grids, strict=True):
        position = index.position.get(grid) if grid else None
        community = index.community_codes[position] if position is not None else None
        street = index.street_codes[position] if position is not None else None
        if detail and user.covers(grid_code=grid, community_code=community, street_code=street):
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Point",
                        "coordinates": [round(building["lon"], 6), round(building["lat"], 6)],
                    },
                    "properties": {
                        "code": building["code"],
                        "name": building["name"],
                        "estate": building["estate"],
                        "households": building["households"],
                        "population": building["population"],
                        "grid_code": grid,
                    },
                }
            )
        elif grid is not None:
            counts[grid][0] += 1
            counts[grid][1] += building["households"]
    for grid, (number, households) in sorted(counts.items()):
        label = grid_labels.get(grid)
        if label is None:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": label},
                "properties": {"grid_code": grid, "buildings": number, "households": households},
            }
        )
    if to_gcj02 and features:
        # An Amap basemap is drawn in GCJ-02: shift the points so they land on it, as the other layers do.
        xy = np.array([f["geometry"]["coordinates"] for f in features], dtype=float)
        lon, lat = crs_rules.wgs84_to_gcj02(lon=xy[:, 0], lat=xy[:, 1])
        for feature, x, y in zip(features, np.asarray(lon).tolist(), np.asarray(lat).tolist(), strict=True):
            feature["geometry"]["coordinates"] = [round(x, 6), round(y, 6)]
    return {"type": "FeatureCollection", "edition": edition, "detail": detail, "features": features}
