"""The JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from gridmap import assign, crs
from gridmap.errors import InvalidInput
from gridmap.store import Store

blueprint = Blueprint("api", __name__)


def _store() -> Store:
    return current_app.extensions["gridmap"].store


@blueprint.get("/editions")
def list_editions():
    """List the editions with their status and area counts."""
    store = _store()
    return jsonify([{**e.to_dict(), "areas": store.area_counts(e.name)} for e in store.list_editions()])


@blueprint.get("/health")
def health():
    """Say the service is up and which schema revision the database is at."""
    return jsonify({"status": "ok", "schema": _store().schema_revision()})


def _number(name: str) -> float:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        raise InvalidInput(f"missing query parameter {name!r}")
    return crs.parse_number(raw, name)


@blueprint.get("/locate")
def locate():
    """Find the grid of a point: ?lon=&lat=[&crs=wgs84|cgcs2000|gcj02|bd09][&edition=]."""
    result = assign.locate(
        _store(),
        lon=_number("lon"),
        lat=_number("lat"),
        crs=request.args.get("crs", "wgs84"),
        edition=request.args.get("edition") or None,
    )
    return jsonify(result)
