"""The gazetteer says which district and street an entry is in; incidents say when their geocode needs review.

`gazetteer.district` and `gazetteer.street` are optional (entries without them are tagged from the loaded
boundaries when the gazetteer is built). `gazetteer_revision` holds a number every replacement of the gazetteer
bumps, so in-memory gazetteers key on it. `incidents.geocode_review` flags a point a person should check; open
incidents already geocoded below the default threshold (0.85) are flagged on upgrade.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gazetteer", sa.Column("district", sa.String(100)))
    op.add_column("gazetteer", sa.Column("street", sa.String(100)))
    revision_table = op.create_table(
        "gazetteer_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.bulk_insert(revision_table, [{"id": 1, "revision": 1}])
    op.add_column("incidents", sa.Column("geocode_review", sa.Boolean, nullable=False, server_default=sa.false()))
    incidents = sa.table(
        "incidents",
        sa.column("geocode_review", sa.Boolean),
        sa.column("geocode_confidence", sa.Float),
        sa.column("status", sa.String),
    )
    op.execute(
        incidents.update()
        .where(incidents.c.geocode_confidence < 0.85, incidents.c.status.not_in(("closed", "rejected")))
        .values(geocode_review=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("geocode_review")
    op.drop_table("gazetteer_revision")
    with op.batch_alter_table("gazetteer") as batch:
        batch.drop_column("street")
        batch.drop_column("district")
