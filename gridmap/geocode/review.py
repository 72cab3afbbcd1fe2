"""Cases whose geocoded point a person should check, and the point a person picks instead.

A geocode below the deployment's threshold (GRIDMAP_GEOCODE_REVIEW_BELOW) is still assigned to the grid its
point lies in, but the case carries `geocode_review`, so the case list and the map can show exactly those.
Setting the point by hand (`relocate`) assigns the case to the grid of that point and clears the flag; the
step is kept in the case's history like every other.
"""

from __future__ import annotations

import datetime as dt

from gridmap import clock
from gridmap import crs as crs_rules
from gridmap.errors import Conflict, Forbidden, InvalidInput, Unprocessable

MAX_NOTE = 2000


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"{name} must be a number")
    return crs_rules.parse_number(value, name)


def relocate(
    store,
    incident_id: int,
    *,
    user,
    lon,
    lat,
    crs: str = "wgs84",
    note=None,
    version=None,
    now: dt.datetime | None = None,
) -> dict:
    """Put a case at the point a person picked: its current grid follows, the review flag is cleared."""
    from gridmap import assign, cases
    from gridmap.casefields import FINISHED_STATUSES

    incident = cases.get_case(store, incident_id, user=user)  # outside the user's area: 404
    if user.role not in cases.ACTING_ROLES:
        raise Forbidden(f"a {user.role} may not move a case")
    if incident["status"] in FINISHED_STATUSES:
        raise Conflict(f"case {incident_id} is {incident['status']}; its place can no longer change")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise InvalidInput(f"note must be text of at most {MAX_NOTE} characters")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidInput("version must be a whole number")
    if not isinstance(crs, str):
        raise InvalidInput("crs must be text such as wgs84, cgcs2000, gcj02 or bd09")
    point_lon, point_lat = assign.to_wgs84_point(
        lon=_number(lon, "lon"), lat=_number(lat, "lat"), crs=crs_rules.canonical_crs(crs)
    )
    index = assign.grid_index(store)
    where = index.locate(lon=point_lon, lat=point_lat)
    if where.grid_code is None:
        raise Unprocessable(f"the point {point_lon:.6f}, {point_lat:.6f} lies in no grid of the district")
    before = f"{incident['lon']:.6f}, {incident['lat']:.6f}" if incident.get("lon") is not None else "no point"
    changes = {
        "lon": point_lon,
        "lat": point_lat,
        "geocode_level": "manual",
        "geocode_confidence": 1.0,
        "geocode_review": False,
        "grid_code": where.grid_code,
        "community_code": where.community_code,
        "street_code": where.street_code,
        "ambiguous": bool(where.ambiguous),
        "edition": index.edition,
    }
    history = {
        "at": (now or clock.now()).replace(microsecond=0),
        "actor": user.name,
        "action": "relocate",
        "from_status": incident["status"],
        "to_status": incident["status"],
        "note": (note or "").strip() or f"point set by hand (was {before}, grid {incident.get('grid_code') or '-'})",
    }
    return store.change_incident(
        incident_id, version=incident["version"] if version is None else version, changes=changes, history=history
    )
