"""Storage: the only module that speaks SQL (SQLAlchemy 2 + GeoAlchemy2).

Two backends, one behaviour: embedded SpatiaLite (SQLite + mod_spatialite, loaded through sqlean-py so it
works on Pythons whose sqlite3 cannot load extensions) and PostGIS. Callers get plain values, dataclasses
and GeoDataFrames; nothing above this package builds SQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import shapely
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2.shape import from_shape
from sqlalchemy import event
from sqlalchemy.engine import make_url

from gridmap.config import Settings, redact_url
from gridmap.errors import ConfigError, Conflict, InvalidInput, NotFound

from . import tables as t

EDITION_STATUSES = ("draft", "current", "retired")
LEVELS = ("district", "street", "community", "grid")
AREA_FIELDS = ("code", "name", "level", "parent_code", "kind", "households", "population", "staff")
_MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class Edition:
    """A versioned set of boundaries."""

    name: str
    status: str
    valid_from: dt.date | None
    valid_to: dt.date | None
    created_at: dt.datetime

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "status": self.status,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
        }


@dataclass(frozen=True)
class AreaRecord:
    """One area ready to be written: attributes plus a (Multi)Polygon in EPSG:4326."""

    code: str
    name: str
    level: str
    parent_code: str | None
    geometry: shapely.Geometry
    kind: str | None = None
    households: int | None = None
    population: int | None = None
    staff: int | None = None


def _load_spatialite(library: str):
    def on_connect(dbapi_connection, _record) -> None:
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
        # The web server runs several threads on one file: wait for a writer instead of failing at once.
        dbapi_connection.execute("PRAGMA busy_timeout = 10000")
        if dbapi_connection.execute("SELECT CheckSpatialMetaData()").fetchone()[0] == 0:
            # InitSpatialMetaData(1) builds the metadata in one transaction: ~0.2 s instead of ~5 s.
            dbapi_connection.execute("SELECT InitSpatialMetaData(1)")

    return on_connect


class Store:
    """A connection to one gridmap database (SpatiaLite or PostGIS)."""

    def __init__(self, engine: sa.Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.backend = "postgis" if engine.dialect.name == "postgresql" else "spatialite"

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings | str, *, create_schema: bool = True) -> Store:
        """Connect to the database named by the settings (or a URL) and bring its schema up to date."""
        if isinstance(settings, str):
            settings = Settings(database_url=settings)
        url = settings.database_url
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise ConfigError(f"not a database URL: {redact_url(url)}") from exc
        if parsed.get_backend_name() == "sqlite":
            engine = cls._sqlite_engine(parsed, settings.spatialite_library)
        elif parsed.get_backend_name() == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            engine = sa.create_engine(parsed, pool_pre_ping=True)
        else:
            raise ConfigError(
                f"unsupported database {redact_url(url)}: use sqlite:///PATH (SpatiaLite) "
                "or postgresql+psycopg://USER@HOST/DB (PostGIS)"
            )
        store = cls(engine, url)
        if create_schema:
            store.ensure_schema()
        return store

    @staticmethod
    def _sqlite_engine(parsed, library: str) -> sa.Engine:
        try:
            import sqlean
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ConfigError("sqlean-py is required for SpatiaLite: pip install sqlean-py") from exc
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, module=sqlean.dbapi2)
        event.listen(engine, "connect", _load_spatialite(library))
        return engine

    def close(self) -> None:
        """Release every pooled connection."""
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
            raise ConfigError(f"cannot use the database {redact_url(self.url)}: {_first_line(exc)}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Run the block in one transaction: all of it is written or none of it."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise ConfigError(f"cannot use the database {redact_url(self.url)}: {_first_line(exc)}") from exc

    # ---- schema ----------------------------------------------------------------------------------
    def _alembic_config(self) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(_MIGRATIONS))
        return config

    def schema_revision(self) -> str | None:
        """Return the migration revision the database is at (None when empty)."""
        with self._connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str:
        """Return the newest migration revision this code knows."""
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def ensure_schema(self) -> None:
        """Create or upgrade the schema to the newest migration (a no-op when up to date)."""
        if self.schema_revision() == self.head_revision():
            return
        with self.transaction() as conn:
            if self.backend == "postgis":
                self._ensure_postgis(conn)
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

    # ---- editions --------------------------------------------------------------------------------
    def list_editions(self) -> list[Edition]:
        """Return every edition, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(sa.select(t.editions).order_by(t.editions.c.id)).mappings().all()
        return [_edition(r) for r in rows]

    def get_edition(self, name: str) -> Edition:
        """Return one edition by name."""
        with self._connect() as conn:
            row = conn.execute(sa.select(t.editions).where(t.editions.c.name == name)).mappings().first()
        if row is None:
            known = ", ".join(e.name for e in self.list_editions()) or "none yet"
            raise NotFound(f"no edition named {name!r} (editions: {known})")
        return _edition(row)

    def find_edition(self, name: str) -> Edition | None:
        """Return one edition by name, or None."""
        try:
            return self.get_edition(name)
        except NotFound:
            return None

    def current_edition(self) -> Edition | None:
        """Return the edition normal lookups use, or None when there is none."""
        with self._connect() as conn:
            row = conn.execute(sa.select(t.editions).where(t.editions.c.status == "current")).mappings().first()
        return _edition(row) if row else None

    def _edition_id(self, conn: sa.Connection, name: str) -> int:
        edition_id = conn.execute(sa.select(t.editions.c.id).where(t.editions.c.name == name)).scalar()
        if edition_id is None:
            raise NotFound(f"no edition named {name!r}")
        return edition_id

    def create_edition(self, name: str, *, status: str = "draft") -> Edition:
        """Create an empty edition."""
        with self.transaction() as conn:
            self._insert_edition(conn, name, status)
        return self.get_edition(name)

    def _insert_edition(self, conn: sa.Connection, name: str, status: str) -> int:
        if status not in EDITION_STATUSES:
            raise InvalidInput(f"edition status must be one of {', '.join(EDITION_STATUSES)}, not {status!r}")
        if not name or len(name) > 100:
            raise InvalidInput("an edition name must have 1 to 100 characters")
        if conn.execute(sa.select(t.editions.c.id).where(t.editions.c.name == name)).first():
            raise Conflict(f"an edition named {name!r} already exists")
        today = dt.date.today() if status == "current" else None
        return conn.execute(
            t.editions.insert().values(
                name=name, status=status, valid_from=today, created_at=dt.datetime.now().replace(microsecond=0)
            )
        ).inserted_primary_key[0]

    def activate_edition(self, name: str, *, valid_from: dt.date | None = None) -> Edition:
        """Make an edition current; the previous current one is retired the day before."""
        valid_from = valid_from or dt.date.today()
        with self.transaction() as conn:
            row = conn.execute(sa.select(t.editions).where(t.editions.c.name == name)).mappings().first()
            if row is None:
                raise NotFound(f"no edition named {name!r}")
            if row["status"] == "current":
                raise Conflict(f"edition {name!r} is already current")
            if row["status"] == "retired":
                raise Conflict(f"edition {name!r} is retired; a retired edition is not brought back")
            conn.execute(
                t.editions.update()
                .where(t.editions.c.status == "current")
                .values(status="retired", valid_to=valid_from - dt.timedelta(days=1))
            )
            conn.execute(
                t.editions.update()
                .where(t.editions.c.id == row["id"])
                .values(status="current", valid_from=valid_from, valid_to=None)
            )
        return self.get_edition(name)

    def retire_edition(self, name: str, *, valid_to: dt.date | None = None) -> Edition:
        """Retire an edition; lookups stop using it."""
        with self.transaction() as conn:
            row = conn.execute(sa.select(t.editions).where(t.editions.c.name == name)).mappings().first()
            if row is None:
                raise NotFound(f"no edition named {name!r}")
            if row["status"] == "retired":
                raise Conflict(f"edition {name!r} is already retired")
            conn.execute(
                t.editions.update()
                .where(t.editions.c.id == row["id"])
                .values(status="retired", valid_to=valid_to or dt.date.today())
            )
        return self.get_edition(name)

    # ---- areas -----------------------------------------------------------------------------------
    def add_areas(
        self, edition: str, records: Sequence[AreaRecord], *, create_edition_status: str | None = None
    ) -> int:
        """Write areas into an edition in one transaction, creating the edition first when asked."""
        with self.transaction() as conn:
            if create_edition_status is not None:
                edition_id = self._insert_edition(conn, edition, create_edition_status)
            else:
                edition_id = self._edition_id(conn, edition)
            status = conn.execute(sa.select(t.editions.c.status).where(t.editions.c.id == edition_id)).scalar()
            if status == "retired":
                raise Conflict(f"edition {edition!r} is retired; load into a new edition instead")
            if records:
                conn.execute(t.areas.insert(), [_area_row(edition_id, r) for r in records])
        return len(records)

    def area_codes(self, edition: str, level: str | None = None) -> dict[str, str]:
        """Return {code: level} of the areas of an edition (optionally of one level)."""
        query = sa.select(t.areas.c.code, t.areas.c.level).join(t.editions).where(t.editions.c.name == edition)
        if level is not None:
            query = query.where(t.areas.c.level == level)
        with self._connect() as conn:
            return dict(conn.execute(query).all())

    def areas(self, edition: str, level: str | None = None, *, codes: Iterable[str] | None = None) -> gpd.GeoDataFrame:
        """Return the areas of an edition as a GeoDataFrame (EPSG:4326), ordered by code."""
        query = (
            sa.select(*(t.areas.c[f] for f in AREA_FIELDS), sa.func.ST_AsBinary(t.areas.c.geom).label("wkb"))
            .join(t.editions)
            .where(t.editions.c.name == edition)
            .order_by(t.areas.c.code)
        )
        if level is not None:
            query = query.where(t.areas.c.level == level)
        if codes is not None:
            query = query.where(t.areas.c.code.in_(list(codes)))
        with self._connect() as conn:
            rows = conn.execute(query).all()
        geometries = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else []
        frame = gpd.GeoDataFrame(
            [dict(zip(AREA_FIELDS, r[: len(AREA_FIELDS)], strict=True)) for r in rows],
            columns=list(AREA_FIELDS),
            geometry=list(geometries),
            crs="EPSG:4326",
        )
        return frame

    def area_attributes(self, edition: str, level: str | None = None) -> list[dict]:
        """Return the attributes (no geometry) of an edition's areas, ordered by code."""
        query = (
            sa.select(*(t.areas.c[f] for f in AREA_FIELDS))
            .join(t.editions)
            .where(t.editions.c.name == edition)
            .order_by(t.areas.c.code)
        )
        if level is not None:
            query = query.where(t.areas.c.level == level)
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def area_counts(self, edition: str) -> dict[str, int]:
        """Return how many areas of each level an edition has."""
        query = (
            sa.select(t.areas.c.level, sa.func.count())
            .join(t.editions)
            .where(t.editions.c.name == edition)
            .group_by(t.areas.c.level)
        )
        with self._connect() as conn:
            found = dict(conn.execute(query).all())
        return {level: found.get(level, 0) for level in LEVELS}

    def edition_fingerprint(self, edition: str) -> tuple:
        """Return a cheap value that changes whenever an edition's areas change (for in-memory caches)."""
        a = t.areas.c
        query = (
            sa.select(
                sa.func.count(a.id),
                sa.func.max(a.id),
                sa.func.sum(a.id),
                sa.func.sum(sa.func.ST_NPoints(a.geom)),
                sa.func.sum(sa.func.ST_Area(a.geom) + sa.func.ST_Perimeter(a.geom)),
                t.editions.c.status,
            )
            .join(t.editions)
            .where(t.editions.c.name == edition)
            .group_by(t.editions.c.status)
        )
        with self._connect() as conn:
            row = conn.execute(query).first()
        return tuple(row) if row is not None else ()

    def grids_covering(self, *, lon: float, lat: float, edition: str) -> list[str]:
        """Return the codes of the grids whose boundary-inclusive area covers the point (spatial index used)."""
        params = {"lon": lon, "lat": lat, "edition": edition}
        if self.backend == "postgis":
            sql = """
                SELECT a.code FROM areas a JOIN editions e ON e.id = a.edition_id
                WHERE e.name = :edition AND a.level = 'grid'
                  AND ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
                ORDER BY a.code"""
        else:
            # SpatiaLite does not use its R*Tree on its own: ask the SpatialIndex table for candidates.
            sql = """
                SELECT a.code FROM areas a JOIN editions e ON e.id = a.edition_id
                WHERE e.name = :edition AND a.level = 'grid'
                  AND a.ROWID IN (SELECT ROWID FROM SpatialIndex
                                  WHERE f_table_name = 'areas' AND f_geometry_column = 'geom'
                                    AND search_frame = MakePoint(:lon, :lat, 4326))
                  AND ST_Covers(a.geom, MakePoint(:lon, :lat, 4326)) = 1
                ORDER BY a.code"""
        with self._connect() as conn:
            return list(conn.execute(sa.text(sql), params).scalars())

    # ---- drafts: editing one area at a time ------------------------------------------------------------
    def copy_edition(self, source: str, target: str) -> Edition:
        """Copy every area of `source` into a new draft edition `target` (versions start again at 1)."""
        columns = [c.name for c in t.areas.columns if c.name not in ("id", "edition_id", "version")]
        with self.transaction() as conn:
            source_id = self._edition_id(conn, source)
            target_id = self._insert_edition(conn, target, "draft")
            selected = sa.select(sa.literal(target_id), *(t.areas.c[c] for c in columns)).where(
                t.areas.c.edition_id == source_id
            )
            conn.execute(t.areas.insert().from_select(["edition_id", *columns], selected))
        return self.get_edition(target)

    def get_area(self, edition: str, code: str) -> dict:
        """Return one area's attributes, `version` and shapely `geometry`."""
        query = (
            sa.select(
                *(t.areas.c[f] for f in AREA_FIELDS),
                t.areas.c.version,
                sa.func.ST_AsBinary(t.areas.c.geom).label("wkb"),
            )
            .join(t.editions)
            .where(t.editions.c.name == edition, t.areas.c.code == code)
        )
        with self._connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"edition {edition!r} has no area {code!r}")
        area = {k: v for k, v in row.items() if k != "wkb"}
        area["geometry"] = shapely.from_wkb(bytes(row["wkb"]))
        return area

    def area_versions(self, edition: str) -> dict[str, int]:
        """Return code → version for every area of an edition."""
        query = sa.select(t.areas.c.code, t.areas.c.version).join(t.editions).where(t.editions.c.name == edition)
        with self._connect() as conn:
            return dict(conn.execute(query).all())

    def codes_ever_used(self, prefix: str) -> set[str]:
        """Return every area code starting with `prefix` in any edition, retired ones included."""
        query = sa.select(t.areas.c.code).distinct().where(t.areas.c.code.startswith(prefix, autoescape=True))
        with self._connect() as conn:
            return set(conn.execute(query).scalars())

    def save_area(self, edition: str, code: str, *, version: int, geometry=None, attributes: dict | None = None) -> int:
        """Change one area of a draft if it is still at `version`; return the new version."""
        return self.save_areas(edition, [(code, version, geometry, attributes or {})])[code]

    def save_areas(self, edition: str, changes: Sequence[tuple[str, int, object, dict]]) -> dict[str, int]:
        """Apply (code, version seen, new geometry or None, attributes) to a draft's areas, all or none."""
        new_versions: dict[str, int] = {}
        with self.transaction() as conn:
            edition_id = self._draft_id(conn, edition)
            for code, version, geometry, attributes in changes:
                values = dict(attributes)
                if geometry is not None:
                    if geometry.geom_type == "Polygon":
                        geometry = shapely.MultiPolygon([geometry])
                    values["geom"] = from_shape(geometry, srid=4326)
                updated = conn.execute(
                    t.areas.update()
                    .where(t.areas.c.edition_id == edition_id, t.areas.c.code == code, t.areas.c.version == version)
                    .values(**values, version=version + 1)
                ).rowcount
                if updated != 1:
                    now = conn.execute(
                        sa.select(t.areas.c.version).where(t.areas.c.edition_id == edition_id, t.areas.c.code == code)
                    ).scalar()
                    if now is None:
                        raise NotFound(f"edition {edition!r} has no area {code!r}")
                    raise Conflict(f"grid {code} was saved by someone else (now version {now}, you had {version})")
                new_versions[code] = version + 1
        return new_versions

    def replace_areas(self, edition: str, *, remove: dict[str, int], add: Sequence[AreaRecord]) -> None:
        """In one transaction, delete areas (code → the version the caller saw) and add new ones to a draft."""
        with self.transaction() as conn:
            edition_id = self._draft_id(conn, edition)
            for code, version in remove.items():
                deleted = conn.execute(
                    t.areas.delete().where(
                        t.areas.c.edition_id == edition_id, t.areas.c.code == code, t.areas.c.version == version
                    )
                ).rowcount
                if deleted != 1:
                    raise Conflict(f"grid {code} was changed by someone else; reload the draft and try again")
            if add:
                conn.execute(t.areas.insert(), [_area_row(edition_id, r) for r in add])

    def _draft_id(self, conn: sa.Connection, edition: str) -> int:
        row = conn.execute(sa.select(t.editions.c.id, t.editions.c.status).where(t.editions.c.name == edition)).first()
        if row is None:
            raise NotFound(f"no edition named {edition!r}")
        if row.status != "draft":
            raise Conflict(f"edition {edition!r} is {row.status}; only drafts can be edited")
        return row.id

    # ---- incidents -------------------------------------------------------------------------------------
    def existing_source_ids(self, source_ids: Iterable[str]) -> set[str]:
        """Return which of these source ids are already stored (imports are idempotent by source id)."""
        wanted = [s for s in set(source_ids) if s]
        found: set[str] = set()
        with self._connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
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
        """Return id, lon, lat, grid codes, status and report time of every located incident."""
        columns = [
            t.incidents.c[c]
            for c in (
                "id",
                "lon",
                "lat",
                "grid_code",
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

    # ---- gazetteer and geocoder cache --------------------------------------------------------------
    def replace_gazetteer(self, entries: Sequence[dict]) -> int:
        """Replace the whole offline gazetteer in one transaction."""
        with self.transaction() as conn:
            conn.execute(t.gazetteer.delete())
            if entries:
                conn.execute(t.gazetteer.insert(), list(entries))
        return len(entries)

    def gazetteer_fingerprint(self) -> tuple:
        """Return a cheap value that changes whenever the gazetteer is replaced (for in-memory caches)."""
        g = t.gazetteer.c
        # Ids restart after a full replacement on SQLite, so the content is summed in as well.
        query = sa.select(
            sa.func.count(g.id),
            sa.func.max(g.id),
            sa.func.sum(g.lon),
            sa.func.sum(g.lat),
            sa.func.min(g.name),
            sa.func.max(g.name),
            sa.func.sum(sa.func.length(g.name)),
        )
        with self._connect() as conn:
            return tuple(conn.execute(query).one())

    def gazetteer_rows(self) -> list[dict]:
        """Return every gazetteer entry."""
        with self._connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(t.gazetteer).order_by(t.gazetteer.c.id)).mappings()]

    def cached_geocode(self, provider: str, query: str) -> str | None:
        """Return a cached online geocoder response, or None."""
        with self._connect() as conn:
            return conn.execute(
                sa.select(t.geocode_cache.c.response).where(
                    t.geocode_cache.c.provider == provider, t.geocode_cache.c.query == query
                )
            ).scalar()

    def cache_geocode(self, provider: str, query: str, response: str) -> None:
        """Keep an online geocoder response so the same address is never asked twice."""
        with self.transaction() as conn:
            conn.execute(
                t.geocode_cache.delete().where(t.geocode_cache.c.provider == provider, t.geocode_cache.c.query == query)
            )
            conn.execute(
                t.geocode_cache.insert().values(
                    provider=provider, query=query, response=response, created_at=dt.datetime.now()
                )
            )

    # ---- users ---------------------------------------------------------------------------------------
    def add_user(
        self, *, name: str, role: str, password_hash: str | None, token_hash: str, areas: Sequence[str]
    ) -> int:
        """Create a user with the areas they answer for."""
        with self.transaction() as conn:
            if conn.execute(sa.select(t.users.c.id).where(t.users.c.name == name)).first():
                raise Conflict(f"a user named {name!r} already exists")
            user_id = conn.execute(
                t.users.insert().values(
                    name=name,
                    role=role,
                    password_hash=password_hash,
                    token_hash=token_hash,
                    created_at=dt.datetime.now().replace(microsecond=0),
                )
            ).inserted_primary_key[0]
            if areas:
                conn.execute(t.user_areas.insert(), [{"user_id": user_id, "area_code": a} for a in sorted(set(areas))])
        return user_id

    def find_user(self, *, name: str | None = None, token_hash: str | None = None) -> dict | None:
        """Return a user (with `areas`) by name or by token hash, or None."""
        query = sa.select(t.users)
        query = (
            query.where(t.users.c.name == name) if name is not None else query.where(t.users.c.token_hash == token_hash)
        )
        with self._connect() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                return None
            areas = conn.execute(
                sa.select(t.user_areas.c.area_code)
                .where(t.user_areas.c.user_id == row["id"])
                .order_by(t.user_areas.c.area_code)
            ).scalars()
            return {**dict(row), "areas": list(areas)}

    def list_users(self) -> list[dict]:
        """Return every user's name, role and areas."""
        with self._connect() as conn:
            users = (
                conn.execute(sa.select(t.users.c.id, t.users.c.name, t.users.c.role).order_by(t.users.c.name))
                .mappings()
                .all()
            )
            areas: dict[int, list[str]] = {}
            for user_id, code in conn.execute(sa.select(t.user_areas.c.user_id, t.user_areas.c.area_code)):
                areas.setdefault(user_id, []).append(code)
        return [{"name": u["name"], "role": u["role"], "areas": sorted(areas.get(u["id"], []))} for u in users]

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

    # ---- checks used by tests and the import report ----------------------------------------------
    def table_counts(self) -> dict[str, int]:
        """Return the number of rows in every gridmap table."""
        with self._connect() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                for name, table in t.metadata.tables.items()
            }

    def edition_checksum(self, edition: str) -> str:
        """Return a SHA-256 over every attribute and geometry of an edition's areas."""
        digest = hashlib.sha256()
        frame = self.areas(edition)
        for row in frame.itertuples(index=False):
            values = [getattr(row, f) for f in AREA_FIELDS]
            digest.update(repr(values).encode())
            digest.update(shapely.to_wkb(row.geometry, hex=True).encode())
        return digest.hexdigest()


def _datetime(value) -> dt.datetime | None:
    # SQLite hands back text, PostgreSQL a datetime (naive, as stored).
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _edition(row) -> Edition:
    return Edition(
        name=row["name"],
        status=row["status"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        created_at=row["created_at"],
    )


def _area_row(edition_id: int, record: AreaRecord) -> dict:
    geometry = record.geometry
    if geometry.geom_type == "Polygon":
        geometry = shapely.MultiPolygon([geometry])
    return {
        "edition_id": edition_id,
        "code": record.code,
        "name": record.name,
        "level": record.level,
        "parent_code": record.parent_code or None,
        "kind": record.kind,
        "households": record.households,
        "population": record.population,
        "staff": record.staff,
        "geom": from_shape(geometry, srid=4326),
    }


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)) or type(exc).__name__
    return redact_url(text.strip().splitlines()[0])
