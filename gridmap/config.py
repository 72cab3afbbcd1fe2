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
    auth_cache_seconds: float = _setting(
        5.0,
        "GRIDMAP_AUTH_CACHE_SECONDS",
        "Seconds a user found by API token or session is remembered by a server process: a revoked token or a "
        "changed role takes effect within this time (0: look the user up on every request).",
    )
    workers: int = _setting(
        1,
        "GRIDMAP_WORKERS",
        "Server processes of `gridmap serve`: 1 runs waitress (threads, any OS); more runs gunicorn (Linux/macOS).",
    )
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
    jurisdiction: str = _setting(
        "",
        "GRIDMAP_JURISDICTION",
        "Province, city and districts served, with the other names people write for them, e.g. "
        "'province=广东省|广东; city=惠州市|惠州; districts=惠城区|惠城, 惠阳区|惠阳'. Addresses lose these prefixes, "
        "a district named restricts the match to it, and another city or district is recognised as outside. Districts "
        "and streets are also read from the loaded boundaries and the gazetteer's district/street columns, and the "
        "province from GB/T 2260 district codes, so it may stay empty.",
    )
    geocode_review_below: float = _setting(
        0.85,
        "GRIDMAP_GEOCODE_REVIEW_BELOW",
        "Geocodes with a confidence below this are assigned but flagged for a person to check the point "
        "(the case list's and the map's 'location to check' filter). 0.85 is where answers were calibrated to lie "
        "within 300 m.",
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
    attachments: str = _setting(
        str(PROJECT_DIR / "instance" / "attachments"),
        "GRIDMAP_ATTACHMENTS",
        "Where case photos are kept: a directory (default instance/attachments) or s3://BUCKET[/PREFIX] for an "
        "S3-compatible bucket (credentials from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).",
    )
    cache_dir: str = _setting(
        str(PROJECT_DIR / "instance" / "cache"),
        "GRIDMAP_CACHE_DIR",
        "Directory where the grid index's raster is kept between processes, named by the grids it was built from "
        "(empty: build it in every process).",
    )
    s3_endpoint_url: str = _setting(
        "",
        "GRIDMAP_S3_ENDPOINT_URL",
        "Endpoint of the S3-compatible service holding the photos (MinIO, …); empty for AWS S3.",
    )
    s3_region: str = _setting("", "GRIDMAP_S3_REGION", "Region of the photo bucket (default us-east-1).")
    photo_max_mb: float = _setting(15.0, "GRIDMAP_PHOTO_MAX_MB", "Largest photo accepted, in MB (10^6 bytes).")
    photos_per_upload: int = _setting(9, "GRIDMAP_PHOTOS_PER_UPLOAD", "Most photos sent with one report or step.")
    photos_per_case: int = _setting(30, "GRIDMAP_PHOTOS_PER_CASE", "Most photos one case may hold.")
    households_min: int = _setting(
        300, "GRIDMAP_HOUSEHOLDS_MIN", "Lowest households per grid before the audit flags it."
    )
    households_max: int = _setting(
        500, "GRIDMAP_HOUSEHOLDS_MAX", "Highest households per grid before the audit flags it."
    )
    boundaries_access: str = _setting(
        "public",
        "GRIDMAP_BOUNDARIES_ACCESS",
        "Who may read boundaries through OGC API – Features (/ogc): public (anyone) or signed-in (a session or "
        "an API token). Cases always need a sign-in; drafts are for planners and admins.",
    )
    timezone: str = _setting(
        "Asia/Shanghai",
        "GRIDMAP_TIMEZONE",
        "Time zone of the times gridmap stores (reports, deadlines): OGC API and Open311 give them with this "
        "offset and read times with any offset.",
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
