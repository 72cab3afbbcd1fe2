"""Case categories (the city-management category table in data/categories.csv) and the deadline each gives a
case, counted in working time on the working calendar.

The table is read when first asked for and cached per path, never at import time.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re

from gridmap.config import PROJECT_DIR
from gridmap.errors import InvalidInput
from gridmap.workcalendar import DEFAULT_CALENDAR, WorkingCalendar

CATEGORIES_FILE = PROJECT_DIR / "data" / "categories.csv"
_UNITS = {"hours": ("工作小时", "working hours"), "days": ("个工作日", "working days")}


@functools.cache
def _read_categories(path: str) -> tuple[dict, ...]:
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, raw in enumerate(csv.DictReader(handle), start=2):
            code, unit = (raw.get("code") or "").strip(), (raw.get("unit") or "").strip()
            if not re.fullmatch(r"\d{4}", code) or unit not in _UNITS:
                raise InvalidInput(f"{path}: row {number}: need a 4-digit code and a unit hours or days")
            limit = float(raw["limit"])
            limit = int(limit) if limit.is_integer() else limit
            zh, en = _UNITS[unit]
            per_day = DEFAULT_CALENDAR.day_length / dt.timedelta(hours=1)
            rows.append(
                {
                    "code": code,
                    "class_code": code[:2],
                    "class_name": raw["class"].strip(),
                    "class_name_en": raw["class_en"].strip(),
                    "name": raw["name"].strip(),
                    "name_en": raw["name_en"].strip(),
                    "deadline": f"{limit}{zh}",
                    "deadline_en": f"{limit} {en if limit != 1 else en[:-1]}",
                    "limit": limit,
                    "unit": unit,
                    "limit_working_hours": limit if unit == "hours" else limit * per_day,
                    "after_photo": _yes(raw.get("after_photo"), f"{path}: row {number}: after_photo"),
                }
            )
    return tuple(rows)


def _yes(value: str | None, where: str) -> bool:
    text = (value or "").strip().lower()
    if text not in ("", "yes", "no"):
        raise InvalidInput(f"{where} must be yes or no, not {value!r}")
    return text == "yes"


def needs_after_photo(code: str | None) -> bool:
    """Whether resolving a case of this category needs a photo of the result (the table's after_photo)."""
    return any(row["code"] == code and row["after_photo"] for row in _read_categories(str(CATEGORIES_FILE)))


def load_categories(path=None) -> list[dict]:
    """Return the category table: code, class, name, readable deadline, its limit and unit, and after_photo."""
    return [dict(row) for row in _read_categories(str(path or CATEGORIES_FILE))]


@functools.cache
def _categories_by_key(path: str) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for row in _read_categories(path):
        for key in (row["name_en"].lower(), row["name"], row["code"]):  # a code wins over a clashing name
            table[key] = row
    return table


def category(code: str | None) -> dict:
    """Return one category by its 4-digit code, or raise InvalidInput naming a few valid ones."""
    row = _categories_by_key(str(CATEGORIES_FILE)).get(code) if isinstance(code, str) else None
    if row is None or row["code"] != code:
        shown = str(code)[:30]
        raise InvalidInput(
            f"unknown category {shown!r}: use a 4-digit code from GET /api/categories, e.g. 0102 暴露垃圾",
            reason="unknown category",
        )
    return dict(row)


def find_category(text: str) -> dict | None:
    """Return the category a file names by its code, its Chinese name or its English name (any case), or None."""
    text = text.strip()
    return _categories_by_key(str(CATEGORIES_FILE)).get(text) or _categories_by_key(str(CATEGORIES_FILE)).get(
        text.lower()
    )


def category_names() -> dict[str, str]:
    """Return code → Chinese name."""
    return {row["code"]: row["name"] for row in _read_categories(str(CATEGORIES_FILE))}


def __getattr__(name: str):
    # `CATEGORIES` reads the table lazily: nothing is read at import time.
    if name == "CATEGORIES":
        return load_categories()
    raise AttributeError(name)


def deadline_for(code: str, reported_at: dt.datetime, calendar: WorkingCalendar | None = None) -> dt.datetime:
    """Return the deadline of a case of this category reported at `reported_at`."""
    row = category(code)
    calendar = calendar or DEFAULT_CALENDAR
    if row["unit"] == "hours":
        return calendar.add_hours(reported_at, row["limit"])
    return calendar.add_days(reported_at, row["limit"])
