"""Revision numbers that in-memory caches key on: one per edition, one for the incidents.

Every change to an edition (its areas or its status) bumps `editions.revision` in the same transaction, and
every change to an incident bumps the `incidents` row of `revisions`, so a cache asks one indexed row whether
it is still good instead of aggregating over geometries or cases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("editions", sa.Column("revision", sa.Integer, nullable=False, server_default="1"))
    op.create_index("ix_editions_status", "editions", ["status"])
    revisions = op.create_table(
        "revisions",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.bulk_insert(revisions, [{"name": "incidents", "revision": 1}])


def downgrade() -> None:
    op.drop_table("revisions")
    op.drop_index("ix_editions_status", "editions")
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("revision")
