"""Coordinate systems used in China and sanity checks on coordinates.

Four systems meet in Chinese grid work:

- WGS84 (EPSG:4326): GPS, OpenStreetMap, gridmap's own storage.
- CGCS2000 (EPSG:4490): the national frame; it differs from WGS84 by less than 10 cm, far below what
  matters for community grids, so it is treated as equal. EPSG:4490 declares latitude-first axis order;
  every function here takes `lon`, `lat` keywords, so callers never depend on that order.
- GCJ-02: the obfuscated datum every licensed Chinese map (Amap/Gaode, Tencent) uses inside China, a
  deliberately non-linear shift of roughly 300-700 m. Only the forward formula is public, so the inverse is
  computed by iteration (error below 1 mm); the one-step inverse many libraries ship is off by metres.
- BD-09: Baidu's further shift on top of GCJ-02.

All transforms accept floats or numpy arrays (bulk import converts a million points at once) and return
the same kind. Points outside China (see `in_china`) are returned unchanged, by every transform.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from gridmap.errors import InvalidInput, Unprocessable

if TYPE_CHECKING:  # pyproj is imported when first needed: a command that only parses coordinates skips it
    from pyproj import CRS

SUPPORTED = ("wgs84", "cgcs2000", "gcj02", "bd09")
ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "gps": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
}

Coord = TypeVar("Coord", float, np.ndarray)

# Krasovsky 1940 ellipsoid: the constants of the published GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
# The inverse stops once the forward transform of the estimate is within this of the target (about 0.1 mm);
# the step that follows that test shrinks the error a further ~200 times.
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_STEPS = 20

# "Inside China" as six rectangles minus six, the outline widely used since 2012 (published by Aimeast,
# cnblogs.com/Aimeast/archive/2012/08/09/2629614.html, copied into many GCJ-02 libraries), plus the
# rectangle some of those libraries add to exclude Pakistan and India's north-west (73.12-77.95°E,
# 29.53-35.40°N). Rectangles: (west, north, east, south).
_CHINA_IN = (
    (79.446200, 49.220400, 96.330000, 42.889900),
    (109.687200, 54.141500, 135.000200, 39.374200),
    (73.124600, 42.889900, 124.143255, 29.529700),
    (82.968400, 29.529700, 97.035200, 26.718600),
    (97.025300, 29.529700, 124.367395, 20.414096),
    (107.975793, 20.414096, 111.744104, 17.871542),
)
_CHINA_OUT = (
    (119.921265, 25.398623, 122.497559, 21.785006),  # Taiwan
    (101.865200, 22.284000, 106.665000, 20.098800),  # northern Vietnam, Laos
    (106.452500, 21.542200, 108.051000, 20.487800),  # Hanoi, Haiphong
    (109.032300, 55.817500, 119.127000, 50.325700),  # Russia and Mongolia north of Inner Mongolia
    (127.456800, 55.817500, 137.022700, 49.557400),  # Russia north of Heilongjiang
    (131.266200, 44.892200, 137.022700, 42.569200),  # Vladivostok
    (73.124600, 35.398637, 77.948114, 29.529700),  # Pakistan and India's north-west
)

# Broad ranges of mainland China's longitudes and latitudes, for telling a swapped pair apart.
_CHINA_LON_RANGE = (73.0, 135.0)
_CHINA_LAT_RANGE = (3.0, 54.0)

PROBLEMS = {
    "not_finite": "is not a finite number (NaN or infinity)",
    "zero": "is 0, 0 (a missing coordinate written as zero?)",
    "swapped": "looks like latitude, longitude (swapped); give longitude first",
    "projected": "looks like projected metres, not degrees; give the file's CRS",
}


@functools.cache
def _geod():
    from pyproj import Geod

    return Geod(ellps="WGS84")


# ---- inside China ----------------------------------------------------------------------------------
def in_china(*, lon: Coord, lat: Coord) -> bool | np.ndarray:
    """Tell whether Chinese map providers shift this point (the GCJ-02 region).

    The rule is the rectangle outline above, not a true border. It keeps Seoul, Pyongyang, Taipei
    (Taiwan is left out), Hanoi, Ulaanbaatar, Vladivostok and Delhi outside, which the usual single bounding
    box (lon 72.004-137.8347, lat 0.8293-55.8271) shifts wrongly; Hong Kong and Macau are inside. Near the
    land border it is still wrong by up to a few hundred kilometres: Kathmandu, Thimphu, Bishkek, Gilgit,
    Myitkyina, Sinuiju and Choibalsan count as inside. Gridmap's points are in Chinese communities, far from
    those edges; which providers shift Hong Kong, Macau and Taiwan is their own choice and varies.
    """
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for west, north, east, south in _CHINA_IN:
        inside |= (x >= west) & (x <= east) & (y >= south) & (y <= north)
    for west, north, east, south in _CHINA_OUT:
        inside &= ~((x >= west) & (x <= east) & (y >= south) & (y <= north))
    return bool(inside) if inside.ndim == 0 else inside


# ---- GCJ-02 and BD-09 ------------------------------------------------------------------------------
def _gcj02_offset(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The published formula, applied to every point; callers decide where it applies.
    dx, dy = x - 105.0, y - 35.0
    shared = (20.0 * np.sin(6.0 * dx * np.pi) + 20.0 * np.sin(2.0 * dx * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * dx + 3.0 * dy + 0.2 * dy * dy + 0.1 * dx * dy + 0.2 * np.sqrt(np.abs(dx)) + shared
    dlat += (20.0 * np.sin(dy * np.pi) + 40.0 * np.sin(dy / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(dy / 12.0 * np.pi) + 320.0 * np.sin(dy * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + dx + 2.0 * dy + 0.1 * dx * dx + 0.1 * dx * dy + 0.1 * np.sqrt(np.abs(dx)) + shared
    dlon += (20.0 * np.sin(dx * np.pi) + 40.0 * np.sin(dx / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(dx / 12.0 * np.pi) + 300.0 * np.sin(dx / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = y / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def _gcj02_raw(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dlon, dlat = _gcj02_offset(x, y)
    return x + dlon, y + dlat


def _bd09_raw(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _bd09_inverse_closed_form(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = x - 0.0065, y - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _invert(forward, x: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Fixed-point iteration p ← p - (forward(p) - target). The shift's derivative is about 5e-3, so each
    # step cuts the error about 200 times: four forward evaluations take 700 m to micrometres.
    px, py = x0.copy(), y0.copy()
    for _ in range(_INVERSE_MAX_STEPS):
        fx, fy = forward(px, py)
        ex, ey = fx - x, fy - y
        px, py = px - ex, py - ey
        if not (
            np.nanmax(np.abs(ex), initial=0.0) > _INVERSE_TOLERANCE_DEG
            or np.nanmax(np.abs(ey), initial=0.0) > _INVERSE_TOLERANCE_DEG
        ):
            break
    return px, py


def _apply(transform, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    # Shift only the points inside China; keep floats as floats and arrays as arrays.
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    inside = np.atleast_1d(in_china(lon=x, lat=y))
    ox, oy = np.atleast_1d(x).copy(), np.atleast_1d(y).copy()
    if inside.any():
        ox[inside], oy[inside] = transform(ox[inside], oy[inside])
    if x.ndim == 0:
        return float(ox[0]), float(oy[0])
    return ox, oy


def wgs84_to_gcj02(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert WGS84 to GCJ-02 (Amap, Tencent)."""
    return _apply(_gcj02_raw, lon, lat)


def gcj02_to_wgs84(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert GCJ-02 to WGS84 by iterating the forward formula (error below 1 mm)."""
    return _apply(lambda x, y: _invert(_gcj02_raw, x, y, x, y), lon, lat)


def gcj02_to_wgs84_one_step(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert GCJ-02 to WGS84 the naive way (subtract the shift at the GCJ-02 point); for comparison only.

    This is what most libraries call gcj02towgs84; it is off by up to a few metres, enough to put a point in
    the neighbouring grid. Use `gcj02_to_wgs84`.
    """

    def one_step(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dlon, dlat = _gcj02_offset(x, y)
        return x - dlon, y - dlat

    return _apply(one_step, lon, lat)


def gcj02_to_bd09(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert GCJ-02 to BD-09 (Baidu)."""
    return _apply(_bd09_raw, lon, lat)


def bd09_to_gcj02(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert BD-09 to GCJ-02: Baidu's closed form, refined by iteration to invert `gcj02_to_bd09` exactly.

    The closed form alone (what other libraries return) is off by up to about 0.2 m; refining costs two steps.
    """

    def inverse(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _invert(_bd09_raw, x, y, *_bd09_inverse_closed_form(x, y))

    return _apply(inverse, lon, lat)


def wgs84_to_bd09(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert WGS84 to BD-09 (Baidu)."""
    return _apply(lambda x, y: _bd09_raw(*_gcj02_raw(x, y)), lon, lat)


def bd09_to_wgs84(*, lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    """Convert BD-09 to WGS84 by iterating the forward formulas (error below 1 mm)."""

    def inverse(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gy = _invert(_bd09_raw, x, y, *_bd09_inverse_closed_form(x, y))
        return _invert(_gcj02_raw, gx, gy, gx, gy)

    return _apply(inverse, lon, lat)


# ---- dispatch --------------------------------------------------------------------------------------
def canonical_crs(crs: str) -> str:
    """Return the SUPPORTED name for a CRS name or alias (case-insensitive), or raise InvalidInput."""
    key = str(crs).strip().lower().replace(" ", "").replace("_", "")
    if key not in ALIASES:
        raise InvalidInput(
            f"unknown coordinate system {crs!r}: use one of {', '.join(SUPPORTED)} "
            f"(aliases: {', '.join(a for a in ALIASES if a not in SUPPORTED)})"
        )
    return ALIASES[key]


def to_wgs84(*, lon: Coord, lat: Coord, crs: str) -> tuple[Coord, Coord]:
    """Convert lon/lat given in `crs` (wgs84, cgcs2000, gcj02, bd09 or an alias) to WGS84."""
    name = canonical_crs(crs)
    if name == "gcj02":
        return gcj02_to_wgs84(lon=lon, lat=lat)
    if name == "bd09":
        return bd09_to_wgs84(lon=lon, lat=lat)
    return _same(lon, lat)  # CGCS2000 equals WGS84 within 10 cm


def from_wgs84(*, lon: Coord, lat: Coord, crs: str) -> tuple[Coord, Coord]:
    """Convert WGS84 lon/lat to `crs` (e.g. to draw on an Amap or Baidu basemap)."""
    name = canonical_crs(crs)
    if name == "gcj02":
        return wgs84_to_gcj02(lon=lon, lat=lat)
    if name == "bd09":
        return wgs84_to_bd09(lon=lon, lat=lat)
    return _same(lon, lat)


def _same(lon: Coord, lat: Coord) -> tuple[Coord, Coord]:
    if np.ndim(lon) == 0 and np.ndim(lat) == 0:
        return float(lon), float(lat)
    return np.asarray(lon, dtype=float).copy(), np.asarray(lat, dtype=float).copy()


# ---- sanity checks ---------------------------------------------------------------------------------
def classify_lonlat(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return one problem code per point ("" when fine); the codes are the keys of PROBLEMS.

    Rules, first match wins: not_finite (NaN or infinity); zero (exactly 0, 0); swapped (lon within China's
    latitudes 3-54 and lat within China's longitudes 73-135, so (lat, lon) would be in China; note this
    also flags genuine Arctic points such as Svalbard); projected (|lon| > 180 or |lat| > 90).
    """
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    codes = np.full(x.shape, "", dtype=object)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(x) & np.isfinite(y)
        swapped = (
            (x >= _CHINA_LAT_RANGE[0])
            & (x <= _CHINA_LAT_RANGE[1])
            & (y >= _CHINA_LON_RANGE[0])
            & (y <= _CHINA_LON_RANGE[1])
        )
        projected = (np.abs(x) > 180.0) | (np.abs(y) > 90.0)
    codes[finite & projected] = "projected"
    codes[finite & swapped] = "swapped"
    codes[finite & (x == 0.0) & (y == 0.0)] = "zero"
    codes[~finite] = "not_finite"
    return codes


def classify_one(x: float, y: float) -> str:
    """`classify_lonlat` for one point, on floats (a request checks one point; arrays cost ~50 µs to set up)."""
    if not (math.isfinite(x) and math.isfinite(y)):
        return "not_finite"
    if x == 0.0 and y == 0.0:
        return "zero"
    lat_lo, lat_hi = _CHINA_LAT_RANGE
    lon_lo, lon_hi = _CHINA_LON_RANGE
    if lat_lo <= x <= lat_hi and lon_lo <= y <= lon_hi:
        return "swapped"
    if abs(x) > 180.0 or abs(y) > 90.0:
        return "projected"
    return ""


def parse_number(value, name: str) -> float:
    """Read one coordinate from text or a number, or raise InvalidInput naming it ("lon='abc' is not a number")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{name}={value!r} is not a finite number")
    return number


def check_lonlat(*, lon: float, lat: float, where: str = "") -> None:
    """Raise InvalidInput naming `where` when lon/lat is not a plausible WGS84 degree pair."""
    prefix = f"{where}: " if where else ""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise InvalidInput(f"{prefix}lon={lon!r}, lat={lat!r} is not a pair of numbers") from None
    code = classify_one(x, y)
    if code:
        # Out of range is malformed (400); zero or swapped is well-formed but implausible (422).
        kind = Unprocessable if code in ("zero", "swapped") else InvalidInput
        raise kind(f"{prefix}lon={x:g}, lat={y:g} {PROBLEMS[code]}")


def check_bounds(minx: float, miny: float, maxx: float, maxy: float, *, where: str = "") -> None:
    """Raise InvalidInput naming `where` when a bounding box (of a feature or a whole file) is not degrees."""
    prefix = f"{where}: " if where else ""
    codes = set(classify_lonlat(np.array([minx, maxx]), np.array([miny, maxy])))
    for code in ("not_finite", "swapped", "projected", "zero"):
        if code in codes:
            kind = Unprocessable if code in ("zero", "swapped") else InvalidInput
            raise kind(f"{prefix}bounds ({minx:g}, {miny:g}, {maxx:g}, {maxy:g}) {PROBLEMS[code]}")


# ---- metres ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def local_metric_crs(*, lon: float, lat: float) -> CRS:
    """Return a transverse Mercator CRS (metres, WGS84) centred on lon/lat, for areas and lengths."""
    from pyproj import CRS
    from pyproj.crs import ProjectedCRS
    from pyproj.crs.coordinate_operation import TransverseMercatorConversion

    check_lonlat(lon=lon, lat=lat, where="centre of the metric CRS")
    conversion = TransverseMercatorConversion(
        latitude_natural_origin=float(lat),
        longitude_natural_origin=float(lon),
        false_easting=0.0,
        false_northing=0.0,
        scale_factor_natural_origin=1.0,
    )
    return ProjectedCRS(
        conversion=conversion, geodetic_crs=CRS.from_epsg(4326), name=f"Transverse Mercator centred on {lon:g}, {lat:g}"
    )


def geodesic_distance_m(*, lon1: Coord, lat1: Coord, lon2: Coord, lat2: Coord) -> Coord:
    """Return the WGS84 geodesic distance in metres between two points (or arrays of points)."""
    _, _, distance = _geod().inv(lon1, lat1, lon2, lat2)
    if np.ndim(distance) == 0:
        return float(distance)
    return np.asarray(distance, dtype=float)
