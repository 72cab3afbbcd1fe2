"""The Nominatim adapter against a small HTTP server on 127.0.0.1 that answers in Nominatim's format."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gridmap import geocode
from gridmap.config import Settings
from gridmap.errors import ServiceUnavailable

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"


def place(lat: str, lon: str, category: str, kind: str, rank: int, name: str) -> dict:
    """One search result as Nominatim's /search?format=jsonv2 writes it (numbers as strings, as it does)."""
    return {
        "place_id": 123456,
        "licence": LICENCE,
        "osm_type": "way",
        "osm_id": 987654,
        "lat": lat,
        "lon": lon,
        "category": category,
        "type": kind,
        "place_rank": rank,
        "importance": 0.00001,
        "addresstype": kind,
        "name": name,
        "display_name": f"{name}, 南开区, 天津市, 300100, 中国",
        "boundingbox": [lat, lat, lon, lon],
    }


ANSWERS = {
    "天津市南开区鞍山西道100号": [place("39.1203", "117.1622", "place", "house", 30, "鞍山西道100号")],
    "南开区天塔": [place("39.1164", "117.1668", "tourism", "attraction", 30, "天津广播电视塔")],
    "翠园小区5栋": [place("39.1011", "117.1502", "building", "yes", 30, "翠园5栋")],
}


class NominatimStandIn(BaseHTTPRequestHandler):
    """Speaks the part of Nominatim's HTTP API gridmap uses; records every request it gets."""

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.server.seen.append((time.monotonic(), url.path, query, dict(self.headers)))
        if self.server.fail_with:
            self.send_error(self.server.fail_with)
            return
        if url.path != "/search" or query.get("format") != "jsonv2":
            self.send_error(400, "Parameter 'format' must be one of: xml, json, jsonv2, geojson, geocodejson")
            return
        body = json.dumps(ANSWERS.get(query.get("q", ""), []), ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def nominatim():
    server = ThreadingHTTPServer(("127.0.0.1", 0), NominatimStandIn)
    server.seen = []
    server.fail_with = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_a_door_number_is_found_with_its_level_and_the_request_follows_the_protocol(nominatim):
    client = geocode.NominatimGeocoder(nominatim.url, min_interval=0, user_agent="gridmap-test/1")
    result = client.geocode("天津市南开区鞍山西道100号")
    assert result.found
    assert (result.lon, result.lat) == (117.1622, 39.1203)
    assert result.level == "door"
    assert result.confidence == pytest.approx(geocode.CONFIDENCE["door"] * geocode.ONLINE_CONFIDENCE_FACTOR)
    assert result.entry.name.startswith("鞍山西道100号")
    (_, path, query, headers) = nominatim.seen[0]
    assert path == "/search"
    assert query == {
        "q": "天津市南开区鞍山西道100号",
        "format": "jsonv2",
        "limit": "1",
        "countrycodes": "cn",
        "accept-language": "zh",
    }
    assert headers["User-Agent"] == "gridmap-test/1"


@pytest.mark.parametrize(
    ("address", "level"), [("南开区天塔", "poi"), ("翠园小区5栋", "building"), ("天津市南开区鞍山西道100号", "door")]
)
def test_levels_come_from_category_and_type(nominatim, address, level):
    assert geocode.NominatimGeocoder(nominatim.url, min_interval=0).geocode(address).level == level


def test_an_unknown_address_is_a_not_found_result(nominatim):
    result = geocode.NominatimGeocoder(nominatim.url, min_interval=0).geocode("火星路1号")
    assert not result.found and result.lon is None and result.level is None


def test_answers_are_cached_in_the_store_and_never_asked_twice(nominatim, store):
    first = geocode.NominatimGeocoder(nominatim.url, store=store, min_interval=0)
    assert first.geocode("南开区天塔").found
    assert first.geocode("南开区天塔").found
    assert not first.geocode("火星路1号").found
    assert not first.geocode("火星路1号").found  # "nothing there" is remembered too
    assert len(nominatim.seen) == 2
    # A new process (a new client on the same database) still does not ask again.
    again = geocode.NominatimGeocoder(nominatim.url, store=store, min_interval=0)
    assert again.geocode("南开区天塔").lon == 117.1668
    assert len(nominatim.seen) == 2


def test_requests_are_spaced_by_the_minimum_interval(nominatim):
    client = geocode.NominatimGeocoder(nominatim.url, min_interval=0.25)
    for address in ("南开区天塔", "翠园小区5栋", "火星路1号"):
        client.geocode(address)
    arrivals = [seen[0] for seen in nominatim.seen]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 2
    assert min(gaps) >= 0.24


def test_a_failing_server_is_a_503_naming_the_host_only(nominatim):
    nominatim.fail_with = 500
    client = geocode.NominatimGeocoder(nominatim.url + "/?key=secret", min_interval=0)
    with pytest.raises(ServiceUnavailable, match=r"answered HTTP 500") as caught:
        client.geocode("南开区天塔")
    assert caught.value.status == 503
    assert "secret" not in caught.value.message
    assert f"127.0.0.1:{nominatim.server_address[1]}" in caught.value.message


def test_an_unreachable_server_is_a_503():
    client = geocode.NominatimGeocoder("http://127.0.0.1:9", min_interval=0, timeout=2)
    with pytest.raises(ServiceUnavailable, match="did not answer"):
        client.geocode("南开区天塔")


def test_configured_fallback_asks_the_server_only_for_what_the_gazetteer_cannot_place(nominatim, store, tmp_path):
    source = tmp_path / "gazetteer.csv"
    source.write_text("kind,name,lon,lat\nestate,朝园里,117.11,39.11\n", encoding="utf-8")
    geocode.load_gazetteer(store, source)
    settings = Settings(geocoder="nominatim", nominatim_url=nominatim.url, geocoder_min_interval=0.0)
    geocoder = geocode.store_geocoder(store, settings)
    offline = geocoder.geocode("朝园里")
    assert offline.found and offline.level == "estate" and offline.lon == 117.11
    assert nominatim.seen == []
    online = geocoder.geocode("南开区天塔")
    assert online.found and online.level == "poi"
    assert len(nominatim.seen) == 1


def test_the_gazetteer_is_rebuilt_only_when_it_is_replaced(store, tmp_path):
    source = tmp_path / "gazetteer.csv"
    source.write_text("kind,name,lon,lat\nestate,朝园里,117.11,39.11\n", encoding="utf-8")
    geocode.load_gazetteer(store, source)
    first = geocode.store_gazetteer(store)
    assert geocode.store_gazetteer(store) is first
    source.write_text("kind,name,lon,lat\nestate,翠园,117.12,39.12\n", encoding="utf-8")
    geocode.load_gazetteer(store, source)
    second = geocode.store_gazetteer(store)
    assert second is not first
    assert second.geocode("翠园").found and not second.geocode("朝园里").found
