"""The household register: buildings, written and read as plain dicts (footprints as shapely geometries)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import shapely
import sqlalchemy as sa

from . import tables as t
from .editions import multipolygon_wkb
from .engine import StoreBase

BUILDING_FIELDS = (
    "code",
    "name",
    "address",
    "estate",
    "community_code",
    "households",
    "population",
    "lon",
    "lat",
    "geocode_level",
)
_CHUNK = 500  # codes per IN (...) list: SQLite allows a few thousand parameters per statement


class BuildingStore(StoreBase):
    """Buildings of the household register, recognised by their code."""

    def save_buildings(self, rows: Sequence[dict]) -> dict[str, int]:
        """Add new buildings and update changed ones by code, in one transaction; return the counts."""
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        if not rows:
            return counts
        now = dt.datetime.now().replace(microsecond=0)
        with self.transaction() as conn:
            existing = self._buildings_by_code(conn, [r["code"] for r in rows])
            inserts, updates = [], []
            for row in rows:
                before = existing.get(row["code"])
                if before is None:
                    inserts.append(_building_row(row, now))
                    counts["added"] += 1
                elif _same(before, row):
                    counts["unchanged"] += 1
                else:
                    updates.append({**_building_row(row, now), "old_id": before["id"]})
                    counts["updated"] += 1
            if inserts:
                conn.execute(t.buildings.insert(), inserts)
            if updates:
                statement = (
                    t.buildings.update()
                    .where(t.buildings.c.id == sa.bindparam("old_id"))
                    .values({c: sa.bindparam(c) for c in (*BUILDING_FIELDS, "footprint", "updated_at")})
                )
                conn.execute(statement, updates)
        return counts

    def _buildings_by_code(self, conn: sa.Connection, codes: Iterable[str]) -> dict[str, dict]:
        codes = list(codes)
        found: dict[str, dict] = {}
        for start in range(0, len(codes), _CHUNK):
            chunk = codes[start : start + _CHUNK]
            query = _select().where(t.buildings.c.code.in_(chunk))
            for row in conn.execute(query).mappings():
                found[row["code"]] = _plain(row)
        return found

    def buildings(self, codes: Iterable[str] | None = None) -> list[dict]:
        """Return buildings (all, or those with the given codes) ordered by code, footprints as shapely."""
        with self._connect() as conn:
            if codes is not None:
                found = self._buildings_by_code(conn, codes)
                return [found[c] for c in sorted(found)]
            return [_plain(r) for r in conn.execute(_select().order_by(t.buildings.c.code)).mappings()]

    def building_count(self) -> int:
        """Return how many buildings the register holds."""
        with self._connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t.buildings)).scalar()

    def buildings_fingerprint(self) -> tuple:
        """Return a cheap value that changes whenever the register changes (for in-memory caches)."""
        b = t.buildings.c
        query = sa.select(
            sa.func.count(b.id),
            sa.func.max(b.id),
            sa.func.sum(b.households),
            sa.func.sum(b.population),
            sa.func.sum(b.lon + b.lat),
            sa.func.max(b.updated_at),
        )
        with self._connect() as conn:
            row = conn.execute(query).one()
        return tuple(str(v) if isinstance(v, dt.datetime) else v for v in row)


def _select() -> sa.Select:
    return sa.select(
        t.buildings.c.id,
        *(t.buildings.c[f] for f in BUILDING_FIELDS),
        sa.func.ST_AsBinary(t.buildings.c.footprint).label("footprint_wkb"),
    )


def _plain(row) -> dict:
    values = {k: row[k] for k in ("id", *BUILDING_FIELDS)}
    wkb = row["footprint_wkb"]
    values["footprint"] = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
    return values


def _building_row(row: dict, now: dt.datetime) -> dict:
    values = {f: row.get(f) for f in BUILDING_FIELDS}
    footprint = row.get("footprint")
    values["footprint"] = multipolygon_wkb(footprint) if footprint is not None else None
    values["updated_at"] = now
    return values


def _same(before: dict, row: dict) -> bool:
    for f in BUILDING_FIELDS:
        a, b = before.get(f), row.get(f)
        if isinstance(a, float) or isinstance(b, float):
            if a is None or b is None or abs(float(a) - float(b)) > 1e-9:
                return False
        elif a != b:
            return False
    old, new = before.get("footprint"), row.get("footprint")
    if (old is None) != (new is None):
        return False
    return old is None or shapely.equals(old, new)
