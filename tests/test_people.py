"""Users, roles, passwords and tokens; login with CSRF protection over a real server."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from click.testing import CliRunner

from gridmap import people
from gridmap.cli import main
from gridmap.errors import InvalidInput, Unauthorized
from gridmap.store import Store


def test_token_identifies_its_user_and_is_stored_only_as_a_hash(store):
    token = people.add_user(store, "王芳", role="grid_worker", areas=["120104001001001"])
    user = people.user_for_token(store, token)
    assert (user.name, user.role, user.areas) == ("王芳", "grid_worker", ("120104001001001",))
    row = store.find_user(name="王芳")
    assert token not in str(row) and row["token_hash"] == people.token_hash(token)
    with pytest.raises(Unauthorized):
        people.user_for_token(store, token + "x")


def test_password_is_hashed_and_checked(store):
    people.add_user(store, "li", role="admin", password="correct horse")
    assert "correct horse" not in str(store.find_user(name="li"))
    assert people.user_for_password(store, "li", "correct horse").role == "admin"
    with pytest.raises(Unauthorized):
        people.user_for_password(store, "li", "wrong horse!")


@pytest.mark.parametrize(
    "role,areas,message",
    [
        ("boss", [], "role must be one of admin, planner, supervisor, grid_worker, viewer"),
        ("grid_worker", [], "needs at least one --area"),
        ("viewer", ["120104001"], "only for supervisor and grid_worker"),
    ],
)
def test_bad_user_is_refused(store, role, areas, message):
    with pytest.raises(InvalidInput, match=message):
        people.add_user(store, "x", role=role, areas=areas)
    assert store.list_users() == []


def test_scope_follows_role_and_areas():
    worker = people.User("w", "grid_worker", ("G1",))
    supervisor = people.User("s", "supervisor", ("C1",))
    assert worker.covers(grid_code="G1", community_code="C1", street_code="S1")
    assert not worker.covers(grid_code="G2", community_code="C1", street_code="S1")
    assert supervisor.covers(grid_code="G2", community_code="C1", street_code="S1")
    assert not supervisor.covers(grid_code="G9", community_code="C9", street_code="S1")
    assert people.User("v", "viewer").covers(grid_code="G9", community_code=None, street_code=None)


def test_users_add_prints_a_working_token(database_url):
    result = CliRunner().invoke(
        main, ["users", "add", "赵", "--role", "supervisor", "--area", "120104001001", "--db", database_url]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().rsplit(" ", 1)[-1]
    store = Store.open(database_url)
    assert people.user_for_token(store, token).areas == ("120104001001",)
    store.close()


def _opener():
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(secure_protocols=("https", "http")))
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def _post(opener, url, data):
    try:
        with opener.open(urllib.request.Request(url, data=urllib.parse.urlencode(data).encode())) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, url, error.read().decode()


def test_login_needs_the_csrf_token_and_the_right_password(live_server, database_url):
    store = Store.open(database_url)
    people.add_user(store, "planner1", role="planner", password="s3cret-pass")
    store.close()
    opener = _opener()
    form = opener.open(live_server + "/login").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    status, _url, body = _post(opener, live_server + "/login", {"name": "planner1", "password": "s3cret-pass"})
    assert status == 400 and "CSRF" in body  # no token: refused before the password is even looked at
    status, _url, body = _post(
        opener, live_server + "/login", {"name": "planner1", "password": "wrong-pass", "csrf_token": csrf}
    )
    assert status == 401 and "用户名或密码错误" in body  # wrong user name or password, on a Chinese page
    status, url, body = _post(
        opener,
        live_server + "/login?next=//evil.example/",
        {"name": "planner1", "password": "s3cret-pass", "csrf_token": csrf},
    )
    assert status == 200 and url == live_server + "/" and "planner1</span> (规划员)" in body
