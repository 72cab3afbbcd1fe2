"""Users, their roles, hashed credentials and the areas they answer for."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from gridmap import clock
from gridmap.errors import Conflict, NotFound

from . import tables as t
from .engine import StoreBase


class UserStore(StoreBase):
    """Users and their areas."""

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
                    created_at=clock.now(),
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

    def set_token_hash(self, name: str, token_hash: str | None) -> None:
        """Replace (or with None, remove) a user's API token hash."""
        with self.transaction() as conn:
            statement = t.users.update().where(t.users.c.name == name).values(token_hash=token_hash)
            updated = conn.execute(statement).rowcount
        if updated != 1:
            raise NotFound(f"no user named {name!r}")

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
