"""The two languages of gridmap's pages and messages, without Flask: catalogues and message translation.

Messages are written in English throughout the code (msgids); `gridmap/translations/zh/LC_MESSAGES/messages.po`
holds their Chinese. The .po files are compiled to .mo at first use (no binary is committed).

Errors and audit findings are built with f-strings deep in the domain modules, so they reach the edge as
finished English sentences. `translate()` turns such a sentence into Chinese with catalogue entries whose
msgid has `{name}` placeholders ("no incident {id}" → "没有编号为 {id} 的案件"): the msgid becomes a pattern,
the captured values are translated in turn (so "grid" inside a sentence becomes 网格) and put into the
msgstr. A new message needs only a catalogue entry, never a change where it is raised. `web.i18n` uses this
for every error response; the CLI uses it for standalone reports.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
from gettext import NullTranslations
from pathlib import Path

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
SOURCE_LANGUAGE = "en"  # the language msgids are written in
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# Grid kinds are stored as the Chinese words of the standard; pages name them in their language.
KIND_LABELS = {"综合": "comprehensive", "专属": "dedicated"}
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# Names of standards and programs, longest first so "OGC API – Features" is one name, not "OGC API" and more.
STANDARD_NAMES = (
    "OGC API – Features",
    "OGC API",
    "Open311 GeoReport v2",
    "Open311",
    "GeoReport v2",
    "OpenAPI 3.0",
    "OpenAPI",
    "JSON Schema",
    "GB/T 30428.1",
    "WFS",
    "QGIS",
    "ArcGIS",
    "GDAL",
    "CQL2",
)
_NAMES = re.compile("|".join(re.escape(n) for n in sorted(STANDARD_NAMES, key=len, reverse=True)))


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


def check_language(lang: str | None) -> str:
    """Return a supported language code (default Chinese), refusing an unknown one."""
    from gridmap.errors import InvalidInput

    if lang in (None, ""):
        return DEFAULT_LANGUAGE
    if lang not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}, not {lang!r}")
    return lang


@functools.cache
def translations(lang: str) -> NullTranslations:
    """Return the gettext translations of a language (identity for English, the msgids' language)."""
    if lang == SOURCE_LANGUAGE:
        return NullTranslations()
    from babel.support import Translations

    return Translations.load(str(compiled_translations()), [lang])


def gettext(message: str, lang: str) -> str:
    """Translate one msgid exactly."""
    return translations(lang).gettext(message)


@functools.cache
def _patterns(lang: str) -> tuple[tuple[re.Pattern, str], ...]:
    """Return (compiled msgid pattern, msgstr) for every catalogue entry with {placeholders}, specific first."""
    if lang == SOURCE_LANGUAGE:
        return ()
    from babel.messages.pofile import read_po

    found = []
    for po in sorted(TRANSLATIONS.glob(f"{lang}/LC_MESSAGES/*.po")):
        with po.open("rb") as handle:
            for entry in read_po(handle):
                if not entry.id or not isinstance(entry.id, str) or not entry.string:
                    continue
                if not _PLACEHOLDER.search(entry.id):
                    continue
                parts = _PLACEHOLDER.split(entry.id)
                # Even items are literal text, odd items placeholder names; a name used twice must match alike.
                regex, seen = "", set()
                for i, part in enumerate(parts):
                    if i % 2 == 0:
                        regex += re.escape(part)
                    elif part in seen:
                        regex += f"(?P={part})"
                    else:
                        seen.add(part)
                        regex += f"(?P<{part}>.+?)"
                literal = sum(len(p) for p in parts[::2])
                found.append((literal, re.compile(regex, re.S), entry.string))
    found.sort(key=lambda item: -item[0])
    return tuple((pattern, target) for _literal, pattern, target in found)


def translate(message: str | None, lang: str, *, _depth: int = 0) -> str | None:
    """Translate a finished English message: an exact msgid, a pattern msgid, or '; '-joined parts of them."""
    if not message or lang == SOURCE_LANGUAGE or not isinstance(message, str):
        return message
    exact = gettext(message, lang)
    if exact != message:
        return exact
    for pattern, target in _patterns(lang):
        match = pattern.fullmatch(message)
        if match:
            return _fill(target, match.groupdict(), lang, _depth)
    if "; " in message and _depth < 3:
        return "；".join(translate(part, lang, _depth=_depth + 1) or "" for part in message.split("; "))
    return message


def _fill(target: str, captured: dict[str, str], lang: str, depth: int) -> str:
    values = {k: translate(v, lang, _depth=depth + 1) if depth < 3 else v for k, v in captured.items()}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), target)


def kind_label(kind: str | None, lang: str) -> str:
    """Name a grid kind (综合, 专属) in a language; an unknown kind is shown as stored."""
    if not kind:
        return ""
    return gettext(KIND_LABELS[kind], lang) if kind in KIND_LABELS else kind


def mark_names(text: str | None):
    """Return escaped HTML of `text` with the names of standards and programs marked translate="no"."""
    from markupsafe import Markup, escape

    if not text:
        return Markup("")
    # A standard or a program keeps its name in every language (QGIS, OGC API – Features): it is a name, not
    # English, so it is marked as one (HTML's translate="no"), as the names of places and people are.
    return Markup(_NAMES.sub(lambda m: f'<span translate="no">{m.group(0)}</span>', str(escape(text))))


def text_table(messages, lang: str) -> dict[str, str]:
    """Return msgid → translation for the strings a page's script shows (empty for English: msgids are English)."""
    if lang == SOURCE_LANGUAGE:
        return {}
    return {m: gettext(m, lang) for m in messages}


def jinja_environment(templates: Path, lang: str):
    """Return a Jinja environment for standalone files (no Flask): autoescaped, `_()` and `tr` in `lang`."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    environment.install_gettext_translations(translations(lang), newstyle=True)
    environment.filters["tr"] = lambda value: translate(value, lang)
    environment.filters["kind"] = lambda value: kind_label(value, lang)
    environment.filters["names"] = mark_names
    environment.globals.update(
        current_user=None,
        csrf_token=lambda: "",
        standalone=True,
        current_language=lang,
        language_links={},
    )
    return environment
