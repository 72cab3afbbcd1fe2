"""Photos on cases: their rows (the files live in a directory or a bucket, see gridmap.attachments).

A photo row is written in the same transaction as the case or the workflow step it comes with, so a case is
never stored without the photos it was sent with, nor a photo row without its case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from gridmap.errors import NotFound

from . import tables as t
from .engine import _datetime
from .incidents import IncidentStore

ATTACHMENT_FIELDS = tuple(c.name for c in t.attachments.columns if c.name not in ("id", "incident_id", "history_id"))


def _row(mapping) -> dict:
    row = dict(mapping)
    for key in ("taken_at", "uploaded_at"):
        row[key] = _datetime(row.get(key))
    return row


class AttachmentStore(IncidentStore):
    """Photo rows, written together with the case or the step they belong to."""

    @staticmethod
    def _insert_attachments(conn: sa.Connection, incident_id: int, history_id: int | None, rows: Sequence[dict]):
        if rows:
            conn.execute(
                t.attachments.insert(),
                [
                    {**{k: r[k] for k in ATTACHMENT_FIELDS}, "incident_id": incident_id, "history_id": history_id}
                    for r in rows
                ],
            )

    def add_incident_with_attachments(self, row: dict, *, actor: str, attachments: Sequence[dict]) -> int:
        """Insert one incident, its report history entry and its photo rows in one transaction; return its id."""
        with self.transaction() as conn:
            (incident_id,) = self.add_incidents([row], actor=actor, within=conn)
            history_id = conn.execute(
                sa.select(sa.func.min(t.incident_history.c.id)).where(t.incident_history.c.incident_id == incident_id)
            ).scalar_one()
            self._insert_attachments(conn, incident_id, history_id, attachments)
        return incident_id

    def change_incident_with_attachments(
        self, incident_id: int, *, version: int, changes: dict, history: dict, attachments: Sequence[dict]
    ) -> dict:
        """Apply a workflow step and store the photos sent with it, all in one transaction."""
        with self.transaction() as conn:
            step = self.change_incident(incident_id, version=version, changes=changes, history=history, within=conn)
            self._insert_attachments(conn, incident_id, step["history_id"], attachments)
        return self.get_incident(incident_id)

    def attachments_of(self, incident_ids: Iterable[int]) -> list[dict]:
        """Return the photo rows of these incidents, oldest first."""
        wanted = sorted(set(incident_ids))
        found: list[dict] = []
        with self._connect() as conn:
            for start in range(0, len(wanted), 500):
                query = (
                    sa.select(t.attachments)
                    .where(t.attachments.c.incident_id.in_(wanted[start : start + 500]))
                    .order_by(t.attachments.c.id)
                )
                found += [_row(r) for r in conn.execute(query).mappings()]
        return sorted(found, key=lambda r: r["id"])

    def get_attachment(self, attachment_id: int) -> dict:
        """Return one photo row with the grid, community and street codes of its case."""
        c = t.incidents.c
        query = (
            sa.select(t.attachments, c.grid_code, c.community_code, c.street_code)
            .join(t.incidents, t.incidents.c.id == t.attachments.c.incident_id)
            .where(t.attachments.c.id == attachment_id)
        )
        with self._connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no photo {attachment_id}")
        return _row(row)

    def count_attachments(self, incident_id: int) -> int:
        """Return how many photos a case has."""
        with self._connect() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(t.attachments.c.incident_id == incident_id)
            ).scalar_one()

    def known_attachment_keys(self, keys: Iterable[str]) -> set[str]:
        """Return which of these storage keys belong to a stored photo."""
        wanted = sorted(set(keys))
        found: set[str] = set()
        with self._connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(
                    conn.execute(
                        sa.select(t.attachments.c.storage_key).where(t.attachments.c.storage_key.in_(chunk))
                    ).scalars()
                )
        return found

    def attachment_page(self, *, after_id: int = 0, limit: int = 500) -> list[dict]:
        """Return photo rows by id after `after_id` (for checking every stored file)."""
        query = sa.select(t.attachments).where(t.attachments.c.id > after_id).order_by(t.attachments.c.id).limit(limit)
        with self._connect() as conn:
            return [_row(r) for r in conn.execute(query).mappings()]
