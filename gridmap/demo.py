"""The generated demo district: a synthetic Nankai-sized district (12 streets, 175 communities, 1,464 grids).

Regenerate with `python -m gridmap.demo [OUTDIR]` (default: the repository's data/boundaries). The output is
deterministic for a seed. Each level is a Voronoi partition of well-spread seed points clipped to its parent,
smoothed by two Lloyd steps and snapped to a 1e-7° grid so neighbours share vertices and the levels tile
their parents without gaps or overlaps (checked before writing).

Numbering (GB/T 30428.1 style, west→east, north→south within the parent): the parent's height is cut into
round(√n) horizontal bands; children are ordered by band of their centroid from north to south, and within a
band by centroid longitude from west to east.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon, mapping

DISTRICT_CODE = "120104"
DISTRICT_NAME = "南开区"
CENTRE = (117.15, 39.12)
OUTLINE_PRECISION = 1e-7
STREET_NAMES = (
    "长虹街道",
    "鼓楼街道",
    "兴南街道",
    "广开街道",
    "万兴街道",
    "学府街道",
    "向阳路街道",
    "嘉陵道街道",
    "王顶堤街道",
    "水上公园街道",
    "体育中心街道",
    "华苑街道",
)
COMMUNITIES_PER_STREET = (14, 15, 15, 14, 15, 14, 15, 14, 15, 14, 15, 15)  # 175 in all
GRID_TOTAL = 1464
_FIRST = "百翠长兴广万学向嘉王水华体鼓红明阳春秋和平安康宁新乐福泰丰瑞祥云霞林园"
_SECOND = "合澜湖盛泉景苑华庭岸湾园林荫馨雅怡翠芳川源城里"
_SUFFIX = ("里社区", "园社区", "苑社区", "新村社区", "家园社区", "花园社区")
_DEDICATED = ("南开大学", "天津大学", "第一中心医院", "华苑工业园", "体育中心", "水上公园", "南开中学", "科技园")


def demo_boundary_dir() -> Path:
    """Return the repository folder that holds the demo district."""
    return Path(__file__).resolve().parents[1] / "data" / "boundaries"


def _district_polygon(rng: np.random.Generator) -> Polygon:
    # An irregular outline about 7.4 km × 6.6 km (≈ 40 km²) around the centre.
    angles = np.sort(rng.uniform(0, 2 * math.pi, 16))
    radii = rng.uniform(0.85, 1.1, 16)
    lon0, lat0 = CENTRE
    half_w, half_h = 0.043, 0.029
    points = [
        (lon0 + half_w * r * math.cos(a), lat0 + half_h * r * math.sin(a)) for a, r in zip(angles, radii, strict=True)
    ]
    return shapely.set_precision(Polygon(points).convex_hull, OUTLINE_PRECISION)


def _spread_points(parent: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick n points in parent, each the farthest of several random candidates (best-candidate sampling)."""
    minx, miny, maxx, maxy = parent.bounds
    candidates = rng.uniform((minx, miny), (maxx, maxy), size=(n * 40, 2))
    candidates = candidates[shapely.contains_xy(parent, candidates[:, 0], candidates[:, 1])]
    chosen = [candidates[0]]
    distance = np.hypot(*(candidates - candidates[0]).T)
    for _ in range(n - 1):
        best = int(np.argmax(distance))
        chosen.append(candidates[best])
        distance = np.minimum(distance, np.hypot(*(candidates - candidates[best]).T))
    return np.array(chosen)


def _voronoi_cells(parent: Polygon, points: np.ndarray) -> list[Polygon]:
    """Return the Voronoi cell of each point clipped to parent, in the order of the points."""
    diagram = shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=parent.buffer(0.05))
    cells = np.array(shapely.get_parts(diagram))
    # voronoi_polygons does not keep the input order: match each cell back to the seed it contains.
    tree = shapely.STRtree(cells)
    seed_index, cell_index = tree.query(shapely.points(points), predicate="within")
    ordered = np.empty(len(points), dtype=object)
    ordered[seed_index] = cells[cell_index]
    return list(shapely.intersection(ordered, parent))


def _round(geometry):
    # Rounding every coordinate the same way keeps shared vertices shared.
    return shapely.transform(geometry, lambda xy: np.round(xy, 7))


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster points into k groups (Lloyd's algorithm); return each point's group."""
    centres = points[rng.choice(len(points), k, replace=False)]
    for _ in range(25):
        labels = np.argmin(
            np.hypot(points[:, None, 0] - centres[None, :, 0], points[:, None, 1] - centres[None, :, 1]), axis=1
        )
        centres = np.array([points[labels == i].mean(axis=0) if np.any(labels == i) else centres[i] for i in range(k)])
    return labels


def _order(shapes: list, parent) -> list[int]:
    """Return the indices of shapes west→east, north→south (see the module docstring)."""
    rows = max(1, round(math.sqrt(len(shapes))))
    miny, maxy = parent.bounds[1], parent.bounds[3]
    band_height = (maxy - miny) / rows

    def key(index: int):
        centroid = shapes[index].centroid
        band = min(rows - 1, int((maxy - centroid.y) / band_height))
        return (band, centroid.x)

    return sorted(range(len(shapes)), key=key)


def generate_district(seed: int = 20261122) -> dict[str, gpd.GeoDataFrame]:
    """Generate the demo district's four levels as GeoDataFrames in EPSG:4326.

    Built bottom-up so the tiling is exact: grids are the Voronoi cells of well-spread seeds (three Lloyd
    steps even their sizes) with coordinates rounded to 7 decimals; communities are unions of k-means clusters
    of grids, streets unions of clusters of communities, the district the union of the streets.
    """
    rng = np.random.default_rng(seed)
    outline = _district_polygon(rng)
    seeds = _spread_points(outline, GRID_TOTAL, rng)
    for _ in range(3):
        seeds = np.array([[c.centroid.x, c.centroid.y] for c in _voronoi_cells(outline, seeds)])
    cells = np.array([_round(c) for c in _voronoi_cells(outline, seeds)], dtype=object)
    street_of = _kmeans(seeds, len(STREET_NAMES), rng)
    rows = {"district": [], "street": [], "community": [], "grid": []}
    used_names: set[str] = set()
    dedicated_names = iter(_DEDICATED)
    street_groups = [np.flatnonzero(street_of == i) for i in range(len(STREET_NAMES))]
    street_shapes = [shapely.union_all(cells[g]) for g in street_groups]
    district = shapely.union_all(street_shapes)
    rows["district"].append(
        {"code": DISTRICT_CODE, "name": DISTRICT_NAME, "parent_code": "", "level": "district", "geometry": district}
    )
    for s_index, s_group in enumerate(_ordered_groups(street_groups, street_shapes, district), start=1):
        members, street = s_group
        street_code = f"{DISTRICT_CODE}{s_index:03d}"
        rows["street"].append(
            {
                "code": street_code,
                "name": STREET_NAMES[s_index - 1],
                "parent_code": DISTRICT_CODE,
                "level": "street",
                "geometry": street,
            }
        )
        labels = _kmeans(seeds[members], COMMUNITIES_PER_STREET[s_index - 1], rng)
        groups = [members[labels == i] for i in range(COMMUNITIES_PER_STREET[s_index - 1])]
        shapes = [shapely.union_all(cells[g]) for g in groups]
        for c_index, (c_members, community) in enumerate(_ordered_groups(groups, shapes, street), start=1):
            community_code = f"{street_code}{c_index:03d}"
            name = _community_name(rng, used_names)
            rows["community"].append(
                {
                    "code": community_code,
                    "name": name,
                    "parent_code": street_code,
                    "level": "community",
                    "geometry": community,
                }
            )
            grids = [(np.array([i]), cells[i]) for i in c_members]
            ordered = _ordered_groups([g for g, _ in grids], [c for _, c in grids], community)
            for g_index, (_member, grid) in enumerate(ordered, start=1):
                rows["grid"].append(
                    _grid_row(
                        rng, f"{community_code}{g_index:03d}", community_code, name, g_index, grid, dedicated_names
                    )
                )
    return {level: gpd.GeoDataFrame(r, geometry="geometry", crs="EPSG:4326") for level, r in rows.items()}


def _ordered_groups(groups, shapes, parent):
    order = _order(shapes, parent)
    return [(groups[i], shapes[i]) for i in order]


def _community_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        name = rng.choice(list(_FIRST)) + rng.choice(list(_SECOND)) + rng.choice(_SUFFIX)
        if name not in used:
            used.add(name)
            return name


def _grid_row(rng, code, community_code, community_name, sequence, geometry, dedicated_names) -> dict:
    dedicated = rng.random() < 0.03
    short = community_name.removesuffix("社区")
    if dedicated:
        base = next(dedicated_names, None) or f"{short}园区"
        name, households = f"{base}专属网格", int(rng.integers(0, 120))
    else:
        name = f"{short}第{sequence}网格"
        roll = rng.random()
        if roll < 0.05:
            households = int(rng.integers(150, 300))
        elif roll < 0.10:
            households = int(rng.integers(501, 720))
        else:
            households = int(rng.integers(300, 501))
    return {
        "code": code,
        "name": name,
        "parent_code": community_code,
        "level": "grid",
        "kind": "专属" if dedicated else "综合",
        "households": households,
        "population": round(households * rng.uniform(2.3, 2.9)) if households else int(rng.integers(50, 400)),
        "staff": int(rng.integers(1, 5)),
        "geometry": geometry,
    }


FILES = {
    "district": "district.geojson",
    "street": "streets.geojson",
    "community": "communities.geojson",
    "grid": "grids.geojson",
}


def write_district(outdir: Path, seed: int = 20261122) -> dict[str, Path]:
    """Generate the district and write one GeoJSON file per level; return the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = {}
    for level, frame in generate_district(seed).items():
        features = [
            {
                "type": "Feature",
                "properties": {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k != "geometry"},
                "geometry": mapping(row["geometry"]),
            }
            for row in frame.to_dict("records")
        ]
        path = outdir / FILES[level]
        text = json.dumps(
            {"type": "FeatureCollection", "features": features}, ensure_ascii=False, separators=(",", ":")
        )
        path.write_text(text, encoding="utf-8")
        written[level] = path
    return written


# ---- the demo gazetteer --------------------------------------------------------------------------------
ROAD_NAMES_EW = ("黄河道", "长江道", "鞍山西道", "复康路", "咸阳路", "红旗南路", "宾水西道", "西湖道")
ROAD_NAMES_NS = ("白堤路", "卫津路", "南丰路", "红旗路", "密云路", "雅安道", "华苑路", "新华路")
_ESTATE_ENDINGS = ("小区", "花园", "家园", "新村", "苑", "里")
_DOOR_SPACING_DEG = 0.0006  # about 55 m between door numbers on one side of a road
_SIDE_OFFSET_DEG = 0.00012  # odd numbers on one side, even on the other, about 12 m from the centre line
GAZETTEER_FILE = "gazetteer.csv"
GAZETTEER_COLUMNS = ("kind", "name", "lon", "lat", "road", "number", "estate", "building", "community_code", "aliases")


def generate_gazetteer(district: dict[str, gpd.GeoDataFrame], seed: int = 20261122) -> list[dict]:
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


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_boundary_dir()
    for level, path in write_district(target).items():
        print(f"{level}: {path}")
    print(f"gazetteer: {write_gazetteer(target)}")
