"""The web application: `create_app()` wires settings, the store, pages and the JSON API.

The only package that imports Flask. Nothing happens at import time.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from gridmap.config import PROJECT_DIR, Settings
from gridmap.errors import GridmapError
from gridmap.store import Store

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the request handlers share: the settings and the open store."""

    settings: Settings
    store: Store


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask application for the given settings (default: from the environment)."""
    settings = settings or Settings.from_env()
    app = Flask(
        __name__,
        template_folder=str(PROJECT_DIR / "templates"),
        static_folder=str(PROJECT_DIR / "gridmap" / "static"),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        # Browsers keep Secure cookies on http://127.0.0.1 and localhost too, so this costs local use nothing.
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False
    app.extensions["gridmap"] = AppState(settings=settings, store=Store.open(settings))

    from gridmap.web import api, audit_views, auth, building_views, case_views, i18n, map_views, pages, plan_views

    i18n.init_i18n(app)
    auth.init_auth(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(api.blueprint, url_prefix="/api")
    # These blueprints serve both pages and /api/... routes, so they carry full paths themselves.
    app.register_blueprint(map_views.blueprint)
    app.register_blueprint(case_views.blueprint)
    app.register_blueprint(audit_views.blueprint)
    app.register_blueprint(plan_views.blueprint)
    app.register_blueprint(building_views.blueprint)
    _register_error_mapper(app)
    return app


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _register_error_mapper(app: Flask) -> None:
    """The one place errors become responses: JSON under /api, an HTML page elsewhere; never a traceback."""

    def respond(status: int, message: str, extra: dict | None = None):
        if _wants_json():
            return jsonify({**(extra or {}), "error": message, "status": status}), status
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(GridmapError)
    def on_gridmap_error(exc: GridmapError):
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
            return respond(exc.status, "the server cannot do this right now; the error is logged")
        return respond(exc.status, exc.message, exc.extra)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        return respond(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        log.exception("unexpected error on %s", request.path)
        return respond(500, "internal error; the error is logged")
