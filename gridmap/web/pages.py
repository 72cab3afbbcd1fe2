"""HTML pages."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, render_template

from gridmap.store import Store
from gridmap.web.access import anonymous_if_allowed, public, visible_editions
from gridmap.web.auth import current_user

blueprint = Blueprint("pages", __name__)


def _store() -> Store:
    return current_app.extensions["gridmap"].store


_PRIVATE = ("households", "population", "staff")


@blueprint.get("/")
@anonymous_if_allowed
def index():
    """List the current edition's streets → communities → grids with counts (anonymous callers: names only)."""
    store = _store()
    names_only = current_user() is None
    edition = store.current_edition()
    streets: list[dict] = []
    totals = {"street": 0, "community": 0, "grid": 0, "households": 0, "population": 0}
    if edition is not None:
        rows = store.area_attributes(edition.name)
        if names_only:
            rows = [{k: (None if k in _PRIVATE else v) for k, v in row.items()} for row in rows]
        children: dict[str | None, list[dict]] = {}
        for row in rows:
            children.setdefault(row["parent_code"], []).append(row)
        for row in rows:
            if row["level"] in totals:
                totals[row["level"]] += 1
            if row["level"] == "grid":
                totals["households"] += row["households"] or 0
                totals["population"] += row["population"] or 0
        streets = [r for r in rows if r["level"] == "street"]
        for street in streets:
            street["communities"] = children.get(street["code"], [])
            for community in street["communities"]:
                community["grids"] = children.get(community["code"], [])
                community["households"] = sum(g["households"] or 0 for g in community["grids"])
            street["grid_count"] = sum(len(c["grids"]) for c in street["communities"])
    return render_template(
        "index.html",
        edition=edition,
        streets=streets,
        totals=totals,
        editions=visible_editions(store),
        names_only=names_only,
    )


@blueprint.get("/favicon.ico")
@public
def favicon():
    """The site's icon (an SVG: every browser that runs the map shows it, whatever the name)."""
    icon = Path(current_app.static_folder) / "favicon.svg"
    return Response(icon.read_bytes(), mimetype="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})
