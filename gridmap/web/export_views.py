"""Downloads of the tables users see, as XLSX or CSV (`gridmap.exports`).

Each export takes exactly the filters of its page and shows exactly what the page shows the user: the same
scope, the same masking of reporters' names and phones, headers in the page's language.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from gridmap import audit, cases, clock, exports, people
from gridmap.web.audit_views import audit_options, edition_named, edition_pair
from gridmap.web.auth import current_user, require_user
from gridmap.web.case_views import _calendar, _filters, period, stat_filters
from gridmap.web.i18n import current_language

blueprint = Blueprint("exports", __name__)


def _state():
    return current_app.extensions["gridmap"]


def _format() -> str:
    return exports.check_format((request.args.get("format") or "xlsx").lower())


def _download(tables: list[exports.Table], stem: str) -> Response:
    fmt = _format()
    data = exports.write(tables, fmt, lang=current_language())
    response = Response(data, mimetype=exports.mime_type(fmt))
    response.headers["Content-Disposition"] = f'attachment; filename="{exports.filename(stem, fmt)}"'
    # Exports hold personal data masked for this user only: never from a shared cache.
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.get("/cases/export")
@require_user()
def export_cases():
    """Download the case list with the list's filters (?format=xlsx|csv&status=&grid=&…), every page of it."""
    _format()  # refuse a wrong format before reading every case
    user = current_user()
    now = clock.now()
    calendar = _calendar()
    rows = cases.list_cases(_state().store, user=user, **_filters(), limit=None, now=now)
    # Traffic lights of every open case at once (numpy), then each case as the list shows it, masked.
    lit = [r for r in rows if r["status"] not in cases.FINISHED_STATUSES]
    lights = dict(
        zip(
            (r["id"] for r in lit),
            cases.traffic_lights_many(
                [r["reported_at"] for r in lit], [r["deadline"] for r in lit], now=now, calendar=calendar
            ),
            strict=True,
        )
    )
    items = (
        cases.present(r, user=user, now=now, calendar=calendar, light=lights.get(r["id"]), with_actions=False)
        for r in rows
    )
    return _download([exports.case_table(items, lang=current_language())], "cases")


@blueprint.get("/stats/export")
@require_user()
def export_stats():
    """Download the indicators (?format=&by=&from=&to=&street=&community=&category=&source=), as /api/stats."""
    by = request.args.get("by") or "total"
    start, end = period()
    result = cases.stats(
        _state().store, user=current_user(), by=by, reported_from=start, reported_to=end, **stat_filters()
    )
    names = area_names() if by in ("grid", "community", "street") else {}
    if by == "category":
        names = {c["code"]: c["name"] if current_language() == "zh" else c["name_en"] for c in cases.load_categories()}
    return _download(exports.stats_tables(result, lang=current_language(), names=names), f"indicators-{by}")


def area_names() -> dict[str, str]:
    """Return code → name of every area of the current edition (empty when there is none)."""
    store = _state().store
    edition = store.current_edition()
    return {r["code"]: r["name"] for r in store.area_attributes(edition.name)} if edition else {}


@blueprint.get("/audit/export")
@require_user()
def export_audit():
    """Download the audit's findings and balance (?format=&edition=&households_min=&…), as on /audit."""
    edition = edition_named(request.args.get("edition"))
    report = audit.audit_edition(_state().store, edition, user=current_user(), **audit_options())
    return _download(exports.audit_tables(report, lang=current_language()), "audit")


@blueprint.get("/compare/export")
@require_user(*people.SEES_EVERYTHING)
def export_compare():
    """Download a comparison of editions a and b (?format=&a=&b=), as on /compare."""
    a, b = edition_pair()
    report = audit.compare_editions(_state().store, a, b, user=current_user(), **audit_options())
    return _download(exports.compare_tables(report, lang=current_language()), "comparison")
