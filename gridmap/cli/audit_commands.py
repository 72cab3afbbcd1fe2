"""`gridmap` commands for audit and compare."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gridmap.cli import lang_option, main, with_store
from gridmap.config import PROJECT_DIR, Settings

if TYPE_CHECKING:
    from gridmap.store import Store

# audit.FAIL_KINDS, written out so that `gridmap --help` does not import the audit (tests/test_cli.py checks).
FAIL_KINDS = ("gaps", "overlaps", "outside_parent", "invalid", "slivers", "codes", "balance", "unassigned", "ambiguous")


def _options(func):
    """Add the audit thresholds shared by `audit` and `compare`."""
    func = click.option(
        "--tolerance",
        "area_tolerance_m2",
        type=float,
        help="Pieces smaller than this many m² are counted, not listed (default 1).",
    )(func)
    func = click.option("--households-min", type=int, help="Fewest households a grid should have (default 300).")(func)
    func = click.option("--households-max", type=int, help="Most households a grid should have (default 500).")(func)
    return func


def _thresholds(settings: Settings, **given) -> dict:
    values = {"households_min": settings.households_min, "households_max": settings.households_max}
    values.update({k: v for k, v in given.items() if v is not None})
    return values


def _write_html(out: Path, template: str, context: dict, lang: str) -> None:
    """Render the same template the web serves, without Flask: autoescaped, no user, no navigation."""
    from gridmap import language

    environment = language.jinja_environment(PROJECT_DIR / "templates", lang)
    out.write_text(environment.get_template(template).render(**context), encoding="utf-8")


def _write_tables(out: Path | None, tables: list, lang: str, *, quiet: bool) -> None:
    from gridmap import exports

    if out is not None:
        exports.write(tables, "xlsx", lang=lang, target=out)
        click.echo(f"wrote {out}", err=quiet)


def _print_json(value: dict) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


@main.command("audit")
@click.option("--edition", help="Edition to audit (default: the current one).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report.")
@click.option(
    "--fail-on",
    metavar="KIND,…",
    help=f"Exit with status 1 when any of these kinds has findings: all, {', '.join(FAIL_KINDS)}.",
)
@click.option("--xlsx", "xlsx_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the findings as XLSX.")
@lang_option
@_options
@with_store
def audit_command(
    store: Store,
    settings: Settings,
    edition: str | None,
    as_json: bool,
    html_out: Path | None,
    fail_on: str | None,
    xlsx_out: Path | None,
    lang: str,
    **thresholds,
) -> None:
    """Audit an edition: gaps, overlaps, grids outside their community, invalid shapes, slivers, codes, balance."""
    from gridmap import audit, exports

    kinds = audit.parse_kinds(fail_on)  # refuse a misspelt kind before the audit runs
    options = _thresholds(settings, **thresholds)
    if html_out is not None:
        page = audit.audit_page(store, edition, **options)
        _write_html(html_out, "audit.html", page, lang)
        report = page["report"]
    else:
        report = audit.audit_edition(store, edition, **options)
    _write_tables(xlsx_out, exports.audit_tables(report, lang=lang), lang, quiet=as_json)
    if as_json:
        _print_json(report)
    else:
        for line in audit.summary_lines(report):
            click.echo(line)
        if html_out is not None:
            click.echo(f"wrote the report to {html_out}")
    failed = audit.failing(report, kinds)
    if failed:
        click.echo("audit failed on " + ", ".join(f"{n} {kind}" for kind, n in failed.items()), err=True)
        sys.exit(1)


@main.command("compare")
@click.argument("edition_a")
@click.argument("edition_b")
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report.")
@click.option(
    "--xlsx", "xlsx_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the comparison as XLSX."
)
@lang_option
@_options
@with_store
def compare_command(
    store: Store,
    settings: Settings,
    edition_a: str,
    edition_b: str,
    as_json: bool,
    html_out: Path | None,
    xlsx_out: Path | None,
    lang: str,
    **thresholds,
) -> None:
    """Compare two editions: where each new grid's land, households and open cases come from."""
    from gridmap import audit, exports

    options = _thresholds(settings, **thresholds)
    if html_out is not None:
        page = audit.compare_page(store, edition_a, edition_b, **options)
        _write_html(html_out, "compare.html", page, lang)
        report = page["report"]
    else:
        report = audit.compare_editions(store, edition_a, edition_b, **options)
    _write_tables(xlsx_out, exports.compare_tables(report, lang=lang), lang, quiet=as_json)
    if as_json:
        _print_json(report)
        return
    for line in audit.compare_lines(report):
        click.echo(line)
    if html_out is not None:
        click.echo(f"wrote the comparison to {html_out}")
