"""Editions (versioned boundary sets) and their areas, including draft editing one area at a time."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from gridmap import clock
from gridmap.errors import Conflict, InvalidInput, NotFound

from . import tables as t
from .engine import StoreBase, _datetime

if TYPE_CHECKING:  # geopandas, shapely: imported by the calls that use them, so quick commands start quickly
    import geopandas as gpd
    import shapely

EDITION_STATUSES = ("draft", "current", "retired")
LEVELS = ("district", "street", "community", "grid")
AREA_FIELDS = ("code", "name", "level", "parent_code", "kind", "households", "population", "staff")


MAX_EDITION_NAME = 100
# Letters (Latin, Chinese), digits and a few separators: an edition name appears in URLs, file names and pages,
# so no slashes, no control characters, no leading dot or dash (`../../etc`, `-rf`), no space at either end.
# Written with explicit ranges so the same pattern holds in Python and in the OpenAPI document (JSON Schema).
_NAME_START = "0-9A-Za-z_\u3400-\u4dbf\u4e00-\u9fff"
EDITION_NAME_PATTERN = f"^[{_NAME_START}]([{_NAME_START} .+()（）\\-]*[{_NAME_START}.+()（）\\-])?$"
_EDITION_NAME = re.compile(EDITION_NAME_PATTERN)


def check_edition_name(name) -> str:
    """Refuse an edition name that is empty, longer than 100 characters or holds other than letters, digits,
    spaces and . - _ + ( ) (starting with a letter or digit, no space at either end)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("an edition needs a name")
    if len(name) > MAX_EDITION_NAME:
        raise InvalidInput(f"an edition name has at most {MAX_EDITION_NAME} characters, not {len(name):,}")
    if not _EDITION_NAME.fullmatch(name):
        raise InvalidInput(
            f"edition name {name[:40]!r}: use letters, digits, spaces and . - _ + ( ), starting with a letter or "
            "digit (no slashes, control characters or spaces at either end)"
        )
    return name


@dataclass(frozen=True)
class Edition:
    """A versioned set of boundaries."""

    name: str
    status: str
    valid_from: dt.date | None
    valid_to: dt.date | None
    created_at: dt.datetime
    revision: int = 1

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
    version: int = 1  # a grid redrawn under its old code carries on from the version it replaces


# Built once: these run on every lookup request, where building a statement costs as much as running it.
_REVISION_COLUMNS = (t.editions.c.name, t.editions.c.revision, t.editions.c.created_at)
_CURRENT_REVISION = sa.select(*_REVISION_COLUMNS).where(t.editions.c.status == "current")
_EDITION_REVISION = sa.select(*_REVISION_COLUMNS).where(t.editions.c.name == sa.bindparam("name"))


class EditionStore(StoreBase):
    """Editions, areas and drafts."""

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

    def edition_revision(self, name: str | None = None) -> tuple[str, int, str] | None:
        """Return (name, revision, created_at text) of an edition, or of the current one when `name` is None.

        One indexed row: what in-memory caches ask on every request to know whether they are still good.
        """
        if self._notices is not None:
            row = self._notices.revision(name, lambda: self._revision_row(name))
        else:
            row = self._revision_row(name)
        # created_at tells an edition from one deleted and made again under its name; SQLite hands back its text,
        # PostgreSQL a datetime: one spelling, so the same state always compares equal.
        return None if row is None else (row[0], int(row[1]), str(_datetime(row[2])))

    def _revision_row(self, name: str | None) -> tuple | None:
        return self.quick_row(_CURRENT_REVISION) if name is None else self.quick_row(_EDITION_REVISION, {"name": name})

    def follow_edition_changes(self) -> None:
        """Remember edition revisions between calls, forgotten when the database announces a change (PostGIS).

        For a server process: its lookups then cost no round trip to the database (see `store/notices.py` for
        when a change is seen). SpatiaLite reads the revision every time, which costs microseconds there.
        """
        if self.backend == "postgis" and self._notices is None:
            from .notices import EditionNotices

            self._notices = EditionNotices(self._own_connection)

    def edition_fingerprint(self, edition: str) -> tuple:
        """Return what identifies the edition's current state; kept for callers written before revisions."""
        return self.edition_revision(edition) or ()

    @staticmethod
    def _bump(conn: sa.Connection, edition_id: int) -> None:
        # Every change to an edition calls this inside its own transaction, so a cache can never see the new
        # content with the old revision.
        conn.execute(
            t.editions.update().where(t.editions.c.id == edition_id).values(revision=t.editions.c.revision + 1)
        )

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
        check_edition_name(name)
        if conn.execute(sa.select(t.editions.c.id).where(t.editions.c.name == name)).first():
            raise Conflict(f"an edition named {name!r} already exists")
        today = clock.today() if status == "current" else None
        return conn.execute(
            # To the microsecond: (name, revision, created_at) is what caches know an edition's state by, and an
            # edition made again in the same second (a database recreated, a test) must not look like the old one.
            t.editions.insert().values(name=name, status=status, valid_from=today, created_at=clock.now_exact())
        ).inserted_primary_key[0]

    def activate_edition(self, name: str, *, valid_from: dt.date | None = None) -> Edition:
        """Make an edition current; the previous current one is retired the day before."""
        valid_from = valid_from or clock.today()
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
                .values(
                    status="retired",
                    valid_to=valid_from - dt.timedelta(days=1),
                    revision=t.editions.c.revision + 1,
                )
            )
            conn.execute(
                t.editions.update()
                .where(t.editions.c.id == row["id"])
                .values(status="current", valid_from=valid_from, valid_to=None, revision=t.editions.c.revision + 1)
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
                .values(status="retired", valid_to=valid_to or clock.today(), revision=t.editions.c.revision + 1)
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
                self._bump(conn, edition_id)
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
        import geopandas as gpd

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
        import shapely

        geometries = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else []
        frame = gpd.GeoDataFrame(
            [dict(zip(AREA_FIELDS, r[: len(AREA_FIELDS)], strict=True)) for r in rows],
            columns=list(AREA_FIELDS),
            geometry=list(geometries),
            crs="EPSG:4326",
        )
        return frame

    def area_attributes(
        self, edition: str, level: str | None = None, *, codes: Iterable[str] | None = None
    ) -> list[dict]:
        """Return the attributes (no geometry) of an edition's areas (all, or those with `codes`), ordered by code."""
        query = (
            sa.select(*(t.areas.c[f] for f in AREA_FIELDS))
            .join(t.editions)
            .where(t.editions.c.name == edition)
            .order_by(t.areas.c.code)
        )
        if level is not None:
            query = query.where(t.areas.c.level == level)
        if codes is not None:
            query = query.where(t.areas.c.code.in_(list(codes)))
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

    def grid_rows(self, edition: str) -> tuple[list[tuple], list[tuple]]:
        """Return (code, name, community code, WKB) of every grid and (code, street code) of every community.

        Plain rows and bytes, no GeoDataFrame: what the grid index is built from, fast and without pandas.
        """
        a = t.areas.c
        base = sa.select().select_from(t.areas.join(t.editions)).where(t.editions.c.name == edition)
        grids = (
            base.add_columns(a.code, a.name, a.parent_code, sa.func.ST_AsBinary(a.geom))
            .where(a.level == "grid")
            .order_by(a.code)
        )
        communities = base.add_columns(a.code, a.parent_code).where(a.level == "community")
        with self._connect() as conn:
            return [tuple(r) for r in conn.execute(grids)], [tuple(r) for r in conn.execute(communities)]

    def edition_stamp(self, edition: str) -> tuple:
        """Return cheap values that change with every write to an edition (no geometry is read): for ETags."""
        a, e = t.areas.c, t.editions.c
        query = (
            sa.select(
                e.status, e.valid_from, e.valid_to, sa.func.count(a.id), sa.func.max(a.id), sa.func.sum(a.id),
                sa.func.sum(a.version),
            )
            .select_from(t.editions.outerjoin(t.areas))
            .where(e.name == edition)
            .group_by(e.status, e.valid_from, e.valid_to)
        )  # fmt: skip
        with self._connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no edition named {edition!r}")
        return tuple(str(v) if isinstance(v, dt.date) else v for v in row)

    def area_bounds(self, edition: str, level: str) -> tuple[float, float, float, float] | None:
        """Return (west, south, east, north) of one level of an edition from the areas' bounding boxes."""
        a = t.areas.c
        env = sa.func.ST_Envelope(a.geom)
        if self.backend == "postgis":
            parts = (sa.func.ST_XMin(env), sa.func.ST_YMin(env), sa.func.ST_XMax(env), sa.func.ST_YMax(env))
        else:
            parts = (sa.func.MbrMinX(a.geom), sa.func.MbrMinY(a.geom), sa.func.MbrMaxX(a.geom), sa.func.MbrMaxY(a.geom))
        query = (
            sa.select(sa.func.min(parts[0]), sa.func.min(parts[1]), sa.func.max(parts[2]), sa.func.max(parts[3]))
            .select_from(t.areas.join(t.editions))
            .where(t.editions.c.name == edition, a.level == level)
        )
        with self._connect() as conn:
            row = conn.execute(query).first()
        return None if row is None or row[0] is None else tuple(float(v) for v in row)

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
        import shapely

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
                    values["geom"] = multipolygon_wkb(geometry)
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
            self._bump(conn, edition_id)
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
            self._bump(conn, edition_id)

    def _draft_id(self, conn: sa.Connection, edition: str) -> int:
        row = conn.execute(sa.select(t.editions.c.id, t.editions.c.status).where(t.editions.c.name == edition)).first()
        if row is None:
            raise NotFound(f"no edition named {edition!r}")
        if row.status != "draft":
            raise Conflict(f"edition {edition!r} is {row.status}; only drafts can be edited")
        return row.id

    def edition_checksum(self, edition: str) -> str:
        """Return a SHA-256 over every attribute and geometry of an edition's areas."""
        digest = hashlib.sha256()
        frame = self.areas(edition)
        for row in frame.itertuples(index=False):
            values = [getattr(row, f) for f in AREA_FIELDS]
            digest.update(repr(values).encode())
            digest.update(row.geometry.wkb_hex.encode())
        return digest.hexdigest()


def _edition(row) -> Edition:
    return Edition(
        name=row["name"],
        status=row["status"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        created_at=row["created_at"],
        revision=row["revision"],
    )


def multipolygon_wkb(geometry) -> bytes:
    """The column value of a (Multi)Polygon: always a MultiPolygon, as WKB (the column converts it, EPSG:4326)."""
    import shapely

    if geometry.geom_type == "Polygon":
        geometry = shapely.MultiPolygon([geometry])
    return shapely.to_wkb(geometry)


def _area_row(edition_id: int, record: AreaRecord) -> dict:
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
        "geom": multipolygon_wkb(record.geometry),
        "version": record.version,
    }
