"""Storage: the only module that speaks SQL (SQLAlchemy 2 + GeoAlchemy2).

Two backends, one behaviour: embedded SpatiaLite (SQLite + mod_spatialite, loaded through sqlean-py so it
works on Pythons whose sqlite3 cannot load extensions) and PostGIS. Callers get plain values, dataclasses
and GeoDataFrames; nothing above this package builds SQL.

Each concern lives in its own module as a part of `Store`: `engine` (connection, transactions, schema),
`editions` (editions, areas, drafts), `incidents`, `incident_import` (bulk imports), `attachments` (photo
rows), `gazetteer`, `users`, `buildings` (the household register).
"""

from __future__ import annotations

from .attachments import AttachmentStore
from .buildings import BuildingStore
from .editions import (
    AREA_FIELDS,
    EDITION_NAME_PATTERN,
    EDITION_STATUSES,
    LEVELS,
    AreaRecord,
    Edition,
    EditionStore,
    check_edition_name,
)
from .engine import StoreBase
from .gazetteer import GazetteerStore
from .incident_import import IncidentImportStore
from .incidents import IncidentStore
from .users import UserStore

__all__ = [
    "AREA_FIELDS",
    "EDITION_NAME_PATTERN",
    "EDITION_STATUSES",
    "LEVELS",
    "AreaRecord",
    "Edition",
    "Store",
    "check_edition_name",
]


class Store(
    EditionStore,
    AttachmentStore,
    IncidentStore,
    IncidentImportStore,
    GazetteerStore,
    UserStore,
    BuildingStore,
    StoreBase,
):
    """A connection to one gridmap database (SpatiaLite or PostGIS)."""
