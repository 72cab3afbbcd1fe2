"""One question asked of the database without SQLAlchemy: which state is this edition in?

`Store` answers it too (`edition_revision`), but opening a `Store` costs a fifth of a second (SQLAlchemy's import,
SpatiaLite's extension, the schema check) before the first row. A command that already has what it needs for a
known state (the grid index kept on disk, see `gridmap.assign.index_cache`) asks this much through the
database's own driver instead, and opens a `Store` only when the answer is not enough.

Any failure here (an unknown URL form, a driver missing, a schema without the table) answers None: the caller
then takes the ordinary path, which names the problem properly.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote

EditionState = tuple[str, int, str]

_CURRENT = "SELECT name, revision, created_at FROM editions WHERE status = 'current'"
_NAMED = "SELECT name, revision, created_at FROM editions WHERE name = {}"


def edition_state(url: str, edition: str | None = None) -> EditionState | None:
    """Return (name, revision, created_at text) as `Store.edition_revision` gives it, or None when unsure."""
    try:
        if url.startswith("sqlite:///"):
            row = _sqlite_row(url, edition)
        elif url.startswith(("postgresql://", "postgresql+psycopg://")):
            row = _postgres_row(url, edition)
        else:
            return None
    except Exception:  # any doubt: the ordinary path decides, and says what is wrong
        return None
    if row is None:
        return None
    created = row[2] if isinstance(row[2], dt.datetime) else dt.datetime.fromisoformat(str(row[2]))
    return str(row[0]), int(row[1]), str(created)


def _sqlite_row(url: str, edition: str | None):
    import sqlite3
    from contextlib import closing

    path = unquote(url.removeprefix("sqlite:///").split("?", 1)[0])
    if not path or path == ":memory:":
        return None
    # Read-only, and never created: a missing file is the ordinary path's error to report.
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as conn:
        if edition is None:
            return conn.execute(_CURRENT).fetchone()
        return conn.execute(_NAMED.format("?"), (edition,)).fetchone()


def _postgres_row(url: str, edition: str | None):
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=5) as conn:
        if edition is None:
            return conn.execute(_CURRENT).fetchone()
        return conn.execute(_NAMED.format("%s"), (edition,)).fetchone()
