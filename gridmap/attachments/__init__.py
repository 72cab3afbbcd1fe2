"""Photos on cases (拍照取证): evidence with the report, the result with `resolve`, and with any other step.

A photo is checked whole before anything is written: its size, the count, and its pixels decoded by Pillow
(`images`). Then its three files (as sent, display copy, thumbnail) go to the storage (`storage`: a directory
or an S3-compatible bucket), and only then is the case or step written together with the photo rows in one
database transaction. A process killed in between leaves files that no row names: `sweep` deletes those once
they are older than SWEEP_GRACE (far longer than any request takes), and the web server runs it by itself at
most every SWEEP_EVERY. A case is therefore never half-created, and orphan files never live long.

Photos follow their case: whoever may see the case may see its photos, anyone else gets 404 as for the case.
What is served carries no EXIF (no place, no phone); the file as sent is kept, never served, and its SHA-256
is shown so the evidence can be checked.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gridmap import cases, clock
from gridmap.errors import InvalidInput, NotFound

from .images import ACCEPTED_NAMES, Photo, TooLarge, read_photo, sha256
from .storage import DirectoryStorage, S3Storage, Storage, StorageError, new_base, open_storage

__all__ = [
    "ACCEPTED_NAMES",
    "Limits",
    "Photo",
    "Storage",
    "StorageError",
    "TooLarge",
    "Upload",
    "act",
    "report",
    "storage_from_settings",
    "sweep",
]

log = logging.getLogger(__name__)
SIZES = ("display", "thumb")
STAGES = {"report": "before", "resolve": "after"}  # photos with any other step are "during"
SWEEP_GRACE = dt.timedelta(minutes=30)
SWEEP_EVERY = dt.timedelta(minutes=10)
_VARIANTS = (("original", "original_sha256"), ("display", "sha256"), ("thumb", "thumb_sha256"))


@dataclass(frozen=True)
class Limits:
    """How much may be sent: bytes per photo, photos per request, photos per case."""

    max_bytes: int = 15_000_000
    per_upload: int = 9
    per_case: int = 30

    @property
    def request_bytes(self) -> int:
        """The largest multipart request worth reading: every photo at its limit plus room for the fields."""
        return self.per_upload * self.max_bytes + 1_000_000


@dataclass(frozen=True)
class Upload:
    """A file as received: the name the sender gave it and its bytes."""

    filename: str
    data: bytes


def limits_from_settings(settings) -> Limits:
    """Return the limits of the settings `photo_max_mb`, `photos_per_upload` and `photos_per_case`."""
    limits = Limits(
        max_bytes=int(float(getattr(settings, "photo_max_mb", 15)) * 1_000_000),
        per_upload=int(getattr(settings, "photos_per_upload", 9)),
        per_case=int(getattr(settings, "photos_per_case", 30)),
    )
    if limits.max_bytes <= 0 or limits.per_upload <= 0 or limits.per_case <= 0:
        raise InvalidInput("photo limits must be positive (GRIDMAP_PHOTO_MAX_MB, GRIDMAP_PHOTOS_PER_*)")
    return limits


def storage_from_settings(settings) -> DirectoryStorage | S3Storage:
    """Return the storage the setting `attachments` names (a directory or s3://BUCKET[/PREFIX])."""
    return open_storage(
        settings.attachments,
        endpoint_url=getattr(settings, "s3_endpoint_url", ""),
        region=getattr(settings, "s3_region", ""),
    )


# ---- writing ---------------------------------------------------------------------------------------------
def check_count(count: int, limits: Limits, *, existing: int = 0) -> None:
    """Refuse more photos than one request or one case may hold."""
    if count > limits.per_upload:
        raise InvalidInput(f"{count} photos were sent; at most {limits.per_upload} go with one report or step")
    if existing + count > limits.per_case:
        raise InvalidInput(
            f"the case has {existing} photos; {count} more would pass the limit of {limits.per_case} per case"
        )


def read_uploads(uploads: Sequence[Upload], limits: Limits) -> list[Photo]:
    """Check and decode every upload (nothing is written); the first bad one is refused with its name."""
    check_count(len(uploads), limits)
    return [read_photo(u.data, filename=u.filename, max_bytes=limits.max_bytes) for u in uploads]


def _write(storage: Storage, photos: Sequence[Photo], *, user, action: str, now: dt.datetime) -> list[dict]:
    """Store every photo's three files and return the rows that describe them; undo what was written on failure."""
    rows: list[dict] = []
    try:
        for photo in photos:
            base = new_base(now)
            row = {
                "action": action,
                "storage_key": base,
                "filename": photo.filename,
                "original_type": photo.original_type,
                "original_bytes": len(photo.original),
                "original_sha256": photo.original_sha256,
                "content_type": photo.display_type,
                "width": photo.width,
                "height": photo.height,
                "bytes": len(photo.display),
                "sha256": sha256(photo.display),
                "thumb_bytes": len(photo.thumb),
                "thumb_sha256": sha256(photo.thumb),
                "taken_at": photo.taken_at,
                "gps_lon": photo.gps_lon,
                "gps_lat": photo.gps_lat,
                "uploaded_by": user.name,
                "uploaded_at": now,
            }
            rows.append(row)
            for variant, data, kind in (
                ("original", photo.original, photo.original_type),
                ("display", photo.display, photo.display_type),
                ("thumb", photo.thumb, "image/jpeg"),
            ):
                storage.put(f"{base}/{variant}", data, content_type=kind, sha256=sha256(data))
    except BaseException:
        _discard(storage, rows)
        raise
    return rows


def _discard(storage: Storage, rows: Iterable[Mapping]) -> None:
    """Delete the files of photos that were not stored after all (best effort: the sweep gets the rest)."""
    for row in rows:
        for variant, _ in _VARIANTS:
            try:
                storage.delete(f"{row['storage_key']}/{variant}")
            except Exception:  # the request already failed; its orphan is the sweep's now
                log.warning("could not delete %s/%s; the sweep will", row["storage_key"], variant)


def report(
    store, storage: Storage, *, user, uploads: Sequence[Upload] = (), limits: Limits | None = None, **fields
) -> dict:
    """Report a case with photos: checked, stored, and written with the case in one transaction.

    Without lon/lat or an address, the GPS in a photo's EXIF (the first that has one) places the case; the
    incident then records geocode_level "photo". Returns the stored incident with its `attachments`.
    """
    photos = read_uploads(uploads, limits or Limits())
    from_photo = False
    if fields.get("lon") is None and fields.get("lat") is None and not fields.get("address"):
        placed = next((p for p in photos if p.gps_lon is not None), None)
        if placed is not None:
            fields.update(lon=placed.gps_lon, lat=placed.gps_lat, crs="wgs84")
            from_photo = True
    row = cases.prepare_report(store, user=user, **fields)
    if from_photo:
        row.update(geocode_level="photo", geocode_confidence=None)
    if not photos:
        (incident_id,) = store.add_incidents([row], actor=user.name)
        return {**store.get_incident(incident_id), "attachments": []}
    written = _write(storage, photos, user=user, action="report", now=row["reported_at"])
    try:
        incident_id = store.add_incident_with_attachments(row, actor=user.name, attachments=written)
    except BaseException:
        _discard(storage, written)
        raise
    return {**store.get_incident(incident_id), "attachments": store.attachments_of([incident_id])}


def act(
    store,
    storage: Storage,
    incident_id: int,
    *,
    user,
    uploads: Sequence[Upload] = (),
    limits: Limits | None = None,
    now: dt.datetime | None = None,
    **step,
) -> dict:
    """Take a workflow step with photos (resolve may need one: the category's after_photo), all or nothing."""
    limits = limits or Limits()
    now = (now or clock.now()).replace(microsecond=0)
    incident, changes, history = cases.prepare_action(
        store, incident_id, user=user, photo_count=len(uploads), now=now, **step
    )
    if not uploads:
        return store.change_incident(incident_id, version=incident["version"], changes=changes, history=history)
    check_count(len(uploads), limits, existing=store.count_attachments(incident_id))
    photos = read_uploads(uploads, limits)
    written = _write(storage, photos, user=user, action=history["action"], now=now)
    try:
        return store.change_incident_with_attachments(
            incident_id, version=incident["version"], changes=changes, history=history, attachments=written
        )
    except BaseException:
        _discard(storage, written)
        raise


# ---- reading -----------------------------------------------------------------------------------------------
def url(attachment_id: int, size: str = "display") -> str:
    """Return the API path of a photo (`size` thumb for the thumbnail)."""
    return f"/api/attachments/{attachment_id}" + ("?size=thumb" if size == "thumb" else "")


def stage(action: str) -> str:
    """Return before (with the report), after (with resolve) or during (with any other step)."""
    return STAGES.get(action, "during")


def present(row: Mapping, *, user) -> dict:
    """Return the JSON shape of a photo for this user (where the phone was only for admin and supervisor)."""
    shown = {
        "id": row["id"],
        "incident_id": row["incident_id"],
        "stage": stage(row["action"]),
        "action": row["action"],
        "filename": row["filename"],
        "content_type": row["content_type"],
        "width": row["width"],
        "height": row["height"],
        "bytes": row["bytes"],
        "sha256": row["sha256"],
        "original": {"type": row["original_type"], "bytes": row["original_bytes"], "sha256": row["original_sha256"]},
        # The phone's clock from EXIF, whose offset no one knows: written as it was, without one.
        "taken_at": row["taken_at"].isoformat(timespec="seconds") if row["taken_at"] else None,
        "uploaded_by": row["uploaded_by"],
        "uploaded_at": clock.iso(row["uploaded_at"]),  # the server's Shanghai time, with its offset
        "url": url(row["id"]),
        "thumb_url": url(row["id"], "thumb"),
    }
    if user.role in cases.SEES_PERSONAL_DATA:
        has_gps = row.get("gps_lon") is not None
        shown["photo_location"] = [row["gps_lon"], row["gps_lat"]] if has_gps else None
    return shown


def case_photos(store, incident_id: int, *, user) -> list[dict]:
    """Return the photos of a case the user may see (404 as for the case otherwise), oldest first."""
    cases.get_case(store, incident_id, user=user)
    return [present(row, user=user) for row in store.attachments_of([incident_id])]


def attachment_for(store, attachment_id: int, *, user) -> dict:
    """Return one photo row if the user may see its case; otherwise NotFound, as if it did not exist."""
    row = store.get_attachment(attachment_id)
    codes = {key: row[key] for key in ("grid_code", "community_code", "street_code")}
    if not user.covers(**codes):
        raise NotFound(f"no photo {attachment_id}")
    return row


def read_file(storage: Storage, row: Mapping, size: str = "display") -> bytes:
    """Return the bytes of a photo's display copy or thumbnail, checked against the stored SHA-256."""
    if size not in SIZES:
        raise InvalidInput(f"size must be {' or '.join(SIZES)}, not {size!r}")
    column = dict(_VARIANTS)[size]
    data = storage.get(f"{row['storage_key']}/{size}")
    if sha256(data) != row[column]:
        raise StorageError(f"photo {row['id']} ({size}) does not match its SHA-256: the stored file is damaged")
    return data


def photo_urls(store, incident_ids: Iterable[int], *, size: str = "display") -> dict[int, list[str]]:
    """Return each incident's photo URLs (API paths, report photos first), e.g. for Open311's media_url."""
    found: dict[int, list[str]] = {}
    for row in store.attachments_of(incident_ids):
        found.setdefault(row["incident_id"], []).append(url(row["id"], size))
    return found


def popup_photos(store, incident_id: int) -> list[dict]:
    """Return the thumbnails a map popup shows: the first photo before and the latest after, when there are."""
    rows = store.attachments_of([incident_id])
    before = next((r for r in rows if stage(r["action"]) == "before"), None)
    after = next((r for r in reversed(rows) if stage(r["action"]) == "after"), None)
    chosen = [r for r in (before, after) if r is not None] or rows[:1]
    return [{"id": r["id"], "stage": stage(r["action"]), "thumb_url": url(r["id"], "thumb")} for r in chosen]


def first_thumbnails(store, incident_ids: Iterable[int]) -> dict[int, str]:
    """Return the thumbnail URL of each incident's first photo (for lists)."""
    first: dict[int, str] = {}
    for row in store.attachments_of(incident_ids):
        first.setdefault(row["incident_id"], url(row["id"], "thumb"))
    return first


# ---- keeping the storage clean ------------------------------------------------------------------------------
@dataclass
class SweepReport:
    """What a sweep looked at and removed."""

    listed: int = 0
    deleted: int = 0
    kept_recent: int = 0


def sweep(
    store, storage: Storage, *, older_than: dt.timedelta = SWEEP_GRACE, days: int | None = 2, now=None
) -> SweepReport:
    """Delete files no photo row names that are older than `older_than` (left by a killed request).

    Keys start with their day, so only the last `days` days are listed (None: everything).
    """
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - older_than
    local = now.astimezone().replace(tzinfo=None)
    if days is None:
        prefixes = [""]
    else:
        # Keys carry the server's local day; a day either side covers any clock or zone difference.
        prefixes = sorted({f"{local - dt.timedelta(days=d):%Y/%m/%d}" for d in range(-1, days + 1)})
    report = SweepReport()
    candidates: dict[str, list[str]] = {}
    for prefix in prefixes:
        for key, written in storage.keys(prefix):
            report.listed += 1
            if written > cutoff:
                report.kept_recent += 1
                continue
            if key.startswith(".partial/"):
                storage.delete_partial(key)
                report.deleted += 1
                continue
            candidates.setdefault(key.rsplit("/", 1)[0], []).append(key)
    if isinstance(storage, DirectoryStorage) and days is not None:
        for key, written in storage.keys(".partial"):
            report.listed += 1
            if written <= cutoff:
                storage.delete_partial(key)
                report.deleted += 1
    known = store.known_attachment_keys(candidates)
    for base, keys in candidates.items():
        if base in known:
            continue
        for key in keys:
            storage.delete(key)
            report.deleted += 1
    if report.deleted:
        log.info("photo sweep: deleted %d orphan files from %s", report.deleted, storage.describe())
    return report


_last_sweeps: dict[tuple[str, str], dt.datetime] = {}
_sweep_lock = threading.Lock()


def sweep_due(store, storage: Storage, *, now: dt.datetime | None = None) -> int | None:
    """Say whether this process should sweep now: None (not yet), else how many days to look back
    (a month the first time a process sweeps, so a restart after a crash finds what the crash left)."""
    now = now or dt.datetime.now(dt.UTC)
    key = (store.url, storage.describe())
    with _sweep_lock:
        last = _last_sweeps.get(key)
        if last is not None and now - last < SWEEP_EVERY:
            return None
        _last_sweeps[key] = now
    return 31 if last is None else 2


def verify(store, storage: Storage) -> tuple[int, list[str]]:
    """Check every stored file against its SHA-256; return (files checked, problems)."""
    checked, problems = 0, []
    after = 0
    while page := store.attachment_page(after_id=after):
        for row in page:
            for variant, column in _VARIANTS:
                checked += 1
                try:
                    data = storage.get(f"{row['storage_key']}/{variant}")
                except StorageError as exc:
                    problems.append(f"photo {row['id']} of case {row['incident_id']}: {exc.message}")
                    continue
                if sha256(data) != row[column]:
                    where = f"photo {row['id']} of case {row['incident_id']}"
                    problems.append(f"{where}: {variant} does not match its SHA-256")
        after = page[-1]["id"]
    return checked, problems
