"""The demo gazetteer: a standard address list for the demo district (roads with door numbers, estates and their
buildings, a POI per dedicated grid, every community), written to and read from gazetteer.csv.

Its random draws use seed + 1, so it never shifts the boundaries' draws.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from gridmap.demo.district import _FIRST, _SECOND, DEFAULT_SEED, FILES

ROAD_NAMES_EW = ("黄河道", "长江道", "鞍山西道", "复康路", "咸阳路", "红旗南路", "宾水西道", "西湖道")
ROAD_NAMES_NS = ("白堤路", "卫津路", "南丰路", "红旗路", "密云路", "雅安道", "华苑路", "新华路")
_ESTATE_ENDINGS = ("小区", "花园", "家园", "新村", "苑", "里")
_DOOR_SPACING_DEG = 0.0006  # about 55 m between door numbers on one side of a road
_SIDE_OFFSET_DEG = 0.00012  # odd numbers on one side, even on the other, about 12 m from the centre line
GAZETTEER_FILE = "gazetteer.csv"
GAZETTEER_COLUMNS = ("kind", "name", "lon", "lat", "road", "number", "estate", "building", "community_code", "aliases")


def generate_gazetteer(district: dict[str, gpd.GeoDataFrame], seed: int = DEFAULT_SEED) -> list[dict]:
    """Make a standard address list for the demo district: roads with door numbers, one estate per comprehensive
    grid with its buildings, a POI per dedicated grid, and every community."""
    rng = np.random.default_rng(seed + 1)
    outline = district["district"].geometry.iloc[0]
    rows: list[dict] = []
    minx, miny, maxx, maxy = outline.bounds
    for index, name in enumerate(ROAD_NAMES_EW):
        y = miny + (maxy - miny) * (index + 0.5) / len(ROAD_NAMES_EW)
        rows += _road_rows(name, outline, horizontal=True, at=y)
    for index, name in enumerate(ROAD_NAMES_NS):
        x = minx + (maxx - minx) * (index + 0.5) / len(ROAD_NAMES_NS)
        rows += _road_rows(name, outline, horizontal=False, at=x)
    for community in district["community"].itertuples():
        point = community.geometry.representative_point()
        rows.append(_row("community", community.name, point.x, point.y, community_code=community.code))
    used: set[str] = set()
    for grid in district["grid"].itertuples():
        point = grid.geometry.representative_point()
        if grid.kind == "专属":
            rows.append(
                _row("poi", grid.name.removesuffix("专属网格"), point.x, point.y, community_code=grid.parent_code)
            )
            continue
        estate = _estate_name(rng, used)
        rows.append(_row("estate", estate, point.x, point.y, community_code=grid.parent_code))
        for building in range(1, int(rng.integers(4, 13))):
            bx, by = _point_inside(grid.geometry, rng)
            rows.append(
                _row(
                    "building",
                    f"{estate}{building}栋",
                    bx,
                    by,
                    estate=estate,
                    building=str(building),
                    community_code=grid.parent_code,
                )
            )
    return rows


def _road_rows(name: str, outline, *, horizontal: bool, at: float) -> list[dict]:
    minx, miny, maxx, maxy = outline.bounds
    line = shapely.LineString([(minx, at), (maxx, at)] if horizontal else [(at, miny), (at, maxy)])
    inside = line.intersection(outline)
    start, end = inside.bounds[0:3:2] if horizontal else inside.bounds[1:4:2]
    middle = inside.interpolate(0.5, normalized=True)
    rows = [_row("road", name, middle.x, middle.y, road=name)]
    for step, position in enumerate(np.arange(start + _DOOR_SPACING_DEG / 2, end, _DOOR_SPACING_DEG)):
        for number, side in ((2 * step + 1, 1), (2 * step + 2, -1)):
            lon, lat = (
                (position, at + side * _SIDE_OFFSET_DEG) if horizontal else (at + side * _SIDE_OFFSET_DEG, position)
            )
            rows.append(_row("door", f"{name}{number}号", lon, lat, road=name, number=str(number)))
    return rows


def _estate_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        name = (
            "".join(rng.choice(list(_FIRST), 1)) + "".join(rng.choice(list(_SECOND), 1)) + rng.choice(_ESTATE_ENDINGS)
        )
        if name not in used:
            used.add(name)
            return name


def _point_inside(polygon, rng: np.random.Generator) -> tuple[float, float]:
    minx, miny, maxx, maxy = polygon.bounds
    while True:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if polygon.contains(shapely.Point(x, y)):
            return x, y


def _row(kind: str, name: str, lon: float, lat: float, **extra) -> dict:
    row = dict.fromkeys(GAZETTEER_COLUMNS, "")
    row.update(kind=kind, name=name, lon=f"{lon:.7f}", lat=f"{lat:.7f}", **{k: v or "" for k, v in extra.items()})
    return row


def write_gazetteer(outdir: Path, district: dict[str, gpd.GeoDataFrame] | None = None) -> Path:
    """Write the demo gazetteer as CSV next to the boundaries."""
    import csv

    district = district or {level: gpd.read_file(outdir / name) for level, name in FILES.items()}
    path = outdir / GAZETTEER_FILE
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=GAZETTEER_COLUMNS)
        writer.writeheader()
        writer.writerows(generate_gazetteer(district))
    return path


def read_gazetteer_csv(directory: Path) -> list[dict]:
    """Read the demo gazetteer's rows as text (what generate_gazetteer wrote)."""
    import csv

    with (directory / GAZETTEER_FILE).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
