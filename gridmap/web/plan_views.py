"""Draft plans over HTTP: the JSON API every edit goes through, and the planner's pages.

Planners and admins edit and activate; a supervisor may look at the drafts' grids in their own area; other
roles get 403. Edits to a current or retired edition are 409: only drafts are editable.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, jsonify, render_template, request

from gridmap import drafts
from gridmap.errors import InvalidInput, NotFound
from gridmap.store import Store
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import ERRORS, OK

blueprint = Blueprint("plans", __name__)
EDITORS = ("admin", "planner")
VIEWERS = (*EDITORS, "supervisor")


def _store() -> Store:
    return current_app.extensions["gridmap"].store


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("send a JSON object (Content-Type: application/json)")
    return body


def _draft(name: str) -> None:
    edition = _store().get_edition(name)
    if edition.status != "draft" and request.method == "GET" and current_user().role == "supervisor":
        raise NotFound(f"no draft named {name!r}")


@blueprint.post("/api/editions")
@require_user(*EDITORS)
def create_draft():
    """Copy an edition into a new draft: {"name": …, "from": "current" | edition name}."""
    body = _body()
    created = drafts.create_draft(_store(), body.get("name"), source=body.get("from") or "current")
    return jsonify(created), 201


@blueprint.get("/api/editions/<name>/grids")
@require_user(*VIEWERS)
def draft_grids(name: str):
    """Every grid of an edition with its version (a supervisor sees their area's grids only)."""
    _draft(name)
    collection = drafts.draft_features(_store(), name)
    user = current_user()
    if not user.sees_all_areas:
        collection["features"] = [
            f
            for f in collection["features"]
            if user.covers(
                grid_code=f["properties"]["code"],
                community_code=f["properties"]["parent_code"],
                street_code=f["properties"]["parent_code"][:9],
            )
        ]
    return jsonify(collection)


@blueprint.put("/api/editions/<name>/grids/<code>")
@require_user(*EDITORS)
def save_grid(name: str, code: str):
    """Save a grid's geometry and attributes: {"geometry": GeoJSON, "version": n, …}; stale version → 409."""
    return jsonify(drafts.save_grid(_store(), name, code, _body()))


@blueprint.delete("/api/editions/<name>/grids/<code>")
@require_user(*EDITORS)
def delete_grid(name: str, code: str):
    """Delete a grid from a draft: ?version=n."""
    version = request.args.get("version", "")
    if not version.isdigit():
        raise InvalidInput("give the grid's version: ?version=n")
    drafts.delete_grid(_store(), name, code, version=int(version))
    return "", 204


@blueprint.post("/api/editions/<name>/grids")
@require_user(*EDITORS)
def add_grid(name: str):
    """Draw a new grid: {"community_code": …, "geometry": GeoJSON, "name"?, "households"?, …}."""
    return jsonify(drafts.add_grid(_store(), name, _body())), 201


@blueprint.post("/api/editions/<name>/grids/<code>/split")
@require_user(*EDITORS)
def split_grid(name: str, code: str):
    """Split a grid with a line: {"line": GeoJSON LineString} → the two new grids."""
    return jsonify(
        {"type": "FeatureCollection", "features": drafts.split_grid(_store(), name, code, _body().get("line"))}
    )


@blueprint.post("/api/editions/<name>/merge")
@require_user(*EDITORS)
def merge_grids(name: str):
    """Merge two adjacent grids of one community: {"codes": [a, b]} → the merged grid."""
    return jsonify(drafts.merge_grids(_store(), name, _body().get("codes") or []))


@blueprint.post("/api/editions/<name>/move-vertex")
@require_user(*EDITORS)
def move_vertex(name: str):
    """Move a vertex in every grid that has it: {"from": [lon, lat], "to": [lon, lat]} → the changed grids."""
    body = _body()
    changed = drafts.move_vertex(_store(), name, old=body.get("from"), new=body.get("to"))
    return jsonify({"type": "FeatureCollection", "features": changed})


@blueprint.post("/api/editions/<name>/activate")
@require_user(*EDITORS)
def activate(name: str):
    """Make a draft current: {"valid_from": "YYYY-MM-DD", "waive": [{"finding": id, "reason": …}]}."""
    body = _body()
    valid_from = None
    if body.get("valid_from"):
        try:
            valid_from = dt.date.fromisoformat(str(body["valid_from"]))
        except ValueError:
            raise InvalidInput(f"valid_from={body['valid_from']!r} is not a date like 2027-01-01") from None
    waive = body.get("waive") or []
    if not isinstance(waive, list):
        raise InvalidInput("waive must be a list of {finding, reason}")
    return jsonify(drafts.activate_draft(_store(), name, valid_from=valid_from, waive=waive))


@blueprint.get("/plans")
@require_user(*VIEWERS)
def plans_page():
    """List the editions; drafts can be opened in the editor."""
    store = _store()
    editions = [{**e.to_dict(), "areas": store.area_counts(e.name)} for e in store.list_editions()]
    return render_template("plans.html", editions=editions, can_edit=current_user().role in EDITORS)


@blueprint.get("/plans/<name>/edit")
@require_user(*VIEWERS)
def editor_page(name: str):
    """The editor: a map of the draft's grids with editing tools, the audit beside it, and activation."""
    edition = _store().get_edition(name)
    can_edit = current_user().role in EDITORS and edition.status == "draft"
    current = _store().current_edition()
    settings = current_app.extensions["gridmap"].settings
    # The editor's "propose for this street" needs each community's street.
    streets = {r["code"]: r["parent_code"] for r in _store().area_attributes(name, "community")}
    return render_template(
        "editor.html",
        edition=edition,
        can_edit=can_edit,
        current_name=current.name if current else None,
        streets=streets,
        households_range=(settings.households_min, settings.households_max),
    )


# ---- OpenAPI ---------------------------------------------------------------------------------------------
OPENAPI_PATHS: dict[str, dict] = {
    "/api/editions": {
        "post": {
            "summary": "Create a draft plan copied from an edition (planner, admin)",
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {"201": OK, **ERRORS},
        },
    },
}
