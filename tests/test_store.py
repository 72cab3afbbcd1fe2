"""The store on both backends: schema migrations, editions and URL handling."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from geodata import GRIDS

from gridmap.config import Settings, redact_url
from gridmap.errors import ConfigError, Conflict, NotFound
from gridmap.store import AreaRecord, Store


def test_new_database_is_at_the_newest_migration(store):
    assert store.schema_revision() == store.head_revision() == "0008"
    assert set(store.table_counts()) == {
        "attachments",
        "editions",
        "areas",
        "incidents",
        "incident_history",
        "gazetteer",
        "gazetteer_revision",
        "geocode_cache",
        "users",
        "user_areas",
    }


def test_an_old_database_is_upgraded_and_keeps_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = Store.open(url, create_schema=False)
    config = old._alembic_config()
    with old.transaction() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    assert old.schema_revision() == "0001"
    old.add_areas(
        "main",
        [AreaRecord(code="1", name="a", level="street", parent_code=None, geometry=GRIDS[0]["geometry"])],
        create_edition_status="current",
    )
    old.close()
    upgraded = Store.open(url)
    assert upgraded.schema_revision() == upgraded.head_revision()
    assert upgraded.area_counts("main")["street"] == 1
    assert upgraded.table_counts()["incidents"] == 0
    upgraded.close()


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
