"""`gridmap locate` (one point, or a CSV file of points in bulk) and `gridmap geocode` (one address)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gridmap.cli import crs_option, main, with_lazy_store, with_store
from gridmap.config import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from gridmap.store import Store


@main.command("locate")
@click.option("--lon", type=float, help="Longitude of one point.")
@click.option("--lat", type=float, help="Latitude of one point.")
@crs_option("Coordinate system of the input (GCJ-02: Amap/Tencent, BD-09: Baidu).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one point).")
@click.option("--input", "input_path", type=click.Path(path_type=Path), help="CSV of points to locate in bulk.")
@click.option("--output", "output_path", type=click.Path(path_type=Path), help="CSV to write (bulk).")
@click.option("--id-column", default="id", show_default=True)
@click.option("--lon-column", default="lon", show_default=True)
@click.option("--lat-column", default="lat", show_default=True)
@click.option("--edition", help="Edition to locate in (default: the current one).")
@with_lazy_store
def locate(
    store: Callable[[], Store],
    settings: Settings,
    lon,
    lat,
    source_crs,
    as_json,
    input_path,
    output_path,
    id_column,
    lon_column,
    lat_column,
    edition,
) -> None:
    """Find the grid of a point, or of every row of a CSV file (--input/--output)."""
    from gridmap import assign

    if input_path is not None:
        if output_path is None:
            raise click.UsageError("--input needs --output")
        from concurrent.futures import ThreadPoolExecutor

        from gridmap.store import peek

        # The edition's state asked through the database's own driver, and the grids of that state kept on disk
        # by an earlier run: when both are there the store is never opened (SQLAlchemy's import alone would take
        # a tenth of the run). Otherwise the index is built from the store in a second thread while the rows
        # are read.
        state = peek.edition_state(settings.database_url, edition)
        if state is None:  # not known that way: the store says which edition and, when there is none, why
            state = assign.edition_state(store(), edition)
        rows = _estimated_rows(input_path)

        def index():
            if (found := assign.saved_index(settings.database_url, state)) is not None:
                return found
            return assign.index_at(store(), state)

        with (
            ThreadPoolExecutor(1) as pool,
            click.progressbar(length=rows, label="locating", file=sys.stderr) as bar,
        ):
            counts = assign.locate_csv(
                pool.submit(index),
                input_path,
                output_path,
                columns=(id_column, lon_column, lat_column),
                crs=source_crs,
                progress=bar.update,
                warn=lambda line: click.echo(line, err=True),
            )
        click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))
        return
    if lon is None or lat is None:
        raise click.UsageError("give --lon and --lat, or --input and --output")
    # One point: the database's spatial index answers faster than building the in-memory index would.
    result = assign.locate(store(), lon=lon, lat=lat, crs=source_crs, edition=edition, use_index=False)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    if result["grid_code"] is None:
        click.echo(f"in no grid; nearest grid {result['nearest_code']} at {result['nearest_distance_m']:.0f} m")
        return
    click.echo(f"grid {result['grid_code']} {result['grid_name']}")
    click.echo(f"community {result['community_code']}  street {result['street_code']}")
    if result["ambiguous"]:
        click.echo("ambiguous: on a shared boundary of " + ", ".join(result["candidates"]) + " (lowest code wins)")


def _estimated_rows(path: Path) -> int:
    """Guess a CSV's rows from its size and its first lines (for the progress bar; counting would read it twice)."""
    if not path.exists():
        return 1
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    lines = max(1, head.count(b"\n"))
    return max(1, round(path.stat().st_size / max(1, len(head)) * lines) - 1)


@main.command("geocode")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--locate", "then_locate", is_flag=True, help="Also find the grid of the point.")
@with_store
def geocode_address(store: Store, settings: Settings, address: str, as_json: bool, then_locate: bool) -> None:
    """Find the point of an address (offline gazetteer; Nominatim too when GRIDMAP_GEOCODER=nominatim)."""
    from gridmap import geocode

    answer = geocode.geocode_address(store, address, settings=settings, locate=then_locate)
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
        return
    why = f" ({answer['note']})" if answer["note"] else ""
    if not answer["found"]:
        hint = f"; did you mean: {', '.join(answer['suggestions'])}" if answer["suggestions"] else ""
        click.echo(f"not found: {address}{why}{hint}")
        return
    district = f" [{answer['district']}]" if answer["district"] else ""
    review = "; needs review" if answer["review"] else ""
    click.echo(
        f"{answer['lon']:.6f}, {answer['lat']:.6f}  {answer['level']} (confidence {answer['confidence']:.2f}{review}): "
        f"{answer['matched']}{district}{why}"
    )
    if "grid" in answer:
        grid = answer["grid"]
        click.echo(f"grid {grid['grid_code']} {grid['grid_name']}" if grid["grid_code"] else "in no grid")
