"""THE point-in-polygon rule, and the in-memory grid index that applies it fast.

The rule: a point belongs to the grid that covers it, boundary included. When several grids cover it (a shared
edge or vertex, or grids that overlap) the grid with the lowest code wins, and the answer says `ambiguous` and
lists every candidate: the tie-break is recorded, never silent. A point in no grid gets no grid, plus the nearest
grid and its distance in metres. SpatiaLite and PostGIS may pre-filter candidates (`locate_via_database`), but
`choose` decides, so every path gives the same answer.

The package: `rule` (the answer and the tie-break), `index` (the raster index), `keeper` (one index per edition
kept at the edition's revision, built ahead in the background), `bulk` (files of points, in arrays), `batch`
(one import's points over a tree); the thin store-backed verbs the CLI and the web call are here.
"""

from __future__ import annotations

from gridmap import crs as crs_module

from .batch import locate_batch
from .index import BulkResult, GridIndex, NearestGrids
from .keeper import IndexKeeper, cached_index, edition_state, grid_index, index_at, prepare, saved_index
from .rule import Assignment, choose

__all__ = [
    "Assignment",
    "BulkResult",
    "GridIndex",
    "IndexKeeper",
    "NearestGrids",
    "cached_index",
    "choose",
    "edition_state",
    "grid_index",
    "index_at",
    "index_from_frames",
    "locate",
    "locate_batch",
    "locate_csv",
    "locate_via_database",
    "prepare",
    "reassign",
    "saved_index",
    "to_wgs84_point",
]


def index_from_frames(grids, communities, *, edition: str | None = None) -> GridIndex:
    """Build an index from the grid and community GeoDataFrames of one edition (as `Store.areas` returns them)."""
    street_of = dict(zip(communities["code"], communities["parent_code"], strict=True))
    community = list(grids["parent_code"])
    return GridIndex(
        list(grids["code"]),
        list(grids.geometry),
        community,
        [street_of.get(c) for c in community],
        names=list(grids["name"]),
        edition=edition,
    )


def to_wgs84_point(*, lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """Check a point given in `crs` and return it as WGS84 lon, lat."""
    crs_module.check_lonlat(lon=lon, lat=lat)
    x, y = crs_module.to_wgs84(lon=float(lon), lat=float(lat), crs=crs)
    return float(x), float(y)


def locate(
    store, *, lon: float, lat: float, crs: str = "wgs84", edition: str | None = None, use_index: bool = True
) -> dict:
    """Find the grid of one point given in `crs`; the JSON answer shared by the CLI and the API.

    `use_index=False` (the one-point command line) asks the database's spatial index instead of building the
    in-memory index, unless that index is already in memory: building it costs more than a whole answer.
    """
    wgs_lon, wgs_lat = to_wgs84_point(lon=lon, lat=lat, crs=crs)
    state = edition_state(store, edition)
    index = index_at(store, state) if use_index else cached_index(store, state)
    if index is not None:
        found = index.locate(lon=wgs_lon, lat=wgs_lat)
        position = index.position.get(found.grid_code) if found.grid_code else None
        name = None if position is None else index.names[position]
    else:
        found, name = _locate_in_database(store, state[0], lon=wgs_lon, lat=wgs_lat)
    answer = found.to_dict()
    answer.update(
        grid_name=name,
        edition=state[0],
        lon=round(wgs_lon, 7),
        lat=round(wgs_lat, 7),
        crs=crs_module.canonical_crs(crs),
    )
    return answer


def _locate_in_database(store, edition: str, *, lon: float, lat: float) -> tuple[Assignment, str | None]:
    """Apply the rule with the database choosing candidates, and the nearest grid from the grids themselves."""
    code, ambiguous, candidates = choose(store.grids_covering(lon=lon, lat=lat, edition=edition))
    if code is None:
        import shapely

        rows, _communities = store.grid_rows(edition)  # in code order, as an index holds them
        nearest, metres = NearestGrids(shapely.from_wkb([bytes(r[3]) for r in rows])).nearest(lon=lon, lat=lat)
        return Assignment(
            grid_code=None,
            nearest_code=None if nearest is None else rows[nearest][0],
            nearest_distance_m=metres,
        ), None
    grid = store.area_attributes(edition, "grid", codes=[code])[0]
    community = store.area_attributes(edition, "community", codes=[grid["parent_code"]])
    return Assignment(
        grid_code=code,
        community_code=grid["parent_code"],
        street_code=community[0]["parent_code"] if community else None,
        ambiguous=ambiguous,
        candidates=candidates,
    ), grid["name"]


def locate_via_database(store, *, lon: float, lat: float, edition: str | None = None) -> Assignment:
    """Apply the same rule with the database's spatial index choosing candidates (SpatiaLite or PostGIS)."""
    name = edition_state(store, edition)[0]
    code, ambiguous, candidates = choose(store.grids_covering(lon=lon, lat=lat, edition=name))
    if code is None:
        return Assignment(grid_code=None)
    index = grid_index(store, name)
    position = index.position[code]
    return Assignment(
        grid_code=code,
        community_code=index.community_codes[position],
        street_code=index.street_codes[position],
        ambiguous=ambiguous,
        candidates=candidates,
    )


def reassign(store) -> dict[str, int]:
    """Recompute every incident's current grid under the current edition; the original grid is never touched."""
    index = grid_index(store)
    points = store.incident_points()
    if not points:
        return {"incidents": 0, "moved": 0, "unassigned": 0, "ambiguous": 0}
    result = index.locate_many([p["lon"] for p in points], [p["lat"] for p in points], nearest=False)
    updates = []
    moved = 0
    for point, code, position in zip(points, result.grid_codes(), range(len(points)), strict=True):
        grid = int(result.grid[position])
        moved += code != point["grid_code"]
        updates.append(
            {
                "id": point["id"],
                "grid_code": code,
                "community_code": index.community_codes[grid] if grid >= 0 else None,
                "street_code": index.street_codes[grid] if grid >= 0 else None,
                "ambiguous": bool(result.ambiguous[position]),
            }
        )
    store.set_current_grids(updates, edition=index.edition)
    return {
        "incidents": len(points),
        "moved": moved,
        "unassigned": int((result.grid < 0).sum()),
        "ambiguous": int(result.ambiguous.sum()),
    }


def locate_csv(*args, **kwargs) -> dict[str, int]:
    """Locate every row of a CSV file and write it back with the grid columns (see `bulk.locate_csv`)."""
    from .bulk import locate_csv as run

    return run(*args, **kwargs)
