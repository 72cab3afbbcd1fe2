"""The store on both backends: schema migrations, editions and URL handling."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command

from gridmap.config import Settings, redact_url
from gridmap.errors import ConfigError, Conflict, NotFound
from gridmap.store import Store


def test_new_database_is_at_the_newest_migration(store):
    assert store.schema_revision() == store.head_revision() == "0009"
    assert set(store.table_counts()) == {
        "attachments",
        "buildings",
        "editions",
        "revisions",
        "areas",
        "incidents",
        "incident_history",
        "gazetteer",
        "gazetteer_revision",
        "geocode_cache",
        "users",
        "user_areas",
    }


def _old_database(url: str, revision: str) -> Store:
    """A database migrated only up to `revision`, with one current edition holding one street (plain SQL, as
    the code of that time would have written it)."""
    old = Store.open(url, create_schema=False)
    config = old._alembic_config()
    with old.transaction() as conn:
        if old.backend == "postgis":
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    assert old.schema_revision() == revision
    make = "ST_GeomFromText" if old.backend == "postgis" else "GeomFromText"
    with old.transaction() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO editions (name, status, valid_from, created_at) "
                "VALUES ('main', 'current', '2026-01-01', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO areas (edition_id, code, name, level, geom) SELECT id, '1', 'a', 'street', "
                f"{make}('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)))', 4326) FROM editions"
            )
        )
    return old


def test_an_old_database_is_upgraded_and_keeps_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    _old_database(url, "0001").close()
    upgraded = Store.open(url)
    assert upgraded.schema_revision() == upgraded.head_revision()
    assert upgraded.area_counts("main")["street"] == 1
    assert upgraded.table_counts()["incidents"] == 0
    upgraded.close()


def test_revisions_migration_keeps_editions_on_both_backends(database_url):
    """0004 → 0005 on a database with an edition: it keeps its rows and starts at revision 1."""
    from sqlalchemy.engine import make_url

    if database_url.startswith("sqlite"):
        url = database_url.replace("gridmap.sqlite", "old-0004.sqlite")
    else:
        admin = make_url(database_url)
        name = f"{admin.database}_old"
        with psycopg_admin(database_url) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = admin.set(database=name).render_as_string(hide_password=False)
    _old_database(url, "0004").close()
    upgraded = Store.open(url)
    try:
        assert upgraded.schema_revision() == upgraded.head_revision()  # through 0005 and every later one
        assert upgraded.area_counts("main")["street"] == 1
        assert upgraded.edition_revision() == upgraded.edition_revision("main")
        assert upgraded.edition_revision()[:2] == ("main", 1)
        assert upgraded.incidents_revision() == 1
    finally:
        upgraded.close()
        if not database_url.startswith("sqlite"):
            with psycopg_admin(database_url) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def psycopg_admin(database_url: str):
    """An autocommit connection to the server of `database_url` (its `postgres` database)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)


def test_spatial_index_exists(store):
    with store.engine.connect() as conn:
        if store.backend == "postgis":
            indexes = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'areas'")).scalars()
            assert any("gist (geom)" in i for i in indexes)
        else:
            enabled = conn.execute(
                sa.text("SELECT spatial_index_enabled FROM geometry_columns WHERE f_table_name = 'areas'")
            ).scalar()
            assert enabled == 1


def test_edition_lifecycle(store):
    store.create_edition("a", status="current")
    store.create_edition("b")
    with pytest.raises(Conflict):
        store.create_edition("b")
    store.activate_edition("b", valid_from=dt.date(2027, 3, 1))
    a, b = store.get_edition("a"), store.get_edition("b")
    assert (a.status, a.valid_to) == ("retired", dt.date(2027, 2, 28))
    assert (b.status, b.valid_from) == ("current", dt.date(2027, 3, 1))
    with pytest.raises(Conflict, match="retired"):
        store.activate_edition("a")
    with pytest.raises(NotFound, match="editions: a, b"):
        store.get_edition("c")


def test_unreachable_database_error_hides_the_password():
    store = Store.open("postgresql+psycopg://gm:hunter2@127.0.0.1:1/nowhere", create_schema=False)
    with pytest.raises(ConfigError) as raised:
        store.list_editions()
    assert "hunter2" not in raised.value.message and "gm:***@127.0.0.1:1" in raised.value.message


def test_missing_spatialite_library_is_a_clear_error(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}", spatialite_library="no_such_spatialite")
    with pytest.raises(ConfigError, match="libsqlite3-mod-spatialite"):
        Store.open(settings)


@pytest.mark.parametrize(
    "url,expected",
    [
        ("postgresql+psycopg://user:pw@host/db", "postgresql+psycopg://user:***@host/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/x.sqlite", "sqlite:////tmp/x.sqlite"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_spatialite_opened_first_does_not_break_shapely_pyproj_or_gdal(tmp_path):
    """mod_spatialite is loaded RTLD_GLOBAL with its own GEOS, PROJ and SQLite: a process that opens SpatiaLite
    before it first uses shapely, pyproj or pyogrio (as quick commands now do) must not crash."""
    import subprocess
    import sys

    code = f"""
from gridmap.store import Store
store = Store.open("sqlite:///{tmp_path / "first.sqlite"}")
store.list_editions()
import numpy as np, shapely, pyproj, geopandas as gpd
grid = shapely.box(0, 0, 1, 1); shapely.prepare(grid)
assert shapely.intersects_xy(grid, np.array([0.5, 2.0]), np.array([0.5, 2.0])).tolist() == [True, False]
assert round(pyproj.Geod(ellps="WGS84").inv(0, 0, 1, 0)[2]) == 111319
gpd.GeoDataFrame(geometry=[grid], crs="EPSG:4326").to_file("{tmp_path / "out.gpkg"}")
store.close()
print("survived")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "survived", done.stderr[-2000:]
