"""Who is asking: a session from the login form, or an API token (`Authorization: Bearer TOKEN`).

Forms and cookie-authenticated API writes are protected against CSRF (Flask-WTF); a request that carries
a Bearer token sends no cookie credentials, so it needs no CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session
from flask_wtf.csrf import CSRFProtect

from gridmap import people
from gridmap.errors import GridmapError
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
    app.before_request(_load_user)
    app.context_processor(lambda: {"current_user": current_user()})
    app.register_blueprint(blueprint)


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _load_user() -> None:
    store = current_app.extensions["gridmap"].store
    token = _bearer_token()
    g.user = None
    if token is not None:
        g.user = people.user_for_token(store, token)
        return
    name = session.get("user")
    # CSRF guards what a session cookie authorises; an API call with no session is refused as anonymous (401).
    if request.method in _UNSAFE and (name or not request.path.startswith("/api/")):
        csrf.protect()
    if name:
        g.user = people.find_user(store, name)
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
