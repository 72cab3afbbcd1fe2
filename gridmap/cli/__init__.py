"""The `gridmap` command: parse options, call the core, print. The only package that imports click.

Commands of the cases, maps and audit work live in sibling modules, registered at the bottom.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import sys
from pathlib import Path

import click

from gridmap import boundaries, people
from gridmap.config import Settings, setting_help
from gridmap.errors import GridmapError
from gridmap.store import Store

LEVEL_CHOICE = click.Choice(boundaries.IMPORT_LEVELS)
PLURAL = {"district": "districts", "street": "streets", "community": "communities", "grid": "grids"}


class _Group(click.Group):
    """The one place command failures become a message and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GridmapError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)


db_option = click.option(
    "--db", "database_url", envvar="GRIDMAP_DATABASE_URL", metavar="URL", help=setting_help("database_url")
)


def with_store(command):
    """Add `--db URL` to a command and hand it an open Store."""

    @click.option(
        "--db", "database_url", envvar="GRIDMAP_DATABASE_URL", metavar="URL", help=setting_help("database_url")
    )
    @functools.wraps(command)
    def wrapper(*args, database_url: str | None, **kwargs):
        settings = Settings.from_env(database_url=database_url)
        store = Store.open(settings)
        try:
            return command(*args, store=store, settings=settings, **kwargs)
        finally:
            store.close()

    return wrapper


@click.group(cls=_Group)
@click.version_option(package_name="gridmap")
def main() -> None:
    """gridmap (网格地图): grid boundaries, incident location and maps for community grid governance."""


@main.command("init-db")
@with_store
def init_db(store: Store, settings: Settings) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    click.echo(f"schema at revision {store.schema_revision()} on {store.describe()}")


@main.command("load-boundaries")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--level", type=LEVEL_CHOICE, required=True, help="Which level the file holds.")
@click.option("--edition", help="Edition to load into (default: the current one; a new name makes a draft).")
@click.option("--code-field", default="code", show_default=True, help="Field with each area's code.")
@click.option("--name-field", default="name", show_default=True, help="Field with each area's name.")
@click.option(
    "--parent-field", default="parent_code", show_default=True, help="Field with the parent's code (empty: top level)."
)
@click.option("--crs", help="CRS of the file's coordinates when it has none or a wrong one (e.g. EPSG:4490).")
@click.option("--fix-invalid", is_flag=True, help="Repair invalid polygons and report each change.")
@click.option("--commit", is_flag=True, help="Write to the database (without it: only say what would happen).")
@with_store
def load_boundaries(store: Store, settings: Settings, file: Path, commit: bool, **options) -> None:
    """Import street, community or grid boundaries from GeoJSON, Shapefile, GeoPackage or KML."""
    plan = boundaries.plan_import(store, file, **options)
    for line in plan.summary():
        click.echo(line)
    if not commit:
        click.echo("dry run: nothing written (add --commit to write)")
        return
    written = boundaries.commit_import(store, plan)
    click.echo(f"written: {written} {plan.level} areas into edition {plan.edition!r}")


@main.command("export-boundaries")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--level", type=LEVEL_CHOICE, required=True)
@click.option("--edition", help="Edition to export (default: the current one).")
@click.option(
    "--format", "fmt", type=click.Choice(tuple(boundaries.EXPORT_FORMATS)), help="Default: from OUT's suffix."
)
@with_store
def export_boundaries(
    store: Store, settings: Settings, out: Path, level: str, edition: str | None, fmt: str | None
) -> None:
    """Write one level of an edition to GeoJSON, GeoPackage or Shapefile."""
    count = boundaries.export_boundaries(store, out, level=level, edition=edition, fmt=fmt)
    click.echo(f"wrote {count} {level} areas to {out}")


@main.command("editions")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_store
def editions(store: Store, settings: Settings, as_json: bool) -> None:
    """List the boundary editions with their status and validity."""
    rows = [{**e.to_dict(), "areas": store.area_counts(e.name)} for e in store.list_editions()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no editions yet: load boundaries or run `gridmap demo`")
    for row in rows:
        counts = ", ".join(f"{n} {PLURAL[level]}" for level, n in row["areas"].items() if n)
        validity = f"{row['valid_from'] or '…'} – {row['valid_to'] or '…'}"
        click.echo(f"{row['name']:<20} {row['status']:<8} {validity:<25} {counts or 'empty'}")


def _date(_ctx, _param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from exc


@main.command("activate")
@click.argument("edition")
@click.option("--valid-from", callback=_date, help="First day the edition is valid (default: today).")
@with_store
def activate(store: Store, settings: Settings, edition: str, valid_from: dt.date | None) -> None:
    """Make an edition current; the previous current edition is retired."""
    activated = store.activate_edition(edition, valid_from=valid_from)
    click.echo(f"edition {activated.name!r} is current from {activated.valid_from}")


@main.command("retire")
@click.argument("edition")
@with_store
def retire(store: Store, settings: Settings, edition: str) -> None:
    """Retire an edition: lookups stop using it."""
    retired = store.retire_edition(edition)
    click.echo(f"edition {retired.name!r} retired on {retired.valid_to}")


@main.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has an edition.")
@click.option("--cases", "open_cases", type=click.IntRange(0), default=0, help="Also generate this many open cases.")
@click.option("--closed-cases", type=click.IntRange(0), default=0, help="Also generate this many closed cases.")
@with_store
def demo(store: Store, settings: Settings, if_empty: bool, open_cases: int, closed_cases: int) -> None:
    """Load the generated demo district (12 streets, 175 communities, 1,464 grids, their buildings) as current."""
    from gridmap import demo as demo_data
    from gridmap import geocode

    if if_empty and store.list_editions():
        click.echo(f"the database already has editions; demo not loaded ({store.describe()})")
        return
    counts = boundaries.load_demo(store, demo_data.demo_boundary_dir())
    click.echo("loaded the demo district: " + ", ".join(f"{n} {PLURAL[level]}" for level, n in counts.items()))
    entries = geocode.load_gazetteer(store, demo_data.demo_boundary_dir() / demo_data.GAZETTEER_FILE)
    click.echo(f"loaded the demo gazetteer: {entries} addresses")
    register = demo_data.demo_buildings()
    written = store.save_buildings(register)
    click.echo(
        f"loaded the demo buildings: {len(register)} buildings, {sum(b['households'] for b in register)} households "
        f"({written['added']} new)"
    )
    if not store.list_users():
        # The pages need a sign-in; a fixed default password would be a hole, so a random one is shown once.
        password = secrets.token_urlsafe(9)
        people.add_user(store, "demo", role="admin", password=password)
        click.echo(f"created the admin user 'demo' with password {password} (shown once; sign in at /login)")
    if open_cases or closed_cases:
        from gridmap import assign, cases

        edition = store.current_edition()
        if edition is None:
            raise click.UsageError("there is no current edition to put cases in")
        calendar = cases.calendar_from_settings(settings)
        rows = demo_data.generate_cases(
            store.areas(edition.name, "grid"),
            cases.load_categories(),
            open_cases,
            closed=closed_cases,
            now=dt.datetime.now().replace(microsecond=0),
            deadline_for=lambda code, at: cases.deadline_for(code, at, calendar),
        )
        located = assign.grid_index(store).locate_many([r["lon"] for r in rows], [r["lat"] for r in rows])
        for row, answer in zip(rows, located.assignments(), strict=True):
            row.update(answer.incident_fields(edition.name))
        store.add_incidents(rows, actor="demo")
        click.echo(f"generated {open_cases} open and {closed_cases} closed demo cases")


# ---- locating incidents --------------------------------------------------------------------------------
CRS_CHOICE = click.Choice(("wgs84", "cgcs2000", "gcj02", "bd09"), case_sensitive=False)


def crs_option(help_text: str):
    """The `--crs` option of commands that read coordinates."""
    return click.option("--crs", "source_crs", type=CRS_CHOICE, default="wgs84", show_default=True, help=help_text)


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
@with_store
def locate(
    store: Store,
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
        index = assign.grid_index(store, edition=edition)
        rows = max(1, input_path.read_bytes().count(b"\n") - 1) if input_path.exists() else 1
        with click.progressbar(length=rows, label="locating", file=sys.stderr) as bar:
            counts = assign.locate_csv(
                index,
                input_path,
                output_path,
                columns=(id_column, lon_column, lat_column),
                crs=source_crs,
                progress=bar.update,
            )
        click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))
        return
    if lon is None or lat is None:
        raise click.UsageError("give --lon and --lat, or --input and --output")
    result = assign.locate(store, lon=lon, lat=lat, crs=source_crs, edition=edition)
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


@main.command("geocode")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.option("--locate", "then_locate", is_flag=True, help="Also find the grid of the point.")
@with_store
def geocode_address(store: Store, settings: Settings, address: str, as_json: bool, then_locate: bool) -> None:
    """Find the point of an address (offline gazetteer; Nominatim too when GRIDMAP_GEOCODER=nominatim)."""
    from gridmap import assign, geocode

    result = geocode.store_geocoder(store, settings).geocode(address)
    answer = {
        "found": result.found,
        "lon": result.lon,
        "lat": result.lat,
        "level": result.level,
        "confidence": round(result.confidence, 3),
        "matched": result.entry.name if result.entry else None,
        "normalized": result.normalized,
        "suggestions": [] if result.found else [c.name for c in result.candidates],
    }
    if result.found and then_locate:
        answer["grid"] = assign.locate(store, lon=result.lon, lat=result.lat)
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
        return
    if not result.found:
        hint = f"; did you mean: {', '.join(answer['suggestions'])}" if answer["suggestions"] else ""
        click.echo(f"not found: {address}{hint}")
        return
    click.echo(
        f"{result.lon:.6f}, {result.lat:.6f}  {result.level} (confidence {result.confidence:.2f}): {answer['matched']}"
    )
    if "grid" in answer:
        grid = answer["grid"]
        click.echo(f"grid {grid['grid_code']} {grid['grid_name']}" if grid["grid_code"] else "in no grid")


@main.command("load-gazetteer")
@click.argument("file", type=click.Path(path_type=Path))
@crs_option("Coordinate system of the file's points.")
@with_store
def load_gazetteer(store: Store, settings: Settings, file: Path, source_crs: str) -> None:
    """Replace the offline gazetteer (addresses → points) with a CSV or GeoJSON file."""
    from gridmap import geocode

    count = geocode.load_gazetteer(store, file, crs=source_crs)
    click.echo(f"gazetteer: {count} entries")


@main.command("import-incidents")
@click.argument("file", type=click.Path(path_type=Path))
@crs_option("Coordinate system of the file's lon/lat columns.")
@with_store
def import_incidents(store: Store, settings: Settings, file: Path, source_crs: str) -> None:
    """Import incidents from CSV (UTF-8 or GBK), XLSX or GeoJSON: geocode, assign, one transaction."""
    from gridmap import incidents

    outcome = incidents.import_incidents(store, file, crs=source_crs, settings=settings)
    for line in outcome.summary():
        click.echo(line)
    click.echo(f"imported: {len(outcome.rows)}")


@main.command("reassign")
@with_store
def reassign(store: Store, settings: Settings) -> None:
    """Recompute every incident's current grid from the current edition; the original grid is kept."""
    from gridmap import assign

    counts = assign.reassign(store)
    click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))


# ---- people ----------------------------------------------------------------------------------------------
@main.group("users")
def users() -> None:
    """Manage users, their roles and areas."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(people.ROLES), required=True, help="What the user may do.")
@click.option("--area", "areas", multiple=True, metavar="CODE", help="A grid, community or street code (repeatable).")
@click.option("--password", is_flag=True, help="Ask for a password for the web login.")
@with_store
def users_add(store: Store, settings: Settings, name: str, role: str, areas: tuple[str, ...], password: bool) -> None:
    """Create a user and print their API token (use it as `Authorization: Bearer TOKEN`)."""
    secret = click.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    token = people.add_user(store, name, role=role, areas=areas, password=secret)
    click.echo(f"user {name!r} ({role}) created; API token (shown once): {token}")


@users.command("list")
@with_store
def users_list(store: Store, settings: Settings) -> None:
    """List users with their roles and areas."""
    for user in store.list_users():
        click.echo(f"{user['name']:<20} {user['role']:<12} {' '.join(user['areas'])}")


@main.command("serve")
@click.option("--host", help=setting_help("host") + " [default: 127.0.0.1]")
@click.option("--port", type=int, help=setting_help("port") + " [default: 5000]")
@db_option
def serve(host: str | None, port: int | None, database_url: str | None) -> None:
    """Serve the web pages and API on a production WSGI server (waitress)."""
    import waitress

    from gridmap.web import create_app

    settings = Settings.from_env(host=host, port=port, database_url=database_url)
    app = create_app(settings)
    click.echo(f"gridmap on http://{settings.host}:{settings.port} ({app.extensions['gridmap'].store.describe()})")
    waitress.serve(app, host=settings.host, port=settings.port, threads=settings.threads, ident="gridmap")


# Registering commands from sibling modules needs `main` and `with_store` defined first.
from gridmap.cli import audit_commands, building_commands, case_commands, map_commands  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    main()
