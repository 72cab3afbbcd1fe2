"""THE point-in-polygon rule, and the in-memory grid index that applies it fast.

The rule: a point belongs to the grid that covers it, boundary included. When several grids cover it (a shared
edge or vertex, or grids that overlap) the grid with the lowest code wins, and the answer says `ambiguous` and
lists every candidate: the tie-break is recorded, never silent. A point in no grid gets no grid, plus the nearest
grid and its distance in metres. SpatiaLite and PostGIS may pre-filter candidates (`locate_via_database`), but
`choose` decides, so every path gives the same answer.

The package: `rule` (the answer and the tie-break), `index` (the raster index), `keeper` (one index per edition
kept at the edition's revision, built ahead in the background), `bulk` (files of points, in arrays); the thin
store-backed verbs the CLI and the web call are here.
"""

from __future__ import annotations

from gridmap import crs as crs_module

from .index import BulkResult, GridIndex
from .keeper import IndexKeeper, edition_state, grid_index, prepare
from .rule import Assignment, choose

__all__ = [
    "Assignment",
    "BulkResult",
    "GridIndex",
    "IndexKeeper",
    "choose",
    "edition_state",
    "grid_index",
    "index_from_frames",
    "locate",
    "locate_csv",
    "locate_via_database",
    "prepare",
    "reassign",
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


def locate(store, *, lon: float, lat: float, crs: str = "wgs84", edition: str | None = None) -> dict:
    """Find the grid of one point given in `crs`; the JSON answer shared by the CLI and the API."""
    wgs_lon, wgs_lat = to_wgs84_point(lon=lon, lat=lat, crs=crs)
    index = grid_index(store, edition)
    found = index.locate(lon=wgs_lon, lat=wgs_lat)
    answer = found.to_dict()
    position = index.position.get(found.grid_code) if found.grid_code else None
    answer.update(
        grid_name=None if position is None else index.names[position],
        edition=index.edition,
        lon=round(wgs_lon, 7),
        lat=round(wgs_lat, 7),
        crs=crs_module.canonical_crs(crs),
    )
    return answer


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
