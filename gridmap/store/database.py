"""`Store`: every part of the storage in one object, one connection to one gridmap database."""

from __future__ import annotations

from .attachments import AttachmentStore
from .buildings import BuildingStore
from .editions import EditionStore
from .engine import StoreBase
from .gazetteer import GazetteerStore
from .incident_import import IncidentImportStore
from .incidents import IncidentStore
from .users import UserStore


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
