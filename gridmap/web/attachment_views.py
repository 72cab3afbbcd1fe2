"""Photos of cases over HTTP: the attachment API, multipart uploads for the case API and pages, the gallery.

`GET /api/incidents/<id>/attachments` lists a case's photos; `GET /api/attachments/<id>[?size=thumb]` serves
one (display copy or thumbnail, never the file as sent). Both follow the case's scope: a photo of a case the
user may not see is 404, like the case. `POST /api/incidents` and `/api/incidents/<id>/actions` take
multipart/form-data too: the JSON fields as form fields, the files in `photos` (case_views calls `report`,
`act` and `form_fields` here).
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Flask, Response, after_this_request, current_app, jsonify, request
from flask_babel import lazy_gettext as _l

from gridmap import attachments
from gridmap.errors import InvalidInput
from gridmap.web import case_openapi
from gridmap.web.auth import current_user, require_user
from gridmap.web.openapi import DATE_TIME, choice, json_response, path_param, query

blueprint = Blueprint("attachments", __name__)
MAX_WORKING_TIME = 10_000  # hours or days of an extension, as cases.prepare_action checks for `extend`
log = logging.getLogger(__name__)
STAGE_NAMES = {"before": _l("Before: with the report"), "during": _l("While handling"), "after": _l("After: result")}


# ---- the app's shared parts -------------------------------------------------------------------------------
def upload_state() -> tuple:
    """Return (storage, limits) for the app's settings, made once per app."""
    settings = current_app.extensions["gridmap"].settings
    cached = current_app.extensions.get("gridmap_attachments")
    if cached is None or cached[0] is not settings:
        cached = (settings, attachments.storage_from_settings(settings), attachments.limits_from_settings(settings))
        current_app.extensions["gridmap_attachments"] = cached
    return cached[1], cached[2]


def _store():
    return current_app.extensions["gridmap"].store


def init_uploads(app: Flask) -> None:
    """Bound multipart requests before anything reads them (the CSRF check reads forms): call before auth."""
    app.before_request(_bound_upload)


def _bound_upload() -> None:
    if request.mimetype != "multipart/form-data":
        return
    _storage, limits = upload_state()
    request.max_content_length = limits.request_bytes
    request.max_form_parts = limits.per_upload + 50
    length = request.content_length
    if length is not None and length > limits.request_bytes:
        raise attachments.TooLarge(
            f"the request is {length / 1e6:.1f} MB; at most {limits.per_upload} photos of "
            f"{limits.max_bytes / 1e6:g} MB each can be sent at once"
        )


# ---- reading uploads --------------------------------------------------------------------------------------
def is_multipart() -> bool:
    """Whether this request is a multipart/form-data upload."""
    return request.mimetype == "multipart/form-data"


def form_fields(allowed: tuple[str, ...]) -> dict:
    """Return a multipart request's form fields as the JSON body would give them (empty fields left out)."""
    if "photos" in request.form:  # a part without a filename arrives as text, its bytes lost
        raise InvalidInput("photos must be sent as files: each part needs a filename")
    unknown = sorted(set(request.form) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(allowed)} and photos")
    files = sorted(set(request.files) - {"photos"})
    if files:
        raise InvalidInput(f"files go in the field photos, not {', '.join(files)}")
    body: dict = {}
    for name in request.form:
        value = request.form.get(name, "").strip()
        if value:
            body[name] = value
    if "version" in body:  # as in a JSON body: any whole number (a stale one is 409)
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", body["version"]):
            raise InvalidInput("version must be a whole number")
        body["version"] = int(body["version"])
    return body


def uploads() -> list[attachments.Upload]:
    """Read the files of the `photos` field (a file input left empty sends nothing and is skipped)."""
    if not is_multipart():
        return []
    _storage, limits = upload_state()
    files = [f for f in request.files.getlist("photos") if f.filename or f.content_length]
    attachments.check_count(len(files), limits)
    read = []
    for file in files:
        data = file.stream.read(limits.max_bytes + 1)
        name = attachments.images.clean_filename(file.filename)
        if len(data) > limits.max_bytes:
            raise attachments.TooLarge(f"photo {name!r} is larger than {limits.max_bytes / 1e6:g} MB")
        if data:
            read.append(attachments.Upload(filename=name, data=data))
    return read


def _sweep_after_response() -> None:
    """Now and then, once the response is sent, delete files a killed request left behind."""
    store = _store()
    storage, _limits = upload_state()
    days = attachments.sweep_due(store, storage)
    if days is None:
        return

    def run() -> None:
        try:
            attachments.sweep(store, storage, days=days)
        except Exception:  # a sweep that fails now runs again later; it must not fail a request
            log.exception("the photo sweep failed")

    @after_this_request
    def later(response: Response) -> Response:
        response.call_on_close(run)
        return response


def report(**fields) -> dict:
    """Report a case with the request's photos (see gridmap.attachments.report)."""
    storage, limits = upload_state()
    incident = attachments.report(_store(), storage, user=current_user(), uploads=uploads(), limits=limits, **fields)
    if incident["attachments"]:
        _sweep_after_response()
    return incident


def _check_working_time(step: dict) -> None:
    """Check hours and days whatever the step, as the description does (only `extend` uses them)."""
    for name in ("hours", "days"):
        value = step.get(name)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | str)
            or (
                isinstance(value, str) and not is_multipart()  # a JSON body sends numbers; a form, text
            )
        ):
            raise InvalidInput(f"{name} must be a number")
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"{name} must be a number, not {str(value)[:30]!r}") from None
        if not 0 < number <= MAX_WORKING_TIME:  # NaN fails too
            raise InvalidInput(f"{name} must be a positive number of working {name} up to {MAX_WORKING_TIME}")


def act(incident_id: int, **step) -> dict:
    """Take a workflow step with the request's photos (see gridmap.attachments.act)."""
    _check_working_time(step)
    storage, limits = upload_state()
    sent = uploads()
    incident = attachments.act(_store(), storage, incident_id, user=current_user(), uploads=sent, limits=limits, **step)
    if sent:
        _sweep_after_response()
    return incident


def listed(incident: dict) -> dict:
    """Return {"attachments": […]} of an incident as the current user may see them."""
    user = current_user()
    rows = incident.get("attachments")
    if rows is None:
        rows = _store().attachments_of([incident["id"]])
    return {"attachments": [attachments.present(r, user=user) for r in rows]}


def gallery(incident: dict) -> list[dict]:
    """Return the case page's photo groups: before, during, after (each with its photos), empty ones left out."""
    user = current_user()
    reported = incident.get("reported_at")
    groups = {stage: [] for stage in STAGE_NAMES}
    for row in _store().attachments_of([incident["id"]]):
        shown = attachments.present(row, user=user)
        # An "after" photo taken before the case was even reported proves nothing: say so beside it.
        shown["taken_before_report"] = bool(
            shown["stage"] == "after" and row["taken_at"] and reported and row["taken_at"] < reported
        )
        groups[shown["stage"]].append(shown)
    return [{"stage": s, "name": STAGE_NAMES[s], "photos": p} for s, p in groups.items() if p]


def first_thumbnails(incident_ids) -> dict[int, str]:
    """Return incident id → thumbnail URL of its first photo, for lists."""
    return attachments.first_thumbnails(_store(), incident_ids)


def popup_photos(incident_id: int) -> list[dict]:
    """Return the map popup's thumbnails, each with its label in the page's language."""
    return [{**p, "label": str(STAGE_NAMES[p["stage"]])} for p in attachments.popup_photos(_store(), incident_id)]


# ---- the API ----------------------------------------------------------------------------------------------
@blueprint.get("/api/incidents/<int:incident_id>/attachments")
@require_user()
def list_attachments(incident_id: int):
    """List a case's photos (404 when the case is outside the caller's scope)."""
    found = attachments.case_photos(_store(), incident_id, user=current_user())
    return jsonify({"items": found, "count": len(found)})


@blueprint.get("/api/attachments/<int:attachment_id>")
@require_user()
def get_attachment(attachment_id: int):
    """Serve a photo without metadata (?size=thumb for the thumbnail); 404 outside the caller's scope."""
    size = request.args.get("size") or "display"
    if size not in attachments.SIZES:
        raise InvalidInput(f"size must be {' or '.join(attachments.SIZES)}, not {size!r}")
    row = attachments.attachment_for(_store(), attachment_id, user=current_user())
    etag = row["sha256"] if size == "display" else row["thumb_sha256"]
    headers = {
        # The bytes under an id never change; who may see them might, so only the browser keeps them.
        "Cache-Control": "private, max-age=86400",
        "ETag": f'"{etag}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    storage, _limits = upload_state()
    data = attachments.read_file(storage, row, size)
    kind = row["content_type"] if size == "display" else "image/jpeg"
    return Response(data, mimetype=kind, headers=headers)


# ---- OpenAPI ----------------------------------------------------------------------------------------------
TOO_LARGE = case_openapi.TOO_LARGE
OPENAPI_PATHS: dict[str, dict] = {
    "/api/incidents/{incident_id}/attachments": {
        "get": {
            "summary": "A case's photos, oldest first (404 when the case is outside the caller's scope)",
            "parameters": [path_param("incident_id", "integer")],
            "responses": {"200": json_response("#/components/schemas/AttachmentList")},
        }
    },
    "/api/attachments/{attachment_id}": {
        "get": {
            "summary": "One photo, re-encoded without EXIF (no place, no phone); 404 outside the caller's scope",
            "parameters": [
                path_param("attachment_id", "integer"),
                query(
                    "size",
                    "display (default: long side ≤ 2000 px) or thumb (≤ 320 px JPEG)",
                    choice(attachments.SIZES),
                ),
            ],
            "responses": {
                "200": {
                    "description": "The image",
                    "content": {
                        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                        "image/png": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "304": {"description": "Not modified (If-None-Match matched the ETag, the SHA-256)"},
            },
        }
    },
}

_PHOTOS = {
    "type": "array",
    "items": {"type": "string", "format": "binary"},
    "description": "JPEG, PNG, WebP or HEIC photos (HEIC is converted); each ≤ GRIDMAP_PHOTO_MAX_MB (15 MB), "
    "at most GRIDMAP_PHOTOS_PER_UPLOAD (9) per request and GRIDMAP_PHOTOS_PER_CASE (30) per case; "
    "413 when too large, 400 when not an image",
}


def _form_field(schema: dict) -> dict:
    """A JSON field's schema as a form field: text has no null (an empty or missing field is "not given")."""
    field = dict(schema)
    if isinstance(field.get("type"), list):
        kinds = [t for t in field["type"] if t != "null"]
        field["type"] = kinds[0] if len(kinds) == 1 else kinds
    if "enum" in field:
        field["enum"] = [v for v in field["enum"] if v is not None]
    return field


def _with_photos(schema: dict, *, place_from_photos: bool = False) -> dict:
    fields = {name: _form_field(field) for name, field in schema["properties"].items()}
    form = {**schema, "properties": {**fields, "photos": _PHOTOS}}
    if place_from_photos:  # no lon/lat and no address: then a photo's EXIF GPS must place the case
        from_photos = {"required": ["photos"], "not": case_openapi.PLACE[1]["not"]}
        form["allOf"] = [
            {"anyOf": [*part["anyOf"], from_photos]} if part.get("anyOf") is case_openapi.PLACE else part
            for part in schema.get("allOf", [])
        ]
    return form


OPENAPI_SCHEMAS: dict[str, dict] = {
    # Form fields are the JSON body's fields plus photos, flattened (an allOf with a closed NewIncident would
    # refuse `photos`). Without lon/lat or address, the GPS in a photo's EXIF places a new case: a request
    # whose photos carry none is 400, as one without a place at all.
    "NewIncidentForm": _with_photos(case_openapi.OPENAPI_SCHEMAS["NewIncident"], place_from_photos=True),
    "ActionForm": _with_photos(case_openapi.OPENAPI_SCHEMAS["Action"]),
    "Attachment": {
        "type": "object",
        "required": [
            "id",
            "incident_id",
            "stage",
            "action",
            "filename",
            "content_type",
            "width",
            "height",
            "bytes",
            "sha256",
            "taken_at",
            "uploaded_by",
            "uploaded_at",
            "url",
            "thumb_url",
        ],
        "properties": {
            "id": {"type": "integer"},
            "incident_id": {"type": "integer"},
            "stage": {"type": "string", "enum": ["before", "during", "after"]},
            "action": {"type": "string", "description": "the workflow step it came with (report, resolve, …)"},
            "filename": {"type": "string"},
            "content_type": {"type": "string"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "bytes": {"type": "integer"},
            "sha256": {"type": "string", "description": "of the served display copy"},
            "original": {
                "type": "object",
                "description": "the file as sent (kept as evidence, never served)",
                "properties": {"type": {"type": "string"}, "bytes": {"type": "integer"}, "sha256": {"type": "string"}},
            },
            "taken_at": {
                "type": ["string", "null"],
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$",
                "description": "from EXIF: the phone's clock, whose offset EXIF does not say (so none is given)",
            },
            "photo_location": {
                "type": ["array", "null"],
                "items": {"type": "number"},
                "description": "[lon, lat] from EXIF; only for admin and supervisor",
            },
            "uploaded_by": {"type": "string"},
            "uploaded_at": DATE_TIME,
            "url": {"type": "string"},
            "thumb_url": {"type": "string"},
        },
    },
    "AttachmentList": {
        "type": "object",
        "required": ["items", "count"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
            "count": {"type": "integer"},
        },
    },
}
