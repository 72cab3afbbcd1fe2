"""Every setting gridmap has, declared once with its default and help text.

Settings are plain values; nothing is read at import time. `Settings.from_env()` is called at the edges
(the CLI and `create_app`) so tests and scripts can build a `Settings` by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from gridmap.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DB_PATH = PROJECT_DIR / "instance" / "gridmap.sqlite"


def _setting(default, env: str, help: str):
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    """Configuration for one gridmap process."""

    database_url: str = _setting(
        f"sqlite:///{DEFAULT_DB_PATH}",
        "GRIDMAP_DATABASE_URL",
        "Database URL: sqlite:///PATH for embedded SpatiaLite (default instance/gridmap.sqlite), "
        "postgresql+psycopg://USER:PASSWORD@HOST/DB for PostGIS.",
    )
    spatialite_library: str = _setting(
        "mod_spatialite",
        "SPATIALITE_LIBRARY_PATH",
        "Name or path of the SpatiaLite extension to load into SQLite.",
    )
    db_busy_timeout: float = _setting(
        5.0,
        "GRIDMAP_DB_BUSY_TIMEOUT",
        "Seconds a database write waits for another writer (SQLite busy timeout, PostgreSQL lock_timeout) "
        "before the request is answered 503 with Retry-After.",
    )
    host: str = _setting("127.0.0.1", "GRIDMAP_HOST", "Address `gridmap serve` listens on.")
    port: int = _setting(5000, "GRIDMAP_PORT", "Port `gridmap serve` listens on.")
    threads: int = _setting(8, "GRIDMAP_THREADS", "Worker threads of the WSGI server.")
    secret_key: str = _setting(
        "",
        "GRIDMAP_SECRET_KEY",
        "Key that signs session cookies; when empty a random key is made per process.",
    )
    anonymous_access: str = _setting(
        "none",
        "GRIDMAP_ANONYMOUS_ACCESS",
        "What callers who are not signed in may see: none (default: only the sign-in page) or names (the current "
        "edition's streets, communities and grids by code and name on the start page and /api/editions, and "
        "/api/locate on the current edition). Households, population, staff, cases and drafts stay private.",
    )
    geocoder: str = _setting(
        "gazetteer",
        "GRIDMAP_GEOCODER",
        "Geocoder for addresses: gazetteer (offline, the default) or nominatim (the offline gazetteer first, "
        "then a Nominatim server for addresses it cannot place).",
    )
    nominatim_url: str = _setting(
        "https://nominatim.openstreetmap.org",
        "GRIDMAP_NOMINATIM_URL",
        "Base URL of the Nominatim server used when geocoder=nominatim.",
    )
    geocoder_min_interval: float = _setting(
        1.0,
        "GRIDMAP_GEOCODER_MIN_INTERVAL",
        "Seconds between two requests to the online geocoder (the public Nominatim allows one per second).",
    )
    geocoder_user_agent: str = _setting(
        "gridmap/0.1 (community grid governance)",
        "GRIDMAP_GEOCODER_USER_AGENT",
        "User-Agent sent to the online geocoder; public Nominatim asks for one that identifies the application.",
    )
    working_hours: str = _setting(
        "09:00-12:00,13:30-18:00",
        "GRIDMAP_WORKING_HOURS",
        "Working periods of a working day (case deadlines and traffic lights).",
    )
    holidays: str = _setting(
        "",
        "GRIDMAP_HOLIDAYS",
        "Public holidays: dates or ranges, e.g. 2026-10-01..2026-10-07,2027-01-01.",
    )
    extra_workdays: str = _setting(
        "",
        "GRIDMAP_EXTRA_WORKDAYS",
        "Weekend days that are worked (调休), same format as GRIDMAP_HOLIDAYS.",
    )
    map_basemap: str = _setting(
        "none",
        "GRIDMAP_MAP_BASEMAP",
        "Basemap of /map: none (default, works offline), osm, tianditu (needs GRIDMAP_TIANDITU_KEY) or amap (GCJ-02).",
    )
    map_basemaps: str = _setting(
        "",
        "GRIDMAP_MAP_BASEMAPS",
        "Comma-separated basemap presets offered in the map's layer switcher (osm, tianditu, amap).",
    )
    tianditu_key: str = _setting("", "GRIDMAP_TIANDITU_KEY", "Tianditu browser key for the tianditu basemap.")
    households_min: int = _setting(
        300, "GRIDMAP_HOUSEHOLDS_MIN", "Lowest households per grid before the audit flags it."
    )
    households_max: int = _setting(
        500, "GRIDMAP_HOUSEHOLDS_MAX", "Highest households per grid before the audit flags it."
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Build settings from environment variables, then apply explicit overrides (e.g. CLI options)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw not in (None, ""):
                kind = {"int": int, "float": float}.get(f.type, str)
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    raise ConfigError(f"{f.metadata['env']}={raw!r} is not a {f.type} number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides) -> Settings:
        """Return a copy with the given non-None values replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def describe_settings() -> list[tuple[str, str, object, str]]:
    """List (name, env var, default, help) for every setting, for docs and `--help`."""
    return [(f.name, f.metadata["env"], f.default, f.metadata["help"]) for f in fields(Settings)]


def setting_help(name: str) -> str:
    """Return the help text of one setting."""
    return next(f.metadata["help"] for f in fields(Settings) if f.name == name)


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z0-9+.-]+://[^:/@]*:)(?P<password>[^@]*)(?P<tail>@)", re.I)


def redact_url(url: str) -> str:
    """Hide the password of a database URL so it can be printed."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}***{m['tail']}", url)
