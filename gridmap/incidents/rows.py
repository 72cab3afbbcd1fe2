"""One incident row checked by the case rules: headers mapped to fields, text, category, time, phone, place."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping

from gridmap import clock
from gridmap.errors import InvalidInput

# gridmap field → headers seen in the field (lower-case for Latin names).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "source_id": ("source_id", "id", "工单编号", "工单号", "编号"),
    "title": ("title", "标题", "诉求标题", "事件标题"),
    "description": ("description", "诉求内容", "内容", "事件描述", "描述"),
    "address": ("address", "地址", "事发地址", "事发地点"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "lat": ("lat", "latitude", "纬度"),
    "reported_at": ("reported_at", "来电时间", "上报时间", "时间", "受理时间"),
    "category_code": ("category", "category_code", "类别", "分类", "事件类别", "问题类型"),
    "source": ("source", "来源", "渠道"),
    "reporter_name": ("reporter", "reporter_name", "来电人", "上报人", "姓名"),
    "reporter_phone": ("phone", "reporter_phone", "来电号码", "联系电话", "电话"),
}
SOURCES = ("patrol", "visit", "chat", "hotline", "video", "higher", "import", "web")
_SOURCE_WORDS = {
    "巡查": "patrol",
    "走访": "visit",
    "群聊": "chat",
    "12345": "hotline",
    "热线": "hotline",
    "视频": "video",
    "上级": "higher",
}
MAX_SOURCE_ID = 100
_TITLE_FROM_DESCRIPTION = 30
_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
)


def header_map(headers: Iterable[str]) -> dict[str, str]:
    """Map gridmap fields to the file's headers, by the aliases above."""
    by_lower = {str(h).strip().lower(): h for h in headers}
    found = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias.lower() in by_lower:
                found[name] = by_lower[alias.lower()]
                break
    return found


def text_of(cell) -> str:
    """The text of a cell: Excel numbers without a spurious .0 (phone 13812341234.0), NaN as empty."""
    if cell is None:
        return ""
    if isinstance(cell, float):
        if math.isnan(cell):
            return ""
        if cell.is_integer() and abs(cell) < 1e15:
            return str(int(cell))
    if isinstance(cell, bool):
        return str(cell).lower()
    return str(cell)


def parse_time(cell, where: str = "") -> dt.datetime:
    """Read a report time from a cell (a datetime from Excel, or text in the usual Chinese formats); a time
    with an offset is converted to Shanghai time, one without is taken as Shanghai time."""
    prefix = f"{where}: " if where else ""
    if isinstance(cell, dt.datetime):
        return clock.local(cell).replace(microsecond=0)
    if isinstance(cell, dt.date):
        return dt.datetime.combine(cell, dt.time())
    text = text_of(cell).strip()
    if not text:
        raise InvalidInput(f"{prefix}has no report time", reason="no report time")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        if moment.tzinfo is None and not moment.microsecond:
            return moment  # the usual case: a plain local time
        return clock.local(moment).replace(microsecond=0)
    for pattern in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise InvalidInput(
        f"{prefix}report time {text[:40]!r} is not a date and time like 2026-03-01 09:30",
        reason="unreadable report time",
    )


def _source(text: str) -> str:
    if not text:
        return "import"
    if text.lower() in SOURCES:
        return text.lower()
    for word, source in _SOURCE_WORDS.items():
        if word in text:
            return source
    return "import"


class RowChecker:
    """The case rules applied to the rows of one file (lists of cells, in header order).

    `check` raises InvalidInput carrying a reason. It is the hot loop of an import (100,000 rows in a few
    seconds), so cells are fetched by position (a missing column reads the empty cell appended to each row),
    empty cells skip the checks, and plain text is checked by one regular expression in C (casefields.clean_text)."""

    def __init__(self, header: list[str], columns: Mapping[str, str], *, category: str | None, now: dt.datetime):
        from gridmap import casefields, categories

        self.fields = casefields
        self.find_category = categories.find_category
        self.width = len(header)
        position = {name: header.index(key) for name, key in columns.items()}
        # A missing column points at the empty cell `check` appends after the last one.
        self.at = {name: position.get(name, self.width) for name in COLUMN_ALIASES}
        self.default_category = categories.category(category)["code"] if category else None
        self.categories = {row["code"]: row["code"] for row in categories.load_categories()}
        self.now = now
        self.latest = now + casefields.MAX_CLOCK_SKEW

    def check(self, cells: list) -> dict:
        """Return the row's incident fields (lon/lat as given, before any conversion)."""
        width = self.width
        cells = cells[:width] + [""] * (width + 1 - min(len(cells), width))
        at, fields, clean = self.at, self.fields, self.fields.clean_text
        raw_time = cells[at["reported_at"]]
        if not all(c.__class__ is str for c in cells):  # Excel numbers and dates, GeoJSON values
            cells = [c if c.__class__ is str else text_of(c) for c in cells]
        description = cells[at["description"]]
        description = clean(description, "description", fields.MAX_DESCRIPTION, multiline=True) if description else None
        title = cells[at["title"]]
        title = clean(title, "title", fields.MAX_TITLE) if title else None
        if not title:
            title = (description or "")[:_TITLE_FROM_DESCRIPTION].replace("\n", " ").strip() or None
        if not title:
            raise InvalidInput("has neither a title nor a description", reason="no title or description")
        category_text = cells[at["category_code"]].strip()
        if category_text:
            category_code = self.categories.get(category_text)
            if category_code is None:
                found = self.find_category(category_text)
                if found is None:
                    raise InvalidInput(
                        f"unknown category {category_text[:30]!r}: use a 4-digit code or a name from "
                        "`gridmap categories`",
                        reason="unknown category",
                    )
                category_code = found["code"]
        elif self.default_category:
            category_code = self.default_category
        else:
            raise InvalidInput("has no category; fill it in or give --category CODE", reason="no category")
        reported_at = parse_time(raw_time)
        if reported_at > self.latest or reported_at < fields.EARLIEST_REPORT:
            fields.check_reported_at(reported_at, self.now)
        source_id, source = cells[at["source_id"]], cells[at["source"]]
        name, phone, address = cells[at["reporter_name"]], cells[at["reporter_phone"]], cells[at["address"]]
        row = {
            "source_id": clean(source_id, "source id", MAX_SOURCE_ID) if source_id else None,
            "source": _source(source.strip()) if source else "import",
            "title": title,
            "description": description or "",
            "category_code": category_code,
            "reported_at": reported_at,
            "reporter_name": clean(name, "reporter name", fields.MAX_NAME) if name else None,
            "reporter_phone": fields.check_phone(clean(phone, "reporter phone", fields.MAX_PHONE)) if phone else None,
            "address": clean(address, "address", fields.MAX_ADDRESS) if address else None,
            "lon": None,
            "lat": None,
        }
        lon_text, lat_text = cells[at["lon"]].strip(), cells[at["lat"]].strip()
        if lon_text or lat_text:
            try:
                row["lon"], row["lat"] = float(lon_text), float(lat_text)
            except ValueError:
                raise InvalidInput(
                    f"coordinates lon={lon_text[:30]!r}, lat={lat_text[:30]!r} are not numbers",
                    reason="coordinates not numbers",
                ) from None
        elif not row["address"]:
            raise InvalidInput("has neither coordinates nor an address", reason="no place")
        return row
