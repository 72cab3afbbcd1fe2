"""Maps: the GeoJSON layers behind the case map and the folium page that draws them.

No Flask and no database here: functions take GeoDataFrames, dicts and plain values and return GeoJSON text
or HTML. The page itself is a folium map (Canvas renderer, no basemap by default) plus gridmap's own script
that fetches its layers as GeoJSON from the API, so changing a filter refetches data without rebuilding the
page. The same page can carry its data inside itself (`embedded`) for the standalone export.

Every user-provided string (area names, case titles) reaches the page as JSON data and is put into the
DOM with textContent, never as HTML.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from urllib.parse import urlencode

import folium
import geopandas as gpd
import numpy as np
import shapely
from branca.element import Element, MacroElement
from jinja2 import Template

from gridmap import assets, clock, language
from gridmap import crs as crs_rules
from gridmap.casefields import SOURCE_LABELS
from gridmap.config import PROJECT_DIR
from gridmap.errors import InvalidInput

COORDINATE_DECIMALS = 6  # about 0.1 m: finer is noise, coarser moves points across grid edges
CLOSED_STATUSES = ("closed", "rejected")
LIGHTS = ("green", "yellow", "red")
# Zoom levels at which grid geometry is simplified afresh: a request for zoom z uses the first level >= z.
# Tolerance is half a screen pixel at that zoom, so simplification never shows; from MAX_SIMPLIFIED_ZOOM
# on the geometry is only rounded.
SIMPLIFY_ZOOMS = (11, 13, 15)
MAX_SIMPLIFIED_ZOOM = 16
MAX_ZOOM = 19
_PAGE_TEMPLATE = PROJECT_DIR / "templates" / "map.html"
MEASURES = {  # English msgids; the page shows them in its language
    "open": "Open cases",
    "overdue": "Overdue cases",
    "households": "Households",
    "per100": "Open cases per 100 households",
}
# Every string the map page's script shows (templates/map.html), as English msgids.
PAGE_TEXT = (
    *MEASURES.values(),
    "Areas", "Cases", "Dashboard", "Generated at {time}", "No basemap", "Grids", "Communities", "Streets",
    "Heat map", "Layers", "Zoom in", "Zoom out", "Legend", "all", "not yours or no data", "On time", "Due soon",
    "Overdue",
    "Code", "Community", "Street", "Kind", "Households", "Population", "Staff", "Grid workers", "By status",
    "Close", "Case list", "{n} cases", "Status", "Deadline", "Reported", "Open the case", "Filters", "Shade by",
    "all open", "Category", "Source", "Age", "less than 1 day", "1–3 days", "3–7 days", "7–30 days",
    "more than 30 days", "Traffic light", "No deadline", "grid code or name", "not found",
    "Reported", "Registered", "Dispatched", "In progress", "Resolved", "Closed", "Rejected",
    "Administrator", "Planner", "Supervisor", "Grid worker", "Viewer",
    "Patrol", "Door-to-door visit", "Chat group", "12345 hotline", "Video", "Higher office", "Import", "Web",
    "comprehensive", "dedicated",
    "Location", "Location to check", "to check",
    "Before: with the report", "While handling", "After: result",
    "Buildings", "{name} · {households} households", "{buildings} buildings · {households} households",
)  # fmt: skip
AGE_CHOICES = {  # name → (min days, max days) since the case was reported
    "1d": (0, 1),
    "3d": (1, 3),
    "7d": (3, 7),
    "30d": (7, 30),
    "older": (30, None),
}
BASEMAP_PRESETS = {
    "osm": {
        "label": "OpenStreetMap",
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "attribution": "&copy; OpenStreetMap contributors",
        "crs": "wgs84",
        "max_native_zoom": 19,
    },
    "tianditu": {
        "label": "天地图 Tianditu",
        "url": "https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk={key}",
        "labels_url": "https://t{s}.tianditu.gov.cn/DataServer?T=cva_w&x={x}&y={y}&l={z}&tk={key}",
        "subdomains": "01234567",
        "attribution": "&copy; 天地图",
        "crs": "wgs84",
        "needs_key": True,
        "max_native_zoom": 18,
    },
    "amap": {
        "label": "高德 Amap (GCJ-02)",
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        "subdomains": "1234",
        "attribution": "&copy; 高德地图",
        # Amap tiles are drawn in GCJ-02: overlays are shifted into it so they line up (several hundred m).
        "crs": "gcj02",
        "max_native_zoom": 18,
    },
}


# ---- geometry -----------------------------------------------------------------------------------------------
def simplify_level(zoom: float | None) -> int | None:
    """Return the zoom whose simplification serves a request at `zoom` (None: rounding only)."""
    if zoom is None or zoom > MAX_SIMPLIFIED_ZOOM - 1:
        return None
    return next((z for z in SIMPLIFY_ZOOMS if zoom <= z), MAX_SIMPLIFIED_ZOOM - 1)


def simplify_tolerance(level: int | None) -> float:
    """Return the tolerance in degrees for a simplification level: half a Web Mercator pixel at that zoom."""
    if level is None:
        return 0.0
    return 360.0 / (256 * 2**level) / 2


def round_coordinates(geometries, decimals: int = COORDINATE_DECIMALS):
    """Round every coordinate; shared vertices round alike, so neighbours stay gap-free."""
    return shapely.transform(geometries, lambda xy: np.round(xy, decimals))


def shape_areas(geometries: Sequence, *, tolerance: float = 0.0, to_gcj02: bool = False) -> np.ndarray:
    """Simplify a set of polygons that tile an area as one coverage, shift to GCJ-02 when asked, round.

    Simplifying polygon by polygon moves each shared edge differently on its two sides and opens gaps;
    `coverage_simplify` simplifies every shared edge once for both neighbours.
    """
    shapes = np.asarray(list(geometries), dtype=object)
    if len(shapes) == 0:
        return shapes
    if tolerance > 0:
        shapes = shapely.coverage_simplify(shapes, tolerance, simplify_boundary=True)
    if to_gcj02:
        shapes = shapely.transform(shapes, _to_gcj02)
    return round_coordinates(shapes)


def _to_gcj02(xy: np.ndarray) -> np.ndarray:
    lon, lat = crs_rules.wgs84_to_gcj02(lon=xy[:, 0], lat=xy[:, 1])
    return np.column_stack([lon, lat])


def label_points(geometries: Sequence) -> list[list[float]]:
    """Return a point inside each polygon (for labels and clicks), as rounded [lon, lat]."""
    points = shapely.point_on_surface(np.asarray(list(geometries), dtype=object))
    xy = np.round(shapely.get_coordinates(points), COORDINATE_DECIMALS)
    return xy.tolist()


def feature_collection(geometry_json: Sequence[str], properties: Sequence[Mapping], **extra) -> str:
    """Join pre-serialised geometries and their properties into a GeoJSON FeatureCollection text."""
    parts = [
        f'{{"type":"Feature","geometry":{geometry},"properties":{to_json(props)}}}'
        for geometry, props in zip(geometry_json, properties, strict=True)
    ]
    head = "".join(f"{to_json(k)}:{to_json(v)}," for k, v in extra.items())
    return f'{{"type":"FeatureCollection",{head}"features":[{",".join(parts)}]}}'


def to_json(value) -> str:
    """Serialise compactly, keeping Chinese as is; datetimes as ISO text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value):
    if isinstance(value, dt.datetime | dt.date):
        return clock.iso(value)  # with the +08:00 offset: stored times are Shanghai time
    if isinstance(value, np.integer | np.floating):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def area_geometry_json(frame: gpd.GeoDataFrame, *, zoom: float | None = None, to_gcj02: bool = False) -> list[str]:
    """Return each area's geometry as GeoJSON text, simplified for `zoom` as one coverage, in frame order."""
    shapes = shape_areas(frame.geometry.values, tolerance=simplify_tolerance(simplify_level(zoom)), to_gcj02=to_gcj02)
    return list(shapely.to_geojson(shapes)) if len(shapes) else []


# ---- cases -----------------------------------------------------------------------------------------------
def traffic_lights(rows: Iterable[Mapping], *, now: dt.datetime, calendar=None) -> list[str | None]:
    """Return the traffic light of each open case (None without a deadline; closed cases: None)."""
    from gridmap.cases import traffic_lights_many  # cases' rule (working calendar); imported when used

    rows = list(rows)
    counted = [r for r in rows if r.get("status") not in CLOSED_STATUSES]
    lights = iter(
        traffic_lights_many(
            [r["reported_at"] for r in counted], [r.get("deadline") for r in counted], now=now, calendar=calendar
        )
    )
    return [None if r.get("status") in CLOSED_STATUSES else next(lights) for r in rows]


def age_window(age: str | None, *, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Return (reported_from, reported_to) for an age filter name; (None, None) for no filter."""
    if not age:
        return None, None
    if age not in AGE_CHOICES:
        raise InvalidInput(f"age must be one of {', '.join(AGE_CHOICES)}, not {age!r}")
    low, high = AGE_CHOICES[age]
    reported_to = now - dt.timedelta(days=low) if low else None
    reported_from = now - dt.timedelta(days=high) if high is not None else None
    return reported_from, reported_to


def incident_collection(
    rows: Sequence[Mapping],
    *,
    lights: Sequence[str | None],
    to_gcj02: bool = False,
    detail: bool = False,
    **extra,
) -> str:
    """Return located cases as a GeoJSON FeatureCollection text of points, coordinates rounded.

    Properties are kept small (id, light, status) because 50,000 of them travel to the browser; with
    `detail` (the standalone export, which has no API to ask) each also carries what its popup shows.
    """
    located = [(row, light) for row, light in zip(rows, lights, strict=True) if row.get("lon") is not None]
    if not located:
        return feature_collection([], [], **extra)
    lon = np.array([r["lon"] for r, _ in located], dtype=float)
    lat = np.array([r["lat"] for r, _ in located], dtype=float)
    if to_gcj02:
        lon, lat = crs_rules.wgs84_to_gcj02(lon=lon, lat=lat)
    lon = np.round(lon, COORDINATE_DECIMALS).tolist()
    lat = np.round(lat, COORDINATE_DECIMALS).tolist()
    words: dict = {}  # status and light values repeat; serialise each once

    def word(value) -> str:
        if value not in words:
            words[value] = to_json(value)
        return words[value]

    parts = []
    for (row, light), x, y in zip(located, lon, lat, strict=True):
        if detail:
            props = to_json({"light": light, **incident_detail(row, light=light)})
        else:
            props = f'{{"id":{int(row["id"])},"light":{word(light)},"status":{word(row["status"])}}}'
        parts.append(
            f'{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{x!r},{y!r}]}},"properties":{props}}}'
        )
    head = "".join(f"{to_json(k)}:{to_json(v)}," for k, v in extra.items())
    return f'{{"type":"FeatureCollection",{head}"features":[{",".join(parts)}]}}'


def incident_detail(row: Mapping, *, light: str | None) -> dict:
    """Return what a case's popup shows (no reporter, no phone: those stay on the case page)."""
    return {
        "id": row["id"],
        "title": row.get("title"),
        "status": row.get("status"),
        "category": row.get("category_code"),
        "source": row.get("source"),
        "grid_code": row.get("grid_code"),
        "reported_at": _iso(row.get("reported_at")),
        "deadline": _iso(row.get("deadline")),
        "light": light,
        "review": bool(row.get("geocode_review")),
    }


def _iso(value) -> str | None:
    return clock.iso(value)


def grid_measures(
    grids: Sequence[Mapping],
    incidents: Iterable[Mapping],
    *,
    now: dt.datetime,
    visible: Callable[[str], bool] = lambda code: True,
) -> dict[str, dict]:
    """Return per grid code: open and overdue case counts, open cases by status, households and the rate.

    Grids the user may not see (`visible` false) get None counts: "not yours", which is not "no cases".
    """
    # Counted with itemgetter + Counter (C loops): this runs over every open case, 50,000 in the benchmark.
    open_rows = [r for r in incidents if r.get("grid_code") is not None and r.get("status") not in CLOSED_STATUSES]
    pairs = Counter(map(itemgetter("grid_code", "status"), open_rows))
    open_by_grid: dict[str, dict] = defaultdict(dict)
    for (code, status), n in pairs.items():
        open_by_grid[code][status] = n
    overdue = Counter(r["grid_code"] for r in open_rows if r.get("deadline") is not None and r["deadline"] < now)
    measures = {}
    for grid in grids:
        code = grid["code"]
        households = grid.get("households")
        if not visible(code):
            measures[code] = {
                "open": None,
                "overdue": None,
                "by_status": None,
                "households": households,
                "per100": None,
            }
            continue
        n_open = sum(open_by_grid[code].values())
        measures[code] = {
            "open": n_open,
            "overdue": overdue[code],
            "by_status": dict(open_by_grid[code]),
            "households": households,
            "per100": round(100 * n_open / households, 2) if households else None,
        }
    return measures


def grid_properties(
    grids: Sequence[Mapping], labels: Sequence, measures: Mapping[str, Mapping], names: Mapping[str, str]
) -> list[dict]:
    """Return each grid feature's properties, in order (`grids`: code, name, parent_code; `names`: code → name)."""
    rows = []
    for grid, label in zip(grids, labels, strict=True):
        m = measures.get(grid["code"], {})
        rows.append(
            {
                "code": grid["code"],
                "name": grid["name"],
                "community": names.get(grid["parent_code"]),
                "households": m.get("households"),
                "open": m.get("open"),
                "overdue": m.get("overdue"),
                "per100": m.get("per100"),
                "label": label,
            }
        )
    return rows


def grid_panel(
    grid: Mapping,
    community: Mapping,
    street: Mapping,
    measures: Mapping,
    *,
    workers: Sequence[str],
    cases_url: str | None,
) -> dict:
    """Return what a grid's panel shows (counts None when the grid is outside the viewer's scope)."""
    return {
        "code": grid["code"],
        "name": grid["name"],
        "kind": grid.get("kind"),
        "community": community.get("name"),
        "community_code": community.get("code"),
        "street": street.get("name"),
        "households": grid.get("households"),
        "population": grid.get("population"),
        "staff": grid.get("staff"),
        "workers": list(workers),
        "open": measures.get("open"),
        "overdue": measures.get("overdue"),
        "by_status": measures.get("by_status"),
        "cases_url": f"{cases_url}?{urlencode({'grid': grid['code']})}" if cases_url else None,
    }


# ---- the page -----------------------------------------------------------------------------------------------
def basemap_layers(names: Iterable[str], *, tianditu_key: str = "") -> list[dict]:
    """Return the tile layer definitions of the named presets; a preset needing a missing key is refused."""
    layers = []
    for name in names:
        name = name.strip().lower()
        if not name or name == "none":
            continue
        if name not in BASEMAP_PRESETS:
            raise InvalidInput(f"basemap must be none or one of {', '.join(BASEMAP_PRESETS)}, not {name!r}")
        preset = dict(BASEMAP_PRESETS[name], name=name)
        if preset.get("needs_key"):
            if not tianditu_key:
                raise InvalidInput(f"the {name} basemap needs a key (GRIDMAP_TIANDITU_KEY)")
            preset["url"] = preset["url"].replace("{key}", tianditu_key)
            preset["labels_url"] = preset["labels_url"].replace("{key}", tianditu_key)
        layers.append(preset)
    return layers


class _GridmapScript(MacroElement):
    """Starts gridmap's script; attached to the map so it runs after the map object exists."""

    _template = Template(
        """{% macro script(this, kwargs) %}
window.__gridmapStart({{ this._parent.get_name() }}, {{ this.config_json }});
{% endmacro %}"""
    )

    def __init__(self, config: dict) -> None:
        super().__init__()
        self._name = "GridmapScript"
        self.config_json = _script_json(config)


def page_template() -> str:
    """Return the case map's own style and script (templates/map.html)."""
    # Read per call: it is small, and an edited template shows without a restart.
    return _PAGE_TEMPLATE.read_text(encoding="utf-8").split("-#}", 1)[1]


def _script_json(value) -> str:
    # JSON inside <script>: no "<", ">" or "&" at all (so no "</script>" or "<!--"), as Flask's tojson does.
    text = to_json(value)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def build_map(
    *,
    bounds: Sequence[float] | None,
    config: Mapping,
    base_url: str = assets.VENDOR_URL,
    title: str = "网格地图 gridmap",
) -> str:
    """Return the HTML of the case map: folium + gridmap's script, every asset from `base_url`.

    `bounds` is (west, south, east, north) to fit; `config` is handed to the script (API address, filters,
    basemaps, or `embedded` data for a page without a server).
    """
    assets.use_local_assets(base_url)
    fmap = folium.Map(
        location=None if bounds else [39.12, 117.15],
        zoom_start=13,
        tiles=None,
        max_zoom=MAX_ZOOM,
        min_zoom=3,
        prefer_canvas=True,
        control_scale=False,  # the page adds a metric-only scale (an imperial one would be a second language)
        zoom_control=True,
    )
    # Only what this map uses: the full folium list (Bootstrap, Font Awesome) would add 0.5 MB for nothing.
    js, css = assets.folium_assets(base_url)
    fmap.default_js = [pair for pair in js if pair[0] in ("leaflet", "jquery")] + [
        assets.plugin_js("supercluster", base_url),
        assets.plugin_js("leaflet-heat.js", base_url),
    ]
    fmap.default_css = [pair for pair in css if pair[0] == "leaflet_css"]
    if bounds:
        west, south, east, north = bounds
        fmap.fit_bounds([[south, west], [north, east]])
    root = fmap.get_root()
    root.header.add_child(Element(f"<title>{_html_text(title)}</title>"), name="title")
    if config.get("prefetch"):
        # Start the data downloads before Leaflet is even parsed; the script picks them up by URL.
        root.header.add_child(
            Element(
                "<script>window.__gridmapPrefetch = {};"
                f"for (const url of {_script_json(list(config['prefetch']))}) "
                "window.__gridmapPrefetch[url] = fetch(url, "
                '{credentials: "same-origin", headers: {Accept: "application/json"}});</script>'
            ),
            name="gridmap_prefetch",
        )
    root.header.add_child(Element(page_template()), name="gridmap_page")
    fmap.add_child(_GridmapScript(dict(config, title=title)))
    return assets.check_offline(root.render())


def fit_zoom(bounds: Sequence[float] | None, *, width: int = 1280, height: int = 760) -> int:
    """Return the zoom at which Leaflet's fitBounds shows `bounds` in a viewport of this size."""
    if not bounds:
        return 13
    west, south, east, north = bounds

    def mercator_y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    span_x = max(east - west, 1e-9) / 360
    span_y = max(mercator_y(north) - mercator_y(south), 1e-9) / (2 * math.pi)
    zoom = math.floor(min(math.log2(width / 256 / span_x), math.log2(height / 256 / span_y)))
    return max(0, min(MAX_ZOOM, zoom))


def simplify_key(zoom: float) -> str:
    """Return the zoom parameter the page sends for grids at `zoom` ("full": none), as the page computes it."""
    level = simplify_level(zoom)
    return "full" if level is None else str(level)


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def standalone_html(
    *,
    bounds: Sequence[float] | None,
    grids: str,
    communities: str,
    streets: str,
    incidents: str,
    panels: Mapping[str, Mapping],
    title: str,
    generated_at: str,
    lang: str = "zh",
) -> str:
    """Return one self-contained HTML file: assets inlined, data embedded, no server and no internet."""
    cases = json.loads(incidents)
    present = {
        key: sorted({f["properties"].get(key) for f in cases["features"]} - {None})
        for key in ("status", "category", "source")
    }
    config = {
        "embedded": {
            "grids": json.loads(grids),
            "community": json.loads(communities),
            "street": json.loads(streets),
            "incidents": cases,
            "panels": panels,
        },
        "statuses": present["status"],
        "categories": [{"code": c, "label": c} for c in present["category"]],
        "sources": present["source"],
        "generated_at": generated_at,
        "measures": MEASURES,
        "ages": list(AGE_CHOICES),
        "text": language.text_table(PAGE_TEXT, lang),
        "source_labels": SOURCE_LABELS,
        "language": lang,
    }
    html = build_map(bounds=bounds, config=config, title=title)
    return assets.check_offline(assets.inline_assets(html))


def frame_bounds(frame: gpd.GeoDataFrame) -> list[float] | None:
    """Return (west, south, east, north) of a frame, or None when empty."""
    if frame.empty:
        return None
    west, south, east, north = frame.total_bounds
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        return None
    return [round(float(v), COORDINATE_DECIMALS) for v in (west, south, east, north)]
