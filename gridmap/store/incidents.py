"""Incidents (cases) and their history, and the few columns the case map draws."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from gridmap.errors import Conflict, NotFound

from . import tables as t
from .engine import StoreBase, _datetime


@contextmanager
def _joined(store: StoreBase, within: sa.Connection | None) -> Iterator[sa.Connection]:
    """Use the caller's open transaction when given one, else run the block in a transaction of its own."""
    if within is not None:
        yield within
        return
    with store.transaction() as conn:
        yield conn


class IncidentStore(StoreBase):
    """Incidents and their history."""

    # ---- incidents -------------------------------------------------------------------------------------
    def existing_source_ids(self, source_ids: Iterable[str]) -> set[str]:
        """Return which of these source ids are already stored (imports are idempotent by source id)."""
        wanted = [s for s in set(source_ids) if s]
        found: set[str] = set()
        with self._connect() as conn:
            # Chunks well under SQLite's 32,766 bound parameters: an import of 100,000 rows asks 20 times.
            for start in range(0, len(wanted), 5000):
                chunk = wanted[start : start + 5000]
                found.update(
                    conn.execute(sa.select(t.incidents.c.source_id).where(t.incidents.c.source_id.in_(chunk))).scalars()
                )
        return found

    def add_incidents(
        self, rows: Sequence[dict], *, actor: str = "import", within: sa.Connection | None = None
    ) -> list[int]:
        """Insert incidents and their first history entry in one transaction (or the caller's, `within`);
        return their ids."""
        ids: list[int] = [0] * len(rows)
        # Rows with the same columns go in one batched INSERT … RETURNING (SQLAlchemy's "insertmanyvalues");
        # one statement per row made generating 50,000 demo cases take most of a minute.
        batches: dict[tuple[str, ...], list[int]] = {}
        for position, row in enumerate(rows):
            batches.setdefault(tuple(sorted(row)), []).append(position)
        with _joined(self, within) as conn:
            for positions in batches.values():
                statement = t.incidents.insert().returning(t.incidents.c.id, sort_by_parameter_order=True)
                result = conn.execute(statement, [rows[p] for p in positions])
                for position, incident_id in zip(positions, result.scalars(), strict=True):
                    ids[position] = incident_id
            if ids:
                conn.execute(
                    t.incident_history.insert(),
                    [
                        {
                            "incident_id": i,
                            "at": row["reported_at"],
                            "actor": actor,
                            "action": "report",
                            "from_status": None,
                            "to_status": row.get("status", "reported"),
                            "note": "",
                        }
                        for i, row in zip(ids, rows, strict=True)
                    ],
                )
                bump_incidents_revision(conn)
        return ids

    def incident_points(self, *, only_open: bool = False) -> list[dict]:
        """Return id, lon, lat, grid, community and street codes, status and report time of every located incident."""
        columns = [
            t.incidents.c[c]
            for c in (
                "id",
                "lon",
                "lat",
                "grid_code",
                "community_code",
                "street_code",
                "original_grid_code",
                "ambiguous",
                "status",
                "reported_at",
                "category_code",
                "source",
            )
        ]
        query = sa.select(*columns).where(t.incidents.c.lon.is_not(None)).order_by(t.incidents.c.id)
        if only_open:
            query = query.where(t.incidents.c.status.not_in(("closed", "rejected")))
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def set_current_grids(self, updates: Sequence[dict], *, edition: str) -> int:
        """Record the grid each incident lies in under `edition` (keys id, grid_code, community_code,
        street_code, ambiguous); the grid it was first assigned is kept."""
        if not updates:
            return 0
        statement = (
            t.incidents.update()
            .where(t.incidents.c.id == sa.bindparam("incident_id"))
            .values(
                grid_code=sa.bindparam("new_grid"),
                community_code=sa.bindparam("new_community"),
                street_code=sa.bindparam("new_street"),
                ambiguous=sa.bindparam("new_ambiguous"),
                edition=edition,
            )
        )
        rows = [
            {
                "incident_id": u["id"],
                "new_grid": u["grid_code"],
                "new_community": u["community_code"],
                "new_street": u["street_code"],
                "new_ambiguous": bool(u["ambiguous"]),
            }
            for u in updates
        ]
        with self.transaction() as conn:
            conn.execute(statement, rows)
            bump_incidents_revision(conn)
        return len(rows)

    def get_incident(self, incident_id: int) -> dict:
        """Return one incident with its history, oldest entry first."""
        with self._connect() as conn:
            row = conn.execute(sa.select(t.incidents).where(t.incidents.c.id == incident_id)).mappings().first()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            history = conn.execute(
                sa.select(t.incident_history)
                .where(t.incident_history.c.incident_id == incident_id)
                .order_by(t.incident_history.c.id)
            ).mappings()
            return {**dict(row), "history": [dict(h) for h in history]}

    def incident_id_for_source(self, source_id: str) -> int | None:
        """Return the id of the incident with this source id, or None."""
        with self._connect() as conn:
            return conn.execute(sa.select(t.incidents.c.id).where(t.incidents.c.source_id == source_id)).scalar()

    def last_changes(self, incident_ids: Iterable[int]) -> dict[int, dt.datetime]:
        """Return id → time of the latest history entry (the last step taken) of each given incident."""
        wanted = sorted(set(incident_ids))
        h = t.incident_history.c
        found: dict[int, dt.datetime] = {}
        with self._connect() as conn:
            for start in range(0, len(wanted), 500):
                query = (
                    sa.select(h.incident_id, sa.func.max(h.at))
                    .where(h.incident_id.in_(wanted[start : start + 500]))
                    .group_by(h.incident_id)
                )
                found.update((i, _datetime(at)) for i, at in conn.execute(query).all())
        return found

    def list_incidents(
        self,
        *,
        scope: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        grid_code: str | None = None,
        community_code: str | None = None,
        street_code: str | None = None,
        category_code: str | None = None,
        source: str | None = None,
        reported_from: dt.datetime | None = None,
        reported_to: dt.datetime | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        deadline_before: dt.datetime | None = None,
        geocode_review: bool | None = None,
        after_id: int = 0,
        limit: int | None = 100,
    ) -> list[dict]:
        """Return incidents matching every given filter, by id; `scope` limits them to these area codes."""
        c = t.incidents.c
        query = sa.select(t.incidents).where(c.id > after_id).order_by(c.id)
        if scope is not None:
            codes = list(scope)
            query = query.where(sa.or_(c.grid_code.in_(codes), c.community_code.in_(codes), c.street_code.in_(codes)))
        if statuses:
            query = query.where(c.status.in_(list(statuses)))
        for column, value in (
            (c.grid_code, grid_code),
            (c.community_code, community_code),
            (c.street_code, street_code),
            (c.category_code, category_code),
            (c.source, source),
        ):
            if value is not None:
                query = query.where(column == value)
        if reported_from is not None:
            query = query.where(c.reported_at >= reported_from)
        if reported_to is not None:
            query = query.where(c.reported_at < reported_to)
        if bbox is not None:
            west, south, east, north = bbox
            query = query.where(c.lon.between(west, east), c.lat.between(south, north))
        if deadline_before is not None:
            query = query.where(c.deadline < deadline_before, c.status.not_in(("closed", "rejected")))
        if geocode_review is not None:
            query = query.where(c.geocode_review.is_(geocode_review))
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def change_incident(
        self, incident_id: int, *, version: int, changes: dict, history: dict, within: sa.Connection | None = None
    ) -> dict:
        """Apply a workflow step if the incident is still at `version`; append its history entry. Inside the
        caller's transaction (`within`) it returns only {"history_id": …}: the change is not committed yet."""
        with _joined(self, within) as conn:
            updated = conn.execute(
                t.incidents.update()
                .where(t.incidents.c.id == incident_id, t.incidents.c.version == version)
                .values(**changes, version=version + 1)
            ).rowcount
            if updated != 1:
                raise Conflict(f"incident {incident_id} was changed by someone else; reload it and try again")
            added = t.incident_history.insert().values(incident_id=incident_id, **history)
            entry = conn.execute(added.returning(t.incident_history.c.id)).scalar_one()
            bump_incidents_revision(conn)
        if within is not None:
            return {"history_id": entry}
        return self.get_incident(incident_id)

    # ---- maps: the few columns the case map draws ------------------------------------------------------
    MAP_INCIDENT_FIELDS = (
        "id", "lon", "lat", "grid_code", "community_code", "street_code",
        "status", "category_code", "source", "reported_at", "deadline", "geocode_review",
    )  # fmt: skip

    def map_incidents(self) -> list[dict]:
        """Return MAP_INCIDENT_FIELDS of every located open (not closed or rejected) incident, by id."""
        c = t.incidents.c
        # This runs over every open case (50,000 in the benchmark): SQLAlchemy's SQLite DATETIME parser costs
        # ~0.4 s there, so times come back raw and datetime.fromisoformat (C) parses SQLite's text.
        columns = [
            sa.type_coerce(c[f], sa.String) if f in ("reported_at", "deadline") else c[f]
            for f in self.MAP_INCIDENT_FIELDS
        ]
        query = (
            sa.select(*columns)
            .where(c.lon.is_not(None), c.lat.is_not(None), c.status.not_in(("closed", "rejected")))
            .order_by(c.id)
        )
        with self._connect() as conn:
            rows = conn.execute(query).all()
        fields = self.MAP_INCIDENT_FIELDS
        return [
            dict(zip(fields, (*row[:9], _datetime(row[9]), _datetime(row[10]), bool(row[11])), strict=True))
            for row in rows
        ]

    # ---- indicators: the few columns the dashboard counts --------------------------------------------------
    FACT_FIELDS = (
        "id", "status", "grid_code", "community_code", "street_code", "category_code", "source", "assignee",
        "rework_count", "reported_at", "deadline", "closed_at",
    )  # fmt: skip

    def incident_facts(self) -> list[dict]:
        """Return FACT_FIELDS of every incident, by id: what indicators are computed from."""
        c = t.incidents.c
        query = sa.select(*(c[f] for f in self.FACT_FIELDS)).order_by(c.id)
        with self._connect() as conn:
            # 50,000 rows: the driver's own cursor skips SQLAlchemy's row objects (half the time), and SQLite's
            # time text is parsed by datetime.fromisoformat (C), as in map_incidents.
            sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        fields = self.FACT_FIELDS
        return [
            dict(zip(fields, (*row[:9], _datetime(row[9]), _datetime(row[10]), _datetime(row[11])), strict=True))
            for row in rows
        ]

    def incidents_revision(self) -> int:
        """Return a number that every change to any incident raises (one primary-key row, for caches)."""
        with self._connect() as conn:
            value = conn.execute(sa.select(t.revisions.c.revision).where(t.revisions.c.name == "incidents")).scalar()
        return int(value or 0)

    def incidents_fingerprint(self) -> tuple:
        """Return (incidents revision,); kept for callers written before revisions."""
        return (self.incidents_revision(),)


def bump_incidents_revision(conn: sa.Connection) -> None:
    """Raise the incidents revision inside the transaction that changes incidents (every writer calls this)."""
    conn.execute(
        t.revisions.update().where(t.revisions.c.name == "incidents").values(revision=t.revisions.c.revision + 1)
    )
