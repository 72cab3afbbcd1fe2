"""Table definitions as the code uses them; the schema itself is built by the migrations."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


class Geometry(sa.types.UserDefinedType):
    """A geometry column in EPSG:4326 (SpatiaLite or PostGIS), written as WKB bytes and read with ST_AsBinary.

    The migrations build the real column (with GeoAlchemy2) and its spatial index; the code only needs to write
    WKB, and importing GeoAlchemy2 would cost a third of a second at the start of every command.
    """

    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY", srid: int = 4326) -> None:
        self.geometry_type = geometry_type
        self.srid = srid

    def get_col_spec(self, **_kw) -> str:
        return self.geometry_type

    def bind_expression(self, bindvalue):
        return sa.func.ST_GeomFromWKB(bindvalue, self.srid, type_=self)


editions = sa.Table(
    "editions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("valid_from", sa.Date),
    sa.Column("valid_to", sa.Date),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # Bumped by every change to the edition, in the same transaction: what in-memory caches key on.
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_editions_status", "status"),
)

# Revision counters of things other than editions (today: "incidents"), bumped by every change to them.
revisions = sa.Table(
    "revisions",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
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
    sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("edition_id", "code", name="uq_areas_edition_code"),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("source_id", sa.String(100), unique=True),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("category_code", sa.String(8)),
    sa.Column("reported_at", sa.DateTime, nullable=False),
    sa.Column("reporter_name", sa.String(100)),
    sa.Column("reporter_phone", sa.String(40)),
    sa.Column("address", sa.String(300)),
    sa.Column("lon", sa.Float),
    sa.Column("lat", sa.Float),
    sa.Column("geocode_level", sa.String(16)),
    sa.Column("geocode_confidence", sa.Float),
    sa.Column("geocode_review", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("original_grid_code", sa.String(32)),
    sa.Column("original_edition", sa.String(100)),
    sa.Column("grid_code", sa.String(32)),
    sa.Column("community_code", sa.String(32)),
    sa.Column("street_code", sa.String(32)),
    sa.Column("edition", sa.String(100)),
    sa.Column("ambiguous", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False, server_default="reported"),
    sa.Column("handling_level", sa.String(16), nullable=False, server_default="grid"),
    sa.Column("assignee", sa.String(100)),
    sa.Column("deadline", sa.DateTime),
    sa.Column("supervised", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("rework_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("closed_at", sa.DateTime),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
)

incident_history = sa.Table(
    "incident_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
)

gazetteer = sa.Table(
    "gazetteer",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("road", sa.String(100)),
    sa.Column("number", sa.String(20)),
    sa.Column("estate", sa.String(100)),
    sa.Column("building", sa.String(20)),
    sa.Column("community_code", sa.String(32)),
    sa.Column("aliases", sa.String(300), nullable=False, server_default=""),
    sa.Column("district", sa.String(100)),
    sa.Column("street", sa.String(100)),
)

gazetteer_revision = sa.Table(
    "gazetteer_revision",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
)

geocode_cache = sa.Table(
    "geocode_cache",
    metadata,
    sa.Column("provider", sa.String(30), primary_key=True),
    sa.Column("query", sa.String(300), primary_key=True),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.String(300)),
    sa.Column("token_hash", sa.String(64), unique=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

user_areas = sa.Table(
    "user_areas",
    metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("area_code", sa.String(32), primary_key=True),
)

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False, index=True),
    sa.Column("history_id", sa.Integer, sa.ForeignKey("incident_history.id")),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("storage_key", sa.String(100), nullable=False, unique=True),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("original_type", sa.String(40), nullable=False),
    sa.Column("original_bytes", sa.Integer, nullable=False),
    sa.Column("original_sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("bytes", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("thumb_bytes", sa.Integer, nullable=False),
    sa.Column("thumb_sha256", sa.String(64), nullable=False),
    sa.Column("taken_at", sa.DateTime),
    sa.Column("gps_lon", sa.Float),
    sa.Column("gps_lat", sa.Float),
    sa.Column("uploaded_by", sa.String(100), nullable=False),
    sa.Column("uploaded_at", sa.DateTime, nullable=False),
)


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
    sa.Column("footprint", Geometry("MULTIPOLYGON", srid=4326)),  # no spatial index (see migration 0007)
    sa.Column("geocode_level", sa.String(16)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
