"""PostgreSQL tells listening server processes when the editions table changes (LISTEN/NOTIFY).

A server process keeps the revision of the editions it answers from in memory and reads it again only after a
notice on the `gridmap_editions` channel (see `store/notices.py`): the lookup request then costs no round trip to
the database. A statement-level trigger sends the notice, so every change is announced whichever code or tool
makes it; PostgreSQL delivers it when the transaction commits, and never for one rolled back. SpatiaLite has no
such channel and needs none: reading the revision there costs microseconds.

Revision ID: 0009
Revises: 0007
Create Date: 2027-01-10
"""

from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION gridmap_editions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gridmap_editions', '');
            RETURN NULL;
        END $$
        """
    )
    # Idempotent: a database stamped back to an older revision (a rolled-back release) may still have it.
    op.execute("DROP TRIGGER IF EXISTS editions_changed ON editions")
    op.execute(
        "CREATE TRIGGER editions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON editions "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_editions_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS editions_changed ON editions")
    op.execute("DROP FUNCTION IF EXISTS gridmap_editions_changed()")
