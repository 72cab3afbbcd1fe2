"""People: users, roles, the areas they answer for, passwords and API tokens.

Roles (spelled as in the CLI and API): `admin` (everything), `planner` (boundaries and drafts), `supervisor`
(the cases of one or more communities or streets), `grid_worker` (the cases of their own grids: their 责任田)
and `viewer` (read-only, no personal data). A user's areas are codes of grids, communities or streets; an
incident is in a user's scope when its grid, community or street code is one of them.

Passwords are stored as scrypt hashes (stdlib hashlib; no plain text anywhere); API tokens are random and
only their SHA-256 is stored, so a leaked database does not leak working tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from gridmap.errors import InvalidInput, Unauthorized

ROLES = ("admin", "planner", "supervisor", "grid_worker", "viewer")
# What each role is called on the pages (English msgids; gridmap/translations holds the Chinese).
ROLE_LABELS = {
    "admin": "Administrator",
    "planner": "Planner",
    "supervisor": "Supervisor",
    "grid_worker": "Grid worker",
    "viewer": "Viewer",
}
ROLES_WITH_AREAS = ("supervisor", "grid_worker")
SEES_EVERYTHING = ("admin", "planner", "viewer")
SEES_DRAFTS = ("admin", "planner", "supervisor")  # planners draw drafts; supervisors review their area's part
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MIN_PASSWORD = 8


@dataclass(frozen=True)
class User:
    """Who is asking, with what role, for which areas."""

    name: str
    role: str
    areas: tuple[str, ...] = ()

    @property
    def sees_all_areas(self) -> bool:
        """Whether the user's scope is the whole district."""
        return self.role in SEES_EVERYTHING

    def covers(self, *, grid_code: str | None, community_code: str | None, street_code: str | None) -> bool:
        """Whether an incident with these codes lies in the user's scope."""
        if self.sees_all_areas:
            return True
        return any(code in self.areas for code in (grid_code, community_code, street_code) if code)


def may_see_edition(user: User | None, status: str) -> bool:
    """Whether a caller may know of an edition: drafts only planners, admins and supervisors; anonymous callers
    (when the anonymous-access setting lets them in at all) only the current edition."""
    if user is None:
        return status == "current"
    return status != "draft" or user.role in SEES_DRAFTS


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of a password."""
    if len(password) < _MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {_MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether a password matches its stored hash (constant-time comparison)."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    _scheme, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(candidate.hex(), digest)


def token_hash(token: str) -> str:
    """Return the stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    store, name: str, *, role: str, areas: list[str] | tuple[str, ...] = (), password: str | None = None
) -> str:
    """Create a user and return their API token (shown once, stored only as a hash)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("a user name needs 1 to 100 characters")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role in ROLES_WITH_AREAS and not areas:
        raise InvalidInput(f"a {role} needs at least one --area (a grid, community or street code)")
    if role not in ROLES_WITH_AREAS and areas:
        raise InvalidInput(f"a {role} sees the whole district; --area is only for supervisor and grid_worker")
    token = secrets.token_urlsafe(32)
    store.add_user(
        name=name,
        role=role,
        password_hash=hash_password(password) if password else None,
        token_hash=token_hash(token),
        areas=list(areas),
    )
    return token


def _user(row: dict) -> User:
    return User(name=row["name"], role=row["role"], areas=tuple(row["areas"]))


def user_for_token(store, token: str) -> User:
    """Return the user an API token belongs to."""
    row = store.find_user(token_hash=token_hash(token)) if token else None
    if row is None:
        raise Unauthorized("unknown or missing API token")
    return _user(row)


def user_for_password(store, name: str, password: str) -> User:
    """Return the user whose name and password match."""
    row = store.find_user(name=name) if name else None
    if row is None or not check_password(password, row["password_hash"]):
        raise Unauthorized("wrong user name or password")
    return _user(row)


def find_user(store, name: str) -> User | None:
    """Return a user by name, or None."""
    row = store.find_user(name=name)
    return _user(row) if row else None


def revoke_token(store, name: str, *, new_token: bool = False) -> str | None:
    """Make a user's API token stop working; with `new_token`, issue a fresh one and return it (shown once)."""
    token = secrets.token_urlsafe(32) if new_token else None
    store.set_token_hash(name, token_hash(token) if token else None)
    return token


class UserCache:
    """Users found by API token or by session name, remembered for `ttl` seconds (the per-request lookup costs
    two queries). A revoked token, a removed user or a changed role takes effect within `ttl` seconds in every
    process; `clear()` makes it immediate in this one."""

    def __init__(self, ttl: float, *, size: int = 1024) -> None:
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, str], tuple[float, User | None]] = OrderedDict()

    def _get(self, key: tuple[str, str], find):
        if self.ttl <= 0:
            return find()
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        user = find()
        if user is not None:  # unknown tokens are not remembered: a flood of them cannot evict good ones
            with self._lock:
                self._items[key] = (now + self.ttl, user)
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return user

    def by_token(self, store, token: str) -> User:
        """Return the user an API token belongs to (raise Unauthorized for an unknown token)."""
        user = self._get(("token", token_hash(token) if token else ""), lambda: _user_or_none(store, token))
        if user is None:
            raise Unauthorized("unknown or missing API token")
        return user

    def by_name(self, store, name: str) -> User | None:
        """Return a user by name, or None."""
        return self._get(("name", name), lambda: find_user(store, name))

    def clear(self) -> None:
        """Forget every remembered user (after a change made by this process)."""
        with self._lock:
            self._items.clear()


def _user_or_none(store, token: str) -> User | None:
    try:
        return user_for_token(store, token)
    except Unauthorized:
        return None
