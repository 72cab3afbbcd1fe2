"""`gridmap` commands for cases, stats and categories."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gridmap import people
from gridmap.cli import lang_option, main, with_store
from gridmap.config import Settings
from gridmap.errors import InvalidInput

if TYPE_CHECKING:
    from gridmap.store import Store

# Whoever runs the CLI holds the database itself, so the commands see the whole district.
_OPERATOR = people.User(name="cli", role="admin")
# casestats.GROUPS, written out so that `gridmap --help` does not import the case rules (tests/test_cli.py checks).
# casefields.SOURCES likewise.
SOURCES = ("patrol", "visit", "chat", "hotline", "video", "higher", "import", "web")
GROUPS = ("total", "grid", "community", "street", "category", "worker", "day", "week", "month")
_COLUMNS = (
    ("received", "received"),
    ("registered", "registered"),
    ("closed", "closed"),
    ("resolution_rate", "resolved %"),
    ("on_time_rate", "on time %"),
    ("rework_rate", "rework %"),
    ("overdue", "overdue"),
    ("median_hours_to_close", "median h"),
)


def _day(_ctx, param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param=param) from None


def _names(store: Store, by: str, lang: str) -> dict[str, str]:
    """Return code → name of what the indicators are grouped by (areas of the current edition, categories)."""
    if by == "category":
        from gridmap.categories import load_categories

        return {c["code"]: c["name"] if lang == "zh" else c["name_en"] for c in load_categories()}
    edition = store.current_edition()
    if by not in ("grid", "community", "street") or edition is None:
        return {}
    return {r["code"]: r["name"] for r in store.area_attributes(edition.name)}


def _cell(value) -> str:
    return "-" if value is None else str(value)


@main.command("stats")
@click.option("--by", type=click.Choice(GROUPS), default="total", show_default=True, help="Group the cases by.")
@click.option("--from", "date_from", callback=_day, metavar="DATE", help="Cases reported on or after this day.")
@click.option("--to", "date_to", callback=_day, metavar="DATE", help="Cases reported up to and including this day.")
@click.option("--street", metavar="CODE", help="Only the cases of this street.")
@click.option("--community", metavar="CODE", help="Only the cases of this community.")
@click.option("--category", metavar="CODE", help="Only the cases of this 4-digit category.")
@click.option("--source", type=click.Choice(SOURCES), help="Only the cases from this source.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--xlsx", "xlsx_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the table as XLSX."
)
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write it as CSV.")
@lang_option
@with_store
def stats(
    store: Store,
    settings: Settings,
    by: str,
    date_from: dt.date | None,
    date_to: dt.date | None,
    street: str | None,
    community: str | None,
    category: str | None,
    source: str | None,
    as_json: bool,
    xlsx_out: Path | None,
    csv_out: Path | None,
    lang: str,
) -> None:
    """Print case indicators: received, registered, closed, resolution, on-time and rework rates, overdue."""
    if date_from and date_to and date_to < date_from:
        raise InvalidInput("--to is before --from")
    from gridmap import cases, exports

    result = cases.stats(
        store,
        user=_OPERATOR,
        by=by,
        reported_from=dt.datetime.combine(date_from, dt.time()) if date_from else None,
        reported_to=dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time()) if date_to else None,
        street_code=street,
        community_code=community,
        category_code=category,
        source=source,
    )
    for out, fmt in ((xlsx_out, "xlsx"), (csv_out, "csv")):
        if out is not None:
            tables = exports.stats_tables(result, lang=lang, names=_names(store, by, lang))
            exports.write(tables, fmt, lang=lang, target=out)
            click.echo(f"wrote {out}", err=as_json)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    rows = [("all", result["total"])] if by == "total" else [(g["key"], g) for g in result["groups"]]
    if by != "total":
        rows.append(("total", result["total"]))
    header = [by, *(label for _key, label in _COLUMNS)]
    table = [[_cell(key), *(_cell(values[k]) for k, _label in _COLUMNS)] for key, values in rows]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        click.echo(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        )


@main.command("categories")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def categories(as_json: bool) -> None:
    """List the case categories (2+2-digit codes) and their deadlines in working hours or days."""
    from gridmap.categories import load_categories

    table = load_categories()
    if as_json:
        click.echo(json.dumps(table, ensure_ascii=False, indent=2))
        return
    current = None
    for row in table:
        if row["class_code"] != current:
            current = row["class_code"]
            click.echo(f"{current} {row['class_name']} {row['class_name_en']}")
        click.echo(f"  {row['code']}  {row['name']} ({row['name_en']}): {row['deadline']} / {row['deadline_en']}")
