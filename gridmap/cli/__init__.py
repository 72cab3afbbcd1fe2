"""The `gridmap` command: parse options, call the core, print. The only package that imports click.

Commands of the cases, maps and audit work live in sibling modules, registered at the bottom. Start-up time is
part of every command (`gridmap --help` must answer in well under half a second), so this package imports only
click and the leaf modules at the top; each command imports the heavy modules (the store, geopandas, folium,
the audit) it needs inside its body.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gridmap import people
from gridmap.config import Settings, setting_help
from gridmap.errors import GridmapError

if TYPE_CHECKING:
    from gridmap.store import Store

# The same values as boundaries.IMPORT_LEVELS and EXPORT_FORMATS (tests/test_cli.py checks), written out so that
# parsing the command line does not import geopandas.
IMPORT_LEVELS = ("district", "street", "community", "grid")
EXPORT_FORMATS = ("geojson", "gpkg", "shp")
LEVEL_CHOICE = click.Choice(IMPORT_LEVELS)
PLURAL = {"district": "districts", "street": "streets", "community": "communities", "grid": "grids"}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _Group(click.Group):
    """The one place command failures become a one-line message and a non-zero exit: errors gridmap
    raises, bad options and arguments, files that cannot be read or written, and anything unexpected."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "gridmap"
            click.echo(f"error: {where}: {_one_line(exc.format_message())} (see {where} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        sys.exit(0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GridmapError as exc:
            click.echo(f"error: {_one_line(exc.message)}", err=True)
            sys.exit(1)
        except OSError as exc:
            # A directory given as a file, a missing folder, no permission: say which file and why.
            name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            click.echo(f"error: {name}{_one_line(exc.strerror or exc)}", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: still one line, never a traceback for the user
            click.echo(f"error: unexpected {type(exc).__name__}: {_one_line(exc)[:300]}", err=True)
            sys.exit(1)


db_option = click.option(
    "--db", "database_url", envvar="GRIDMAP_DATABASE_URL", metavar="URL", help=setting_help("database_url")
)


def with_store(command, *, lazily: bool = False):
    """Add `--db URL` to a command and hand it an open Store (`lazily`: a function that opens it when called)."""

    @click.option(
        "--db", "database_url", envvar="GRIDMAP_DATABASE_URL", metavar="URL", help=setting_help("database_url")
    )
    @functools.wraps(command)
    def wrapper(*args, database_url: str | None, **kwargs):
        from gridmap.assign import index_cache

        settings = Settings.from_env(database_url=database_url)
        index_cache.use_directory(settings.cache_dir)
        opened = []

        def open_store():
            from gridmap.store import Store

            if not opened:
                opened.append(Store.open(settings))
            return opened[0]

        try:
            return command(*args, store=open_store if lazily else open_store(), settings=settings, **kwargs)
        finally:
            for store in opened:
                store.close()

    return wrapper


def with_lazy_store(command):
    """`with_store`, handing the command a function that opens the Store on first call (a command that may not
    need the database at all then skips opening it)."""
    return with_store(command, lazily=True)


lang_option = click.option(
    "--lang",
    type=click.Choice(("zh", "en")),
    default="zh",
    show_default=True,
    help="Language of written files (headers, labels): Chinese or English.",
)


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
@click.option(
    "--crs",
    help="CRS of the coordinates when the file has none or a wrong one: an EPSG code (4548), a PROJ string, WKT, "
    "a .prj file, or wgs84, cgcs2000, gcj02 (Amap, DataV), bd09 (Baidu).",
)
@click.option("--fix-invalid", is_flag=True, help="Repair invalid polygons and report each change.")
@click.option(
    "--create-parents",
    is_flag=True,
    help="Make each missing community (and street) as the union of its grids, coded from the code prefix.",
)
@click.option("--community-name-field", metavar="F", help="With --create-parents: field naming each grid's community.")
@click.option("--street-name-field", metavar="F", help="With --create-parents: field naming each area's street.")
@click.option(
    "--allow-outside-parent", is_flag=True, help="Load areas lying mostly outside their parent (warn instead)."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every refusal, warning and repair to this CSV file.",
)
@click.option("--commit", is_flag=True, help="Write to the database (without it: only say what would happen).")
@with_store
def load_boundaries(
    store: Store, settings: Settings, file: Path, commit: bool, report_path: Path | None, **options
) -> None:
    """Import boundaries from GeoJSON, Esri JSON, Shapefile, GeoPackage or KML; every refusal is listed at once."""
    from gridmap import boundaries

    try:
        plan = boundaries.plan_import(store, file, **options)
    except boundaries.ImportRefused as refused:
        click.echo("error: " + "\n".join(refused.lines()), err=True)  # every refusal, however many
        others = [p for p in refused.problems if p.severity != "refused"]
        if others:
            click.echo(f"also found, not refusals ({len(others)}):", err=True)
            for line in boundaries.grouped_lines(others):
                click.echo(f"  {line}", err=True)
        if report_path is not None:
            written = boundaries.write_report(report_path, refused.problems)
            click.echo(f"wrote all {written} problems to {report_path}", err=True)
        sys.exit(1)
    for line in plan.summary():
        click.echo(line)
    if report_path is not None:
        written = boundaries.write_report(report_path, plan.problems)
        click.echo(f"wrote all {written} problems to {report_path}")
    if not commit:
        click.echo("dry run: nothing written (add --commit to write)")
        return
    written = boundaries.commit_import(store, plan)
    click.echo(f"written: {plan.counts_text()} ({written} areas) into edition {plan.edition!r}")


@main.command("export-boundaries")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--level", type=LEVEL_CHOICE, required=True)
@click.option("--edition", help="Edition to export (default: the current one).")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), help="Default: from OUT's suffix.")
@with_store
def export_boundaries(
    store: Store, settings: Settings, out: Path, level: str, edition: str | None, fmt: str | None
) -> None:
    """Write one level of an edition to GeoJSON, GeoPackage or Shapefile."""
    from gridmap import boundaries

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
    _keep_current_index(store)


def _keep_current_index(store: Store) -> None:
    """Build the current edition's grid index now, so it is kept on disk (GRIDMAP_CACHE_DIR) and the next bulk
    `locate` (or server start) finds it instead of building it."""
    from gridmap import assign
    from gridmap.errors import NotFound

    with contextlib.suppress(NotFound):  # no current edition: nothing to keep
        assign.grid_index(store)


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
    from gridmap import boundaries, geocode
    from gridmap.demo.buildings import demo_buildings
    from gridmap.demo.cases import generate_cases
    from gridmap.demo.district import demo_boundary_dir
    from gridmap.demo.gazetteer import GAZETTEER_FILE

    if if_empty and store.list_editions():
        click.echo(f"the database already has editions; demo not loaded ({store.describe()})")
        return
    counts = boundaries.load_demo(store, demo_boundary_dir())
    click.echo("loaded the demo district: " + ", ".join(f"{n} {PLURAL[level]}" for level, n in counts.items()))
    entries = geocode.load_gazetteer(store, demo_boundary_dir() / GAZETTEER_FILE)
    click.echo(f"loaded the demo gazetteer: {entries} addresses")
    register = demo_buildings()
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
        from gridmap import assign, cases, clock
        from gridmap.categories import deadline_for, load_categories

        edition = store.current_edition()
        if edition is None:
            raise click.UsageError("there is no current edition to put cases in")
        calendar = cases.calendar_from_settings(settings)
        rows = generate_cases(
            store.areas(edition.name, "grid"),
            load_categories(),
            open_cases,
            closed=closed_cases,
            now=clock.now(),
            deadline_for=lambda code, at: deadline_for(code, at, calendar),
        )
        located = assign.grid_index(store).locate_many([r["lon"] for r in rows], [r["lat"] for r in rows])
        for row, answer in zip(rows, located.assignments(), strict=True):
            row.update(answer.incident_fields(edition.name))
        store.add_incidents(rows, actor="demo")
        click.echo(f"generated {open_cases} open and {closed_cases} closed demo cases")
    _keep_current_index(store)


# ---- locating incidents --------------------------------------------------------------------------------
CRS_CHOICE = click.Choice(("wgs84", "cgcs2000", "gcj02", "bd09"), case_sensitive=False)


def crs_option(help_text: str):
    """The `--crs` option of commands that read coordinates."""
    return click.option("--crs", "source_crs", type=CRS_CHOICE, default="wgs84", show_default=True, help=help_text)


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
@click.option("--category", metavar="CODE", help="Category of rows that name none (a code from `gridmap categories`).")
@click.option(
    "--allow-partial", is_flag=True, help="Write the good rows even when some are rejected (default: all or nothing)."
)
@click.option("--allow-outside", is_flag=True, help="Import rows outside the district's boundaries, without a grid.")
@click.option("--dry-run", is_flag=True, help="Check and report only; write nothing.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Write every rejected row to this CSV.")
@with_store
def import_incidents(
    store: Store,
    settings: Settings,
    file: Path,
    source_crs: str,
    category: str | None,
    allow_partial: bool,
    allow_outside: bool,
    dry_run: bool,
    report_path: Path | None,
) -> None:
    """Import incidents from CSV (UTF-8 or GBK), XLSX or GeoJSON: checked by the case rules, geocoded, assigned,
    given deadlines, written all or nothing. Exits 1 when rows were rejected and nothing was written."""
    from gridmap import incidents

    if report_path is not None and (report_path.is_dir() or not report_path.parent.is_dir()):
        raise click.BadParameter(f"cannot write a report to {report_path}", param_hint="--report")
    outcome = incidents.import_incidents(
        store,
        file,
        crs=source_crs,
        settings=settings,
        category=category,
        allow_partial=allow_partial,
        allow_outside=allow_outside,
        dry_run=dry_run,
    )
    for line in outcome.summary():
        click.echo(line)
    if report_path is not None:
        count = outcome.write_report(report_path)
        click.echo(f"report: {count} rejected rows written to {report_path}")
    if outcome.refused:
        click.echo(
            f"imported: 0 — nothing written because {len(outcome.rejected)} rows were rejected; fix them, "
            f"or add --allow-partial to import the {len(outcome.values)} good rows"
        )
        sys.exit(1)
    if dry_run:
        click.echo(f"dry run: {len(outcome.values)} rows would be imported; nothing written")
    else:
        click.echo(f"imported: {outcome.written}")
    if not outcome.values and outcome.rejected:  # rows were rejected and none could be imported
        sys.exit(1)


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


@users.command("revoke")
@click.argument("name")
@click.option("--new-token", is_flag=True, help="Issue a fresh token and print it (shown once).")
@with_store
def users_revoke(store: Store, settings: Settings, name: str, new_token: bool) -> None:
    """Make a user's API token stop working (running servers forget it within GRIDMAP_AUTH_CACHE_SECONDS)."""
    token = people.revoke_token(store, name, new_token=new_token)
    click.echo(f"user {name!r}: the old API token no longer works (servers within {settings.auth_cache_seconds:g} s)")
    if token:
        click.echo(f"new API token (shown once): {token}")


@users.command("list")
@with_store
def users_list(store: Store, settings: Settings) -> None:
    """List users with their roles and areas."""
    for user in store.list_users():
        click.echo(f"{user['name']:<20} {user['role']:<12} {' '.join(user['areas'])}")


@main.command("serve")
@click.option("--host", help=setting_help("host") + " [default: 127.0.0.1]")
@click.option("--port", type=int, help=setting_help("port") + " [default: 5000]")
@click.option("--workers", type=click.IntRange(1), help=setting_help("workers") + " [default: 1]")
@click.option("--threads", type=click.IntRange(1), help=setting_help("threads") + " [default: 8]")
@db_option
def serve(
    host: str | None, port: int | None, workers: int | None, threads: int | None, database_url: str | None
) -> None:
    """Serve the web pages and API: waitress in one process, or gunicorn with --workers N (Linux, macOS)."""
    from gridmap.cli import server
    from gridmap.store import Store

    settings = Settings.from_env(host=host, port=port, database_url=database_url, workers=workers, threads=threads)
    if settings.workers > 1 and sys.platform == "win32":
        raise click.UsageError("--workers needs gunicorn, which does not run on Windows: use one worker")
    store = Store.open(settings)  # migrate once here, not in every worker at the same time
    where = store.describe()
    store.close()
    if settings.workers > 1:
        how = f"{settings.workers} gunicorn {server.worker_class(settings.threads)} workers"
    else:
        how = "waitress"
    click.echo(f"gridmap on http://{settings.host}:{settings.port} ({where}; {how}, {settings.threads} threads each)")
    server.serve(settings)


# Registering commands from sibling modules needs `main` and `with_store` defined first.
from gridmap.cli import (  # noqa: E402, F401
    attachment_commands,
    audit_commands,
    building_commands,
    case_commands,
    locate_commands,
    map_commands,
)

if __name__ == "__main__":  # pragma: no cover
    main()
