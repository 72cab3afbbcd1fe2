"""Features for the open standards: one level of an edition's areas, or the cases a user may see, as rows
with a geometry that can be filtered (bbox, time, properties, CQL2) and paged.

A thin layer over the cores, so a standard cannot show more than the JSON API does: areas are the store's
areas as they are; cases come from `cases.list_cases` (the user's scope) and `cases.present` (masked names
and phones), and filters run on what was presented, so a masked phone cannot be searched for digit by digit.
No Flask here: `gridmap.web.ogc` maps HTTP onto these functions.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from gridmap import casefields, cases, cql
from gridmap.errors import NotFound

# Collection id → area level. Other editions than the current one are `grids@EDITION`.
AREA_COLLECTIONS = {"grids": "grid", "communities": "community", "streets": "street", "districts": "district"}
INCIDENTS = "incidents"
EDITION_MARK = "@"

AREA_PROPERTIES: dict[str, tuple[str, str]] = {
    "code": ("string", "Area code (GB/T 30428.1 for grids)"),
    "name": ("string", "Name"),
    "level": ("string", "Level"),
    "parent_code": ("string", "Code of the area this one belongs to"),
    "kind": ("string", "Grid kind"),
    "households": ("integer", "Households"),
    "population": ("integer", "Residents"),
    "staff": ("integer", "Grid workers"),
    "edition": ("string", "Boundary edition"),
}
INCIDENT_PROPERTIES: dict[str, tuple[str, str]] = {
    "id": ("integer", "Case number"),
    "title": ("string", "Title"),
    "description": ("string", "Description"),
    "status": ("string", "Status"),
    "handling_level": ("string", "Who handles it"),
    "assignee": ("string", "Assigned to"),
    "category_code": ("string", "Category (2+2-digit code)"),
    "category_name": ("string", "Category name"),
    "grid_code": ("string", "Grid it lies in now"),
    "community_code": ("string", "Community"),
    "street_code": ("string", "Street"),
    "original_grid_code": ("string", "Grid it was assigned to when reported"),
    "edition": ("string", "Edition of grid_code"),
    "ambiguous": ("boolean", "On a shared edge: several grids cover the point"),
    "address": ("string", "Address as reported"),
    "geocode_level": ("string", "How precisely the address was placed"),
    "geocode_confidence": ("number", "Geocoder confidence, 0–1"),
    "source": ("string", "Source"),
    "source_id": ("string", "Id in the system it came from"),
    "supervised": ("boolean", "Flagged for supervision"),
    "rework_count": ("integer", "Times returned for rework"),
    "version": ("integer", "Version (rises with every step)"),
    "reporter_name": ("string", "Reporter's name (masked unless admin or supervisor)"),
    "reporter_phone": ("string", "Reporter's phone (masked unless admin or supervisor)"),
    "reported_at": ("date-time", "Reported at"),
    "deadline": ("date-time", "Deadline"),
    "resolved_at": ("date-time", "Reported back as resolved at"),
    "closed_at": ("date-time", "Closed at"),
    "light": ("string", "Traffic light of an open case"),
    "overdue": ("boolean", "Open and past its deadline"),
}
# The values a property takes, as codes (a JSON Schema enum): kept out of the titles, which are translated.
PROPERTY_VALUES: dict[str, tuple[str, ...]] = {
    "level": ("district", "street", "community", "grid"),
    "kind": ("综合", "专属"),  # the standard's own words: comprehensive, dedicated
    "status": casefields.STATUSES,
    "handling_level": cases.LEVELS,
    "source": casefields.SOURCES,
    "light": ("green", "yellow", "red"),
}
_TIMES = ("reported_at", "deadline", "resolved_at", "closed_at")


@dataclass
class FeatureSet:
    """Rows of one collection: ids, property values (Python values), geometries in lon/lat."""

    ids: list
    rows: list[dict]
    geometry: np.ndarray
    properties: Mapping[str, tuple[str, str]]
    geometry_type: str
    time_property: str | None = None
    valid: tuple[dt.date | None, dt.date | None] | None = None  # an edition's validity, for area collections
    _table: cql.Table | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def table(self) -> cql.Table:
        """Return the rows as a table CQL2 filters run over (its columns are built once, when first used)."""
        if self._table is None:
            self._table = cql.Table(self.rows, self.kinds(), self.geometry)
        return self._table

    def kinds(self) -> dict[str, str]:
        """Return property → kind, the geometry included: the queryables."""
        return {name: kind for name, (kind, _title) in self.properties.items()} | {"geometry": "geometry"}


def parse_collection(collection_id: str) -> tuple[str, str | None]:
    """Split `grids@EDITION` into (base id, edition or None for the current one)."""
    base, mark, edition = collection_id.partition(EDITION_MARK)
    if base not in (*AREA_COLLECTIONS, INCIDENTS) or (mark and (not edition or base == INCIDENTS)):
        known = ", ".join([*AREA_COLLECTIONS, INCIDENTS])
        raise NotFound(f"no collection {collection_id!r}: the collections are {known}, and grids@EDITION for others")
    return base, edition or None


# What an anonymous caller does not get of an area (null instead), as on the start page: how many people live
# where and who works there is for signed-in users.
AREA_FIGURES = ("households", "population", "staff")


def area_features(store, edition, level: str, *, figures: bool = True) -> FeatureSet:
    """Return the areas of one level of an edition (an `Edition`), ordered by code (without `figures`: the
    AREA_FIGURES are null)."""
    frame = store.areas(edition.name, level)
    rows = []
    for record in frame.drop(columns="geometry").to_dict("records"):
        row = {
            name: _plain(record.get(name)) if figures or name not in AREA_FIGURES else None
            for name in AREA_PROPERTIES
            if name != "edition"
        }
        row["edition"] = edition.name
        rows.append(row)
    geometry = np.asarray(frame.geometry.values, dtype=object) if len(frame) else np.empty(0, dtype=object)
    return FeatureSet(
        ids=[r["code"] for r in rows],
        rows=rows,
        geometry=geometry,
        properties=AREA_PROPERTIES,
        geometry_type="MultiPolygon",
        valid=(edition.valid_from, edition.valid_to),
    )


def incident_features(
    store,
    *,
    user,
    calendar,
    now: dt.datetime,
    bbox: tuple[float, float, float, float] | None = None,
    reported_from: dt.datetime | None = None,
    reported_to: dt.datetime | None = None,
) -> FeatureSet:
    """Return the cases in the user's scope (optionally in a lon/lat box and period), masked for the user."""
    raw = cases.list_cases(
        store, user=user, bbox=bbox, reported_from=reported_from, reported_to=reported_to, limit=None, now=now
    )
    return _incident_set(raw, user=user, calendar=calendar, now=now)


def incident_feature(store, incident_id: int, *, user, calendar, now: dt.datetime) -> FeatureSet:
    """Return one case as a feature set of one; NotFound when it is outside the user's scope."""
    incident = cases.get_case(store, incident_id, user=user)
    return _incident_set([incident], user=user, calendar=calendar, now=now)


def _incident_set(raw: Sequence[Mapping], *, user, calendar, now: dt.datetime) -> FeatureSet:
    rows = []
    for incident in raw:
        shown = cases.present(incident, user=user, now=now, calendar=calendar)
        row = {name: shown.get(name) for name in INCIDENT_PROPERTIES}
        row.update({name: incident.get(name) for name in _TIMES})
        rows.append(row)
    lon = np.array([np.nan if r.get("lon") is None else r["lon"] for r in raw], dtype=float)
    lat = np.array([np.nan if r.get("lat") is None else r["lat"] for r in raw], dtype=float)
    points = shapely.points(lon, lat) if len(raw) else np.empty(0, dtype=object)
    geometry = np.asarray(points, dtype=object)
    geometry[np.isnan(lon) | np.isnan(lat)] = None  # a case without a place has no geometry
    return FeatureSet(
        ids=[r["id"] for r in rows],
        rows=rows,
        geometry=geometry,
        properties=INCIDENT_PROPERTIES,
        geometry_type="Point",
        time_property="reported_at",
    )


def select(
    features: FeatureSet,
    *,
    box: shapely.Geometry | None = None,
    period: tuple[dt.datetime | None, dt.datetime | None] | None = None,
    tree=None,
    tz: dt.tzinfo,
    to_lonlat=None,
) -> np.ndarray:
    """Return the indices of the rows inside `box` (lon/lat), in `period` (local times) and passing the filter."""
    keep = np.ones(len(features), dtype=bool)
    if box is not None:
        keep &= shapely.intersects(features.geometry, box) & ~shapely.is_missing(features.geometry)
    if period is not None:
        keep &= _in_period(features, period)
    if tree is not None and keep.any():
        keep &= cql.evaluate(tree, features.table(), tz=tz, to_lonlat=to_lonlat)
    return np.flatnonzero(keep)


def _in_period(features: FeatureSet, period) -> np.ndarray | bool:
    start, end = period
    if features.time_property is None:
        # Areas share their edition's validity: the whole collection is in the period or none of it is.
        valid_from, valid_to = features.valid or (None, None)
        begins = dt.datetime.combine(valid_from, dt.time()) if valid_from else None
        ends = dt.datetime.combine(valid_to, dt.time.max) if valid_to else None
        overlaps = (end is None or begins is None or begins <= end) and (start is None or ends is None or start <= ends)
        return bool(overlaps)
    column = features.table().column(features.time_property)
    keep = ~column.null
    if start is not None:
        keep &= column.values >= np.datetime64(start, "us")
    if end is not None:
        keep &= column.values <= np.datetime64(end, "us")
    return keep


def json_value(value, tz: dt.tzinfo):
    """Return a property value as JSON wants it: times in ISO 8601 with the service's offset."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=tz).isoformat(timespec="seconds") if value.tzinfo is None else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _plain(value):
    # pandas hands back numpy scalars and NaN for missing integers; JSON wants Python values and null.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return int(value) if float(value).is_integer() else float(value)
    return value


def page(indices: np.ndarray, *, offset: int, limit: int) -> Sequence[int]:
    """Return one page of selected row indices."""
    return indices[offset : offset + limit].tolist()
