"""The web application: `create_app()` wires settings, the store, pages and the JSON API.

The only package that imports Flask. Nothing happens at import time.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from gridmap.assign import index_cache
from gridmap.config import PROJECT_DIR, Settings
from gridmap.errors import GridmapError, ServiceUnavailable
from gridmap.people import UserCache
from gridmap.store import Store
from gridmap.web import i18n

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the request handlers share: the settings, the open store and the users seen lately."""

    settings: Settings
    store: Store
    users: UserCache | None = None

    def __post_init__(self) -> None:
        if self.users is None:
            self.users = UserCache(self.settings.auth_cache_seconds)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask application for the given settings (default: from the environment)."""
    settings = settings or Settings.from_env()
    index_cache.use_directory(settings.cache_dir)
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

    from gridmap.web import (
        access,
        api,
        attachment_views,
        audit_views,
        auth,
        building_views,
        case_views,
        dashboard,
        export_views,
        geocode_views,
        i18n,
        inputs,
        map_views,
        ogc,
        open311,
        pages,
        plan_views,
        report_views,
    )

    i18n.init_i18n(app)
    attachment_views.init_uploads(app)  # before auth: the CSRF check reads forms, uploads must be bounded first
    auth.init_auth(app)
    access.init_access(app)
    # After the access check, so a caller who may not call a route never gets their body read; before the
    # blueprints, whose routes take the bounded `int` converter.
    inputs.init_inputs(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(api.blueprint, url_prefix="/api")
    # These blueprints serve both pages and /api/... routes, so they carry full paths themselves.
    app.register_blueprint(map_views.blueprint)
    app.register_blueprint(case_views.blueprint)
    app.register_blueprint(audit_views.blueprint)
    app.register_blueprint(plan_views.blueprint)
    app.register_blueprint(geocode_views.blueprint)
    # The open standards answer errors in their own formats; the mapper below still decides status and text.
    app.register_blueprint(ogc.blueprint)
    app.register_blueprint(open311.blueprint)
    app.extensions["gridmap_error_bodies"] = {"/ogc": ogc.error_response, "/open311/": open311.error_response}
    app.register_blueprint(report_views.blueprint)
    app.register_blueprint(attachment_views.blueprint)
    app.register_blueprint(export_views.blueprint)
    app.register_blueprint(dashboard.blueprint)
    app.register_blueprint(building_views.blueprint)
    _register_error_mapper(app)
    return app


_HTTP_MESSAGES = {
    404: "there is nothing at {path}",
    405: "{path} does not take a {method} request",
    413: "the request is too large",
}


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _register_error_mapper(app: Flask) -> None:
    """The one place errors become responses: JSON under /api, an HTML page elsewhere; never a traceback."""

    def respond(status: int, message: str, extra: dict | None = None, headers: dict | None = None):
        # Every message is written in English; the reader gets it in their language (web/i18n.message).
        message = i18n.message(message) or message
        for prefix, body in app.extensions.get("gridmap_error_bodies", {}).items():
            if request.path == prefix.rstrip("/") or request.path.startswith(prefix.rstrip("/") + "/"):
                response = app.make_response(body(status, message))
                response.headers.update(headers or {})
                return response
        if _wants_json():
            response = jsonify({**(extra or {}), "error": message, "status": status})
        else:
            response = app.make_response(render_template("error.html", status=status, message=message))
        response.status_code = status
        response.headers.update(headers or {})
        return response

    @app.errorhandler(GridmapError)
    def on_gridmap_error(exc: GridmapError):
        if isinstance(exc, ServiceUnavailable):
            log.warning("%s: %s", type(exc).__name__, exc.message)
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
            return respond(exc.status, exc.message, exc.extra, headers)
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
            return respond(exc.status, "the server cannot do this right now; the error is logged")
        return respond(exc.status, exc.message, exc.extra)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        status = exc.code or 500
        # Werkzeug's own descriptions are long and English-only; the common ones get gridmap's wording. A
        # description gridmap wrote itself (the id range on a 404, the byte limit on a 413) is kept.
        own = exc.description and exc.description != type(exc).description
        text = exc.description if own else _HTTP_MESSAGES.get(status, exc.description or exc.name)
        # Keep what the exception says in headers (Allow on a 405), not its HTML content type.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        text = text if own else text.format(method=request.method, path=request.path)
        return respond(status, text, headers=headers)

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        log.exception("unexpected error on %s", request.path)
        return respond(500, "internal error; the error is logged")
