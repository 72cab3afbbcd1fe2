"""One language per page: Chinese by default, English when chosen (`?lang=en`, remembered in the session).

Flask-Babel with the catalogues in gridmap/translations, compiled from their .po files at start-up so no
binary .mo is committed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, request, session
from flask_babel import Babel, get_locale

LANGUAGES = ("zh", "en")
TRANSLATIONS = Path(__file__).resolve().parents[1] / "translations"


def compiled_translations(source: Path = TRANSLATIONS) -> Path:
    """Compile the .po catalogues into a directory of .mo files (kept per content, shared by processes)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    catalogues = sorted(source.glob("*/LC_MESSAGES/*.po"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in catalogues)).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"gridmap-translations-{digest}"
    if target.exists():
        return target
    building = Path(tempfile.mkdtemp(prefix="gridmap-translations-"))
    for po in catalogues:
        mo = building / po.relative_to(source).with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as handle:
            catalogue = read_po(handle)
        with mo.open("wb") as handle:
            write_mo(handle, catalogue)
    try:
        os.rename(building, target)  # atomic: another process may have finished first, which is as good
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return target


def _select_locale() -> str:
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        return wanted
    return session.get("lang") if session.get("lang") in LANGUAGES else LANGUAGES[0]


def _remember_language() -> None:
    wanted = request.args.get("lang")
    if wanted in LANGUAGES and request.method == "GET":
        session["lang"] = wanted


def _language_links() -> dict:
    links = {code: f"{request.path}?{urlencode({**request.args, 'lang': code})}" for code in LANGUAGES}
    return {"current_language": str(get_locale() or LANGUAGES[0]), "language_links": links}


def init_i18n(app: Flask) -> None:
    """Attach Flask-Babel, the language memory and the language switch links to the app."""
    Babel(
        app,
        locale_selector=_select_locale,
        default_locale=LANGUAGES[0],
        default_translation_directories=str(compiled_translations()),
    )
    app.before_request(_remember_language)
    app.context_processor(_language_links)
