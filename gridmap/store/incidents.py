"""Incidents (cases) and their history, and the few columns the case map draws."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from gridmap.errors import Conflict, NotFound

from . import tables as t
from .engine import StoreBase, _datetime


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

    def add_incidents(self, rows: Sequence[dict], *, actor: str = "import") -> list[int]:
        """Insert incidents and their first history entry in one transaction; return their ids."""
        ids: list[int] = [0] * len(rows)
        # Rows with the same columns go in one batched INSERT … RETURNING (SQLAlchemy's "insertmanyvalues");
        # one statement per row made generating 50,000 demo cases take most of a minute.
        batches: dict[tuple[str, ...], list[int]] = {}
        for position, row in enumerate(rows):
            batches.setdefault(tuple(sorted(row)), []).append(position)
        with self.transaction() as conn:
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

    def list_incidents(
        self,
        *,
        scope: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        grid_code: str | None = None,
        community_code: str | None = None,
        category_code: str | None = None,
        source: str | None = None,
        reported_from: dt.datetime | None = None,
        reported_to: dt.datetime | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        deadline_before: dt.datetime | None = None,
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
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def change_incident(self, incident_id: int, *, version: int, changes: dict, history: dict) -> dict:
        """Apply a workflow step if the incident is still at `version`; append its history entry."""
        with self.transaction() as conn:
            updated = conn.execute(
                t.incidents.update()
                .where(t.incidents.c.id == incident_id, t.incidents.c.version == version)
                .values(**changes, version=version + 1)
            ).rowcount
            if updated != 1:
                raise Conflict(f"incident {incident_id} was changed by someone else; reload it and try again")
            conn.execute(t.incident_history.insert().values(incident_id=incident_id, **history))
        return self.get_incident(incident_id)

    # ---- maps: the few columns the case map draws ------------------------------------------------------
    MAP_INCIDENT_FIELDS = (
        "id", "lon", "lat", "grid_code", "community_code", "street_code",
        "status", "category_code", "source", "reported_at", "deadline",
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
        return [dict(zip(fields, (*row[:9], _datetime(row[9]), _datetime(row[10])), strict=True)) for row in rows]

    def incidents_fingerprint(self) -> tuple:
        """Return (count, highest id, sum of versions): it changes whenever an incident is added or changed."""
        c = t.incidents.c
        with self._connect() as conn:
            row = conn.execute(sa.select(sa.func.count(), sa.func.max(c.id), sa.func.sum(c.version))).one()
        return tuple(int(v or 0) for v in row)
