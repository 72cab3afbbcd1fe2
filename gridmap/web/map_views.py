"""Map pages and the GeoJSON behind them (filled in by the maps work)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("maps", __name__)
