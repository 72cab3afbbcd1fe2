"""One language per page: Chinese by default, English when chosen (`?lang=en`, remembered in the session).

Flask-Babel with the catalogues in gridmap/translations (compiled from their .po files at start-up, so no
binary .mo is committed; see `gridmap.language`). The API answers in the language of `?lang=` or the
request's Accept-Language, and in English (the language messages are written in) when neither says.

The one place messages become the reader's language: `message()` translates any finished English message
(errors included) with the catalogue's pattern entries; the error mapper calls it for every error, so a new
error message needs only its catalogue entry.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, get_locale

from gridmap import language
from gridmap.language import LANGUAGES, TRANSLATIONS, compiled_translations

__all__ = [
    "LANGUAGES",
    "TRANSLATIONS",
    "compiled_translations",
    "current_language",
    "init_i18n",
    "message",
    "script_text",
]


def _is_api() -> bool:
    """Say whether a program rather than a person reads this answer: the JSON API, Open311, OGC API data."""
    path = request.path
    if path.startswith(("/api/", "/open311/")):
        return True
    if path == "/ogc" or path.startswith("/ogc/"):
        # OGC API pages are for people when asked as HTML; GDAL, QGIS and OWSLib ask for JSON. The one rule that
        # picks the format decides (werkzeug's `accept_mimetypes.best` is not it: it ranks a browser's
        # `application/signed-exchange;v=b3;q=0.7` first, being more specific, so pages lost the session language).
        from gridmap.errors import GridmapError
        from gridmap.web.ogc_params import output_format

        try:
            return output_format() != "html"
        except GridmapError:
            return True  # an unknown f=: the error is answered as the API answers
    return False


def _select_locale() -> str:
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        return wanted
    if _is_api():
        # Programs say what they read with Accept-Language; without it they get the messages as written.
        if "HTTP_ACCEPT_LANGUAGE" not in request.environ:  # most API calls: parsing nothing still costs
            return language.SOURCE_LANGUAGE
        best = request.accept_languages.best_match(LANGUAGES)
        return best or language.SOURCE_LANGUAGE
    return session.get("lang") if session.get("lang") in LANGUAGES else language.DEFAULT_LANGUAGE


def _remember_language() -> None:
    wanted = request.args.get("lang")
    if wanted in LANGUAGES and request.method == "GET" and not _is_api():
        session["lang"] = wanted


def current_language() -> str:
    """Return the language of this request's page or answer."""
    # The selector's own answer, remembered for the request: an API answer needs only its code (for
    # Content-Language), and Flask-Babel's get_locale would parse it into a babel Locale first, on every request.
    # Templates and gettext still go through Flask-Babel, which asks the same selector.
    if not has_request_context():
        return str(get_locale() or language.DEFAULT_LANGUAGE)
    chosen = g.get("_gridmap_language")
    if chosen is None:
        chosen = g._gridmap_language = _select_locale()
    return chosen


def message(text: str | None) -> str | None:
    """Translate a finished English message (an error, an audit finding) into this request's language."""
    return language.translate(text, current_language())


def script_text(messages) -> dict[str, str]:
    """Return msgid → translation of the strings a page's script shows, for this request's language."""
    return language.text_table(messages, current_language())


def _language_links() -> dict:
    links = {code: f"{request.path}?{urlencode({**request.args, 'lang': code})}" for code in LANGUAGES}
    return {"current_language": current_language(), "language_links": links, "standalone": False}


def init_i18n(app: Flask) -> None:
    """Attach Flask-Babel, the language memory, the language switch links and the `tr` filter to the app."""
    Babel(
        app,
        locale_selector=_select_locale,
        default_locale=language.DEFAULT_LANGUAGE,
        default_translation_directories=str(compiled_translations()),
    )
    app.before_request(_remember_language)
    app.context_processor(_language_links)
    app.add_template_filter(message, "tr")
    app.add_template_filter(lambda kind: language.kind_label(kind, current_language()), "kind")
    app.add_template_filter(language.mark_names, "names")

    @app.after_request
    def _content_language(response):
        response.headers.setdefault("Content-Language", current_language())
        vary = response.headers.get("Vary", "")
        if _is_api() and "Accept-Language" not in vary:
            response.headers["Vary"] = f"{vary}, Accept-Language" if vary else "Accept-Language"
        return response
