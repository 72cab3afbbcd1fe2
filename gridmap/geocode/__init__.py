"""Chinese address geocoding: an offline gazetteer (标准地址库) by default, online geocoders behind it.

The package is split by concern: `normalise` (widths, numerals, unit words), `jurisdiction` (the deployment's
province, city, districts and streets), `parse` (road + number, lanes, ranges, junctions, offsets), `entries`
(gazetteer rows, files, tagging from boundaries), `roads` (doors along one road, junctions), `index` (the
gazetteer and its matcher), `result` (answers and calibrated confidence), `online` (Nominatim), `review`
(low-confidence cases: the review filter and a person's point) and `calibration` (held-out checks of the
confidence). This module keeps the public names and the `verb(store, …)` wrappers the CLI and web call.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gridmap.errors import ConfigError, InvalidInput

from .entries import (
    GAZETTEER_COLUMNS,
    KINDS,
    Area,
    GazetteerEntry,
    entry_row,
    read_gazetteer_file,
    read_gazetteer_rows,
    tag_entries,
)
from .index import GENERIC_NAMES, Gazetteer
from .jurisdiction import Jurisdiction, Place
from .match import CHAIN_MIN
from .normalise import chinese_numeral_to_int, normalize_address, normalize_building, normalize_number
from .online import ONLINE_CONFIDENCE_FACTOR, FallbackGeocoder, NominatimGeocoder, nominatim_level
from .parse import ParsedAddress, parse_address
from .result import CONFIDENCE, LEVELS, REVIEW_BELOW, Geocoder, GeocodeResult

__all__ = [
    "CHAIN_MIN",
    "CONFIDENCE",
    "GAZETTEER_COLUMNS",
    "GENERIC_NAMES",
    "KINDS",
    "LEVELS",
    "ONLINE_CONFIDENCE_FACTOR",
    "REVIEW_BELOW",
    "Area",
    "FallbackGeocoder",
    "Gazetteer",
    "GazetteerEntry",
    "GeocodeResult",
    "Geocoder",
    "Jurisdiction",
    "NominatimGeocoder",
    "ParsedAddress",
    "Place",
    "ReviewedGeocoder",
    "chinese_numeral_to_int",
    "entry_row",
    "geocode_address",
    "load_gazetteer",
    "nominatim_level",
    "normalize_address",
    "normalize_building",
    "normalize_number",
    "parse_address",
    "read_gazetteer_file",
    "read_gazetteer_rows",
    "store_gazetteer",
    "store_geocoder",
    "store_jurisdiction",
    "tag_entries",
]


class ReviewedGeocoder:
    """A geocoder whose answers are flagged for review below the deployment's confidence threshold."""

    def __init__(self, geocoder: Geocoder, review_below: float = REVIEW_BELOW) -> None:
        self.geocoder = geocoder
        self.review_below = review_below

    def geocode(self, address: str) -> GeocodeResult:
        """Return the wrapped geocoder's answer with `review` set by the threshold."""
        result = self.geocoder.geocode(address)
        result.review = (not result.found) or result.confidence < self.review_below
        return result


# ---- the store-backed gazetteer ------------------------------------------------------------------------------
_gazetteers: dict[str, tuple[tuple, Gazetteer]] = {}
_gazetteer_lock = threading.Lock()
_online: dict[tuple[str, str], NominatimGeocoder] = {}


def load_gazetteer(store, path: Path, *, crs: str = "wgs84") -> int:
    """Replace the store's gazetteer with a file's entries (all or nothing)."""
    entries = read_gazetteer_file(path, crs=crs)
    if not entries:
        raise InvalidInput(f"{Path(path).name}: has no entries")
    return store.replace_gazetteer([entry_row(e) for e in entries])


def _boundaries(store) -> tuple[list[Area], list[Area]]:
    # The current edition's districts and streets.
    edition = store.current_edition()
    if edition is None:
        return [], []
    counts = store.area_counts(edition.name)
    found: dict[str, list[Area]] = {}
    for level in ("district", "street"):
        frame = store.areas(edition.name, level) if counts.get(level) else None
        found[level] = (
            []
            if frame is None
            else [
                Area(code, name, parent, geometry)
                for code, name, parent, geometry in zip(
                    frame["code"], frame["name"], frame["parent_code"], frame.geometry, strict=True
                )
            ]
        )
    return found["district"], found["street"]


def store_jurisdiction(store, settings=None, *, districts=(), streets=()) -> Jurisdiction:
    """Return the jurisdiction: the setting GRIDMAP_JURISDICTION plus the districts and streets the data has."""
    declared = Jurisdiction.parse(getattr(settings, "jurisdiction", "") or "")
    return declared.with_data(
        districts=[(a.code, a.name) for a in districts],
        streets=[(a.name, next((d.name for d in districts if d.code == a.parent_code), None)) for a in streets],
    )


def store_gazetteer(store, settings=None) -> Gazetteer:
    """Return the store's gazetteer, tagged from the current boundaries; rebuilt only when either changes."""
    setting = getattr(settings, "jurisdiction", "") or ""
    edition = store.current_edition()
    counts = store.area_counts(edition.name) if edition else {}
    fingerprint = (
        store.gazetteer_fingerprint(),
        edition.name if edition else None,
        counts.get("district", 0),
        counts.get("street", 0),
        setting,
    )
    with _gazetteer_lock:
        cached = _gazetteers.get(store.url)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
    districts, streets = _boundaries(store)
    entries = tag_entries(read_gazetteer_rows(store.gazetteer_rows()), districts=districts, streets=streets)
    jurisdiction = store_jurisdiction(store, settings, districts=districts, streets=streets)
    gazetteer = Gazetteer(entries, jurisdiction=jurisdiction)
    with _gazetteer_lock:
        _gazetteers[store.url] = (fingerprint, gazetteer)
    return gazetteer


def store_geocoder(store, settings=None) -> Geocoder:
    """Return the geocoder the settings ask for: the store's gazetteer, then Nominatim when configured."""
    gazetteer = store_gazetteer(store, settings)
    review_below = getattr(settings, "geocode_review_below", REVIEW_BELOW)
    if not 0 <= review_below <= 1:
        raise ConfigError(f"GRIDMAP_GEOCODE_REVIEW_BELOW must be a confidence between 0 and 1, not {review_below}")
    choice = getattr(settings, "geocoder", "gazetteer")
    if choice == "gazetteer":
        return ReviewedGeocoder(gazetteer, review_below)
    if choice == "nominatim":
        key = (settings.nominatim_url, store.url)
        with _gazetteer_lock:
            # One client per server and database, so the spacing of requests holds across callers.
            online = _online.get(key)
            if online is None:
                online = _online[key] = NominatimGeocoder(
                    settings.nominatim_url,
                    store=store,
                    min_interval=settings.geocoder_min_interval,
                    user_agent=settings.geocoder_user_agent,
                )
        return ReviewedGeocoder(FallbackGeocoder([gazetteer, online]), review_below)
    raise InvalidInput(f"geocoder must be gazetteer or nominatim, not {choice!r}")


def geocode_address(store, address: str, *, settings=None, locate: bool = False) -> dict:
    """Geocode one address: the JSON answer (and with `locate` the grid of its point) for the CLI and the API."""
    from gridmap import assign

    result = store_geocoder(store, settings).geocode(address)
    answer = result.to_dict()
    if result.found and locate:
        answer["grid"] = assign.locate(store, lon=result.lon, lat=result.lat)
    return answer
