"""Photos on cases through the API and the core, on both databases: what is stored, what is served, who may see
it, the limits, the resolve rule, the storage (a directory, and an S3 bucket on a local moto server), the sweep."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from geodata import GRIDS, load_district
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from photos import COMMENT, GPS_NW_POINT, PHONE_MODEL, heic, jpeg, png, webp
from PIL import Image
from urllib3 import encode_multipart_formdata

from gridmap import attachments, people
from gridmap.attachments import images, storage
from gridmap.config import Settings
from gridmap.errors import InvalidInput
from gridmap.store import Store
from gridmap.web import create_app

NW, SW, NE, SE = (g["code"] for g in GRIDS)
WEST = "120104001001"
NW_POINT = {"lon": "117.105", "lat": "39.115"}
SE_POINT = {"lon": "117.115", "lat": "39.105"}
REPORT = {"title": "违章搭建", "description": "楼顶加盖", "category": "0101", "source": "patrol", **NW_POINT}


@dataclass
class Site:
    """An app on a fresh database with the tiny district, its users and a photo directory."""

    app: object
    store: Store
    tokens: dict
    client: object
    photos: Path

    def call(self, method, path, *, who="worker", body=None, form=None, files=(), headers=None):
        headers = {"Accept": "application/json", **(headers or {})}
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        if form is not None or files:
            data = {**(form or {}), "photos": [(io.BytesIO(content), name) for name, content in files]}
            response = self.client.open(
                path, method=method, data=data, headers=headers, content_type="multipart/form-data"
            )
        elif body is not None:
            response = self.client.open(path, method=method, json=body, headers=headers)
        else:
            response = self.client.open(path, method=method, headers=headers)
        return response

    def files(self) -> list[str]:
        """Every stored photo file (relative keys), partial files included."""
        return sorted(p.relative_to(self.photos).as_posix() for p in self.photos.rglob("*") if p.is_file())


def make_site(database_url: str, tmp_path: Path, **settings) -> Site:
    photos = tmp_path / "photos"
    settings.setdefault("attachments", str(photos))
    app = create_app(Settings(database_url=database_url, secret_key="test-secret", **settings))
    store = app.extensions["gridmap"].store
    load_district(store, tmp_path)
    tokens = {
        "admin": people.add_user(store, "管理员", role="admin"),
        "supervisor": people.add_user(store, "书记", role="supervisor", areas=[WEST]),
        "worker": people.add_user(store, "网格员", role="grid_worker", areas=[NW]),
        "se_worker": people.add_user(store, "东南网格员", role="grid_worker", areas=[SE]),
        "viewer": people.add_user(store, "观察员", role="viewer"),
    }
    return Site(app, store, tokens, app.test_client(), photos)


@pytest.fixture
def site(database_url, tmp_path):
    made = make_site(database_url, tmp_path)
    yield made
    made.store.close()


def _served(site: Site, attachment_id: int, size: str | None = None, who: str = "worker") -> bytes:
    response = site.call("GET", f"/api/attachments/{attachment_id}" + (f"?size={size}" if size else ""), who=who)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.data


# ---- reporting with photos -------------------------------------------------------------------------------------
def test_a_report_with_two_photos_stores_the_case_and_both_photos(site):
    response = site.call(
        "POST", "/api/incidents", form=REPORT, files=[("a.jpg", jpeg()), ("b.jpg", jpeg(colour=(9, 9, 9)))]
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    case = response.get_json()
    assert case["grid_code"] == NW and case["category_code"] == "0101" and case["source"] == "patrol"
    assert [a["filename"] for a in case["attachments"]] == ["a.jpg", "b.jpg"]
    assert {a["stage"] for a in case["attachments"]} == {"before"}
    # Three files per photo (as sent, display, thumbnail), and the database names every one.
    assert len(site.files()) == 6
    listed = site.call("GET", f"/api/incidents/{case['id']}/attachments").get_json()
    assert listed["count"] == 2 and listed["items"][0]["taken_at"] == "2026-11-30T10:12:13"
    assert site.store.table_counts()["attachments"] == 2
    history = site.call("GET", f"/api/incidents/{case['id']}").get_json()["history"]
    assert [h["action"] for h in history] == ["report"]
    for item in listed["items"]:
        served = _served(site, item["id"])
        assert attachments.sha256(served) == item["sha256"]
        assert Image.open(io.BytesIO(served)).size == (item["width"], item["height"]) == (640, 480)
        thumb = Image.open(io.BytesIO(_served(site, item["id"], "thumb")))
        assert thumb.format == "JPEG" and max(thumb.size) == 320


def test_exif_gps_is_in_the_upload_and_absent_from_what_is_served(site):
    sent = jpeg()
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(0x8825)  # the upload has GPS, model, comment
    assert PHONE_MODEL.encode() in sent and COMMENT in sent
    case = site.call("POST", "/api/incidents", form=REPORT, files=[("gps.jpg", sent)]).get_json()
    item = case["attachments"][0]
    for size in (None, "thumb"):
        served = _served(site, item["id"], size)
        opened = Image.open(io.BytesIO(served))
        assert dict(opened.getexif()) == {} and not opened.getexif().get_ifd(0x8825)
        assert "exif" not in opened.info and "comment" not in opened.info and "xmp" not in opened.info
        assert "icc_profile" not in opened.info
        assert b"Exif" not in served and PHONE_MODEL.encode() not in served and COMMENT not in served
        assert b"GPS" not in served
    # The file as sent is kept as evidence (never served) and matches the SHA-256 the API shows.
    key = site.store.attachments_of([case["id"]])[0]["storage_key"]
    kept = (site.photos / key / "original").read_bytes()
    assert kept == sent and attachments.sha256(kept) == item["original"]["sha256"]
    # Where the phone was is personal data: admin and supervisor see it, the worker does not.
    as_admin = site.call("GET", f"/api/incidents/{case['id']}/attachments", who="admin").get_json()["items"][0]
    assert as_admin["photo_location"] == [pytest.approx(117.105), pytest.approx(39.115)]
    assert "photo_location" not in site.call("GET", f"/api/incidents/{case['id']}/attachments").get_json()["items"][0]


def test_the_gps_of_a_photo_places_a_case_the_phone_did_not(site):
    form = {k: v for k, v in REPORT.items() if k not in ("lon", "lat")}
    case = site.call("POST", "/api/incidents", form=form, files=[("place.jpg", jpeg())]).get_json()
    assert case["grid_code"] == NW and case["geocode_level"] == "photo"
    assert (case["lon"], case["lat"]) == pytest.approx(GPS_NW_POINT)
    # No place at all (no point, no address, no GPS in the photo) is refused, and nothing is kept.
    response = site.call("POST", "/api/incidents", form=form, files=[("nogps.jpg", jpeg(gps=None))])
    assert response.status_code == 400 and "lon and lat, or an address" in response.get_json()["error"]
    assert len(site.files()) == 3


def test_heic_webp_and_png_are_accepted_and_served_as_jpeg_or_png(site):
    files = [("iphone.HEIC", heic(orientation=6)), ("shot.webp", webp()), ("screen.png", png())]
    case = site.call("POST", "/api/incidents", form=REPORT, files=files).get_json()
    rows = {r["filename"]: r for r in site.store.attachments_of([case["id"]])}
    assert rows["iphone.HEIC"]["original_type"] == "image/heic" and rows["iphone.HEIC"]["content_type"] == "image/jpeg"
    # EXIF orientation 6 (phone held upright): the served copy is turned, 640×480 → 480×640.
    assert (rows["iphone.HEIC"]["width"], rows["iphone.HEIC"]["height"]) == (480, 640)
    assert rows["iphone.HEIC"]["taken_at"] == dt.datetime(2026, 11, 30, 10, 12, 13)
    assert rows["shot.webp"]["content_type"] == "image/jpeg"
    assert rows["screen.png"]["content_type"] == "image/png"  # transparency stays PNG
    served = Image.open(io.BytesIO(_served(site, rows["iphone.HEIC"]["id"])))
    assert served.format == "JPEG" and served.size == (480, 640)
    assert Image.open(io.BytesIO(_served(site, rows["screen.png"]["id"]))).format == "PNG"


BAD_FILES = [
    ("evil.jpg", b"<?php system($_GET['c']); ?>", "is not a JPEG, PNG, WebP or HEIC image"),
    ("doc.jpg", b"%PDF-1.7\n" + b"0" * 2000, "is not a JPEG, PNG, WebP or HEIC image"),
    ("half.jpg", jpeg()[:1500], "damaged or incomplete"),
    ("anim.jpg", b"GIF89a" + b"\x00" * 100, "is not a JPEG, PNG, WebP or HEIC image"),
]


def test_a_file_that_is_not_an_image_is_refused_and_nothing_is_kept(site):
    for name, content, message in BAD_FILES:
        response = site.call("POST", "/api/incidents", form=REPORT, files=[("good.jpg", jpeg()), (name, content)])
        assert response.status_code == 400, name
        assert message in response.get_json()["error"] and repr(name) in response.get_json()["error"]
        assert site.store.table_counts()["incidents"] == 0 and site.files() == []
    # An empty file input sends a part with no name and no bytes: it is skipped, not refused.
    response = site.call("POST", "/api/incidents", form=REPORT, files=[("good.jpg", jpeg()), ("", b"")])
    assert response.status_code == 201 and len(response.get_json()["attachments"]) == 1


def test_size_and_count_limits_are_clear_413_and_400(database_url, tmp_path):
    small = make_site(database_url, tmp_path, photo_max_mb=0.05, photos_per_upload=2, photos_per_case=3)
    try:
        big = jpeg(size=(1600, 1200), colour=(1, 2, 3))
        big += b"\x00" * (60_000 - len(big))  # bytes after the JPEG's end do not matter to decoders
        response = small.call("POST", "/api/incidents", form=REPORT, files=[("big.jpg", big)])
        assert response.status_code == 413 and "'big.jpg' is larger than 0.05 MB" in response.get_json()["error"]
        response = small.call("POST", "/api/incidents", form=REPORT, files=[(f"{i}.jpg", jpeg()) for i in range(3)])
        assert response.status_code == 400 and "at most 2 go with one report" in response.get_json()["error"]
        # A request longer than every photo at its limit is refused before it is read.
        # (Encoded here: the test client would spool a body this long to a temporary file it never closes.)
        body, kind = encode_multipart_formdata({**REPORT, "description": "x" * 1_200_000})
        response = small.client.post(
            "/api/incidents",
            data=body,
            content_type=kind,
            headers={"Authorization": f"Bearer {small.tokens['worker']}"},
        )
        assert response.status_code == 413 and "at most 2 photos of 0.05 MB" in response.get_json()["error"]
        assert small.store.table_counts()["incidents"] == 0 and small.files() == []
        # Per case: two with the report, then two more with a step would make four of three allowed.
        case = small.call(
            "POST", "/api/incidents", form=REPORT, files=[("1.jpg", jpeg()), ("2.jpg", jpeg())]
        ).get_json()
        more = small.call(
            "POST",
            f"/api/incidents/{case['id']}/actions",
            who="worker",
            form={"action": "escalate"},
            files=[("3.jpg", jpeg()), ("4.jpg", jpeg())],
        )
        assert more.status_code == 400 and "limit of 3 per case" in more.get_json()["error"]
        assert len(small.files()) == 6
    finally:
        small.store.close()


# ---- scope ------------------------------------------------------------------------------------------------------
def test_a_photo_of_another_grids_case_is_404_to_a_worker(site):
    case = site.call("POST", "/api/incidents", who="se_worker", form={**REPORT, **SE_POINT}, files=[("se.jpg", jpeg())])
    assert case.status_code == 201
    case = case.get_json()
    photo = case["attachments"][0]["id"]
    for path in (
        f"/api/attachments/{photo}",
        f"/api/attachments/{photo}?size=thumb",
        f"/api/incidents/{case['id']}/attachments",
    ):
        response = site.call("GET", path, who="worker")
        assert response.status_code == 404, path
        assert response.get_json()["error"] in (f"no photo {photo}", f"no incident {case['id']}")
    # The same answer as for a photo that does not exist: nothing tells the worker it is there.
    assert site.call("GET", f"/api/attachments/{photo + 1000}", who="worker").status_code == 404
    # The case's own worker, a supervisor of the street… no: of the west community only, and admin and viewer.
    assert site.call("GET", f"/api/attachments/{photo}", who="se_worker").status_code == 200
    assert site.call("GET", f"/api/attachments/{photo}", who="supervisor").status_code == 404  # WEST ≠ east
    assert site.call("GET", f"/api/attachments/{photo}", who="admin").status_code == 200
    assert site.call("GET", f"/api/attachments/{photo}", who="viewer").status_code == 200
    assert site.call("GET", f"/api/attachments/{photo}", who=None).status_code == 401


def test_a_worker_reporting_outside_their_grids_is_refused_and_nothing_is_kept(site):
    response = site.call("POST", "/api/incidents", form={**REPORT, **SE_POINT}, files=[("x.jpg", jpeg())])
    assert response.status_code == 403
    assert "reports only inside their own areas" in response.get_json()["error"] and SE in response.get_json()["error"]
    assert site.store.table_counts()["incidents"] == 0 and site.files() == []


def test_served_photos_carry_an_etag_and_answer_304(site):
    case = site.call("POST", "/api/incidents", form=REPORT, files=[("a.jpg", jpeg())]).get_json()
    item = case["attachments"][0]
    first = site.call("GET", f"/api/attachments/{item['id']}")
    assert first.headers["ETag"] == f'"{item["sha256"]}"' and first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.headers["Cache-Control"].startswith("private")
    again = site.call("GET", f"/api/attachments/{item['id']}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert site.call("GET", f"/api/attachments/{item['id']}?size=huge").status_code == 400


# ---- workflow steps with photos ----------------------------------------------------------------------------
def _to_in_progress(site: Site, case_id: int) -> None:
    for who, body in (
        ("supervisor", {"action": "register"}),
        ("supervisor", {"action": "dispatch", "assignee": "网格员"}),
        ("worker", {"action": "start"}),
    ):
        response = site.call("POST", f"/api/incidents/{case_id}/actions", who=who, body=body)
        assert response.status_code == 200, response.get_data(as_text=True)


def test_resolve_needs_an_after_photo_when_the_category_says_so(site):
    case = site.call("POST", "/api/incidents", form=REPORT, files=[("before.jpg", jpeg())]).get_json()
    _to_in_progress(site, case["id"])
    refused = site.call("POST", f"/api/incidents/{case['id']}/actions", body={"action": "resolve", "note": "已拆除"})
    assert refused.status_code == 400
    assert "0101 私搭乱建（违章搭建） needs a photo of the result" in refused.get_json()["error"]
    resolved = site.call(
        "POST",
        f"/api/incidents/{case['id']}/actions",
        form={"action": "resolve", "note": "已拆除", "version": "4"},
        files=[("after.jpg", jpeg(colour=(200, 200, 200)))],
    )
    assert resolved.status_code == 200, resolved.get_data(as_text=True)
    shown = resolved.get_json()
    assert shown["status"] == "resolved"
    assert [(a["stage"], a["action"]) for a in shown["attachments"]] == [("before", "report"), ("after", "resolve")]
    # A category without the rule resolves without a photo, as before.
    plain = site.call("POST", "/api/incidents", body={**REPORT, "category": "0102", "lon": 117.105, "lat": 39.115})
    _to_in_progress(site, plain.get_json()["id"])
    ok = site.call("POST", f"/api/incidents/{plain.get_json()['id']}/actions", body={"action": "resolve"})
    assert ok.status_code == 200 and ok.get_json()["attachments"] == []


def test_a_refused_step_with_photos_keeps_neither_the_step_nor_the_files(site):
    case = site.call("POST", "/api/incidents", form=REPORT).get_json()
    _to_in_progress(site, case["id"])
    stale = site.call(
        "POST",
        f"/api/incidents/{case['id']}/actions",
        form={"action": "resolve", "version": "1"},
        files=[("after.jpg", jpeg())],
    )
    assert stale.status_code == 409
    illegal = site.call(
        "POST", f"/api/incidents/{case['id']}/actions", form={"action": "close"}, files=[("x.jpg", jpeg())]
    )
    assert illegal.status_code == 403  # a grid worker may not close
    assert site.files() == [] and site.store.table_counts()["attachments"] == 0
    assert site.call("GET", f"/api/incidents/{case['id']}").get_json()["status"] == "in_progress"


def test_a_step_that_loses_a_race_after_its_files_are_written_keeps_no_files(site, monkeypatch):
    case = site.call("POST", "/api/incidents", form=REPORT).get_json()
    _to_in_progress(site, case["id"])
    original = site.store.change_incident_with_attachments

    def someone_else_first(incident_id, **kwargs):
        # Another supervisor escalates the case between our checks and our write: our version is stale now.
        assert len(site.files()) == 3  # our photo's files are written at this point
        site.call("POST", f"/api/incidents/{incident_id}/actions", who="supervisor", body={"action": "supervise"})
        return original(incident_id, **kwargs)

    monkeypatch.setattr(site.store, "change_incident_with_attachments", someone_else_first)
    lost = site.call(
        "POST", f"/api/incidents/{case['id']}/actions", form={"action": "resolve"}, files=[("a.jpg", jpeg())]
    )
    assert lost.status_code == 409 and "changed by someone else" in lost.get_json()["error"]
    assert site.files() == [] and site.store.table_counts()["attachments"] == 0
    assert site.call("GET", f"/api/incidents/{case['id']}").get_json()["status"] == "in_progress"


def test_bad_multipart_fields_are_named(site):
    response = site.call("POST", "/api/incidents", form={**REPORT, "colour": "red"})
    assert response.status_code == 400 and "unknown field(s) colour" in response.get_json()["error"]
    response = site.client.post(
        "/api/incidents",
        data={**REPORT, "picture": (io.BytesIO(jpeg()), "a.jpg")},
        headers={"Authorization": f"Bearer {site.tokens['worker']}"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and "files go in the field photos, not picture" in response.get_json()["error"]
    response = site.call("POST", "/api/incidents/1/actions", form={"action": "start", "version": "two"})
    assert response.status_code == 400 and response.get_json()["error"] == "version must be a whole number"


# ---- the storage ---------------------------------------------------------------------------------------------------
def test_a_damaged_file_is_never_served_and_verify_names_it(site, caplog):
    from click.testing import CliRunner

    from gridmap.cli import main

    case = site.call("POST", "/api/incidents", form=REPORT, files=[("a.jpg", jpeg())]).get_json()
    row = site.store.attachments_of([case["id"]])[0]
    display = site.photos / row["storage_key"] / "display"
    display.write_bytes(display.read_bytes()[:-10] + b"0123456789")
    response = site.call("GET", f"/api/attachments/{row['id']}")
    assert response.status_code == 500
    assert "SHA-256" not in response.get_json()["error"] and "Traceback" not in response.get_data(as_text=True)
    assert any("does not match its SHA-256" in r.getMessage() for r in caplog.records)
    assert site.call("GET", f"/api/attachments/{row['id']}?size=thumb").status_code == 200
    env = {"GRIDMAP_ATTACHMENTS": str(site.photos)}
    result = CliRunner().invoke(main, ["attachments", "verify", "--db", site.store.url], env=env)
    assert result.exit_code == 1 and f"photo {row['id']} of case {case['id']}: display" in result.output
    assert "3 files checked, 1 problems" in result.output


def _age(path: Path, minutes: int) -> None:
    stamp = (dt.datetime.now() - dt.timedelta(minutes=minutes)).timestamp()
    os.utime(path, (stamp, stamp))


def test_the_sweep_deletes_old_orphans_only(site):
    case = site.call("POST", "/api/incidents", form=REPORT, files=[("kept.jpg", jpeg())]).get_json()
    store_ = attachments.storage_from_settings(site.app.extensions["gridmap"].settings)
    now = dt.datetime.now()
    old_orphan, young_orphan = storage.new_base(now), storage.new_base(now)
    for base in (old_orphan, young_orphan):
        store_.put(f"{base}/original", b"x", content_type="image/jpeg", sha256=attachments.sha256(b"x"))
    partial = site.photos / ".partial" / ("0" * 32 + ".tmp")
    partial.write_bytes(b"half a photo")
    for path in [*site.photos.rglob("*")]:
        if path.is_file():
            _age(path, 45)  # older than the 30-minute grace…
    _age(site.photos / young_orphan / "original", 5)  # …except one orphan still being written
    found = attachments.sweep(site.store, store_)
    assert (found.deleted, found.kept_recent) == (2, 1)
    assert not (site.photos / old_orphan).exists() and not partial.exists()
    assert (site.photos / young_orphan / "original").exists()
    key = site.store.attachments_of([case["id"]])[0]["storage_key"]
    assert sorted(p.name for p in (site.photos / key).iterdir()) == ["display", "original", "thumb"]
    # The server sweeps by itself after an upload (at most every 10 minutes), once the response is sent.
    _age(site.photos / young_orphan / "original", 45)
    attachments._last_sweeps.clear()
    response = site.call("POST", "/api/incidents", form=REPORT, files=[("next.jpg", jpeg())])
    assert response.status_code == 201 and (site.photos / young_orphan / "original").exists()
    response.close()  # what the WSGI server does once the body is sent
    assert not (site.photos / young_orphan).exists()
    assert len(site.files()) == 6


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3 (moto's server) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, request):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "gridmap-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "gridmap-test-secret")
    name = f"photos-{abs(hash(request.node.nodeid)) % 10**8}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return client, name


def test_photos_in_an_s3_bucket(database_url, tmp_path, s3_endpoint, bucket):
    client, name = bucket
    s3_site = make_site(database_url, tmp_path, attachments=f"s3://{name}/gridmap", s3_endpoint_url=s3_endpoint)
    try:
        case = s3_site.call("POST", "/api/incidents", form=REPORT, files=[("a.jpg", jpeg()), ("b.heic", heic())])
        assert case.status_code == 201, case.get_data(as_text=True)
        case = case.get_json()
        keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"])
        assert len(keys) == 6 and all(k.startswith("gridmap/") for k in keys) and s3_site.files() == []
        served = _served(s3_site, case["attachments"][1]["id"])
        assert Image.open(io.BytesIO(served)).format == "JPEG" and PHONE_MODEL.encode() not in served
        head = client.head_object(Bucket=name, Key=keys[0])
        assert head["ContentType"].startswith("image/")
        # A refused report leaves nothing in the bucket either.
        bad = s3_site.call("POST", "/api/incidents", form=REPORT, files=[("c.jpg", jpeg()), ("d.jpg", b"nope")])
        assert bad.status_code == 400 and len(client.list_objects_v2(Bucket=name)["Contents"]) == 6
        # An orphan (a killed upload) is swept once it is older than the grace; the case's files stay.
        s3 = attachments.storage_from_settings(s3_site.app.extensions["gridmap"].settings)
        orphan = storage.new_base(dt.datetime.now())
        s3.put(f"{orphan}/original", b"x", content_type="image/jpeg", sha256=attachments.sha256(b"x"))
        assert attachments.sweep(s3_site.store, s3).deleted == 0
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        assert attachments.sweep(s3_site.store, s3, now=later).deleted == 1
        assert len(client.list_objects_v2(Bucket=name)["Contents"]) == 6
        # A damaged object is refused by its checksum.
        client.put_object(
            Bucket=name, Key=f"gridmap/{s3_site.store.attachments_of([case['id']])[0]['storage_key']}/thumb", Body=b"x"
        )
        assert s3_site.call("GET", f"/api/attachments/{case['attachments'][0]['id']}?size=thumb").status_code == 500
    finally:
        s3_site.store.close()


def test_storage_settings_are_checked(tmp_path):
    assert isinstance(storage.open_storage(str(tmp_path)), storage.DirectoryStorage)
    s3 = storage.open_storage("s3://my-bucket/some/prefix", endpoint_url="http://127.0.0.1:9")
    assert (s3.bucket, s3.prefix) == ("my-bucket", "some/prefix/") and "127.0.0.1:9" in s3.describe()
    for bad in ("", "s3://", "s3://A_B", "ftp://host/dir"):
        with pytest.raises(Exception, match=r"GRIDMAP_ATTACHMENTS|bucket|directory"):
            storage.open_storage(bad)
    with pytest.raises(storage.StorageError):
        storage.DirectoryStorage(tmp_path).get("../../etc/passwd")


def test_a_missing_bucket_says_so(database_url, tmp_path, s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "gridmap-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "gridmap-test-secret")
    s3 = storage.open_storage("s3://no-such-bucket-here", endpoint_url=s3_endpoint)
    with pytest.raises(Exception, match="does not exist; create it first"):
        s3.put("2026/01/01/" + "a" * 32 + "/thumb", b"x", content_type="image/jpeg", sha256=attachments.sha256(b"x"))


# ---- the core, property-tested -------------------------------------------------------------------------------
_SAMPLE = jpeg(size=(64, 48))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_any_damaged_photo_is_either_decoded_or_refused_as_bad_input(changes):
    """Flip bytes anywhere in a JPEG: the answer is a photo or a 400, never a crash."""
    data = bytearray(_SAMPLE)
    for position, value in changes:
        data[position] = value
    try:
        photo = images.read_photo(bytes(data), filename="fuzz.jpg", max_bytes=1_000_000)
    except InvalidInput as exc:
        assert "fuzz.jpg" in exc.message
    else:
        assert Image.open(io.BytesIO(photo.display)).format == "JPEG"
        assert b"Exif" not in photo.display


@pytest.mark.parametrize(
    "gps,expected",
    [
        ({1: "S", 2: (33.0, 51.0, 36.0), 3: "W", 4: (151.0, 12.0, 0.0)}, (-151.2, -33.86)),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, (None, None)),  # no fix
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (117.0, 0.0, 0.0)}, (None, None)),  # nonsense
        ({1: "N", 2: (39.0, 6.0, 54.0)}, (None, None)),  # half a position
    ],
)
def test_exif_gps_is_read_with_its_hemispheres_and_nonsense_ignored(gps, expected):
    photo = images.read_photo(jpeg(gps=gps), filename="g.jpg", max_bytes=1_000_000)
    assert (photo.gps_lon, photo.gps_lat) == (
        pytest.approx(expected[0], abs=1e-6) if expected[0] else None,
        pytest.approx(expected[1], abs=1e-6) if expected[1] else None,
    )


def test_a_photo_with_too_many_pixels_is_refused(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 640 * 480 - 1)
    with pytest.raises(InvalidInput, match="megapixels"):
        images.read_photo(jpeg(), filename="huge.jpg", max_bytes=1_000_000)


# ---- the OpenAPI document and the migration --------------------------------------------------------------
def test_the_openapi_document_describes_uploads_and_photos(site):
    document = site.call("GET", "/api/openapi.json").get_json()
    create = document["paths"]["/api/incidents"]["post"]
    assert set(create["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "413" in create["responses"]
    act = document["paths"]["/api/incidents/{incident_id}/actions"]["post"]
    assert act["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].endswith("/ActionForm")
    served = document["paths"]["/api/attachments/{attachment_id}"]["get"]
    assert {"image/jpeg", "image/png"} <= set(served["responses"]["200"]["content"])
    assert "/api/incidents/{incident_id}/attachments" in document["paths"] and "/api/geocode" in document["paths"]
    for name in ("NewIncidentForm", "ActionForm", "Attachment", "AttachmentList", "Geocode"):
        assert name in document["components"]["schemas"]
    refs = json.dumps(document)
    for ref in {part.split('"')[0] for part in refs.split("#/components/schemas/")[1:]}:
        assert ref in document["components"]["schemas"], ref


def test_an_older_database_gets_the_attachments_table_and_keeps_its_cases(database_url):
    import sqlalchemy as sa
    from alembic import command
    from alembic.script import ScriptDirectory

    store = Store.open(database_url, create_schema=False)
    before = ScriptDirectory.from_config(store._alembic_config()).get_revision("0008").down_revision
    with store.transaction() as conn:
        conn.execute(sa.text("DROP TABLE attachments"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :before"), {"before": before})
    assert store.schema_revision() == before
    store.add_incidents([{"source": "web", "title": "旧案件", "reported_at": dt.datetime(2026, 1, 5, 9)}])
    store.close()
    upgraded = Store.open(database_url)
    assert upgraded.schema_revision() == upgraded.head_revision()
    counts = upgraded.table_counts()
    assert counts["incidents"] == 1 and counts["incident_history"] == 1 and counts["attachments"] == 0
    config = upgraded._alembic_config()
    with upgraded.transaction() as conn:  # and back down, for a rollback of the release
        config.attributes["connection"] = conn
        command.downgrade(config, before)
    assert "attachments" not in sa.inspect(upgraded.engine).get_table_names()
    upgraded.close()
