"""Exports of what users see as tables: the case list, the indicators, the audit findings and a comparison.

XLSX (XlsxWriter, constant memory): headers in the reader's language (Chinese by default), dates written as
Excel dates, column widths fitted to the content, the header row frozen and filterable. CSV: UTF-8 with a
byte-order mark, which is what makes Excel read Chinese right. No Flask, no database: the tables are built
from what `gridmap.cases` and `gridmap.audit` return, so masking and scope are exactly those of the screen.

Text cells are always written as text: a title that starts with "=" stays a title in XLSX, and in CSV it is
prefixed with an apostrophe so a spreadsheet does not run it as a formula.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import io
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gridmap import clock, language
from gridmap.casefields import SOURCE_LABELS
from gridmap.errors import InvalidInput

FORMATS = ("xlsx", "csv")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv; charset=utf-8"
_WIDTH_SAMPLE = 500  # rows looked at to fit a column's width
_MAX_WIDTH = 60
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
STATUS_LABELS = {
    "reported": "Reported",
    "registered": "Registered",
    "dispatched": "Dispatched",
    "in_progress": "In progress",
    "resolved": "Resolved",
    "closed": "Closed",
    "rejected": "Rejected",
}
LEVEL_LABELS = {"grid": "Grid", "community": "Community", "street": "Street", "district": "District"}
LIGHT_LABELS = {"green": "On time", "yellow": "Due soon", "red": "Overdue"}
GROUP_LABELS = {
    "total": "All",
    "grid": "Grid",
    "community": "Community",
    "street": "Street",
    "category": "Category",
    "worker": "Worker",
    "day": "Day",
    "week": "Week",
    "month": "Month",
}
FINDING_LABELS = {
    "gaps": "Gaps",
    "overlaps": "Overlaps",
    "outside_parent": "Outside the parent",
    "invalid": "Invalid shapes",
    "slivers": "Slivers",
    "codes": "Code problems",
}
CHANGE_LABELS = {"new": "New", "changed": "Changed", "unchanged": "Unchanged", "retired": "Retired"}


@dataclass(frozen=True)
class Column:
    """One column: the row key it shows, its header (an English msgid) and its kind of value."""

    key: str
    header: str
    kind: str = "text"  # text, int, float, percent (a number of percent), datetime, date
    convert: Callable | None = None  # turns the row's value into the cell's (e.g. a code into a label)


@dataclass
class Table:
    """A sheet: a name (an English msgid), its columns and its rows (dicts)."""

    name: str
    columns: Sequence[Column]
    rows: Iterable[Mapping] = field(default_factory=list)


def check_format(name: str | None) -> str:
    """Return a supported export format, or refuse naming those there are."""
    if name not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {name!r}")
    return name


def mime_type(fmt: str) -> str:
    """Return the media type of an export format."""
    return XLSX_MIME if fmt == "xlsx" else CSV_MIME


# ---- values ---------------------------------------------------------------------------------------------------
def _moment(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return clock.local(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    # The API's times carry +08:00; a spreadsheet cell has no zone, so it holds the Shanghai wall-clock time.
    return clock.local(dt.datetime.fromisoformat(str(value)))


def _cell(column: Column, row: Mapping):
    return _reader(column)(row)


def _reader(column: Column) -> Callable[[Mapping], object]:
    """Return a function that reads a column's cell from a row (None for empty), decided once per column."""
    key, convert, kind = column.key, column.convert, column.kind
    if convert is not None:
        cache: dict = {}

        def converted(value):
            # Labels repeat (statuses, sources): each is translated once per export, not once per row.
            try:
                return cache[value]
            except (KeyError, TypeError):
                result = convert(value)
                with contextlib.suppress(TypeError):  # an unhashable value is converted every time
                    cache[value] = result
                return result

    else:
        converted = None
    if kind in ("datetime", "date"):
        make = _moment
    elif kind == "int":
        make = int
    elif kind in ("float", "percent"):
        make = float
    else:
        make = _text

    def read(row: Mapping):
        value = row.get(key)
        if converted is not None:
            value = converted(value)
        if value is None or value == "":
            return None
        return make(value)

    return read


def _text(value) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _display_width(text: str) -> int:
    # East Asian wide characters take two columns in Excel's default font.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _width(header: str, column: Column, sample: Sequence) -> float:
    fixed = {"datetime": 17, "date": 11, "percent": 8}
    widest = _display_width(header)
    if column.kind in fixed:
        widest = max(widest, fixed[column.kind])
    else:
        for value in sample:
            if value is not None:
                widest = max(widest, _display_width(f"{value:g}" if isinstance(value, float) else str(value)))
    return min(_MAX_WIDTH, widest + 2)


# ---- writers --------------------------------------------------------------------------------------------------
def write_xlsx(target: Path | io.BytesIO, tables: Sequence[Table], *, lang: str = language.DEFAULT_LANGUAGE) -> int:
    """Write tables as sheets of one XLSX workbook; return the number of data rows written."""
    import xlsxwriter

    if isinstance(target, io.BytesIO):
        # Constant-memory mode streams rows to a temporary file as they come (it cannot write to memory).
        with tempfile.TemporaryDirectory(prefix="gridmap-export-") as folder:
            path = Path(folder) / "export.xlsx"
            written = write_xlsx(path, tables, lang=lang)
            target.write(path.read_bytes())
            return written
    workbook = xlsxwriter.Workbook(
        str(target), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    header_format = workbook.add_format({"bold": True, "bg_color": "#F2F2F2", "bottom": 1, "text_wrap": True})
    formats = {
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "percent": workbook.add_format({"num_format": "0.0"}),
        "float": workbook.add_format({"num_format": "0.##"}),
    }
    written = 0
    used_names: set[str] = set()
    for table in tables:
        sheet = workbook.add_worksheet(_sheet_name(language.gettext(table.name, lang), used_names))
        headers = [language.gettext(c.header, lang) for c in table.columns]
        readers = [_reader(c) for c in table.columns]
        rows = iter(table.rows)
        first = [[read(row) for read in readers] for row in _take(rows, _WIDTH_SAMPLE)]
        for i, (column, header) in enumerate(zip(table.columns, headers, strict=True)):
            sheet.set_column(i, i, _width(header, column, [r[i] for r in first]), formats.get(column.kind))
        sheet.write_row(0, 0, headers, header_format)
        sheet.freeze_panes(1, 0)
        # One writer per column, chosen once: text always as text (never a formula), numbers, dates as dates.
        writers = []
        for column in table.columns:
            if column.kind in ("datetime", "date"):
                date_format = formats[column.kind]
                writers.append(functools.partial(_write_date, sheet, date_format))
            elif column.kind in ("int", "float", "percent"):
                writers.append(sheet.write_number)
            else:
                writers.append(sheet.write_string)
        number = 0
        for number, cells in enumerate(_chain(first, ([read(r) for read in readers] for r in rows)), start=1):
            for i, value in enumerate(cells):
                if value is not None:
                    writers[i](number, i, value)
        sheet.autofilter(0, 0, max(number, 1), len(table.columns) - 1)
        written += number
    workbook.close()
    return written


def _write_date(sheet, date_format, row: int, col: int, value) -> None:
    sheet.write_datetime(row, col, value, date_format)


def write_csv(table: Table, *, lang: str = language.DEFAULT_LANGUAGE) -> bytes:
    """Return one table as CSV bytes: UTF-8 with a byte-order mark, dates as YYYY-MM-DD HH:MM:SS."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([language.gettext(c.header, lang) for c in table.columns])
    readers = [_reader(c) for c in table.columns]
    for row in table.rows:
        writer.writerow([_csv_value(read(row)) for read in readers])
    return buffer.getvalue().encode("utf-8-sig")


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if value.time() != dt.time() else value.strftime("%Y-%m-%d")
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else repr(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return str(value)


def write(
    tables: Sequence[Table], fmt: str, *, lang: str = language.DEFAULT_LANGUAGE, target: Path | None = None
) -> bytes | None:
    """Write tables in a format: XLSX holds every table, CSV the first. To `target`, or return the bytes."""
    fmt = check_format(fmt)
    if fmt == "csv":
        data = write_csv(tables[0], lang=lang)
        if target is None:
            return data
        Path(target).write_bytes(data)
        return None
    if target is not None:
        write_xlsx(Path(target), tables, lang=lang)
        return None
    buffer = io.BytesIO()
    write_xlsx(buffer, tables, lang=lang)
    return buffer.getvalue()


def _sheet_name(name: str, used: set[str]) -> str:
    # Excel: at most 31 characters, none of []:*?/\, unique in the workbook.
    clean = "".join("_" if ch in "[]:*?/\\" else ch for ch in name)[:31] or "Sheet"
    candidate, n = clean, 2
    while candidate.lower() in used:
        candidate, n = f"{clean[:28]} {n}", n + 1
    used.add(candidate.lower())
    return candidate


def _take(rows, n: int) -> list:
    taken = []
    for row in rows:
        taken.append(row)
        if len(taken) >= n:
            break
    return taken


def _chain(first: list, rest: Iterable):
    yield from first
    yield from rest


# ---- the tables -----------------------------------------------------------------------------------------------
def _label(table: Mapping[str, str], lang: str) -> Callable:
    return lambda value: language.gettext(table[value], lang) if value in table else value


def _yes_no(lang: str) -> Callable:
    return lambda value: language.gettext("Yes" if value else "No", lang)


def case_table(items: Iterable[Mapping], *, lang: str = language.DEFAULT_LANGUAGE) -> Table:
    """The case list as a table; `items` are cases as `cases.present` shows them to the user (masked)."""
    from gridmap.categories import load_categories

    names = {c["code"]: c["name"] if lang == "zh" else c["name_en"] for c in load_categories()}

    def category_label(code: str | None) -> str | None:
        return f"{code} {names.get(code, '')}".strip() if code else None

    # The columns a desk worker sends on; each one costs ~50,000 cells in a district's export, so the list
    # keeps to what the case list and the case page show (the code and name of a category in one cell).
    columns = [
        Column("id", "Case number", "int"),
        Column("title", "Title"),
        Column("category_code", "Category", convert=category_label),
        Column("status", "Status", convert=_label(STATUS_LABELS, lang)),
        Column("light", "Traffic light", convert=_label(LIGHT_LABELS, lang)),
        Column("handling_level", "Handled by", convert=_label(LEVEL_LABELS, lang)),
        Column("assignee", "Assignee"),
        Column("grid_code", "Grid"),
        Column("community_code", "Community"),
        Column("address", "Address"),
        Column("source", "Source", convert=_label(SOURCE_LABELS, lang)),
        Column("reporter_name", "Reporter"),
        Column("reporter_phone", "Phone"),
        Column("reported_at", "Reported at", "datetime"),
        Column("deadline", "Deadline", "datetime"),
        Column("closed_at", "Closed at", "datetime"),
    ]
    return Table("Cases", columns, items)


_INDICATOR_COLUMNS = (
    ("received", "Received", "int"),
    ("registered", "Registered", "int"),
    ("rejected", "Rejected", "int"),
    ("open", "Open", "int"),
    ("closed", "Closed", "int"),
    ("resolution_rate", "Resolution rate %", "percent"),
    ("due", "Due", "int"),
    ("closed_on_time", "Closed on time", "int"),
    ("on_time_rate", "On-time rate %", "percent"),
    ("reworked", "Reworked", "int"),
    ("rework_rate", "Rework rate %", "percent"),
    ("overdue", "Overdue", "int"),
    ("median_hours_to_close", "Median hours to close", "float"),
)


def stats_tables(
    result: Mapping, *, lang: str = language.DEFAULT_LANGUAGE, names: Mapping[str, str] | None = None
) -> list[Table]:
    """The indicators (`cases.stats` output) as a table: one row per group and a total row; `names` code → name."""
    by = result["by"]
    names = names or {}
    total_label = language.gettext("Total", lang)
    rows = [dict(g, name=names.get(g["key"])) for g in result["groups"]] if by != "total" else []
    rows.append(dict(result["total"], key=total_label, name=None))
    columns = [Column("key", GROUP_LABELS.get(by, by))]
    if names:
        columns.append(Column("name", "Name"))
    columns += [Column(key, header, kind) for key, header, kind in _INDICATOR_COLUMNS]
    period = {
        "from": result.get("from"),
        "to": result.get("to"),
        "as_of": result.get("as_of"),
        **{k: v for k, v in (result.get("filters") or {}).items() if v},
    }
    about = Table(
        "Period and filters",
        [Column("what", "Setting"), Column("value", "Value")],
        [{"what": language.gettext(_SETTING_LABELS.get(k, k), lang), "value": v} for k, v in period.items()],
    )
    return [Table("Indicators", columns, rows), about]


_SETTING_LABELS = {
    "from": "Reported from",
    "to": "Reported before",
    "as_of": "As of",
    "grid_code": "Grid",
    "community_code": "Community",
    "street_code": "Street",
    "category_code": "Category",
    "source": "Source",
}


def audit_tables(report: Mapping, *, lang: str = language.DEFAULT_LANGUAGE) -> list[Table]:
    """The audit: every finding, then the balance per grid and per community."""
    findings = [
        {
            "kind": FINDING_LABELS.get(kind, kind),
            "sub": f.get("kind"),
            "codes": ", ".join(f.get("codes") or []),
            "area_m2": f.get("area_m2"),
            "lon": (f.get("point") or [None, None])[0],
            "lat": (f.get("point") or [None, None])[1],
            "detail": language.translate(f.get("detail"), lang),
        }
        for kind in FINDING_LABELS
        for f in report.get(kind, [])
    ]
    finding_columns = [
        Column("kind", "Kind", convert=lambda v: language.gettext(v, lang)),
        Column("sub", "Finding", convert=lambda v: language.translate(v, lang)),
        Column("codes", "Codes"),
        Column("area_m2", "Area m²", "float"),
        Column("lon", "Longitude", "float"),
        Column("lat", "Latitude", "float"),
        Column("detail", "Detail"),
    ]
    balance = report.get("balance") or {}
    grid_columns = [
        Column("code", "Code"),
        Column("name", "Name"),
        Column("kind", "Kind", convert=lambda v: language.kind_label(v, lang)),
        Column("households", "Households", "int"),
        Column("population", "Population", "int"),
        Column("open_cases", "Open cases", "int"),
        Column("recent_cases", "Recent cases", "int"),
        Column("staff", "Staff", "int"),
        Column("area_m2", "Area m²", "float"),
        Column("compactness", "Compactness", "float"),
        Column("households_flag", "Households flag", convert=lambda v: language.translate(v, lang)),
    ]
    community_columns = [
        Column("code", "Code"),
        Column("name", "Name"),
        Column("grids", "Grids", "int"),
        Column("households", "Households", "int"),
        Column("open_cases", "Open cases", "int"),
        Column("staff", "Staff", "int"),
        Column("outside_range", "Outside the range", "int"),
        Column("max_min_ratio", "Max/min", "float"),
        Column("cv", "Coefficient of variation", "float"),
    ]
    return [
        Table("Findings", finding_columns, findings),
        Table("Grids", grid_columns, balance.get("grids") or []),
        Table("Communities", community_columns, balance.get("communities") or []),
    ]


def compare_tables(report: Mapping, *, lang: str = language.DEFAULT_LANGUAGE) -> list[Table]:
    """A comparison: each new or changed grid with where it comes from, retired grids, cases changing grid."""
    grids = [
        {
            **g,
            "sources": "; ".join(f"{s['code']} ({s['area_m2']:.0f} m²)" for s in g.get("sources") or []),
        }
        for g in report.get("grids", [])
        if g.get("status") != "unchanged"
    ]
    retired = [
        {**r, "goes_to": "; ".join(f"{t['code']} ({t['area_m2']:.0f} m²)" for t in r.get("goes_to") or [])}
        for r in report.get("retired", [])
    ]
    moved = (report.get("cases") or {}).get("moved") or []
    return [
        Table(
            "Grids",
            [
                Column("code", "Code"),
                Column("name", "Name"),
                Column("status", "Change", convert=_label(CHANGE_LABELS, lang)),
                Column("area_m2", "Area m²", "float"),
                Column("households", "Households", "int"),
                Column("households_estimated", "Households (estimated)", "float"),
                Column("sources", "Comes from"),
            ],
            grids,
        ),
        Table(
            "Retired grids",
            [
                Column("code", "Code"),
                Column("name", "Name"),
                Column("households", "Households", "int"),
                Column("goes_to", "Goes to"),
            ],
            retired,
        ),
        Table(
            "Cases changing grid",
            [
                Column("id", "Case number", "int"),
                Column("status", "Status", convert=_label(STATUS_LABELS, lang)),
                Column("from", "From grid"),
                Column("to", "To grid"),
            ],
            moved,
        ),
    ]


def filename(stem: str, fmt: str, *, now: dt.datetime | None = None) -> str:
    """Return a download's file name: stem-YYYYMMDD-HHMM.fmt (ASCII, so every browser keeps it)."""
    now = now or clock.now()
    return f"{stem}-{now:%Y%m%d-%H%M}.{fmt}"
