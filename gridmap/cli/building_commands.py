"""`gridmap` commands for the household register and redivision proposals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gridmap.cli import crs_option, main, with_store
from gridmap.config import Settings

if TYPE_CHECKING:
    from gridmap.store import Store


@main.command("load-buildings")
@click.argument("file", type=click.Path(path_type=Path))
@crs_option("Coordinate system of the file's lon/lat and footprints.")
@click.option("--dry-run", is_flag=True, help="Check and place every row, write nothing.")
@with_store
def load_buildings(store: Store, settings: Settings, file: Path, source_crs: str, dry_run: bool) -> None:
    """Load buildings (code, name/address, estate, lon/lat or footprint, households, population) from CSV, XLSX
    or GeoJSON; rows without coordinates are geocoded; refused rows are listed; loading again changes nothing."""
    from gridmap import buildings

    outcome = buildings.load_buildings(store, file, crs=source_crs, settings=settings, dry_run=dry_run)
    for line in outcome.summary():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing written")


@main.command("propose")
@click.option("--community", metavar="CODE", help="Redivide one community.")
@click.option("--street", metavar="CODE", help="Redivide every community of a street.")
@click.option("--all", "whole", is_flag=True, help="Redivide every community of the edition.")
@click.option("--min", "households_min", type=int, help="Fewest households per grid (default GRIDMAP_HOUSEHOLDS_MIN).")
@click.option("--max", "households_max", type=int, help="Most households per grid (default GRIDMAP_HOUSEHOLDS_MAX).")
@click.option("--target", type=float, help="Households a grid aims at (default: the middle of the range).")
@click.option(
    "--into", required=True, metavar="DRAFT", help="Draft to write into (a new name copies the current edition)."
)
@click.option(
    "--keep-good/--no-keep-good",
    default=True,
    show_default=True,
    help="Leave grids already in range, whole and compact exactly as they are.",
)
@click.option(
    "--rounding/--no-rounding",
    default=True,
    show_default=True,
    help="With --keep-good: re-cut two grids below the edition's median Polsby–Popper when one straight cut lifts "
    "one of them to it.",
)
@click.option("--barriers", type=click.Path(path_type=Path), help="Road/river lines new boundaries should follow.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="The same seed gives the same plan.")
@click.option(
    "--method",
    type=click.Choice(("repair", "rebuild")),
    default="repair",
    show_default=True,
    help="Start from the grids as they are (repair) or from balanced k-means (rebuild).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_store
def propose(
    store: Store,
    settings: Settings,
    community: str | None,
    street: str | None,
    whole: bool,
    households_min: int | None,
    households_max: int | None,
    target: float | None,
    into: str,
    keep_good: bool,
    rounding: bool,
    barriers: Path | None,
    seed: int,
    method: str,
    as_json: bool,
) -> None:
    """Propose a balanced division of a community, a street or everything into a draft plan."""
    from gridmap import propose as proposals

    if sum(map(bool, (community, street, whole))) != 1:
        raise click.UsageError("give exactly one of --community CODE, --street CODE or --all")
    options = proposals.ProposeOptions(
        households_min=households_min if households_min is not None else settings.households_min,
        households_max=households_max if households_max is not None else settings.households_max,
        target_households=target,
        keep_good=keep_good,
        rounding=rounding,
        seed=seed,
        method=method,
    )
    lines = proposals.read_barriers(barriers) if barriers is not None else []
    result = proposals.propose(
        store, into=into, community=community, street=street, whole=whole, options=options, barriers=lines
    )
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for line in proposals.summary_lines(result):
        click.echo(line)
