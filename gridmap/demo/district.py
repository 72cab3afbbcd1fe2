"""The demo district's boundaries: a synthetic Nankai-sized district (12 streets, 175 communities, 1,464 grids).

Regenerate with `python -m gridmap.demo [OUTDIR]` (default: the repository's data/boundaries). The output is
the same bytes on every run for a seed. The generic steps (seed spreading, Voronoi cells, k-means, mending
clusters, numbering order) live in `gridmap.demo.tiling`; this module owns the district's constants, its names
and attributes, the checks, and the GeoJSON files.

How it is built, bottom-up so that every level tiles its parent exactly: an irregular 40 km² outline; 1,464
well-spread seed points in it (best-candidate sampling, then three Lloyd relaxation steps so cells are even and
there are no slivers); the grids are their Voronoi cells clipped to the outline and snapped to a 1e-7° grid
(rounded to 7 decimals, about 1 cm) once, so neighbours share identical vertices. Streets are k-means clusters
of grids, communities k-means clusters of the grids of one street (the number per street in proportion to its
grids); a cluster that falls apart is mended by handing its smaller pieces to the neighbour they share most
boundary with. A community, street or the district is the coverage union of its grids. Everything is checked
(valid single polygons, coverage valid, union and area sums equal to the parent) before it is returned, and
the written files are read back and checked again.

Codes (GB/T 30428.1 style): street = 120104 + 3 digits, community = street + 3 digits, grid = community +
3 digits. Numbering rule, the same at every level: within the parent, cut the parent's bounding box height into
round(√n) equal horizontal bands (n = number of children); order the children by the band holding their
centroid, north to south, and within a band by centroid longitude, west to east; number them 001, 002, ...
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon, mapping, shape

from gridmap.crs import local_metric_crs
from gridmap.demo.tiling import (
    _absorb_fragments,
    _adjacency,
    _allocate,
    _centres,
    _kmeans,
    _make_contiguous,
    _order,
    _spread_points,
    _voronoi_cells,
)
from gridmap.errors import GridmapError

DEFAULT_SEED = 20261122
DISTRICT_CODE = "120104"
DISTRICT_NAME = "南开区"
CENTRE = (117.15, 39.12)  # lon, lat
DISTRICT_AREA_KM2 = 40.0
PRECISION = 1e-7  # degrees; 7 decimals, about 1 cm
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
COMMUNITY_TOTAL = 175
GRID_TOTAL = 1464
DEDICATED_SHARE = 0.03  # share of grids that are 专属 (one big unit: a university, a hospital, a park)
OUTLIER_SHARE = 0.05  # share of 综合 grids below 300 households, and again above 500
FILES = {
    "district": "district.geojson",
    "street": "streets.geojson",
    "community": "communities.geojson",
    "grid": "grids.geojson",
}
PROPERTIES = {
    "district": ("code", "name", "parent_code", "level"),
    "street": ("code", "name", "parent_code", "level"),
    "community": ("code", "name", "parent_code", "level"),
    "grid": ("code", "name", "parent_code", "level", "kind", "households", "population", "staff"),
}
PARENT_LEVEL = {"street": "district", "community": "street", "grid": "community"}

# Name parts. The second characters leave out 园/里/苑 so that no name doubles them up with its ending.
_FIRST = "百翠长兴广万学向嘉王水华体鼓红明阳春秋和平安康宁新乐福泰丰瑞祥云霞林园"
_SECOND = "合澜湖盛泉景华庭岸湾林荫馨雅怡翠芳川源城"
_SUFFIX = ("里社区", "园社区", "苑社区", "新村社区", "家园社区", "花园社区", "北里社区", "西里社区")
_DEDICATED = (
    "南开大学",
    "天津大学",
    "第一中心医院",
    "南开医院",
    "南开中学",
    "天津中学",
    "水上公园",
    "天津动物园",
    "奥林匹克中心",
    "华苑产业园",
    "鼓楼商业街",
    "古文化街",
    "天津图书馆",
    "环湖医院",
    "天津职业大学",
    "长虹公园",
    "西站货场",
    "咸阳路菜市场",
    "白堤路商贸城",
    "科技大厦",
)
_DEDICATED_KINDS = ("工业园", "科技园", "商贸城", "物流园", "中学", "小学", "医院", "菜市场")


def demo_boundary_dir() -> Path:
    """Return the repository folder that holds the demo district."""
    return Path(__file__).resolve().parents[2] / "data" / "boundaries"


# ---- geometry --------------------------------------------------------------------------------------------
_KM_PER_DEG_LAT = 110.99  # at lat 39.12; only shapes the outline, areas are measured in a metric CRS
_KM_PER_DEG_LON = 111.32 * math.cos(math.radians(CENTRE[1]))


def _district_outline(rng: np.random.Generator) -> Polygon:
    """Return an irregular outline of DISTRICT_AREA_KM2 (about 7.5 km × 6.4 km) around CENTRE."""
    # Points along a rectangle's sides (never on a corner), each pushed in or out by up to 350 m.
    half_w, half_h, per_side = 3.65, 3.0, 6
    corners = [(-half_w, half_h), (half_w, half_h), (half_w, -half_h), (-half_w, -half_h)]
    points = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        length = math.hypot(x1 - x0, y1 - y0)
        normal = ((y1 - y0) / length, -(x1 - x0) / length)  # inward or outward alike: the push has either sign
        for t in (np.arange(per_side) + 0.5) / per_side:
            push = rng.uniform(-0.35, 0.35)
            points.append((x0 + t * (x1 - x0) + push * normal[0], y0 + t * (y1 - y0) + push * normal[1]))
    km = Polygon(points)
    scale = math.sqrt(DISTRICT_AREA_KM2 / km.area)
    lon0, lat0 = CENTRE
    degrees = Polygon([(lon0 + x * scale / _KM_PER_DEG_LON, lat0 + y * scale / _KM_PER_DEG_LAT) for x, y in points])
    return shapely.set_precision(degrees, PRECISION)


def _snap(geometries: np.ndarray) -> np.ndarray:
    # One snap for the whole coverage: equal input vertices give equal output vertices, so shared edges stay
    # shared. np.round after set_precision makes each coordinate the double nearest its 7-decimal text, so
    # writing and reading GeoJSON gives back the very same numbers.
    snapped = shapely.set_precision(geometries, PRECISION)
    return shapely.transform(snapped, lambda xy: np.round(xy, 7))


# ---- the district ------------------------------------------------------------------------------------------
def generate_district(seed: int = DEFAULT_SEED) -> dict[str, gpd.GeoDataFrame]:
    """Generate the demo district's four levels as GeoDataFrames in EPSG:4326 (see the module docstring)."""
    rng = np.random.default_rng(seed)
    outline = _district_outline(rng)
    seeds = _spread_points(outline, GRID_TOTAL, rng)
    for _ in range(3):
        seeds = _centres(_absorb_fragments(_voronoi_cells(outline, seeds), seeds))
    cells = _snap(_absorb_fragments(_voronoi_cells(outline, seeds), seeds))
    neighbours = _adjacency(cells)

    street_of = _make_contiguous(dict(enumerate(_kmeans(seeds, len(STREET_NAMES), rng).tolist())), neighbours)
    street_groups = [[i for i in range(GRID_TOTAL) if street_of[i] == s] for s in range(len(STREET_NAMES))]
    per_street = _allocate(COMMUNITY_TOTAL, [len(g) for g in street_groups])
    community_groups: list[list[list[int]]] = []
    for members, k in zip(street_groups, per_street, strict=True):
        labels = _kmeans(seeds[members], k, rng).tolist()
        community_of = _make_contiguous(dict(zip(members, labels, strict=True)), neighbours)
        community_groups.append([[i for i in members if community_of[i] == c] for c in range(k)])

    district = shapely.coverage_union_all(cells)
    rows: dict[str, list[dict]] = {"district": [], "street": [], "community": [], "grid": []}
    rows["district"].append(_area(DISTRICT_CODE, DISTRICT_NAME, "", "district", district))
    street_shapes = [shapely.coverage_union_all(cells[g]) for g in street_groups]
    community_names = _community_names(rng)
    for s_number, s_index in enumerate(_order(street_shapes, district), start=1):
        street_code = f"{DISTRICT_CODE}{s_number:03d}"
        street = street_shapes[s_index]
        rows["street"].append(_area(street_code, STREET_NAMES[s_number - 1], DISTRICT_CODE, "street", street))
        groups = community_groups[s_index]
        shapes = [shapely.coverage_union_all(cells[g]) for g in groups]
        for c_number, c_index in enumerate(_order(shapes, street), start=1):
            community_code = f"{street_code}{c_number:03d}"
            name = next(community_names)
            rows["community"].append(_area(community_code, name, street_code, "community", shapes[c_index]))
            grid_shapes = list(cells[groups[c_index]])
            for g_number, g_index in enumerate(_order(grid_shapes, shapes[c_index]), start=1):
                grid = _area(f"{community_code}{g_number:03d}", "", community_code, "grid", grid_shapes[g_index])
                grid["name"] = f"{name.removesuffix('社区')}第{g_number}网格"
                rows["grid"].append(grid)
    _grid_attributes(rows["grid"], rng)
    levels = {
        level: gpd.GeoDataFrame(r, columns=[*PROPERTIES[level], "geometry"], geometry="geometry", crs="EPSG:4326")
        for level, r in rows.items()
    }
    check_district(levels, where=f"demo district (seed {seed})")
    return levels


def _area(code: str, name: str, parent_code: str, level: str, geometry) -> dict:
    return {"code": code, "name": name, "parent_code": parent_code, "level": level, "geometry": geometry}


def _community_names(rng: np.random.Generator):
    """Yield distinct community names such as 翠澜里社区 or 和盛家园社区."""
    used: set[str] = set()
    while True:
        name = str(rng.choice(list(_FIRST)) + rng.choice(list(_SECOND)) + rng.choice(_SUFFIX))
        if name not in used:
            used.add(name)
            yield name


def _grid_attributes(grids: list[dict], rng: np.random.Generator) -> None:
    """Set kind, households, population and staff: exact shares of 专属 grids and of household outliers."""
    n = len(grids)
    dedicated = set(rng.choice(n, round(DEDICATED_SHARE * n), replace=False).tolist())
    comprehensive = [i for i in range(n) if i not in dedicated]
    outliers = round(OUTLIER_SHARE * len(comprehensive))
    shuffled = rng.permutation(comprehensive)
    low, high = set(shuffled[:outliers].tolist()), set(shuffled[outliers : 2 * outliers].tolist())
    institutions = iter(_DEDICATED)
    used: set[str] = set()
    for index, grid in enumerate(grids):
        if index in dedicated:
            grid["kind"] = "专属"
            grid["name"] = _dedicated_name(grid["name"], institutions, used, rng)
            households = int(rng.integers(0, 151))  # a campus or a park: few resident households
        else:
            grid["kind"] = "综合"
            low_high = (150, 300) if index in low else (501, 751) if index in high else (300, 501)
            households = int(rng.integers(*low_high))
        grid["households"] = households
        grid["population"] = round(households * rng.uniform(2.3, 2.9))
        # One full-time worker per grid, more for bigger grids, sometimes a part-timer: 1–4 in all.
        staff = 1 + (households >= 300) + (households > 500) + int(rng.integers(0, 2))
        grid["staff"] = min(4, staff)


def _dedicated_name(comprehensive_name: str, institutions, used: set[str], rng: np.random.Generator) -> str:
    base = next(institutions, None)
    while base is None or base in used:
        base = comprehensive_name[:2] + str(rng.choice(_DEDICATED_KINDS))
    used.add(base)
    return f"{base}专属网格"


# ---- checks and files --------------------------------------------------------------------------------------
def check_district(levels: dict[str, gpd.GeoDataFrame], *, where: str) -> None:
    """Raise GridmapError naming `where` unless each level is of single polygons tiling its parent exactly."""
    metric = local_metric_crs(lon=CENTRE[0], lat=CENTRE[1])
    for level, frame in levels.items():
        if list(frame.columns) != [*PROPERTIES[level], "geometry"]:
            raise GridmapError(f"{where}: {level} columns are {list(frame.columns)}, not {list(PROPERTIES[level])}")
        if not frame.code.is_unique:
            raise GridmapError(f"{where}: {level} codes repeat")
        simple = frame.geometry.is_valid & (frame.geom_type == "Polygon")
        bad = frame[~simple | (shapely.get_num_interior_rings(frame.geometry.values) > 0)]
        if len(bad):
            raise GridmapError(f"{where}: {level} {bad.code.iloc[0]} is not a valid single polygon without holes")
        if not shapely.coverage_is_valid(frame.geometry.values):
            edges = shapely.coverage_invalid_edges(frame.geometry.values)
            code = frame.code[~shapely.is_empty(edges)].iloc[0]
            raise GridmapError(f"{where}: the {level} coverage is invalid (overlap or unshared edge) at {code}")
    for level, parent_level in PARENT_LEVEL.items():
        children, parents = levels[level], levels[parent_level].set_index("code")
        areas = children.to_crs(metric).area.groupby(children.parent_code).sum()
        if set(areas.index) != set(parents.index):
            raise GridmapError(f"{where}: some {parent_level} areas have no {level} areas, or the reverse")
        for code, group in children.groupby("parent_code"):
            if not group.code.str.startswith(code).all():
                raise GridmapError(f"{where}: a {level} in {parent_level} {code} does not extend its code")
            union = shapely.union_all(group.geometry.values)
            # The union has the children's vertices, so its metric area is comparable with their sum (an overlap
            # makes the sum larger); the parent may have fewer vertices along a straight edge, so it is compared
            # as a shape (no gap, nothing outside).
            union_area = gpd.GeoSeries([union], crs=children.crs).to_crs(metric).area.iloc[0]
            if not union.equals(parents.geometry[code]) or abs(areas[code] / union_area - 1) > 1e-9:
                raise GridmapError(f"{where}: the {level} areas of {parent_level} {code} do not tile it exactly")


def write_district(outdir: Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """Generate the district, write one compact GeoJSON file per level, read them back and check them."""
    levels = generate_district(seed)
    outdir.mkdir(parents=True, exist_ok=True)
    written = {}
    for level, frame in levels.items():
        features = [
            {
                "type": "Feature",
                "properties": {key: _plain(row[key]) for key in PROPERTIES[level]},
                "geometry": mapping(row["geometry"]),
            }
            for row in frame.to_dict("records")
        ]
        collection = {"type": "FeatureCollection", "features": features}
        path = outdir / FILES[level]
        path.write_text(json.dumps(collection, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        written[level] = path
    read_back = read_district(outdir)
    for level, frame in levels.items():
        if not np.array_equal(shapely.to_wkb(frame.geometry.values), shapely.to_wkb(read_back[level].geometry.values)):
            raise GridmapError(f"{written[level]}: the geometries read back differ from those written")
    check_district(read_back, where=str(outdir))
    return written


def read_district(directory: Path) -> dict[str, gpd.GeoDataFrame]:
    """Read the four demo files with the json module (exact coordinates, properties in file order)."""
    levels = {}
    for level, name in FILES.items():
        features = json.loads((directory / name).read_text(encoding="utf-8"))["features"]
        rows = [{**f["properties"], "geometry": shape(f["geometry"])} for f in features]
        levels[level] = gpd.GeoDataFrame(
            rows, columns=[*PROPERTIES[level], "geometry"], geometry="geometry", crs="EPSG:4326"
        )
    return levels


def _plain(value):
    return value.item() if hasattr(value, "item") else value
