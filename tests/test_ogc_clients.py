"""OGC API – Features read by real clients nobody here wrote: GDAL's OAPIF driver (through pyogrio) and OWSLib.

Both backends; the demo district (1,464 grids) with cases, served by `gridmap serve` in its own process.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pyogrio
import pytest
import requests
import shapely
from conftest import BACKENDS
from ogc_server import start_demo_server
from pyproj import Transformer

from gridmap import cases, people

FIGURES = ("households", "population", "staff")  # null for anonymous callers, as on the start page
# The wheel's GDAL was linked against a newer libcurl than Debian 12's; it warns, and works.
pytestmark = pytest.mark.filterwarnings("ignore:GDAL was built against curl")


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    yield from start_demo_server(request, request.param, tmp_path_factory.mktemp(f"ogc-{request.param}"))


@pytest.fixture(scope="module")
def stored(server):
    store = server.store()
    edition = store.current_edition().name
    frames = {level: store.areas(edition, level).set_index("code") for level in ("grid", "community", "street")}
    store.close()
    return frames


def _read(server, layer, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return pyogrio.read_dataframe(f"OAPIF:{server.base}/ogc", layer=layer, **kwargs)


@pytest.fixture
def asked(server):
    """Return a function giving the item requests the server received since this test started (decoded)."""
    from urllib.parse import unquote

    start = len(server.requests_seen())
    return lambda: [unquote(line) for line in server.requests_seen()[start:] if "/items" in line]


@pytest.fixture
def bearer():
    """Make GDAL send an API token (GDAL_HTTP_AUTH=BEARER; the OAPIF driver overrides GDAL_HTTP_HEADERS)."""

    def use(token: str) -> None:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": "BEARER", "GDAL_HTTP_BEARER": token})

    yield use
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})


# ---- GDAL / pyogrio ------------------------------------------------------------------------------------------
def test_gdal_lists_the_layers_and_reads_every_grid_with_identical_geometry(server, stored, bearer):
    layers = dict(pyogrio.list_layers(f"OAPIF:{server.base}/ogc"))
    assert {"grids", "communities", "streets", "districts"} <= set(layers)
    assert "incidents" not in layers  # anonymous callers are not offered the cases
    bearer(server.tokens["viewer"])  # the figures (households, population, staff) are for signed-in callers
    frame = _read(server, "grids")
    assert len(frame) == 1464
    assert frame.crs.to_string() in ("OGC:CRS84", "EPSG:4326")
    expected = stored["grid"]
    frame = frame.set_index("code")
    assert sorted(frame.index) == sorted(expected.index)
    got = frame.geometry.values
    want = expected.geometry.reindex(frame.index).values
    assert shapely.equals_exact(got, want, tolerance=1e-9).all()
    for figure in FIGURES:
        assert (frame[figure] == expected[figure].reindex(frame.index)).all(), figure
    assert (frame["name"] == expected["name"].reindex(frame.index)).all()


def test_gdal_reads_the_same_grids_anonymously_without_their_figures(server, stored):
    frame = _read(server, "grids").set_index("code")
    expected = stored["grid"]
    assert sorted(frame.index) == sorted(expected.index)
    want = expected.geometry.reindex(frame.index).values
    assert shapely.equals_exact(frame.geometry.values, want, tolerance=1e-9).all()
    assert (frame["name"] == expected["name"].reindex(frame.index)).all()
    assert (frame["kind"] == expected["kind"].reindex(frame.index)).all()
    for figure in FIGURES:
        assert frame[figure].isna().all(), figure  # every grid is there, none with a figure
        assert expected[figure].notna().all(), figure  # ...though the database has them all


def test_gdal_reads_the_other_levels(server, stored):
    for layer, level in (("communities", "community"), ("streets", "street")):
        frame = _read(server, layer).set_index("code")
        assert len(frame) == len(stored[level])
        want = stored[level].geometry.reindex(frame.index).values
        assert shapely.equals_exact(frame.geometry.values, want, tolerance=1e-9).all()
    assert len(_read(server, "districts")) == 1


def test_gdal_sends_bbox_and_cql2_to_the_server(server, stored, asked, bearer):
    grids = stored["grid"]
    west, south, east, north = 117.12, 39.10, 117.14, 39.12
    in_box = set(grids.index[shapely.intersects(grids.geometry.values, shapely.box(west, south, east, north))])
    frame = _read(server, "grids", bbox=(west, south, east, north))
    assert set(frame["code"]) == in_box and 0 < len(in_box) < 1464
    assert any(re.search(r"bbox=117\.12", line) and line.endswith(" 200") for line in asked())

    bearer(server.tokens["viewer"])  # filtering on figures needs them: anonymous callers get them null
    where = "households > 450 AND kind = '综合' AND NOT (staff BETWEEN 2 AND 3)"
    expected = grids[(grids.households > 450) & (grids.kind == "综合") & ~grids.staff.between(2, 3)]
    frame = _read(server, "grids", where=where)
    assert sorted(frame["code"]) == sorted(expected.index) and 0 < len(expected) < 1464
    sent = [line for line in asked() if "filter=" in line]
    assert sent, "GDAL evaluated the filter itself instead of sending it"
    assert "households > 450" in sent[-1] and sent[-1].endswith(" 200")


@pytest.mark.parametrize("crs", ["EPSG:4490", "EPSG:3857"])
def test_gdal_asks_for_a_crs_and_gets_the_same_places(server, stored, crs, asked):
    frame = _read(server, "grids", CRS=crs, max_features=50).set_index("code")
    assert frame.crs.to_epsg() == int(crs.split(":")[1])
    assert any(f"crs=http://www.opengis.net/def/crs/EPSG/0/{crs.split(':')[1]}" in line for line in asked())
    want = stored["grid"].geometry.reindex(frame.index).values
    if crs == "EPSG:3857":
        to_mercator = Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True)
        want = shapely.transform(want, lambda xy: np.column_stack(to_mercator.transform(xy[:, 0], xy[:, 1])))
        assert shapely.equals_exact(frame.geometry.values, want, tolerance=1e-3).all()  # millimetres
    else:
        # GDAL hands the geometry back in GIS order (lon, lat) whatever order the server used.
        assert shapely.equals_exact(frame.geometry.values, want, tolerance=1e-9).all()


@pytest.mark.parametrize("epsg", ["4326", "4490"])
def test_epsg_4326_and_4490_are_latitude_first_in_answers_and_in_bbox(server, stored, epsg):
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    url = f"{server.base}/ogc/collections/grids/items"
    plain = requests.get(url, params={"limit": 3}, timeout=30)
    flipped = requests.get(url, params={"limit": 3, "crs": uri}, timeout=30)
    assert plain.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    assert flipped.headers["Content-Crs"] == f"<{uri}>"
    for a, b in zip(plain.json()["features"], flipped.json()["features"], strict=True):
        lon_lat = np.array(a["geometry"]["coordinates"][0][0])
        lat_lon = np.array(b["geometry"]["coordinates"][0][0])
        assert np.allclose(lon_lat[:, ::-1], lat_lon, atol=1e-9, rtol=0)
        assert 39 < lat_lon[0][0] < 40 and 117 < lat_lon[0][1] < 118
    # bbox in bbox-crs is in that CRS's axis order too: south,west,north,east.
    box = {"bbox": "39.10,117.12,39.12,117.14", "bbox-crs": uri, "limit": 2000}
    swapped = requests.get(url, params=box, timeout=30).json()
    straight = requests.get(url, params={"bbox": "117.12,39.10,117.14,39.12", "limit": 2000}, timeout=30).json()
    assert swapped["numberMatched"] == straight["numberMatched"] > 0


def test_gdal_with_a_grid_workers_token_sees_only_their_cases_masked(server, bearer):
    bearer(server.tokens["grid_worker"])
    frame = _read(server, "incidents")
    store = server.store()
    try:
        worker = people.user_for_token(store, server.tokens["grid_worker"])
        expected = cases.list_cases(store, user=worker, limit=None)
    finally:
        store.close()
    assert len(frame) == len(expected) > 0
    assert set(frame["grid_code"]) == {server.worker_grid}
    phones = frame["reporter_phone"].dropna()
    assert len(phones) and phones.str.contains(r"\*\*\*\*").all()
    names = frame["reporter_name"].dropna()
    assert len(names) and names.str.contains(r"\*").all()


def test_gdal_reads_all_cases_with_an_admin_token_unmasked(server, bearer):
    bearer(server.tokens["admin"])
    frame = _read(server, "incidents", where="status = 'closed'")
    assert len(frame) == 100  # every closed demo case
    assert not frame["reporter_phone"].dropna().str.contains(r"\*").any()


# ---- OWSLib ----------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def owslib_headers():
    """Put back OWSLib's module-wide request headers: `headers=` updates that shared dict (OWSLib 0.35), so one
    client's token would otherwise ride along with every later client's requests (each client below is used
    to the end before the next is made)."""
    from owslib import ogcapi

    saved = dict(ogcapi.REQUEST_HEADERS)
    yield
    ogcapi.REQUEST_HEADERS.clear()
    ogcapi.REQUEST_HEADERS.update(saved)


def _pages(client, collection: str, limit: int, **params) -> list[dict]:
    found, offset = [], 0
    while True:
        page = client.collection_items(collection, limit=limit, offset=offset, **params)
        found += page["features"]
        assert page["numberReturned"] == len(page["features"])
        if not any(link["rel"] == "next" for link in page["links"]):
            assert len(found) == page["numberMatched"]
            return found
        offset += limit


def test_owslib_reads_collections_and_pages_through_every_grid(server, stored):
    from owslib.ogcapi.features import Features

    client = Features(f"{server.base}/ogc")  # anonymous: used to the end before the signed-in client is made
    conformance = client.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conformance
    ids = [c["id"] for c in client.collections()["collections"]]
    assert ids[:4] == ["grids", "communities", "streets", "districts"]
    assert client.collection("grids")["storageCrs"].endswith("CRS84")
    grids = _pages(client, "grids", 400)
    assert len(grids) == 1464 and len({f["id"] for f in grids}) == 1464
    assert all(f["properties"][figure] is None for f in grids for figure in FIGURES)
    assert set(client.collection_queryables("grids")["properties"]) >= {"code", "households", "geometry"}
    hidden = client.collection_items("grids", limit=1464, filter="households > 450")
    assert hidden["numberMatched"] == 0  # filters see the masked figures: nothing to find by searching

    signed = Features(f"{server.base}/ogc", headers=server.headers("viewer"))
    grids = _pages(signed, "grids", 400)
    assert len(grids) == 1464
    expected = stored["grid"]
    for figure in FIGURES:
        assert {f["id"]: f["properties"][figure] for f in grids} == expected[figure].to_dict(), figure
    few = signed.collection_items("grids", limit=1464, filter="households > 450 AND name LIKE '%1%'")
    assert 0 < few["numberMatched"] < 1464
    assert all(f["properties"]["households"] > 450 and "1" in f["properties"]["name"] for f in few["features"])


def test_owslib_pages_through_a_grid_workers_cases_only(server):
    from owslib.ogcapi.features import Features

    worker = Features(f"{server.base}/ogc", headers=server.headers("grid_worker"))
    assert "incidents" in [c["id"] for c in worker.collections()["collections"]]
    found = _pages(worker, "incidents", 3)
    assert found and {f["properties"]["grid_code"] for f in found} == {server.worker_grid}
    assert all("****" in (f["properties"]["reporter_phone"] or "****") for f in found)
    supervisor = Features(f"{server.base}/ogc", headers=server.headers("supervisor"))
    theirs = _pages(supervisor, "incidents", 200)
    assert {f["properties"]["community_code"] for f in theirs} == {server.supervisor_community}
    assert len(theirs) >= len(found)
    assert not any("*" in (f["properties"]["reporter_phone"] or "") for f in theirs)  # supervisors see phones
    viewer = Features(f"{server.base}/ogc", headers=server.headers("viewer"))
    everything = viewer.collection_items("incidents", limit=1)
    assert everything["numberMatched"] == 500


def test_a_masked_phone_cannot_be_searched_for(server):
    store = server.store()
    try:
        case = next(c for c in store.list_incidents(limit=None) if c["reporter_phone"])
    finally:
        store.close()
    search = {"filter": f"reporter_phone = '{case['reporter_phone']}'", "limit": 5}
    url = f"{server.base}/ogc/collections/incidents/items"
    viewer = requests.get(url, params=search, headers=server.headers("viewer"), timeout=30).json()
    admin = requests.get(url, params=search, headers=server.headers("admin"), timeout=30).json()
    assert viewer["numberMatched"] == 0 and admin["numberMatched"] >= 1
