"""Who is asking: a session from the login form, or an API token (`Authorization: Bearer TOKEN`).

Forms and cookie-authenticated API writes are protected against CSRF (Flask-WTF); a request that carries
a Bearer token sends no cookie credentials, so it needs no CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from gridmap import people
from gridmap.errors import GridmapError
from gridmap.web.access import API_PATHS as _API_PATHS
from gridmap.web.access import public, require_user

__all__ = ["current_user", "init_auth", "require_user"]  # require_user: declared in web/access, used by views

blueprint = Blueprint("auth", __name__)
csrf = CSRFProtect()
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def init_auth(app: Flask) -> None:
    """Attach CSRF protection and the per-request user lookup to the app."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    app.session_interface = _CookieSessions()
    app.before_request(_load_user)
    app.context_processor(lambda: {"current_user": current_user(), "role_labels": people.ROLE_LABELS})
    app.register_blueprint(blueprint)


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the set-up it repeats on every request.

    Flask builds the cookie signer anew for each request, cookie or not: a tenth of a lookup's time. The signer
    depends only on the keys, so it is made once per key; a request with no cookie at all (an API call with a
    token) gets its empty session without one.
    """

    def __init__(self) -> None:
        self._signer: tuple | None = None  # (keys, serializer)

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        made = self._signer
        if made is None or made[0] != keys:
            made = self._signer = (keys, super().get_signing_serializer(app))
        return made[1]

    def open_session(self, app: Flask, request):
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


# Paths machine clients call: with no session they are refused as anonymous (401), not asked for a CSRF token.


def _request_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    if request.path.startswith("/open311/") and request.values.get("api_key"):
        # Open311 GeoReport v2 clients send the key as an api_key parameter (query or form).
        return request.values["api_key"].strip()
    return None


def _load_user() -> None:
    state = current_app.extensions["gridmap"]
    store = state.store
    token = _request_token()
    g.user = None
    if token is not None:
        g.user = state.users.by_token(store, token)
        return
    name = session.get("user")
    # CSRF guards what a session cookie authorises; an API call with no session is refused as anonymous (401).
    if request.method in _UNSAFE and (name or not request.path.startswith(_API_PATHS)):
        csrf.protect()
    if name:
        g.user = state.users.by_name(store, name)
        if g.user is None:
            session.clear()


def current_user() -> people.User | None:
    """Return the signed-in user of this request, or None."""
    return g.get("user")


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would let a link send users anywhere after login.
    if not target or urlsplit(target).netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login():
    """Show the login form and sign in."""
    error = None
    if request.method == "POST":
        store = current_app.extensions["gridmap"].store
        try:
            user = people.user_for_password(store, request.form.get("name", ""), request.form.get("password", ""))
        except GridmapError as exc:
            error = exc.message
        else:
            session.clear()
            session["user"] = user.name
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), 401 if error else 200


@blueprint.post("/logout")
@public
def logout():
    """Sign out."""
    session.clear()
    return redirect("/")
