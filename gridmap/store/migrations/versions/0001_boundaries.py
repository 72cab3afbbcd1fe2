"""Editions and areas (street, community, grid boundaries).

Revision ID: 0001
Revises:
Create Date: 2026-11-22

The tables are defined here as they were at this revision (not imported from tables.py) so that a later
change to tables.py cannot alter what this step creates. `Table.create` is used instead of
`op.create_table` because GeoAlchemy2 hooks the table's create events to register the geometry column
and its spatial index on SpatiaLite (AddGeometryColumn, CreateSpatialIndex) and PostGIS (GIST).
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata = sa.MetaData()
    sa.Table(
        "editions",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("valid_from", sa.Date),
        sa.Column("valid_to", sa.Date),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
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
    sa.Index("ix_areas_edition_level", metadata.tables["areas"].c.edition_id, metadata.tables["areas"].c.level)
    metadata.create_all(op.get_bind())
