"""Photos on cases: one row per photo (the files themselves live in a directory or a bucket).

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
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
    op.create_index("ix_attachments_incident_id", "attachments", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_attachments_incident_id", table_name="attachments")
    op.drop_table("attachments")
