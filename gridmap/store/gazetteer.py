"""The offline gazetteer and the online geocoder's cache."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from gridmap import clock

from . import tables as t
from .engine import StoreBase


class GazetteerStore(StoreBase):
    """Gazetteer entries and cached online geocoder answers."""

    # ---- gazetteer and geocoder cache --------------------------------------------------------------
    def replace_gazetteer(self, entries: Sequence[dict]) -> int:
        """Replace the whole offline gazetteer in one transaction, bumping its revision."""
        with self.transaction() as conn:
            conn.execute(t.gazetteer.delete())
            if entries:
                conn.execute(t.gazetteer.insert(), list(entries))
            bumped = conn.execute(
                t.gazetteer_revision.update().values(revision=t.gazetteer_revision.c.revision + 1)
            ).rowcount
            if not bumped:
                conn.execute(t.gazetteer_revision.insert().values(id=1, revision=2))
        return len(entries)

    def gazetteer_fingerprint(self) -> tuple:
        """Return a value that changes whenever the gazetteer is replaced (for in-memory caches): its revision."""
        with self._connect() as conn:
            revision = conn.execute(sa.select(sa.func.max(t.gazetteer_revision.c.revision))).scalar()
            count = conn.execute(sa.select(sa.func.count()).select_from(t.gazetteer)).scalar()
        return (revision or 0, count)

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
                    provider=provider, query=query, response=response, created_at=clock.now()
                )
            )
