"""Edition and incident revisions, the caches keyed on them, and the /api/locate request path, on both backends."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa
from geodata import GRIDS, load_district
from shapely.geometry import box, mapping

from gridmap import assign, drafts, people
from gridmap.config import Settings
from gridmap.errors import Unauthorized
from gridmap.store import Store
from gridmap.web import create_app

NW, SW, NE, SE = (g["code"] for g in GRIDS)


@pytest.fixture
def district(store, tmp_path):
    load_district(store, tmp_path)
    return store


def revision(store, edition: str) -> int:
    return store.edition_revision(edition)[1]


def test_every_change_to_an_edition_bumps_its_revision_in_the_same_transaction(district):
    main = district.current_edition().name
    steps = []

    def bumped(what, edition, action):
        before = revision(district, edition)
        action()
        steps.append((what, revision(district, edition) - before))

    drafts.create_draft(district, "plan")  # copy: a new edition with its own revision; the source is untouched
    assert revision(district, "plan") == 1
    bumped("save", "plan", lambda: drafts.save_grid(district, "plan", NW, {"version": 1, "households": 1}))
    bumped(
        "split",
        "plan",
        lambda: drafts.split_grid(
            district, "plan", SW, {"type": "LineString", "coordinates": [[117.105, 39.115], [117.105, 39.095]]}
        ),
    )
    bumped("merge", "plan", lambda: drafts.merge_grids(district, "plan", [NE, SE]))
    bumped(
        "move vertex", "plan", lambda: drafts.move_vertex(district, "plan", old=[117.10, 39.12], new=[117.1, 39.121])
    )
    bumped("delete", "plan", lambda: drafts.delete_grid(district, "plan", NW, version=3))
    bumped(
        "add",
        "plan",
        lambda: drafts.add_grid(
            district, "plan", {"community_code": "120104001001", "geometry": mapping(box(117.10, 39.11, 117.11, 39.12))}
        ),
    )
    bumped("retire", main, lambda: district.retire_edition(main))
    assert all(change == 1 for _what, change in steps), steps
    before = revision(district, "plan")
    district.activate_edition("plan")
    assert revision(district, "plan") == before + 1
    assert district.edition_revision()[0] == "plan"  # the current edition is found by one indexed row


def test_a_failed_change_does_not_bump_the_revision(district):
    drafts.create_draft(district, "plan")
    before = revision(district, "plan")
    with pytest.raises(Exception, match="someone else"):
        drafts.save_grid(district, "plan", NW, {"version": 7, "households": 1})
    assert revision(district, "plan") == before


def test_loading_into_an_edition_bumps_it_and_the_index_follows(district, tmp_path):
    main = district.current_edition().name
    index = assign.grid_index(district)
    assert assign.grid_index(district) is index  # cached while the revision stays
    before = revision(district, main)
    from gridmap.store import AreaRecord

    district.add_areas(
        main,
        [AreaRecord("120104001002009", "新网格", "grid", "120104001002", box(117.12, 39.10, 117.13, 39.11))],
    )
    assert revision(district, main) == before + 1
    rebuilt = assign.grid_index(district)
    assert rebuilt is not index and "120104001002009" in rebuilt.codes
    assert assign.locate(district, lon=117.125, lat=39.105)["grid_code"] == "120104001002009"


def test_every_incident_write_bumps_the_incidents_revision(district):
    from gridmap import cases

    start = district.incidents_revision()
    admin = people.User(name="a", role="admin")
    case = cases.report(district, user=admin, title="t", description="d", lon=117.105, lat=39.115, category_code="0102")
    assert district.incidents_revision() == start + 1
    cases.act(district, case["id"], user=admin, action="register")
    assert district.incidents_revision() == start + 2
    assign.reassign(district)
    assert district.incidents_revision() == start + 3


def _recording_quick_reads(store) -> list[str]:
    """Record the statements `store` runs as quick reads (on connections of their own, not the pool's)."""
    statements: list[str] = []
    original = store.quick_row

    def recording(statement, params=None):
        statements.append(str(statement.compile(dialect=store.engine.dialect)))
        return original(statement, params)

    store.quick_row = recording
    return statements


def test_a_lookup_asks_the_database_one_indexed_row_and_no_aggregate(database_url, tmp_path):
    store = Store.open(database_url)
    load_district(store, tmp_path)
    token = people.add_user(store, "api", role="viewer")
    store.close()
    app = create_app(Settings(database_url=database_url, secret_key="s"))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/locate?lon=117.105&lat=39.115", headers=headers).json["grid_code"] == NW  # warm
    pooled: list[str] = []
    app_store = app.extensions["gridmap"].store
    quick = _recording_quick_reads(app_store)
    # (conn, cursor, statement, ...); transaction control (SQLite's explicit BEGIN) is not a query
    listener = lambda *args: args[2] in ("BEGIN", "COMMIT", "ROLLBACK") or pooled.append(args[2])  # noqa: E731
    sa.event.listen(app_store.engine, "before_cursor_execute", listener)
    try:
        for _ in range(5):
            answer = client.get("/api/locate?lon=117.115&lat=39.105", headers=headers).json
            assert answer["grid_code"] == SE
    finally:
        sa.event.remove(app_store.engine, "before_cursor_execute", listener)
        app_store.close()
    assert pooled == []  # the token's user is remembered; nothing goes through the pool
    assert len(quick) == 5, "\n".join(quick)  # the edition's revision, one quick read a lookup
    assert all("FROM editions" in s and "WHERE editions.status" in s for s in quick)
    assert not any(word in s.upper() for s in quick for word in ("ST_", "SUM(", "COUNT("))


def _activate_new_plan(store, name: str) -> None:
    drafts.create_draft(store, name)
    store.activate_edition(name)


def test_a_server_process_sees_another_process_activate_without_reading_per_lookup(database_url, tmp_path):
    server = Store.open(database_url)  # as `gridmap serve` opens it
    load_district(server, tmp_path)
    server.follow_edition_changes()
    other = Store.open(database_url)  # another process: the CLI, another worker, another machine
    reads = _recording_quick_reads(server)
    try:
        first = server.edition_revision()
        assert all(server.edition_revision() == first for _ in range(50))
        # PostGIS remembers the revision until PostgreSQL announces a change; SpatiaLite reads it each time.
        assert len(reads) == (1 if server.backend == "postgis" else 51)
        _activate_new_plan(other, "plan")
        # The notice is sent as the activation commits. Well within the 1 s a remembered revision may live, so
        # only the notice can have told the server.
        deadline = time.monotonic() + 0.5
        while server.edition_revision()[0] != "plan":
            assert time.monotonic() < deadline, "the activation was not seen"
            time.sleep(0.001)
        # A change this process makes is seen at once, without waiting for the notice.
        _activate_new_plan(server, "plan2")
        assert server.edition_revision()[0] == "plan2"
    finally:
        other.close()
        server.close()


def test_a_change_made_without_a_notice_is_seen_within_the_stated_bound(database_url, tmp_path):
    server = Store.open(database_url)
    load_district(server, tmp_path)
    server.follow_edition_changes()
    other = Store.open(database_url)
    try:
        before = server.edition_revision()
        with other.transaction() as conn:
            if other.backend == "postgis":
                # Triggers off for this transaction (what a replication tool or a restore does): no notice is sent.
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            conn.execute(sa.text("UPDATE editions SET revision = revision + 1 WHERE status = 'current'"))
        if server.backend == "postgis":
            assert server.edition_revision() == before  # remembered: nothing announced the change
            time.sleep(server._notices.max_age + 0.05)
        assert server.edition_revision()[1] == before[1] + 1
    finally:
        other.close()
        server.close()


def test_lookups_survive_the_database_closing_their_connections(database_url, tmp_path):
    server = Store.open(database_url)
    load_district(server, tmp_path)
    server.follow_edition_changes()
    other = Store.open(database_url)
    try:
        assert server.edition_revision()[0] == "main"
        if other.backend == "postgis":  # as a server restart or an idle timeout would: every session but ours
            with other.transaction() as conn:
                killed = conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'"
                    )
                ).scalar()
            assert killed >= 2  # the listening connection and the quick-read one at least
            time.sleep(0.1)
        _activate_new_plan(other, "plan")
        assert server.edition_revision()[0] == "plan"  # the broken connections are noticed and replaced
        _activate_new_plan(other, "plan2")
        deadline = time.monotonic() + 0.5
        while server.edition_revision()[0] != "plan2":  # listening again (or reading per lookup): seen either way
            assert time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        other.close()
        server.close()


def test_a_revoked_token_stops_working_within_the_cache_time(database_url, tmp_path):
    store = Store.open(database_url)
    token = people.add_user(store, "worker", role="viewer")
    app = create_app(Settings(database_url=database_url, secret_key="s", auth_cache_seconds=0.5))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        assert client.get("/api/editions", headers=headers).status_code == 200
        people.revoke_token(store, "worker")  # another process (the CLI) revokes it
        assert client.get("/api/editions", headers=headers).status_code == 200  # still remembered
        time.sleep(0.6)
        refused = client.get("/api/editions", headers=headers)
        assert refused.status_code == 401 and "unknown or missing API token" in refused.json["error"]
    finally:
        store.close()
        app.extensions["gridmap"].store.close()


def test_user_cache_forgets_at_once_when_told_and_never_remembers_unknown_tokens(store):
    token = people.add_user(store, "p", role="planner")
    cache = people.UserCache(60)
    assert cache.by_token(store, token).role == "planner"
    fresh = people.revoke_token(store, "p", new_token=True)
    assert cache.by_token(store, token).name == "p"  # remembered for up to 60 s
    cache.clear()
    with pytest.raises(Unauthorized):
        cache.by_token(store, token)
    assert cache.by_token(store, fresh).name == "p"
    with pytest.raises(Unauthorized):
        cache.by_token(store, "made-up")
    assert len(cache._items) == 1


def test_the_keeper_builds_the_new_current_index_before_any_lookup(database_url, tmp_path):
    server_side = Store.open(database_url)
    load_district(server_side, tmp_path)
    keeper = assign.IndexKeeper(server_side, interval=0.1).start()
    other_process = Store.open(database_url)
    try:
        drafts.create_draft(other_process, "plan")
        drafts.save_grid(other_process, "plan", NW, {"version": 1, "name": "改名"})
        other_process.activate_edition("plan", valid_from=dt.date(2027, 1, 1))
        state = assign.edition_state(server_side)
        deadline = time.monotonic() + 10
        while assign.cached_index(server_side, state) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = assign.cached_index(server_side, state)
        assert ready is not None and ready.edition == "plan"
        assert ready.names[ready.position[NW]] == "改名"
    finally:
        keeper.stop()
        other_process.close()
        server_side.close()


def test_concurrent_lookups_wait_for_one_build(district):
    builds = []
    original = assign.keeper.build_index

    def counting(store, edition):
        builds.append(edition)
        time.sleep(0.2)
        return original(store, edition)

    assign.keeper.build_index = counting
    try:
        drafts.create_draft(district, "fresh")  # an edition no index exists for yet
        answers = []
        threads = [
            threading.Thread(target=lambda: answers.append(assign.grid_index(district, "fresh").edition))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        assign.keeper.build_index = original
    assert answers == ["fresh"] * 6 and builds == ["fresh"]


def test_the_audit_is_computed_again_only_when_the_edition_or_the_cases_change(database_url, tmp_path, monkeypatch):
    from gridmap import audit, cases

    store = Store.open(database_url)
    load_district(store, tmp_path)
    drafts.create_draft(store, "plan")
    token = people.add_user(store, "boss", role="admin")
    app = create_app(Settings(database_url=database_url, secret_key="s"))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    runs = []
    original = audit.audit_edition
    monkeypatch.setattr(audit, "audit_edition", lambda *a, **k: runs.append(a[1]) or original(*a, **k))
    try:
        first = client.get("/api/audit?edition=plan", headers=headers).json
        assert client.get("/api/audit?edition=plan", headers=headers).json == first and runs == ["plan"]
        drafts.save_grid(store, "plan", NW, {"version": 1, "households": 10})  # another process edits the draft
        changed = client.get("/api/audit?edition=plan", headers=headers).json
        assert runs == ["plan", "plan"] and changed != first
        admin = people.User(name="boss", role="admin")
        cases.report(store, user=admin, title="t", lon=117.105, lat=39.115, category_code="0102")
        client.get("/api/audit?edition=plan", headers=headers)
        assert len(runs) == 3
    finally:
        store.close()
        app.extensions["gridmap"].store.close()


def test_session_cookies_follow_the_secret_key_and_a_call_without_one_is_given_none(database_url):
    store = Store.open(database_url)
    people.add_user(store, "管理员", role="admin", password="a-long-password")
    store.close()
    app = create_app(Settings(database_url=database_url, secret_key="first"))
    https = "https://localhost"
    client = app.test_client()
    try:
        with client.session_transaction(base_url=https) as session:
            session["user"] = "管理员"
        assert client.get("/api/editions", base_url=https).status_code == 200  # signed in by the cookie
        # The signer is made once per key, not once per request: a new key must still refuse the old cookie ...
        app.secret_key = "second"
        assert client.get("/api/editions", base_url=https).status_code == 401
        # ... and a fallback key accept it, as Flask's own sessions do.
        app.config["SECRET_KEY_FALLBACKS"] = ["first"]
        assert client.get("/api/editions", base_url=https).status_code == 200
        bare = app.test_client().get("/api/locate?lon=117.105&lat=39.115", base_url=https)
        assert bare.status_code == 401 and "Set-Cookie" not in bare.headers
    finally:
        app.extensions["gridmap"].store.close()


def test_an_in_memory_spatialite_database_reads_its_revision_from_its_one_connection():
    store = Store.open("sqlite://")  # every connection to ":memory:" is a database of its own
    try:
        store.create_edition("only", status="current")
        assert store.edition_revision()[0] == "only" and store.edition_revision("only")[0] == "only"
    finally:
        store.close()
