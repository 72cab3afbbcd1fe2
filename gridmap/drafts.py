"""Draft plans: copy an edition, edit its grids one change at a time, split, merge, and activate it.

Every edit goes through these functions, so the editor page, scripts and other GIS clients behave alike.
Only drafts are editable; each grid carries a version so a stale save is refused (409) instead of silently
overwriting a colleague's work. Results are snapped to a 1e-9° grid (about 0.1 mm) so that a split or a merge
leaves neighbours sharing exactly the same vertices, and coverage checks stay clean.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import shapely
import shapely.ops
from shapely.geometry import mapping, shape

from gridmap import boundaries
from gridmap import crs as crs_rules
from gridmap.errors import Conflict, InvalidInput, NotFound, Unprocessable
from gridmap.store import AreaRecord, Store, check_edition_name

PRECISION = 1e-9
EDITABLE_ATTRIBUTES = ("name", "kind", "households", "population", "staff")
BLOCKING_FINDINGS = ("gaps", "overlaps")
_SEQUENCE_DIGITS = 3


# ---- checking what callers send -------------------------------------------------------------------------
def parse_polygon(value, *, what: str = "geometry") -> shapely.Geometry:
    """Turn a GeoJSON (Multi)Polygon into a valid shapely geometry, or raise InvalidInput naming the problem."""
    if not isinstance(value, Mapping) or "type" not in value:
        raise InvalidInput(f"{what} must be a GeoJSON object with a type")
    _geojson_members(value, what)
    try:
        geometry = shape(_flat(value))
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise InvalidInput(f"{what} is not valid GeoJSON ({exc})") from None
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"{what} is a {geometry.geom_type}; a grid must be a Polygon or MultiPolygon")
    if geometry.is_empty:
        raise Unprocessable(f"{what} is empty")
    _plausible(crs_rules.check_bounds, *geometry.bounds, where=what)
    if not geometry.is_valid:
        raise Unprocessable(f"{what} is invalid: {shapely.is_valid_reason(geometry)}")
    if geometry.area == 0:
        raise Unprocessable(f"{what} is empty (it encloses no area)")
    return shapely.force_2d(geometry)


def parse_line(value, *, what: str = "line") -> shapely.LineString:
    """Turn a GeoJSON LineString into shapely, or raise InvalidInput."""
    if not isinstance(value, Mapping) or value.get("type") != "LineString":
        raise InvalidInput(f"{what} must be a GeoJSON LineString")
    _geojson_members(value, what)
    try:
        line = shape(_flat(value))
    except Exception as exc:
        raise InvalidInput(f"{what} is not valid GeoJSON ({exc})") from None
    if line.is_empty or line.length == 0:
        raise Unprocessable(f"{what} is empty")
    _plausible(crs_rules.check_bounds, *line.bounds, where=what)
    return line


def _plausible(check, *args, **kwargs) -> None:
    """Run a coordinate check; its refusal is 422 here: a GeoJSON position's range is not part of the API's
    description (which says "array of numbers"), so a well-formed geometry far off the map is unusable, not
    malformed."""
    try:
        check(*args, **kwargs)
    except InvalidInput as exc:
        raise Unprocessable(exc.message) from None


def _geojson_members(value: Mapping, what: str) -> None:
    # Only type and coordinates: the editor sends nothing else, and free-form members could carry anything.
    unknown = sorted(str(k)[:20] for k in set(value) - {"type", "coordinates"})
    if unknown:
        raise InvalidInput(f"{what} has members other than type and coordinates: {', '.join(unknown[:5])}")


def _flat(value: Mapping) -> dict:
    """Keep x and y of every position: GeoJSON allows a height, and one position with it and one without would
    make the whole geometry unreadable to shapely."""

    def flat(coordinates):
        if isinstance(coordinates, list) and coordinates and all(isinstance(c, int | float) for c in coordinates):
            return coordinates[:2]
        return [flat(c) for c in coordinates] if isinstance(coordinates, list) else coordinates

    return {**value, "coordinates": flat(value.get("coordinates"))}


def check_attributes(values: Mapping) -> dict:
    """Keep the editable attributes, checked: kind in GRID_KINDS, counts whole numbers ≥ 0, a non-empty name."""
    checked: dict = {}
    for key in EDITABLE_ATTRIBUTES:
        if key not in values:
            continue
        value = values[key]
        if key == "name":
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise InvalidInput("name must be text of 1 to 200 characters")
            checked[key] = value.strip()
        elif key == "kind":
            if value not in boundaries.GRID_KINDS:
                raise InvalidInput(f"kind must be one of {', '.join(boundaries.GRID_KINDS)}, not {value!r}")
            checked[key] = value
        else:
            if value is not None and (whole(value) is None or value < 0):
                raise InvalidInput(f"{key} must be a whole number ≥ 0 or null, not {str(value)[:30]}")
            checked[key] = whole(value)
    return checked


def _snap(geometry: shapely.Geometry) -> shapely.Geometry:
    snapped = shapely.set_precision(geometry, PRECISION)
    if snapped.geom_type == "Polygon":
        snapped = shapely.MultiPolygon([snapped])
    return snapped


def whole(value) -> int | None:
    """Return a JSON whole number as an int (5 and 5.0 alike, as JSON Schema's integer), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else None
    return value


def _version(value) -> int:
    version = whole(value)
    if version is None:
        raise InvalidInput("version must be the whole number you were given with the grid")
    return version


# ---- reading ----------------------------------------------------------------------------------------------
def grid_feature(area: Mapping) -> dict:
    """Return one area as a GeoJSON Feature with its version."""
    properties = {
        k: _plain(area.get(k)) for k in ("code", "name", "parent_code", "kind", "households", "population", "staff")
    }
    properties["version"] = area.get("version", 1)
    return {"type": "Feature", "properties": properties, "geometry": mapping(area["geometry"])}


def _plain(value):
    # A frame turns a column of whole numbers with a missing one into floats with NaN: JSON wants null and ints.
    if isinstance(value, float):
        return None if value != value else int(value) if value.is_integer() else value
    return value.item() if hasattr(value, "item") else value


def draft_features(store: Store, edition: str) -> dict:
    """Return every grid of an edition as a FeatureCollection with versions, for the editor."""
    from gridmap import buildings

    store.get_edition(edition)
    versions = store.area_versions(edition)
    frame = buildings.apply_to_frame(store, edition, store.areas(edition, "grid"))
    features = []
    for row in frame.itertuples(index=False):
        area = {**row._asdict(), "geometry": row.geometry, "version": versions.get(row.code, 1)}
        features.append(grid_feature(area))
    return {"type": "FeatureCollection", "edition": edition, "features": features}


# ---- creating and editing -----------------------------------------------------------------------------
def create_draft(store: Store, name: str, *, source: str = "current") -> dict:
    """Copy an edition (default: the current one) into a new draft called `name`."""
    check_edition_name(name)
    if not isinstance(source, str) or not source:
        raise InvalidInput("from must be the name of an edition, or current")
    if store.find_edition(name) is not None:
        raise Conflict(f"an edition named {name!r} already exists")
    if source == "current":
        current = store.current_edition()
        if current is None:
            raise NotFound("there is no current edition to copy")
        source = current.name
    store.get_edition(source)
    return store.copy_edition(source, name).to_dict()


def _grid(store: Store, edition: str, code: str) -> dict:
    area = store.get_area(edition, code)
    if area["level"] != "grid":
        # a well-formed code of a community or street: there is no such grid (404), the request is not malformed
        raise NotFound(f"{code} is a {area['level']}, not a grid; only grids are edited here")
    return area


def save_grid(store: Store, edition: str, code: str, changes: Mapping) -> dict:
    """Save a grid's new geometry and/or attributes if `changes['version']` is still current."""
    version = _version(changes.get("version"))
    geometry = parse_polygon(changes["geometry"]) if changes.get("geometry") is not None else None
    attributes = check_attributes(changes)
    if geometry is None and not attributes:
        raise InvalidInput("nothing to save: send a geometry and/or attributes")
    _grid(store, edition, code)
    snapped = _snap(geometry) if geometry is not None else None
    try:
        store.save_area(edition, code, version=version, geometry=snapped, attributes=attributes)
    except Conflict as exc:
        # The caller gets what is there now, so nothing is lost: they can merge their change and save again.
        exc.extra = {"current": grid_feature(_grid(store, edition, code))}
        raise
    return grid_feature(_grid(store, edition, code))


def move_vertex(store: Store, edition: str, *, old: Sequence[float], new: Sequence[float]) -> list[dict]:
    """Move a vertex in every grid of the draft that has it, so neighbours stay gap-free; one transaction."""
    (old_lon, old_lat), (new_lon, new_lat) = _pair(old, "from"), _pair(new, "to")
    _plausible(crs_rules.check_lonlat, lon=new_lon, lat=new_lat, where="to")
    store.get_edition(edition)
    frame = store.areas(edition, "grid")
    target = shapely.Point(old_lon, old_lat)
    holders = frame[shapely.distance(frame.geometry.values, target) <= PRECISION * 10]
    changes = []
    for row in holders.itertuples(index=False):
        coords_before = shapely.get_coordinates(row.geometry)
        hit = (abs(coords_before[:, 0] - old_lon) <= PRECISION * 10) & (
            abs(coords_before[:, 1] - old_lat) <= PRECISION * 10
        )
        if not hit.any():
            continue  # the point lies on this grid's edge, not at one of its vertices
        moved = shapely.transform(
            row.geometry,
            lambda xy, hit_row=hit: _replace(xy, hit_row, new_lon, new_lat),
        )
        if not moved.is_valid:
            raise Unprocessable(f"moving the vertex makes grid {row.code} invalid: {shapely.is_valid_reason(moved)}")
        changes.append((row.code, moved))
    if not changes:
        raise NotFound(f"no grid of {edition!r} has a vertex at {old_lon}, {old_lat}")
    versions = store.area_versions(edition)
    store.save_areas(edition, [(code, versions[code], _snap(geometry), {}) for code, geometry in changes])
    return [grid_feature(_grid(store, edition, code)) for code, _ in changes]


def _replace(xy, hit, lon, lat):
    xy = xy.copy()
    xy[hit] = (lon, lat)
    return xy


def _pair(value, what: str) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidInput(f"{what} must be [lon, lat], two numbers")
    return float(value[0]), float(value[1])


def next_codes(store: Store, community_code: str, count: int) -> list[str]:
    """Return the community's next free grid codes; a code any edition ever used is never handed out again."""
    used = [c for c in store.codes_ever_used(community_code) if len(c) == len(community_code) + _SEQUENCE_DIGITS]
    sequences = [int(c[len(community_code) :]) for c in used if c[len(community_code) :].isdigit()]
    start = max(sequences, default=0) + 1
    if start + count - 1 >= 10**_SEQUENCE_DIGITS:
        raise Conflict(f"community {community_code} has no free grid codes left")
    return [f"{community_code}{n:0{_SEQUENCE_DIGITS}d}" for n in range(start, start + count)]


def _shares(pieces: Sequence[shapely.Geometry]) -> list[float]:
    areas = [boundaries._area_m2(p) for p in pieces]
    total = sum(areas) or 1.0
    return [a / total for a in areas]


def _split_count(value: int | None, shares: Sequence[float]) -> list[int | None]:
    if value is None:
        return [None] * len(shares)
    parts = [round(value * s) for s in shares]
    parts[-1] = value - sum(parts[:-1])  # the parts add up to the whole
    return parts


def split_grid(store: Store, edition: str, code: str, line_value) -> list[dict]:
    """Split a grid with a line drawn across it into two grids with new codes; the old code is retired."""
    line = parse_line(line_value)
    area = _grid(store, edition, code)
    polygon = area["geometry"]
    pieces = [p for p in shapely.get_parts(shapely.ops.split(polygon, line)) if p.area > 0]
    if len(pieces) != 2:
        raise Unprocessable(
            f"the line must cross grid {code} from edge to edge exactly once, making two parts (it made {len(pieces)})"
        )
    pieces = [_snap(p) for p in pieces]
    shares = _shares(pieces)
    households = _split_count(area["households"], shares)
    population = _split_count(area["population"], shares)
    codes = next_codes(store, area["parent_code"], 2)
    records = [
        AreaRecord(
            code=new_code,
            name=f"{area['name']}（{i + 1}）",
            level="grid",
            parent_code=area["parent_code"],
            geometry=piece,
            kind=area["kind"],
            households=households[i],
            population=population[i],
            staff=area["staff"],
        )
        for i, (new_code, piece) in enumerate(zip(codes, pieces, strict=True))
    ]
    store.replace_areas(edition, remove={code: area["version"]}, add=records)
    return [grid_feature(_grid(store, edition, c)) for c in codes]


def merge_grids(store: Store, edition: str, codes: Iterable[str]) -> dict:
    """Merge two adjacent grids of one community into one grid with a new code."""
    codes = list(codes) if isinstance(codes, list | tuple) else [codes]
    if len(codes) != 2 or not all(isinstance(c, str) for c in codes) or len(set(codes)) != 2:
        raise InvalidInput("merge takes two different grid codes")
    first, second = (_grid(store, edition, c) for c in codes)
    if first["parent_code"] != second["parent_code"]:
        raise Unprocessable(
            f"{codes[0]} and {codes[1]} belong to different communities "
            f"({first['parent_code']}, {second['parent_code']}); merge grids of one community"
        )
    shared = first["geometry"].boundary.intersection(second["geometry"].boundary)
    if shared.length <= PRECISION:
        raise Unprocessable(f"{codes[0]} and {codes[1]} do not share an edge")
    merged = _snap(shapely.union_all([first["geometry"], second["geometry"]]))
    new_code = next_codes(store, first["parent_code"], 1)[0]

    def total(key):
        values = [first[key], second[key]]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    record = AreaRecord(
        code=new_code,
        name=f"{first['name']}+{second['name']}"[:200],
        level="grid",
        parent_code=first["parent_code"],
        geometry=merged,
        kind=first["kind"],
        households=total("households"),
        population=total("population"),
        staff=total("staff"),
    )
    store.replace_areas(edition, remove={c["code"]: c["version"] for c in (first, second)}, add=[record])
    return grid_feature(_grid(store, edition, new_code))


def add_grid(store: Store, edition: str, values: Mapping) -> dict:
    """Draw a new grid (e.g. in a gap) in a community of the draft; it gets the community's next code."""
    geometry = _snap(parse_polygon(values.get("geometry")))
    community = values.get("community_code") or _community_holding(store, edition, geometry)
    if not isinstance(community, str):
        raise InvalidInput("community_code must be text: the code of a community of the draft")
    if store.get_area(edition, community)["level"] != "community":
        raise Unprocessable("community_code must name a community of the draft")
    attributes = check_attributes(values)
    new_code = next_codes(store, community, 1)[0]
    record = AreaRecord(
        code=new_code,
        name=attributes.get("name", f"新网格{new_code[-_SEQUENCE_DIGITS:]}"),
        level="grid",
        parent_code=community,
        geometry=geometry,
        kind=attributes.get("kind", "综合"),
        households=attributes.get("households"),
        population=attributes.get("population"),
        staff=attributes.get("staff"),
    )
    store.replace_areas(edition, remove={}, add=[record])
    return grid_feature(_grid(store, edition, new_code))


def _community_holding(store: Store, edition: str, geometry: shapely.Geometry) -> str:
    """Return the community of the draft that holds most of a new grid (the editor does not ask)."""
    communities = store.areas(edition, "community")
    overlap = shapely.area(shapely.intersection(communities.geometry.values, geometry))
    if not len(communities) or overlap.max() <= 0:
        raise Unprocessable("the new grid lies in no community of the draft; give community_code")
    return str(communities["code"].iloc[int(overlap.argmax())])


def delete_grid(store: Store, edition: str, code: str, *, version: int) -> None:
    """Delete a grid from a draft if it is still at `version`."""
    _grid(store, edition, code)
    store.replace_areas(edition, remove={code: _version(version)}, add=[])


# ---- activation ---------------------------------------------------------------------------------------------
def finding_id(kind: str, finding: Mapping) -> str:
    """Name a finding so a waiver can point at it: kind, the codes involved and a point inside it."""
    lon, lat = finding.get("point") or (0.0, 0.0)
    return f"{kind}:{'+'.join(finding.get('codes') or [])}@{lon:.5f},{lat:.5f}"


def blocking_findings(report: Mapping) -> list[dict]:
    """Return the findings that stop a draft from becoming current (gaps and overlaps), each with its id."""
    return [
        {**finding, "id": finding_id(kind, finding), "kind": kind}
        for kind in BLOCKING_FINDINGS
        for finding in report.get(kind, [])
    ]


def activate_draft(
    store: Store, edition: str, *, valid_from: dt.date | None = None, waive: Sequence[Mapping] = ()
) -> dict:
    """Make a draft current when every gap and overlap is fixed or waived with a reason; reassign incidents."""
    if store.get_edition(edition).status != "draft":
        raise Conflict(f"edition {edition!r} is not a draft")
    reasons: dict[str, str] = {}
    for waiver in waive:
        if not isinstance(waiver, Mapping) or set(waiver) - {"finding", "reason"}:
            raise InvalidInput("each waiver is {finding, reason} and nothing else")
        finding, reason = waiver.get("finding"), waiver.get("reason")
        if not isinstance(finding, str) or not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("each waiver needs a finding id and a reason")
        reasons[finding] = reason.strip()
    from gridmap import assign, audit

    report = audit.audit_edition(store, edition)
    open_findings = [
        f for f in blocking_findings(report) if f["id"] not in reasons and f["id"].split("@")[0] not in reasons
    ]
    if open_findings:
        error = Conflict(
            f"draft {edition!r} has {len(open_findings)} gap(s) or overlap(s) that are neither fixed nor waived: "
            + "; ".join(f"{f['id']} ({f['area_m2']:.1f} m²)" for f in open_findings[:10])
        )
        error.extra = {
            "findings": [{k: f[k] for k in ("id", "kind", "codes", "area_m2", "point")} for f in open_findings]
        }
        raise error
    activated = store.activate_edition(edition, valid_from=valid_from)
    moved = assign.reassign(store)
    return {"edition": activated.to_dict(), "waived": reasons, "incidents": moved}
