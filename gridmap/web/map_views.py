"""The case map: the /map page and the GeoJSON behind it (/api/map/...).

Every route needs a signed-in user (session or Bearer token). Grid outlines are not personal and everyone
signed in sees them all; case counts, case points and case details follow the user's scope (a grid worker
sees only the cases of their own grids; other grids show "n/a", another grid's case is 404).

The heavy parts are cached in memory: simplified geometry per (edition, its revision, level, zoom level, CRS)
and the open cases with their traffic lights per (incidents revision, 5-minute clock tick), so a filter change
re-reads nothing from the database. Both revisions are one indexed row each, read on every request, so a change
made by any process shows on the next request.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import threading
from collections import OrderedDict, defaultdict
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request
from flask_babel import gettext as _

from gridmap import assets, buildings, clock, maps, people
from gridmap.errors import InvalidInput, NotFound
from gridmap.store import Store
from gridmap.web import attachment_views, i18n
from gridmap.web.access import visible_edition
from gridmap.web.auth import current_user, require_user

# The description of these routes lives beside them in map_openapi; web/openapi gathers it from here.
from gridmap.web.map_openapi import LEVELS, OPENAPI_PATHS, OPENAPI_SCHEMAS

__all__ = ["OPENAPI_PATHS", "OPENAPI_SCHEMAS", "blueprint"]

blueprint = Blueprint("maps", __name__)
log = logging.getLogger(__name__)
_GZIP_MIN_BYTES = 1024  # below this gzip saves less than its header costs
_CACHE_SIZE = 32
_CLOCK_TICK = dt.timedelta(minutes=5)  # traffic lights are recomputed at most this often


def _store() -> Store:
    return current_app.extensions["gridmap"].store


def _settings():
    return current_app.extensions["gridmap"].settings


class _Cache:
    """A small thread-safe LRU of computed values, one per app; one lock per key, so different layers are
    computed side by side while concurrent requests for the same layer wait for one computation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: OrderedDict = OrderedDict()
        self.computing: dict = {}

    def get(self, key, compute):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            key_lock = self.computing.setdefault(key, threading.Lock())
        with key_lock:
            with self.lock:
                if key in self.items:
                    return self.items[key]
            value = compute()
            with self.lock:
                self.items[key] = value
                self.computing.pop(key, None)
                while len(self.items) > _CACHE_SIZE:
                    self.items.popitem(last=False)
            return value


def _cache() -> _Cache:
    return current_app.extensions.setdefault("gridmap_map_cache", _Cache())


def _now() -> dt.datetime:
    # Incidents store naive Shanghai times (gridmap.clock); compare like with like.
    return clock.now()


def _edition_name() -> str:
    return _edition_revision()[0]


def _edition_revision() -> tuple[str, int, str]:
    """Return (name, revision, created) of the asked-for edition (default: the current one), once per request."""
    if "gridmap_edition" not in g:
        store = _store()
        name = request.args.get("edition") or None
        if name is not None:
            visible_edition(store, name)  # a draft only for those who may see it: 404 for the rest
        found = store.edition_revision(name)
        if found is None:
            if name is None:
                raise NotFound("no current edition: load boundaries or run `gridmap demo`")
            store.get_edition(name)  # raises NotFound listing the editions there are
        g.gridmap_edition = found
    return g.gridmap_edition


def _crs() -> str:
    value = request.args.get("crs") or "wgs84"
    if value not in ("wgs84", "gcj02"):
        raise InvalidInput(f"crs must be wgs84 or gcj02, not {value!r}")
    return value


def _zoom() -> float | None:
    raw = request.args.get("zoom")
    if raw in (None, ""):
        return None
    try:
        zoom = float(raw)
    except ValueError:
        raise InvalidInput(f"zoom={raw!r} is not a number") from None
    if not 0 <= zoom <= 25:
        raise InvalidInput("zoom must be between 0 and 25")
    return zoom


class _Payload:
    """A JSON body kept in the cache together with its gzipped form (compressing 7 MB takes ~50 ms)."""

    def __init__(self, text: str) -> None:
        self.raw = text.encode()
        self._gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.raw, compresslevel=3)
        return self._gzipped


def _json_response(body: str | _Payload) -> Response:
    """Send JSON, gzipped when the client accepts it (GeoJSON of 50,000 points shrinks ~10×)."""
    payload = body if isinstance(body, _Payload) else _Payload(body)
    response = Response(payload.raw, mimetype="application/json")
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "private, no-cache"
    if len(payload.raw) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.set_data(payload.gzipped)
        response.headers["Content-Encoding"] = "gzip"
    return response


# ---- data shared by the routes ------------------------------------------------------------------------------
def _geometry_key(kind: str, store, edition: str, level: str, zoom: float | None, crs: str) -> tuple:
    """Cache key of one level's geometry: changes when the edition's areas change or the zoom band does."""
    return (kind, store.describe(), _edition_key(edition), level, maps.simplify_level(zoom), crs)


def _edition_key(edition: str) -> tuple:
    """What identifies one state of an edition: its name, revision and creation time (one row, no aggregate)."""
    current = _edition_revision()
    return current if current[0] == edition else _store().edition_revision(edition)


def _areas(edition: str, level: str, zoom: float | None, crs: str) -> tuple:
    """Return (frame without geometry, geometry JSON list) of one level, simplified for the zoom; cached."""
    store = _store()
    key = _geometry_key("areas", store, edition, level, zoom, crs)

    def compute():
        frame = store.areas(edition, level)
        geometry_json = maps.area_geometry_json(frame, zoom=zoom, to_gcj02=crs == "gcj02")
        labels = maps.label_points(frame.geometry.values) if len(frame) else []
        if crs == "gcj02" and labels:
            from gridmap import crs as crs_rules

            lon, lat = crs_rules.wgs84_to_gcj02(lon=[p[0] for p in labels], lat=[p[1] for p in labels])
            labels = [[round(float(x), 6), round(float(y), 6)] for x, y in zip(lon, lat, strict=True)]
        bounds = maps.frame_bounds(frame)
        return frame.drop(columns="geometry"), geometry_json, labels, bounds

    return _cache().get(key, compute)


def _open_cases() -> tuple[list[dict], list[str | None], dt.datetime]:
    """Return every open located case, its traffic light and the time the lights are for; cached."""
    store = _store()
    now = _now()
    tick = dt.datetime.min + ((now - dt.datetime.min) // _CLOCK_TICK) * _CLOCK_TICK
    key = ("cases", store.describe(), store.incidents_revision(), tick)
    calendar = _calendar()

    def compute():
        rows = store.map_incidents()
        return rows, maps.traffic_lights(rows, now=now, calendar=calendar), now

    return _cache().get(key, compute)


def _visible(user: people.User, row: dict) -> bool:
    return user.covers(grid_code=row["grid_code"], community_code=row["community_code"], street_code=row["street_code"])


def _parents(edition: str) -> dict[str, dict]:
    return {r["code"]: r for r in _store().area_attributes(edition) if r["level"] != "grid"}


def _grid_visible(user: people.User, parents: dict[str, dict]):
    def visible(code: str, community: str | None) -> bool:
        street = (parents.get(community) or {}).get("parent_code")
        return user.covers(grid_code=code, community_code=community, street_code=street)

    return visible


# ---- the page ----------------------------------------------------------------------------------------------------
@blueprint.get("/map")
@require_user()
def map_page():
    """The case map of the current (or ?edition=) edition; ?basemap=osm|tianditu|amap adds a tile layer."""
    assets.require_installed()
    settings = _settings()
    edition = _edition_name() if (request.args.get("edition") or _store().current_edition()) else None
    configured = getattr(settings, "map_basemaps", "") or ""
    wanted = request.args.get("basemap") or getattr(settings, "map_basemap", "none") or "none"
    names = [n for n in configured.split(",") if n.strip()]
    if wanted not in ("none", *names):
        names.append(wanted)
    basemaps = maps.basemap_layers(names, tianditu_key=getattr(settings, "tianditu_key", "") or "")
    chosen = next((b for b in basemaps if b["name"] == wanted), None)
    crs = chosen["crs"] if chosen else "wgs84"
    if edition:
        _warm_up(edition, crs)
    user = current_user()
    bounds = _areas(edition, "grid", maps.SIMPLIFY_ZOOMS[-1], crs)[3] if edition else None
    if edition and not user.sees_all_areas:
        # A grid worker opens the map on their own grids, a supervisor on their community or street.
        bounds = _scope_bounds(edition, user) or bounds
    from gridmap import incidents as incident_rules

    api = request.script_root + "/api/map"
    chosen_edition = request.args.get("edition") or None
    first_level = maps.simplify_key(maps.fit_zoom(bounds))
    # The URLs exactly as the page's script builds them (same parameters, same order), so it finds them.
    common = [("crs", crs)] if crs != "wgs84" else []
    common += [("edition", chosen_edition)] if chosen_edition else []
    zoom = [] if first_level == "full" else [("zoom", first_level)]
    prefetch = [
        f"{api}/incidents?{urlencode(common)}",
        f"{api}/grids?{urlencode(zoom + common)}",
        f"{api}/grids?{urlencode([('level', 'community'), *zoom, *common])}",
        f"{api}/grids?{urlencode([('level', 'street'), *zoom, *common])}",
    ]
    config = {
        "api": api,
        "prefetch": prefetch if edition else [],
        "first_level": first_level,
        "edition": chosen_edition,
        "crs": crs,
        "basemaps": basemaps,
        "basemap": wanted,
        "measures": maps.MEASURES,
        "statuses": _statuses(),
        "categories": _categories(),
        "sources": list(incident_rules.SOURCES),
        "source_labels": _source_labels(),
        "role_labels": people.ROLE_LABELS,
        "text": i18n.script_text(maps.PAGE_TEXT),
        "language": i18n.current_language(),
        "language_links": _language_links(),
        "dashboard_url": "/dashboard",
        "simplify_zooms": list(maps.SIMPLIFY_ZOOMS),
        "max_simplified_zoom": maps.MAX_SIMPLIFIED_ZOOM,
        "home_url": "/",
        "cases_url": "/cases",
        "user": {"name": user.name, "role": user.role},
    }
    title = f"{_('gridmap')} · {edition or '—'}"
    # folium takes ~0.2 s to render the page; it only changes with what goes into it.
    key = ("page", maps.to_json(config), title, tuple(bounds or ()))
    html = _cache().get(key, lambda: maps.build_map(bounds=bounds, config=config, title=title))
    response = Response(html, mimetype="text/html")
    # The page holds no data (that comes from /api/map), but it names the user: keep it out of shared caches.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _warm_up(edition: str, crs: str) -> None:
    """Read the open cases in the background while the browser fetches the page's scripts (~0.5 s saved)."""
    app = current_app._get_current_object()

    def run():
        with app.app_context():
            try:
                _open_cases()
            except Exception:  # the data request will meet the same error and report it
                log.exception("warming the map's case cache failed")

    threading.Thread(target=run, name="gridmap-map-warm-up", daemon=True).start()


def _language_links() -> dict[str, str]:
    return {code: f"{request.path}?{urlencode({**request.args, 'lang': code})}" for code in i18n.LANGUAGES}


def _scope_bounds(edition: str, user: people.User) -> list[float] | None:
    """Return the bounds of the grids in a user's scope (None when none of them is in the edition); cached."""
    store = _store()
    key = ("scope-bounds", store.describe(), edition, store.edition_fingerprint(edition), user.areas)

    def compute():
        frame = store.areas(edition, "grid")
        visible = _grid_visible(user, _parents(edition))
        keep = [visible(code, parent) for code, parent in zip(frame["code"], frame["parent_code"], strict=True)]
        return maps.frame_bounds(frame[keep]) if any(keep) else None

    return _cache().get(key, compute)


def _source_labels() -> dict[str, str]:
    from gridmap import cases

    return cases.SOURCE_LABELS


def _statuses() -> list[str]:
    from gridmap import cases

    return list(cases.OPEN_STATUSES)


def _categories() -> list[dict]:
    """Return the category choices of the filter: the case module's table."""
    from gridmap import cases

    key = "name" if i18n.current_language() == "zh" else "name_en"
    return [{"code": row["code"], "label": f"{row['code']} {row[key]}"} for row in cases.load_categories()]


def _calendar():
    """Return the working calendar of the settings (holidays, working hours) for traffic lights."""
    from gridmap import cases

    settings = _settings()
    return _cache().get(("calendar", id(settings)), lambda: cases.calendar_from_settings(settings))


# ---- the data ----------------------------------------------------------------------------------------------------
@blueprint.get("/api/map/grids")
@require_user()
def map_grids():
    """Areas of one level as GeoJSON: ?level=grid|community|street&zoom=Z&crs=wgs84|gcj02&edition=E.

    Grids carry code, name, community, households, open and overdue case counts (null outside the user's
    scope) and a label point; geometry is simplified as one coverage for the zoom, so no gaps open.
    """
    level = request.args.get("level") or "grid"
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    edition = _edition_name()
    zoom = _zoom()
    crs = _crs()
    store = _store()
    if level != "grid":
        key = _geometry_key("outlines", store, edition, level, zoom, crs)
        return _json_response(_cache().get(key, lambda: _Payload(_outline_text(edition, level, zoom, crs))))
    user = current_user()
    rows, _lights, now = _open_cases()
    scope = None if user.sees_all_areas else user.areas
    # The whole answer is cached per snapshot of the cases and per scope: a page load asks for it at once.
    key = (
        "grids",
        store.describe(),
        _edition_key(edition),
        store.buildings_fingerprint(),  # grid households come from the buildings when the register has them
        maps.simplify_level(zoom),
        crs,
        now,
        len(rows),
        scope,
    )
    return _json_response(_cache().get(key, lambda: _Payload(_grid_text(edition, zoom, crs, user, rows, now))))


def _outline_text(edition: str, level: str, zoom: float | None, crs: str) -> str:
    frame, geometry_json, _labels, _bounds = _areas(edition, level, zoom, crs)
    properties = [{"code": c, "name": n} for c, n in zip(frame["code"], frame["name"], strict=True)]
    return maps.feature_collection(geometry_json, properties, edition=edition, level=level)


def _grid_text(edition: str, zoom: float | None, crs: str, user: people.User, rows: list[dict], now) -> str:
    frame, geometry_json, labels, _bounds = _areas(edition, "grid", zoom, crs)
    parents = _parents(edition)
    visible = _grid_visible(user, parents)
    store = _store()
    grids = buildings.with_building_figures(
        store.area_attributes(edition, "grid"), buildings.grid_figures(store, edition)
    )
    by_code = {g["code"]: g for g in grids}
    scoped = rows if user.sees_all_areas else [r for r in rows if _visible(user, r)]
    measures = maps.grid_measures(
        grids, scoped, now=now, visible=lambda code: visible(code, by_code[code]["parent_code"])
    )
    ordered = [
        by_code.get(code) or {"code": code, "name": name, "parent_code": parent}
        for code, name, parent in zip(frame["code"], frame["name"], frame["parent_code"], strict=True)
    ]
    names = {code: parent["name"] for code, parent in parents.items()}
    properties = maps.grid_properties(ordered, labels, measures, names)
    return maps.feature_collection(geometry_json, properties, edition=edition, level="grid", generated_at=now)


@blueprint.get("/api/map/grids/<code>")
@require_user()
def map_grid_panel(code: str):
    """What the grid panel shows: code, name, community, street, staff, households and open cases by status."""
    edition = _edition_name()
    return _json_response(maps.to_json(grid_panel(_store(), edition, code, current_user())))


def grid_panel(store: Store, edition: str, code: str, user: people.User, *, cases_url: str | None = "/cases") -> dict:
    """Return the panel of one grid as the user may see it (counts are None outside their scope)."""
    figures = buildings.grid_figures(store, edition)
    attributes = {r["code"]: r for r in buildings.with_building_figures(store.area_attributes(edition), figures)}
    grid = attributes.get(code)
    if grid is None or grid["level"] != "grid":
        raise NotFound(f"no grid {code!r} in edition {edition!r}")
    community = attributes.get(grid["parent_code"]) or {}
    street = attributes.get(community.get("parent_code")) or {}
    rows, _lights, now = _open_cases()
    visible = user.covers(grid_code=code, community_code=community.get("code"), street_code=street.get("code"))
    measures = maps.grid_measures(
        [grid], [r for r in rows if r["grid_code"] == code], now=now, visible=lambda _c: visible
    )
    workers = [
        u["name"]
        for u in store.list_users()
        if u["role"] == "grid_worker" and {code, community.get("code"), street.get("code")} & set(u["areas"])
    ]
    return maps.grid_panel(
        grid, community, street, measures[code], workers=workers, cases_url=cases_url if visible else None
    ) | {"edition": edition}


def filter_cases(rows, lights, *, user: people.User, now: dt.datetime, args) -> tuple[list[dict], list]:
    """Apply the map's filters (status, category, source, age, light, review) and the user's scope."""
    status = args.get("status") or None
    category = args.get("category") or None
    source = args.get("source") or None
    light = args.get("light") or None
    if light is not None and light not in (*maps.LIGHTS, "none"):
        raise InvalidInput(f"light must be one of green, yellow, red, none, not {light!r}")
    review = (args.get("review") or "").lower() in ("1", "true", "yes", "on")
    reported_from, reported_to = maps.age_window(args.get("age") or None, now=now)
    kept_rows, kept_lights = [], []
    for row, row_light in zip(rows, lights, strict=True):
        if status is not None and row["status"] != status:
            continue
        if category is not None and row["category_code"] != category:
            continue
        if source is not None and row["source"] != source:
            continue
        if light is not None and (row_light or "none") != light:
            continue
        if review and not row.get("geocode_review"):
            continue
        if reported_from is not None and row["reported_at"] < reported_from:
            continue
        if reported_to is not None and row["reported_at"] >= reported_to:
            continue
        if not user.sees_all_areas and not _visible(user, row):
            continue
        kept_rows.append(row)
        kept_lights.append(row_light)
    return kept_rows, kept_lights


@blueprint.get("/api/map/incidents")
@require_user()
def map_incidents():
    """Open cases in the user's scope as GeoJSON points with their traffic light.

    Filters: ?status= &category= &source= &age=1d|3d|7d|30d|older &light=green|yellow|red|none &review=true (only
    cases whose geocoded point a person should check); &crs=gcj02 shifts the points for an Amap basemap.
    """
    rows, lights, now = _open_cases()
    user = current_user()
    crs = _crs()
    filters = tuple(sorted((k, v) for k, v in request.args.items() if k in _FILTERS and v))
    scope = None if user.sees_all_areas else user.areas
    # `now` is when this snapshot of cases was read, so it identifies the snapshot.
    key = ("incidents", _store().describe(), now, len(rows), scope, filters, crs)
    return _json_response(_cache().get(key, lambda: _Payload(_incident_text(rows, lights, now, user, crs))))


_FILTERS = ("status", "category", "source", "age", "light", "review")


def _incident_text(rows, lights, now, user, crs) -> str:
    kept, kept_lights = filter_cases(rows, lights, user=user, now=now, args=request.args)
    counts = defaultdict(int)
    for value in kept_lights:
        counts[value or "none"] += 1
    text = maps.incident_collection(
        kept,
        lights=kept_lights,
        to_gcj02=crs == "gcj02",
        count=len(kept),
        light_counts=dict(counts),
        generated_at=now,
    )
    return text


@blueprint.get("/api/map/incidents/<int:incident_id>")
@require_user()
def map_incident(incident_id: int):
    """What a case's popup shows; a case outside the user's scope is 404, as if it did not exist."""
    row = _store().get_incident(incident_id)
    user = current_user()
    if not _visible(user, row):
        raise NotFound(f"no incident {incident_id}")
    light = maps.traffic_lights([row], now=_now(), calendar=_calendar())[0]
    detail = {**maps.incident_detail(row, light=light), "url": f"/cases/{incident_id}"}
    return _json_response(maps.to_json({**detail, "photos": attachment_views.popup_photos(incident_id)}))
