"""The generated demo district: a synthetic Nankai-sized district (12 streets, 175 communities, 1,464 grids).

Regenerate with `python -m gridmap.demo [OUTDIR]` (default: the repository's data/boundaries). The output is
the same bytes on every run for a seed.

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
import sys
from collections import deque
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import Polygon, mapping, shape

from gridmap.crs import local_metric_crs
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
    return Path(__file__).resolve().parents[1] / "data" / "boundaries"


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


def _spread_points(parent: Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick n points in parent, each the farthest of the remaining random candidates (best-candidate)."""
    minx, miny, maxx, maxy = parent.bounds
    candidates = rng.uniform((minx, miny), (maxx, maxy), size=(n * 30, 2))
    candidates = candidates[shapely.contains_xy(parent, candidates[:, 0], candidates[:, 1])]
    chosen = [0]
    distance = np.hypot(*(candidates - candidates[0]).T)
    for _ in range(n - 1):
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.hypot(*(candidates - candidates[best]).T))
    return candidates[chosen]


def _voronoi_cells(parent: Polygon, points: np.ndarray) -> np.ndarray:
    """Return the Voronoi cell of each point clipped to parent, in the order of the points."""
    diagram = shapely.voronoi_polygons(shapely.MultiPoint(points), extend_to=parent.buffer(0.05), ordered=True)
    return shapely.intersection(shapely.get_parts(diagram), parent)


def _absorb_fragments(cells: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Keep each cell's part around its seed; give a piece cut off by a bend of the outline to its neighbour."""
    cells = cells.copy()
    tree = shapely.STRtree(cells)
    for index in np.flatnonzero(shapely.get_type_id(cells) != shapely.GeometryType.POLYGON):
        parts = [p for p in shapely.get_parts(cells[index]) if p.geom_type == "Polygon" and p.area > 0]
        seed = shapely.Point(seeds[index])
        parts.sort(key=lambda p: (not p.covers(seed), -p.area))
        cells[index] = parts[0]
        for piece in parts[1:]:
            neighbours = [j for j in tree.query(piece, predicate="intersects") if j != index]
            shared = shapely.length(shapely.intersection(piece.boundary, shapely.boundary(cells[neighbours])))
            target = neighbours[int(np.argmax(shared))]
            cells[target] = shapely.union(cells[target], piece)
    return cells


def _centres(cells: np.ndarray) -> np.ndarray:
    """Return each cell's centroid, or a point inside it when a bend of the outline puts the centroid outside."""
    centres = shapely.centroid(cells)
    outside = ~shapely.covers(cells, centres)
    centres[outside] = shapely.point_on_surface(cells[outside])
    return shapely.get_coordinates(centres)


def _snap(geometries: np.ndarray) -> np.ndarray:
    # One snap for the whole coverage: equal input vertices give equal output vertices, so shared edges stay
    # shared. np.round after set_precision makes each coordinate the double nearest its 7-decimal text, so
    # writing and reading GeoJSON gives back the very same numbers.
    snapped = shapely.set_precision(geometries, PRECISION)
    return shapely.transform(snapped, lambda xy: np.round(xy, 7))


def _adjacency(cells: np.ndarray) -> list[dict[int, float]]:
    """Return, for each cell, its edge neighbours and the length of boundary they share."""
    left, right = shapely.STRtree(cells).query(cells, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.length(shapely.intersection(shapely.boundary(cells[left]), shapely.boundary(cells[right])))
    neighbours: list[dict[int, float]] = [{} for _ in cells]
    for a, b, length in zip(left.tolist(), right.tolist(), shared.tolist(), strict=True):
        if length > 0:  # cells meeting at a single vertex are not neighbours
            neighbours[a][b] = neighbours[b][a] = length
    return neighbours


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster points into k groups (Lloyd's algorithm from a farthest-first start); return each point's group."""
    start = [int(rng.integers(len(points)))]
    distance = np.hypot(*(points - points[start[0]]).T)
    for _ in range(k - 1):
        start.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.hypot(*(points - points[start[-1]]).T))
    centres = points[start]
    for _ in range(30):
        distances = np.hypot(points[:, None, 0] - centres[None, :, 0], points[:, None, 1] - centres[None, :, 1])
        labels = np.argmin(distances, axis=1)
        counts = np.bincount(labels, minlength=k)
        for group in np.flatnonzero(counts == 0):
            # An empty cluster restarts at the point worst served by its centre, so no group is ever lost.
            worst = int(np.argmax(distances[np.arange(len(points)), labels]))
            labels[worst] = group
            counts = np.bincount(labels, minlength=k)
        centres = np.stack([np.bincount(labels, weights=points[:, axis], minlength=k) / counts for axis in (0, 1)], 1)
    return labels


def _make_contiguous(labels: dict[int, int], neighbours: list[dict[int, float]]) -> dict[int, int]:
    """Give every piece of a cluster but its largest to the neighbouring cluster it shares most boundary with.

    `labels` maps cell index → cluster for the cells of one parent; only those cells are considered, so the
    cells never leave their parent. Each cluster keeps its largest piece, so none disappears.
    """
    labels = dict(labels)
    changed = True
    while changed:
        changed = False
        for label in sorted(set(labels.values())):
            pieces = _components([i for i, lab in labels.items() if lab == label], neighbours)
            pieces.sort(key=lambda piece: (-len(piece), min(piece)))
            for piece in pieces[1:]:
                shared: dict[int, float] = {}
                for cell in piece:
                    for other, length in neighbours[cell].items():
                        if other in labels and labels[other] != label:
                            shared[labels[other]] = shared.get(labels[other], 0.0) + length
                target = max(sorted(shared), key=shared.__getitem__)
                for cell in piece:
                    labels[cell] = target
                changed = True
    return labels


def _components(cells: list[int], neighbours: list[dict[int, float]]) -> list[list[int]]:
    """Split cells into edge-connected pieces."""
    remaining, pieces = set(cells), []
    for start in sorted(cells):
        if start not in remaining:
            continue
        remaining.discard(start)
        piece, queue = [start], deque([start])
        while queue:
            for other in neighbours[queue.popleft()]:
                if other in remaining:
                    remaining.discard(other)
                    piece.append(other)
                    queue.append(other)
        pieces.append(piece)
    return pieces


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split total into whole shares in proportion to weights (largest remainder), at least 1 each."""
    exact = np.asarray(weights, dtype=float) * total / sum(weights)
    shares = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - shares), kind="stable")[: total - shares.sum()]:
        shares[index] += 1
    for index in np.flatnonzero(shares == 0):
        shares[np.argmax(shares)] -= 1
        shares[index] = 1
    return shares.tolist()


def _order(shapes: list, parent) -> list[int]:
    """Return the indices of shapes west→east, north→south (the rule in the module docstring)."""
    rows = max(1, round(math.sqrt(len(shapes))))
    miny, maxy = parent.bounds[1], parent.bounds[3]
    band_height = (maxy - miny) / rows

    def key(index: int) -> tuple[int, float]:
        centroid = shapes[index].centroid
        return (min(rows - 1, int((maxy - centroid.y) / band_height)), centroid.x)

    return sorted(range(len(shapes)), key=key)


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


# ---- the demo gazetteer --------------------------------------------------------------------------------
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


# ---- demo buildings (the household register) -------------------------------------------------------------
_ESTATE_SHARE = (0.3, 0.55)  # share of a comprehensive grid's households living in its estate
_ESTATE_MAX = 280  # households of the largest estate: the old walk-up compounds of an inner district are small


def generate_buildings(
    district: dict[str, gpd.GeoDataFrame], gazetteer: list[dict], seed: int = DEFAULT_SEED
) -> list[dict]:
    """Make the demo household register: buildings whose households and population add up to their grid's.

    A comprehensive grid holds its estate (小区: the gazetteer's buildings of that estate, by name, standing
    together in a walled compound somewhere inside the grid) and 6–12 loose buildings (散居楼, street-front
    buildings) around it; a dedicated grid with residents holds 1–3 dormitory buildings. An estate's compound
    covers about its share of the grid's households (30–55 %, at most 280 households). Codes are the community
    code + 4 digits.
    """
    rng = np.random.default_rng(seed + 2)
    grids = district["grid"].reset_index(drop=True)
    geometries = grids.geometry.to_numpy()
    tree = shapely.STRtree(geometries)
    entries = [e for e in gazetteer if e["kind"] == "building"]
    points = shapely.points([float(e["lon"]) for e in entries], [float(e["lat"]) for e in entries])
    estate_names: dict[int, list[dict]] = {}
    where, which = tree.query(points, predicate="within") if len(entries) else ([], [])
    for entry_index, grid_index in sorted(zip(np.asarray(where).tolist(), np.asarray(which).tolist(), strict=True)):
        estate_names.setdefault(grid_index, []).append(entries[entry_index])
    rows: list[dict] = []
    sequence: dict[str, int] = {}
    for index, grid in enumerate(grids.drop(columns="geometry").to_dict("records")):
        polygon = geometries[index]
        households, population = int(grid["households"]), int(grid["population"])
        base = str(grid["name"]).removesuffix("网格").removesuffix("专属")
        if grid["kind"] == "专属":
            if households == 0:
                continue
            count = int(rng.integers(1, 4))
            points = [_building_point(polygon, polygon, rng) for _ in range(count)]
            estate = f"{base}宿舍区"
            names = [f"{estate}{i + 1}号楼" for i in range(count)]
            estates = [estate] * count
            shares = _split(households, rng.uniform(0.6, 1.4, size=count))
        else:
            named = estate_names.get(index, [])
            share = min(rng.uniform(*_ESTATE_SHARE), _ESTATE_MAX / max(households, 1))
            compound = _compound(polygon, share, rng)
            loose = int(rng.integers(6, 13))
            around = polygon.difference(compound.buffer(_metres(12)))
            shapely.prepare(compound)
            shapely.prepare(around)
            points = [_building_point(compound, polygon, rng) for _ in named]
            points += _ring_points(polygon, compound, around if not around.is_empty else polygon, loose, rng)
            names = [e["name"] for e in named] + [f"{base}散居{i + 1}号楼" for i in range(loose)]
            estates = [e["estate"] for e in named] + [None] * loose
            in_estate = round(households * share) if named else 0
            shares = _split(in_estate, rng.uniform(0.6, 1.4, size=len(named)))
            shares += _split(households - in_estate, rng.uniform(0.6, 1.4, size=loose))
        people = _split(population, np.array(shares, dtype=float)) if households else [0] * len(points)
        for (lon, lat), name, estate, h, p in zip(points, names, estates, shares, people, strict=True):
            community = grid["parent_code"]
            sequence[community] = sequence.get(community, 0) + 1
            rows.append(
                {
                    "code": f"{community}{sequence[community]:04d}",
                    "name": name,
                    "address": name,
                    "estate": estate,
                    "community_code": community,
                    "households": int(h),
                    "population": int(p),
                    "lon": round(float(lon), 7),
                    "lat": round(float(lat), 7),
                }
            )
    return rows


def _building_point(area, grid, rng: np.random.Generator) -> tuple[float, float]:
    """Return a point in `area` that stays inside `grid`, 2 m clear of its edge, once rounded to 7 decimals."""
    while True:
        x, y = _point_inside(area, rng)
        point = shapely.Point(round(x, 7), round(y, 7))
        if grid.contains(point) and grid.exterior.distance(point) > _metres(2):
            return point.x, point.y


def _metres(value: float) -> float:
    """Degrees of latitude for a distance in metres (good enough to place demo buildings)."""
    return value / (_KM_PER_DEG_LAT * 1000)


def _ring_points(polygon, compound, around, count: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Spread the loose buildings all the way round the compound (one per sector), between it and the grid's edge,
    so no side of the estate is left without neighbours."""
    centre = compound.centroid
    squeeze = _KM_PER_DEG_LAT / _KM_PER_DEG_LON  # degrees of longitude per degree of latitude, for equal metres
    inner = math.sqrt(compound.area / squeeze / math.pi) + _metres(12)  # the compound's radius, in degrees of lat
    reach = math.hypot(polygon.bounds[2] - polygon.bounds[0], polygon.bounds[3] - polygon.bounds[1]) * 2
    angles = rng.uniform(0, 2 * math.pi) + 2 * math.pi * (np.arange(count) + rng.uniform(0.2, 0.8, count)) / count
    ends = np.column_stack([centre.x + np.cos(angles) * reach * squeeze, centre.y + np.sin(angles) * reach])
    rays = shapely.linestrings([[(centre.x, centre.y), tuple(end)] for end in ends])
    # A grid is a convex Voronoi cell and the centre lies inside it: each ray leaves it once.
    inside = shapely.intersection(rays, polygon)
    points = []
    for angle, piece, fraction in zip(angles, inside, rng.uniform(0.2, 0.8, count), strict=True):
        reach_here = piece.length / math.hypot(math.cos(angle) * squeeze, math.sin(angle)) - _metres(4)
        if reach_here <= inner:
            points.append(_building_point(around, polygon, rng))
            continue
        distance = inner + (reach_here - inner) * fraction
        candidate = shapely.Point(
            round(centre.x + math.cos(angle) * distance * squeeze, 7), round(centre.y + math.sin(angle) * distance, 7)
        )
        if polygon.contains(candidate) and polygon.exterior.distance(candidate) > _metres(2):
            points.append((candidate.x, candidate.y))
        else:
            points.append(_building_point(around, polygon, rng))
    return points


def _compound(polygon, share: float, rng: np.random.Generator):
    """Return a round compound inside the polygon covering about `share` of it, around a point near its middle."""
    radius = math.sqrt(polygon.area * share / math.pi) * 0.75
    centre = polygon.centroid
    for _ in range(20):
        x = centre.x + rng.uniform(-0.15, 0.15) * radius * _KM_PER_DEG_LAT / _KM_PER_DEG_LON
        y = centre.y + rng.uniform(-0.15, 0.15) * radius
        disc = shapely.affinity.scale(shapely.Point(x, y).buffer(radius, 24), _KM_PER_DEG_LAT / _KM_PER_DEG_LON, 1.0)
        compound = disc.intersection(polygon)
        if compound.area >= disc.area * 0.8:
            return compound
    return polygon.buffer(-radius * 0.2) if not polygon.buffer(-radius * 0.2).is_empty else polygon


def _split(total: int, weights) -> list[int]:
    """Split total into whole parts in proportion to weights (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    if not len(weights):
        return []
    if weights.sum() <= 0:
        weights = np.ones(len(weights))
    exact = weights * total / weights.sum()
    parts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - parts), kind="stable")[: total - parts.sum()]:
        parts[i] += 1
    return parts.tolist()


def read_gazetteer_csv(directory: Path) -> list[dict]:
    """Read the demo gazetteer's rows as text (what generate_gazetteer wrote)."""
    import csv

    with (directory / GAZETTEER_FILE).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def demo_buildings(directory: Path | None = None) -> list[dict]:
    """Return the demo register for the demo district in `directory` (default: the repository's)."""
    directory = directory or demo_boundary_dir()
    return generate_buildings(read_district(directory), read_gazetteer_csv(directory))


# ---- demo cases ---------------------------------------------------------------------------------------------
# Open statuses in the proportions a busy district shows mid-month (most cases are being worked on).
DEMO_OPEN_STATUSES = {"reported": 0.10, "registered": 0.15, "dispatched": 0.20, "in_progress": 0.40, "resolved": 0.15}
DEMO_SOURCES = {"patrol": 0.45, "hotline": 0.25, "visit": 0.12, "chat": 0.10, "video": 0.05, "higher": 0.03}
DEMO_DETAILS = ("请尽快处理", "居民多次反映", "影响出行", "夜间尤为严重", "已拍照留存", "涉及多户居民")


def generate_cases(
    grids: gpd.GeoDataFrame,
    categories: list[dict],
    count: int,
    *,
    now,
    deadline_for,
    closed: int = 0,
    seed: int = DEFAULT_SEED,
) -> list[dict]:
    """Make `count` open cases (and `closed` closed ones) at random points of the grids, weighted by households.

    `deadline_for(code, reported_at)` gives each case its deadline; reports fall in the last 30 days.
    """
    import datetime as dt

    rng = np.random.default_rng(seed)
    total = count + closed
    weights = grids["households"].fillna(0).to_numpy(dtype=float) + 1.0
    chosen = rng.choice(len(grids), size=total, p=weights / weights.sum())
    geometries = grids.geometry.to_numpy()
    lons, lats = np.empty(total), np.empty(total)
    for grid in np.unique(chosen):
        where = np.flatnonzero(chosen == grid)
        lons[where], lats[where] = _points_in(geometries[grid], len(where), rng)
    statuses = list(DEMO_OPEN_STATUSES)
    status_of = rng.choice(len(statuses), size=total, p=list(DEMO_OPEN_STATUSES.values()))
    sources = list(DEMO_SOURCES)
    source_of = rng.choice(len(sources), size=total, p=list(DEMO_SOURCES.values()))
    category_of = rng.integers(0, len(categories), size=total)
    # Open cases are mostly recent (a working team keeps up), so the traffic lights show a mix; closed ones are
    # spread over the month.
    minutes_ago = (
        np.concatenate([rng.exponential(2 * 24 * 60, size=count), rng.uniform(0, 30 * 24 * 60, size=closed)])
        .clip(10, 30 * 24 * 60 - 1)
        .astype(int)
    )
    rows = []
    for i in range(total):
        category = categories[int(category_of[i])]
        reported_at = (now - dt.timedelta(minutes=int(minutes_ago[i]))).replace(second=0, microsecond=0)
        status = "closed" if i >= count else statuses[int(status_of[i])]
        deadline = deadline_for(category["code"], reported_at)
        row = {
            "source_id": f"DEMO{i + 1:07d}",
            "source": sources[int(source_of[i])],
            "title": category["name"],
            "description": f"{category['name']}，{DEMO_DETAILS[i % len(DEMO_DETAILS)]}",
            "category_code": category["code"],
            "reported_at": reported_at,
            "reporter_name": f"居民{i % 977:03d}",
            "reporter_phone": f"13{int(rng.integers(0, 10))}{int(rng.integers(10**7, 10**8)):08d}",
            "lon": round(float(lons[i]), 7),
            "lat": round(float(lats[i]), 7),
            "status": status,
            "deadline": deadline,
        }
        if status == "closed":
            row["resolved_at"] = row["closed_at"] = min(now, reported_at + (deadline - reported_at) * 0.7)
        rows.append(row)
    return rows


def _points_in(polygon, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    minx, miny, maxx, maxy = polygon.bounds
    xs, ys = np.empty(0), np.empty(0)
    while len(xs) < count:
        x = rng.uniform(minx, maxx, count * 2)
        y = rng.uniform(miny, maxy, count * 2)
        inside = shapely.contains_xy(polygon, x, y)
        xs, ys = np.concatenate([xs, x[inside]]), np.concatenate([ys, y[inside]])
    return xs[:count], ys[:count]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else demo_boundary_dir()
    for level, path in write_district(target).items():
        print(f"{level}: {path}")
    print(f"gazetteer: {write_gazetteer(target)}")
