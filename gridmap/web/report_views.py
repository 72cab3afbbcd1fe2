"""The report form `/cases/new`: a grid worker reports a case from a phone, with photos as evidence.

The page places the case with the phone's location (browser geolocation) on a small map where the marker can
be dragged, or with an address (`GET /api/geocode`), or with a click; it shows the grid the point falls in
(`/api/locate`, the one rule) before anything is sent and refuses a point outside the worker's own grids. The
form is sent as multipart/form-data to `POST /api/incidents` by the page's script (static/report.js), or to
`POST /cases/new` when scripts are off; either way the case and its photos are stored all or nothing.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from gridmap import assets, cases, maps
from gridmap.errors import Forbidden, GridmapError
from gridmap.web import attachment_views
from gridmap.web.auth import current_user, require_user

blueprint = Blueprint("report", __name__)
FORM_FIELDS = (
    "title", "description", "category", "lon", "lat", "address", "reporter_name", "reporter_phone", "source",
)  # fmt: skip
SOURCE_NAMES = {
    "patrol": _l("Patrol"),
    "visit": _l("Door-to-door visit"),
    "chat": _l("Residents' chat group"),
    "hotline": _l("12345 hotline"),
    "video": _l("Video"),
    "higher": _l("Passed down by a higher office"),
}
GRID_ZOOM = 15  # outlines simplified for a street-level view: small enough for a phone on mobile data


def _settings():
    return current_app.extensions["gridmap"].settings


def _may_report():
    user = current_user()
    if user.role not in cases.ACTING_ROLES:
        raise Forbidden(f"a {user.role} may not report cases")
    return user


def _basemap() -> dict | None:
    """Return the configured basemap when it is drawn in WGS84 (the phone's GPS); Amap's GCJ-02 is left out."""
    settings = _settings()
    name = (getattr(settings, "map_basemap", "none") or "none").strip().lower()
    if name == "none":
        return None
    layers = maps.basemap_layers([name], tianditu_key=getattr(settings, "tianditu_key", "") or "")
    return layers[0] if layers and layers[0]["crs"] == "wgs84" else None


def _page_config() -> dict:
    user = current_user()
    _storage, limits = attachment_views.upload_state()
    return {
        "api": {
            "grids": f"/api/map/grids?zoom={GRID_ZOOM}",
            "locate": "/api/locate",
            "geocode": "/api/geocode",
            "report": "/api/incidents",
        },
        "user": {"role": user.role, "areas": list(user.areas), "all": user.sees_all_areas},
        "limits": {"max_bytes": limits.max_bytes, "per_upload": limits.per_upload},
        "basemap": _basemap(),
        "text": {
            "locating": _("Finding your location…"),
            "located": _("Location from the phone (± {metres} m)"),
            "no_location": _("No location from the phone: drag the marker, tap the map or search an address."),
            "grid": _("Grid"),
            "not_yours": _(
                "This point lies in grid {grid}, which is not one of yours: "
                "a grid worker reports only inside their own grids."
            ),
            "outside": _("This point lies in no grid of the district."),
            "nearest": _("Nearest grid: {grid}, {metres} m away."),
            "on_edge": _("On the edge of several grids; the rule gives it to the one with the lowest code."),
            "pick_point": _("Place the case first: use the phone's location, tap the map or search an address."),
            "address_not_found": _("Address not found; pick the point on the map."),
            "photo_gps": _("This photo was taken at a recorded place."),
            "use_photo_place": _("Use the photo's place"),
            "taken": _("Taken"),
            "remove": _("Remove"),
            "too_many": _("At most {count} photos can be sent with one report."),
            "too_big": _("{name} is larger than {mb} MB."),
            "not_image": _("{name} is not a photo (JPEG, PNG, WebP or HEIC)."),
            "sending": _("Sending… {percent}%"),
            "failed": _("The report was not saved:"),
            "network": _("The network failed; nothing was saved. Try again."),
            "need_title": _("Give the case a title."),
            "need_category": _("Choose a category."),
            "zoom_in": _("Zoom in"),
            "zoom_out": _("Zoom out"),
        },
    }


def _render(values=None, error: str | None = None, status: int = 200):
    assets.require_installed()
    categories = cases.load_categories()
    classes: dict[str, list[dict]] = {}
    for row in categories:
        classes.setdefault(row["class_code"], []).append(row)
    page = render_template(
        "case_new.html",
        classes=list(classes.values()),
        source_names=SOURCE_NAMES,
        config=_page_config(),
        values=values or {},
        error=error,
    )
    return page, status


@blueprint.get("/cases/new")
@require_user(*cases.ACTING_ROLES)  # the roles the case rules let report
def new_case():
    """The report form: place, category, title, description, photos, reporter."""
    _may_report()
    return _render()


@blueprint.post("/cases/new")
@require_user(*cases.ACTING_ROLES)  # the roles the case rules let report
def submit_case():
    """Report from the form when scripts are off; show the new case, or the form again with what was wrong."""
    _may_report()
    form = request.form
    fields = {name: (form.get(name) or "").strip() or None for name in FORM_FIELDS}
    try:
        incident = attachment_views.report(
            title=fields["title"],
            description=fields["description"],
            lon=fields["lon"],
            lat=fields["lat"],
            address=fields["address"],
            category_code=fields["category"],
            reporter_name=fields["reporter_name"],
            reporter_phone=fields["reporter_phone"],
            source=fields["source"] or "patrol",
            settings=_settings(),
        )
    except GridmapError as exc:
        if exc.status >= 500:
            raise
        return _render(values=form, error=exc.message, status=exc.status)
    return redirect(f"/cases/{incident['id']}", code=303)


def _store():
    return current_app.extensions["gridmap"].store
