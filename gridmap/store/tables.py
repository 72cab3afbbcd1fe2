"""Table definitions as the code uses them; the schema itself is built by the migrations."""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry

metadata = sa.MetaData()

editions = sa.Table(
    "editions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

areas = sa.Table(
    "areas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id"), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("parent_code", sa.String(32)),
    sa.Column("kind", sa.String(8)),
    sa.Column("households", sa.Integer),
    sa.Column("population", sa.Integer),
    sa.Column("staff", sa.Integer),
    sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
    sa.UniqueConstraint("edition_id", "code", name="uq_areas_edition_code"),
)
