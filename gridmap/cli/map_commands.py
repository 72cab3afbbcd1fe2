"""`gridmap map OUT.html`: the case map as one self-contained file (assets inlined, data embedded)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gridmap import clock
from gridmap.cli import lang_option, main, with_store
from gridmap.config import Settings
from gridmap.errors import NotFound

if TYPE_CHECKING:
    from gridmap.store import Store

# Half a pixel at zoom 15: sharp at street level, a third of the size of the unsimplified file.
EXPORT_ZOOM = 15


@main.command("map")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--edition", help="Edition to draw (default: the current one).")
@lang_option
@with_store
def map_export(store: Store, settings: Settings, out: Path, edition: str | None, lang: str) -> None:
    """Write the case map as one HTML file that opens with no server and no internet."""
    from gridmap import cases

    html, summary = export_map(store, edition=edition, calendar=cases.calendar_from_settings(settings), lang=lang)
    out.write_text(html, encoding="utf-8")
    click.echo(f"wrote {out} ({len(html.encode()) / 1e6:.1f} MB): {summary}")


def export_map(
    store: Store, *, edition: str | None = None, now: dt.datetime | None = None, calendar=None, lang: str = "zh"
) -> tuple[str, str]:
    """Return the standalone map HTML of an edition and a one-line summary."""
    from gridmap import language, maps

    if edition is None:
        current = store.current_edition()
        if current is None:
            raise NotFound("no current edition: load boundaries or run `gridmap demo`")
        edition = current.name
    else:
        edition = store.get_edition(edition).name
    now = now or clock.now()
    frames = {level: store.areas(edition, level) for level in ("grid", "community", "street")}
    attributes = {r["code"]: r for r in store.area_attributes(edition)}
    # Open, located cases with what their popups show; reporters and phones are not exported.
    open_cases = [
        row
        for row in store.list_incidents(limit=None)
        if row["status"] not in maps.CLOSED_STATUSES and row["lon"] is not None and row["lat"] is not None
    ]
    lights = maps.traffic_lights(open_cases, now=now, calendar=calendar)
    grid_rows = [attributes[code] for code in frames["grid"]["code"]]
    measures = maps.grid_measures(grid_rows, open_cases, now=now)
    names = {code: row["name"] for code, row in attributes.items() if row["level"] != "grid"}
    geometry = {level: maps.area_geometry_json(frame, zoom=EXPORT_ZOOM) for level, frame in frames.items()}
    labels = maps.label_points(frames["grid"].geometry.values) if len(frames["grid"]) else []
    grids = maps.feature_collection(
        geometry["grid"], maps.grid_properties(grid_rows, labels, measures, names), edition=edition
    )
    outlines = {
        level: maps.feature_collection(
            geometry[level], [{"code": c, "name": n} for c, n in zip(frame["code"], frame["name"], strict=True)]
        )
        for level, frame in frames.items()
        if level != "grid"
    }
    workers: dict[str, list[str]] = {}
    for user in store.list_users():
        if user["role"] == "grid_worker":
            for code in user["areas"]:
                workers.setdefault(code, []).append(user["name"])
    panels = {}
    for grid in grid_rows:
        community = attributes.get(grid["parent_code"]) or {}
        street = attributes.get(community.get("parent_code")) or {}
        names_here = [
            w for code in (grid["code"], community.get("code"), street.get("code")) for w in workers.get(code, [])
        ]
        panels[grid["code"]] = maps.grid_panel(
            grid, community, street, measures[grid["code"]], workers=names_here, cases_url=None
        )
    html = maps.standalone_html(
        bounds=maps.frame_bounds(frames["grid"]),
        grids=grids,
        communities=outlines["community"],
        streets=outlines["street"],
        incidents=maps.incident_collection(open_cases, lights=lights, detail=True),
        panels=panels,
        title=f"{language.gettext('gridmap', lang)} · {edition}",
        lang=lang,
        generated_at=now.isoformat(timespec="minutes"),
    )
    summary = (
        f"edition {edition!r}, {len(grid_rows)} grids, {len(open_cases)} open cases, generated {now:%Y-%m-%d %H:%M}"
    )
    return html, summary
