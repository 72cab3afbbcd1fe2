"""Online geocoders: a Nominatim client (rate-limited, answers cached in the store) and a fallback chain."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping

from gridmap.errors import ServiceUnavailable

from .entries import GazetteerEntry
from .parse import parse_address
from .result import CONFIDENCE, Geocoder, GeocodeResult

# Nominatim answers in OpenStreetMap's WGS84, so its points need no conversion. Its own ranking ("importance")
# says how notable a place is, not how well it matched, so confidence comes from the level matched, a notch
# below the offline gazetteer's for the same level.
ONLINE_CONFIDENCE_FACTOR = 0.9
_POI_CATEGORIES = {"amenity", "shop", "tourism", "office", "leisure", "healthcare", "craft", "historic"}


def nominatim_level(place: Mapping) -> str:
    """Map a Nominatim (format=jsonv2) place to one of LEVELS by its category, type and place rank."""
    category = place.get("category") or place.get("class") or ""
    kind = place.get("type") or ""
    rank = int(place.get("place_rank") or 0)
    if category == "building" or kind in ("apartments", "residential_building"):
        return "building"
    if kind == "house" or (category == "place" and kind == "house"):
        return "door"
    if category in _POI_CATEGORIES:
        return "poi"
    if kind in ("residential", "neighbourhood", "quarter", "allotments") or category == "landuse":
        return "estate"
    if category == "highway" or rank in (26, 27):
        return "road"
    return "community"


class NominatimGeocoder:
    """A Geocoder asking a Nominatim server, never faster than `min_interval`, remembering answers in a store."""

    provider = "nominatim"

    def __init__(
        self,
        base_url: str,
        *,
        store=None,
        min_interval: float = 1.0,
        user_agent: str = "gridmap",
        timeout: float = 10.0,
        country_codes: str = "cn",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.store = store
        self.min_interval = min_interval
        self.user_agent = user_agent
        self.timeout = timeout
        self.country_codes = country_codes
        self.requests_sent = 0
        self._lock = threading.Lock()
        self._last_request = float("-inf")

    def _host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc or self.base_url

    def _ask(self, query: str) -> str:
        params = urllib.parse.urlencode(
            {"q": query, "format": "jsonv2", "limit": 1, "countrycodes": self.country_codes, "accept-language": "zh"}
        )
        request = urllib.request.Request(
            f"{self.base_url}/search?{params}", headers={"User-Agent": self.user_agent, "Accept": "application/json"}
        )
        # One request at a time, spaced by min_interval: the service's usage policy, not a politeness.
        with self._lock:
            wait = self._last_request + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read().decode("utf-8")
            except urllib.error.HTTPError as exc:
                exc.close()  # an HTTPError holds the open response
                raise ServiceUnavailable(f"the geocoder at {self._host()} answered HTTP {exc.code}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise ServiceUnavailable(f"the geocoder at {self._host()} did not answer ({reason})") from None
            finally:
                self._last_request = time.monotonic()
                self.requests_sent += 1
        return body

    def geocode(self, address: str) -> GeocodeResult:
        """Return where `address` is according to the server; found=False when it knows no such place."""
        parsed = parse_address(address)
        query = str(address).strip()
        body = self.store.cached_geocode(self.provider, query) if self.store is not None else None
        if body is None:
            body = self._ask(query)
            try:
                json.loads(body)
            except ValueError:
                raise ServiceUnavailable(f"the geocoder at {self._host()} sent something that is not JSON") from None
            if self.store is not None:
                self.store.cache_geocode(self.provider, query, body)
        places = json.loads(body)
        if not isinstance(places, list) or not places:
            return GeocodeResult(False, None, None, None, 0.0, None, parsed.normalized)
        place = places[0]
        try:
            lon, lat = float(place["lon"]), float(place["lat"])
        except (KeyError, TypeError, ValueError):
            raise ServiceUnavailable(f"the geocoder at {self._host()} sent a place without lon/lat") from None
        level = nominatim_level(place)
        entry = GazetteerEntry(kind=level, name=str(place.get("display_name") or query), lon=lon, lat=lat)
        confidence = round(CONFIDENCE[level] * ONLINE_CONFIDENCE_FACTOR, 3)
        return GeocodeResult(True, lon, lat, level, confidence, entry, parsed.normalized)


class FallbackGeocoder:
    """Ask each geocoder in turn and return the first that finds the address (else the first one's answer)."""

    def __init__(self, geocoders: Iterable[Geocoder]) -> None:
        self.geocoders = list(geocoders)

    def geocode(self, address: str) -> GeocodeResult:
        """Return the first found result, or the first geocoder's not-found result with its suggestions."""
        first = None
        for geocoder in self.geocoders:
            result = geocoder.geocode(address)
            if result.found:
                return result
            first = first or result
        return first
