"""The household register: buildings with their households, population, estate and point (or footprint).

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01

A new table only, so an existing database keeps every row. `Table.create` registers the footprint geometry
column with GeoAlchemy2 on both backends (AddGeometryColumn on SpatiaLite, a geometry column on PostGIS).
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata = sa.MetaData()
    buildings = sa.Table(
        "buildings",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(300)),
        sa.Column("estate", sa.String(100)),
        sa.Column("community_code", sa.String(32)),
        sa.Column("households", sa.Integer, nullable=False),
        sa.Column("population", sa.Integer),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("footprint", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)),
        sa.Column("geocode_level", sa.String(16)),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    sa.Index("ix_buildings_lonlat", buildings.c.lon, buildings.c.lat)
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    op.drop_table("buildings")
