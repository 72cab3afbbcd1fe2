"""The database connection: engine, sessions, transactions and schema migrations, for both backends."""

from __future__ import annotations

import ctypes
import datetime as dt
import functools
import importlib.util
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from gridmap.config import Settings, redact_url
from gridmap.errors import Busy, ConfigError, GridmapError

from . import tables as t

_MIGRATIONS = Path(__file__).with_name("migrations")
# `revision = "0005"` / `down_revision = "0004"` lines of a migration file (alembic is only imported to upgrade:
# importing it costs ~0.15 s, a third of what a quick command like `gridmap locate` may take).
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*=\s*[\"']([^\"']+)[\"']", re.M)


def _load_spatialite(library: str, busy_timeout_ms: int):
    def on_connect(dbapi_connection, _record) -> None:
        # The driver's own transaction handling is switched off so that `_begin` below chooses how each
        # transaction starts (the SQLAlchemy recipe for pysqlite).
        dbapi_connection.isolation_level = None
        try:
            dbapi_connection.enable_load_extension(True)
            dbapi_connection.load_extension(library)
        except Exception as exc:  # the driver raises its own OperationalError class
            raise ConfigError(
                f"cannot load the SpatiaLite extension {library!r} ({exc}); "
                "on Debian/Ubuntu: apt-get install libsqlite3-mod-spatialite"
            ) from exc
        finally:
            dbapi_connection.enable_load_extension(False)
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        # A writer waits this long for another writer before the request is answered 503 (Busy).
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # WAL: readers never wait for a writer and a writer never waits for readers; NORMAL sync is safe
        # against a killed process in WAL mode (only a power cut can lose the last commits).
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")
        if dbapi_connection.execute("SELECT CheckSpatialMetaData()").fetchone()[0] == 0:
            # InitSpatialMetaData(1) builds the metadata in one transaction: ~0.2 s instead of ~5 s.
            dbapi_connection.execute("SELECT InitSpatialMetaData(1)")

    return on_connect


@functools.cache
def _load_bundled_libraries() -> None:
    """Bind pyproj, shapely and pyogrio to the PROJ, GEOS and GDAL their wheels bundle, before mod_spatialite.

    SQLite loads extensions with RTLD_GLOBAL, so mod_spatialite's own PROJ, GEOS and SQLite take over the symbols
    of whatever is loaded after it: shapely then crashed in a GEOS call, pyproj at exit and pyogrio writing a file.
    Code already loaded keeps its bindings. shapely and pyproj are imported (their extension modules call PROJ and
    GEOS themselves); for pyogrio loading its GDAL library is enough, and costs milliseconds, not its 0.5 s import.
    """
    import pyproj  # noqa: F401
    import shapely  # noqa: F401

    spec = importlib.util.find_spec("pyogrio")
    for location in (spec.submodule_search_locations or []) if spec else []:
        waiting = sorted((Path(location).parent / "pyogrio.libs").glob("*.so*"))
        # A bundled library finds its bundled dependencies only once they are loaded: retry until none is left.
        for _ in range(len(waiting)):
            failed = []
            for library in waiting:
                try:
                    ctypes.CDLL(str(library))
                except OSError:
                    failed.append(library)
            if not failed or len(failed) == len(waiting):
                break
            waiting = failed


def _begin(conn: sa.Connection) -> None:
    # A write transaction takes the write lock at once (BEGIN IMMEDIATE), so it waits for another writer
    # under busy_timeout; a deferred one that reads first and writes later would fail at once in WAL mode
    # when another writer committed in between (SQLITE_BUSY_SNAPSHOT).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("gridmap_write") else "BEGIN")


# PostgreSQL SQLSTATEs that mean "busy, try again": lock timeout, deadlock, serialization failure, too many
# connections, server starting up or shutting down.
_PG_BUSY = {"55P03", "40P01", "40001", "53300", "57P03", "57P01"}


def _is_busy(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error; a quick read raises it bare
    if getattr(orig, "sqlstate", None) in _PG_BUSY:
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


def database_error(exc: Exception, url: str) -> GridmapError:
    """Turn a driver error into Busy (503, try again) or ConfigError (the database cannot be used)."""
    if _is_busy(exc):
        return Busy("the database is busy with another write; try again in a moment")
    return ConfigError(f"cannot use the database {redact_url(url)}: {_first_line(exc)}")


class StoreBase:
    """A connection to one gridmap database (SpatiaLite or PostGIS): what every part of the store needs."""

    def __init__(self, engine: sa.Engine, url: str, *, busy_timeout: float = 5.0) -> None:
        self.engine = engine
        self.url = url
        self.busy_timeout = busy_timeout
        self.backend = "postgis" if engine.dialect.name == "postgresql" else "spatialite"
        self._quick_free: list = []  # idle connections of `quick_row`, last used first
        self._quick_all: list = []
        self._quick_lock = threading.Lock()
        self._quick_sql: dict[int, tuple] = {}
        self._notices = None  # EditionNotices, once `follow_edition_changes` is called (PostGIS)
        # An in-memory SQLite database lives in one connection: a connection of its own would see another, empty one.
        self._in_memory = self.backend == "spatialite" and engine.url.database in (None, "", ":memory:")

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings | str, *, create_schema: bool = True) -> Self:
        """Connect to the database named by the settings (or a URL) and bring its schema up to date."""
        if isinstance(settings, str):
            settings = Settings(database_url=settings)
        url = settings.database_url
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise ConfigError(f"not a database URL: {redact_url(url)}") from exc
        busy_ms = max(0, round(settings.db_busy_timeout * 1000))
        if parsed.get_backend_name() == "sqlite":
            engine = cls._sqlite_engine(parsed, settings.spatialite_library, busy_ms)
        elif parsed.get_backend_name() == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            # A writer waiting longer than this for a row or table lock gets Busy (503), not a hung request.
            engine = sa.create_engine(
                parsed, pool_pre_ping=True, connect_args={"options": f"-c lock_timeout={busy_ms}"}
            )
        else:
            raise ConfigError(
                f"unsupported database {redact_url(url)}: use sqlite:///PATH (SpatiaLite) "
                "or postgresql+psycopg://USER@HOST/DB (PostGIS)"
            )
        store = cls(engine, url, busy_timeout=settings.db_busy_timeout)
        if create_schema:
            store.ensure_schema()
        return store

    @staticmethod
    def _sqlite_engine(parsed, library: str, busy_timeout_ms: int) -> sa.Engine:
        try:
            import sqlean
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ConfigError("sqlean-py is required for SpatiaLite: pip install sqlean-py") from exc
        _load_bundled_libraries()
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, module=sqlean.dbapi2)
        event.listen(engine, "connect", _load_spatialite(library, busy_timeout_ms))
        event.listen(engine, "begin", _begin)
        return engine

    def close(self) -> None:
        """Release every pooled connection."""
        with self._quick_lock:
            idle, self._quick_all, self._quick_free = self._quick_all, [], []
        for connection in idle:
            connection.close()
        if self._notices is not None:
            self._notices.close()
        self.engine.dispose()

    def describe(self) -> str:
        """Say which database this is, with any password hidden."""
        return f"{self.backend} at {redact_url(self.url)}"

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise database_error(exc, self.url) from exc

    # ---- quick reads --------------------------------------------------------------------------------
    # A lookup request reads one indexed row (the edition's revision). Through the pool that costs more than the
    # lookup itself: a checkout (with a ping on PostgreSQL: a round trip), BEGIN, the query, a ROLLBACK on return
    # (another round trip) and SQLAlchemy's execution machinery, ~0.3 ms on PostGIS. A quick read runs on a
    # connection of its own, in autocommit (each statement sees every commit made before it, like a fresh
    # transaction) and with the driver's cursor: one round trip, a prepared statement on PostgreSQL.
    def quick_row(self, statement, params: dict | None = None) -> tuple | None:
        """Run a one-row SELECT built once at import on a connection kept for such reads; return the row or None."""
        if self._in_memory:
            with self._connect() as conn:
                row = conn.execute(statement, params or {}).first()
            return None if row is None else tuple(row)
        sql, names, defaults = self._quick_compiled(statement)
        values = {**defaults, **(params or {})}
        args = tuple(values[n] for n in names) if names is not None else values
        for attempt in (1, 2):
            connection, fresh = self._quick_connection()
            try:
                cursor = connection.cursor()
                try:
                    cursor.execute(sql, args)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception as exc:
                connection.close()  # never reused: it may be broken (a restarted server) or mid-statement
                with self._quick_lock:
                    if connection in self._quick_all:
                        self._quick_all.remove(connection)
                if fresh or attempt == 2 or not isinstance(exc, self.engine.dialect.dbapi.Error):
                    if isinstance(exc, self.engine.dialect.dbapi.OperationalError):
                        raise database_error(exc, self.url) from exc
                    raise
                continue  # a connection idle since before a server restart fails once: what the pool's ping does
            with self._quick_lock:
                self._quick_free.append(connection)
            return None if row is None else tuple(row)
        raise AssertionError("unreachable")  # pragma: no cover

    def _quick_compiled(self, statement) -> tuple:
        found = self._quick_sql.get(id(statement))
        if found is None or found[0] is not statement:
            compiled = statement.compile(dialect=self.engine.dialect)
            names = tuple(compiled.positiontup) if compiled.positional else None
            defaults = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
            found = (statement, compiled.string, names, defaults)
            self._quick_sql[id(statement)] = found
        return found[1:]

    def _quick_connection(self) -> tuple:
        with self._quick_lock:
            if self._quick_free:
                return self._quick_free.pop(), False
        try:
            connection = self._own_connection()
        except sa.exc.OperationalError as exc:
            raise database_error(exc, self.url) from exc
        with self._quick_lock:
            self._quick_all.append(connection)
        return connection, True

    def _own_connection(self):
        """Open a driver connection outside the pool, in autocommit, with the engine's connect hooks run."""
        fairy = self.engine.raw_connection()  # the hooks: SpatiaLite loaded, PostgreSQL's lock_timeout
        connection = fairy.driver_connection
        fairy.detach()  # out of the pool: it takes no slot the pool's users count on
        if self.backend == "postgis":
            connection.rollback()
            connection.autocommit = True
        # SQLite: the connect hook already turned the driver's own transactions off (autocommit).
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Run the block in one transaction: all of it is written or none of it."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(gridmap_write=True)
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            raise database_error(exc, self.url) from exc
        if self._notices is not None:
            self._notices.changed()  # this process's own change: no need to wait for PostgreSQL's notice

    # ---- schema ----------------------------------------------------------------------------------
    def _alembic_config(self):
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(_MIGRATIONS))
        return config

    def schema_revision(self) -> str | None:
        """Return the migration revision the database is at (None when empty)."""
        with self._connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def head_revision(self) -> str:
        """Return the newest migration revision this code knows."""
        revisions, parents = set(), set()
        for path in (_MIGRATIONS / "versions").glob("*.py"):
            found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
            if "revision" in found:
                revisions.add(found["revision"])
                parents.add(found.get("down_revision"))
        heads = revisions - parents
        if len(heads) == 1:
            return heads.pop()
        from alembic.script import ScriptDirectory  # anything but one plain chain: let alembic decide

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def ensure_schema(self) -> None:
        """Create or upgrade the schema to the newest migration (a no-op when up to date)."""
        if self.schema_revision() == self.head_revision():
            return
        with self.transaction() as conn:
            if self.backend == "postgis":
                self._ensure_postgis(conn)
            from alembic import command as alembic_command

            config = self._alembic_config()
            config.attributes["connection"] = conn
            alembic_command.upgrade(config, "head")

    def _ensure_postgis(self, conn: sa.Connection) -> None:
        available = conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).first()
        if not available:
            raise ConfigError(
                f"PostGIS is not installed on the server of {redact_url(self.url)}; "
                "on Debian/Ubuntu: apt-get install postgresql-15-postgis-3"
            )
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))

    # ---- checks used by tests and the import report ----------------------------------------------
    def table_counts(self) -> dict[str, int]:
        """Return the number of rows in every gridmap table."""
        with self._connect() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                for name, table in t.metadata.tables.items()
            }


def _datetime(value) -> dt.datetime | None:
    # SQLite hands back text, PostgreSQL a datetime (naive, as stored).
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)) or type(exc).__name__
    return redact_url(text.strip().splitlines()[0])
