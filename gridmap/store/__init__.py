"""Storage: the only module that speaks SQL (SQLAlchemy 2 + GeoAlchemy2).

Two backends, one behaviour: embedded SpatiaLite (SQLite + mod_spatialite, loaded through sqlean-py so it
works on Pythons whose sqlite3 cannot load extensions) and PostGIS. Callers get plain values, dataclasses
and GeoDataFrames; nothing above this package builds SQL.

Each concern lives in its own module as a part of `Store`: `engine` (connection, transactions, schema),
`editions` (editions, areas, drafts), `incidents`, `incident_import` (bulk imports), `attachments` (photo
rows), `gazetteer`, `users`, `buildings` (the household register).

Importing the package costs nothing: its names are imported on first use (SQLAlchemy alone takes a tenth of a
second), so a command that only peeks at the database (`peek`) starts without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .database import Store
    from .editions import (
        AREA_FIELDS,
        EDITION_NAME_PATTERN,
        EDITION_STATUSES,
        LEVELS,
        AreaRecord,
        Edition,
        check_edition_name,
    )

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
_HOME = {"Store": "database", **{name: "editions" for name in __all__ if name != "Store"}}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value
