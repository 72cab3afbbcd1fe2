"""Writing a large incident import all-or-nothing without holding the database's write lock for long.

SQLite has one writer at a time: a 150,000-row import written in one ordinary transaction kept every API
write waiting for seconds (and failing once the busy timeout ran out). So the rows are first staged in a
TEMP table, which lives in the connection's private temporary database and takes no lock on the main file,
in batches; then one short transaction copies them into `incidents` and `incident_history` in C
(INSERT … SELECT), with the ids chosen inside that transaction. A process killed while staging leaves
nothing behind (the temporary database vanishes with the connection); one killed during the copy is rolled
back by SQLite's WAL recovery. PostgreSQL's MVCC lets other writers go on during a long transaction, so
there the rows are streamed with COPY inside one transaction, which a killed client aborts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from . import tables as t
from .engine import StoreBase
from .incidents import bump_incidents_revision

STAGE_BATCH = 5000
_STAGE = "gridmap_import_stage"
_HISTORY_COLUMNS = ("incident_id", "at", "actor", "action", "from_status", "to_status", "note")


class IncidentImportStore(StoreBase):
    """Bulk, all-or-nothing incident imports."""

    def import_incident_rows(self, columns: Sequence[str], rows: Sequence[Sequence], *, actor: str = "import") -> int:
        """Insert new incidents (values in `columns` order, `reported_at` among them) and their first history
        entry, all or none; return how many were written.

        As for any new case, the original grid and edition are the grid and edition given, the status is
        reported and the handling level grid, unless the columns say otherwise."""
        known = set(t.incidents.c.keys()) - {"id"}
        if set(columns) - known or "reported_at" not in columns or len(set(columns)) != len(columns):
            raise ValueError(f"import columns must be distinct incident columns with reported_at: {columns}")
        if not rows:
            return 0
        fixed = {"status": "'reported'", "handling_level": "'grid'"}
        copies = {"original_grid_code": "grid_code", "original_edition": "edition"}
        # (target column, SQL expression over the staged columns), for the one INSERT … SELECT / COPY.
        targets = [(c, c) for c in columns]
        targets += [(c, src) for c, src in copies.items() if c not in columns and src in columns]
        targets += [(c, sql) for c, sql in fixed.items() if c not in columns]
        if self.backend == "postgis":
            return self._copy_postgis(list(columns), targets, rows, actor)
        return self._stage_and_swap_sqlite(list(columns), targets, rows, actor)

    # ---- SQLite: stage in TEMP, then one short INSERT … SELECT ------------------------------------------
    def _stage_and_swap_sqlite(self, columns: list[str], targets: list, rows: Sequence[Sequence], actor: str) -> int:
        dialect = self.engine.dialect
        converters = [_sqlite_converter(t.incidents.c[name].type, dialect) for name in columns]
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        status = dict(targets)["status"]
        with self._connect() as conn:
            raw = conn.connection.driver_connection  # the sqlite3 connection: executemany without per-row overhead
            # Index pages of 150,000 new rows do not fit SQLite's default 2 MB cache: with 256 MB the copy below
            # takes a fraction of the time it holds the write lock.
            raw.execute("PRAGMA cache_size = -262144")
            raw.execute(f"DROP TABLE IF EXISTS temp.{_STAGE}")
            # The stage has the incident columns and no constraints; its rowid orders the rows.
            raw.execute(f"CREATE TEMP TABLE {_STAGE} AS SELECT {names} FROM main.incidents WHERE 0")
            insert = f"INSERT INTO temp.{_STAGE} ({names}) VALUES ({marks})"
            try:
                for start in range(0, len(rows), STAGE_BATCH):
                    batch = rows[start : start + STAGE_BATCH]
                    raw.execute("BEGIN")
                    raw.executemany(insert, _converted(batch, converters))
                    raw.execute("COMMIT")
                conn.execution_options(gridmap_write=True)
                # The only moment the main database is locked for writing: C copies staged rows in one go.
                with conn.begin():
                    base = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM main.incidents").scalar()
                    conn.exec_driver_sql(
                        f"INSERT INTO main.incidents (id, {', '.join(c for c, _ in targets)}) "
                        f"SELECT ? + rowid, {', '.join(sql for _, sql in targets)} FROM temp.{_STAGE}",
                        (base,),
                    )
                    conn.exec_driver_sql(
                        f"INSERT INTO main.incident_history ({', '.join(_HISTORY_COLUMNS)}) "
                        f"SELECT ? + rowid, reported_at, ?, 'report', NULL, {status}, '' FROM temp.{_STAGE}",
                        (base, actor),
                    )
                    bump_incidents_revision(conn)
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raw.execute(f"DROP TABLE IF EXISTS temp.{_STAGE}")
                raw.execute("PRAGMA cache_size = -2000")
        return len(rows)

    # ---- PostgreSQL: COPY inside one transaction -------------------------------------------------------
    def _copy_postgis(self, columns: list[str], targets: list, rows: Sequence[Sequence], actor: str) -> int:
        position = {c: i for i, c in enumerate(columns)}
        # COPY takes values, not expressions: copies repeat a value, fixed ones are the literal.
        picks = [position.get(sql, sql.strip("'")) for _, sql in targets]
        status_pick = picks[[c for c, _ in targets].index("status")]
        at = position["reported_at"]
        with self.transaction() as conn:
            ids = (
                conn.execute(
                    sa.text("SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, :n)"),
                    {"n": len(rows)},
                )
                .scalars()
                .all()
            )
            cursor = conn.connection.driver_connection.cursor()
            names = ", ".join(c for c, _ in targets)
            with cursor.copy(f"COPY incidents (id, {names}) FROM STDIN") as copy:
                for incident_id, row in zip(ids, rows, strict=True):
                    copy.write_row((incident_id, *(row[p] if isinstance(p, int) else p for p in picks)))
            with cursor.copy(f"COPY incident_history ({', '.join(_HISTORY_COLUMNS)}) FROM STDIN") as copy:
                for incident_id, row in zip(ids, rows, strict=True):
                    state = row[status_pick] if isinstance(status_pick, int) else status_pick
                    copy.write_row((incident_id, row[at], actor, "report", None, state, ""))
            bump_incidents_revision(conn)
        return len(rows)


def _sqlite_converter(column_type, dialect):
    # The values SQLAlchemy itself would store, so the rows read back and compare exactly like rows written
    # through SQLAlchemy: DATETIME as '2026-03-01 09:30:00.000000' (isoformat does that in C), booleans as 0/1
    # (the driver does that itself).
    if isinstance(column_type, sa.DateTime):
        return _sqlite_datetime
    if isinstance(column_type, sa.Boolean):
        return None
    return column_type.bind_processor(dialect)


def _sqlite_datetime(value) -> str:
    return value.isoformat(" ", "microseconds")


def _converted(batch: Iterable[Sequence], converters: list) -> Iterable[tuple]:
    active = [(i, f) for i, f in enumerate(converters) if f is not None]
    if not active:
        yield from (tuple(row) for row in batch)
        return
    for row in batch:
        values = list(row)
        for i, convert in active:
            if values[i] is not None:
                values[i] = convert(values[i])
        yield values
