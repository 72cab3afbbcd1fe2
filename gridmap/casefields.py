"""What a case's fields may hold, checked the same way for every way in (API, form, import, Open311): the
statuses and sources, text limits, control characters, phone numbers, report times and coordinates.
"""

from __future__ import annotations

import datetime as dt
import re

from gridmap import crs as crs_rules
from gridmap.errors import InvalidInput

STATUSES = ("reported", "registered", "dispatched", "in_progress", "resolved", "closed", "rejected")
OPEN_STATUSES = ("reported", "registered", "dispatched", "in_progress", "resolved")
FINISHED_STATUSES = ("closed", "rejected")
SOURCES = ("patrol", "visit", "chat", "hotline", "video", "higher", "import", "web")
SOURCE_LABELS = {  # what pages and exports call each source (English msgids)
    "patrol": "Patrol",
    "visit": "Door-to-door visit",
    "chat": "Chat group",
    "hotline": "12345 hotline",
    "video": "Video",
    "higher": "Higher office",
    "import": "Import",
    "web": "Web",
}
MAX_TITLE, MAX_DESCRIPTION, MAX_ADDRESS, MAX_NOTE, MAX_NAME, MAX_PHONE = 200, 5000, 300, 2000, 100, 40
_PHONE = re.compile(r"^[0-9+\-() ]{3,40}$")
# C0 and C1 control characters, DEL, and lone surrogates (which no database can store as UTF-8).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LINE_BREAKS = re.compile("[\t\n\r]+")
_ORDINARY = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]*")  # no control or line-break character
MAX_CLOCK_SKEW = dt.timedelta(minutes=10)
EARLIEST_REPORT = dt.datetime(2000, 1, 1)


def clean_text(value, name: str, limit: int, *, required: bool = False, multiline: bool = False) -> str | None:
    """Check one text field the same way for every way in (API, form, import): trimmed, at most `limit`
    characters, no control characters; tabs and line breaks become spaces unless the field is `multiline`."""
    if value.__class__ is str and _ORDINARY.fullmatch(value):  # the usual case, checked in one C call
        value = value.strip()
        if len(value) > limit:
            raise InvalidInput(
                f"{name} has {len(value)} characters; at most {limit} are allowed", reason=f"{name} too long"
            )
        if value or not required:
            return value or None
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} is required", reason=f"no {name}")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {type(value).__name__}", reason=f"{name} not text")
    if not multiline:
        value = _LINE_BREAKS.sub(" ", value)
    value = value.strip()
    bad = _CONTROL.search(value)
    if bad:
        raise InvalidInput(
            f"{name} holds a control character (U+{ord(bad.group()):04X}) at position {bad.start() + 1}; "
            "only printable text is accepted",
            reason=f"control character in {name}",
        )
    if len(value) > limit:
        raise InvalidInput(
            f"{name} has {len(value)} characters; at most {limit} are allowed", reason=f"{name} too long"
        )
    return value


def check_phone(phone: str | None) -> str | None:
    """Refuse a phone number that is not digits, spaces, +, - and brackets (3 to 40 of them)."""
    if phone and not _PHONE.match(phone):
        raise InvalidInput(
            f"reporter_phone {phone[:40]!r} may hold only digits, spaces, +, - and brackets",
            reason="malformed phone number",
        )
    return phone


def check_reported_at(when: dt.datetime, now: dt.datetime) -> dt.datetime:
    """Refuse a report time further in the future than the allowed clock skew (times are Shanghai time)."""
    if when > now + MAX_CLOCK_SKEW:
        minutes = int(MAX_CLOCK_SKEW.total_seconds() // 60)
        raise InvalidInput(
            f"report time {when:%Y-%m-%d %H:%M} lies in the future (now {now:%Y-%m-%d %H:%M} Asia/Shanghai; "
            f"{minutes} minutes of clock difference are allowed)",
            reason="report time in the future",
        )
    if when < EARLIEST_REPORT:
        raise InvalidInput(
            f"report time {when:%Y-%m-%d %H:%M} is before {EARLIEST_REPORT:%Y-%m-%d}",
            reason=f"report time before {EARLIEST_REPORT.year}",
        )
    return when


def parse_coordinate(value, name: str) -> float:
    """Return a number given as a number or as text; refuse anything else (a bool, a list) naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(f"{name} must be a number")
    return crs_rules.parse_number(value, name)
