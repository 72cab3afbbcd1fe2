"""The JSON API."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

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
