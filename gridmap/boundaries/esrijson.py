"""ArcGIS's JSON (what a feature service's `query?f=json` returns): rings, curve rings, spatial references.

GDAL's ESRIJSON reader returns no geometry for a feature with `curveRings`, so gridmap reads the format itself:
- `rings` and `curveRings`; in a curve ring a segment is a point (a straight line to it) or a curve object:
  `{"c": [end, interior]}` a circular arc, `{"a": [end, centre, minor, clockwise(, rotation, axis, ratio)]}` a
  circular or elliptic arc, `{"b": [end, control1, control2]}` a cubic Bézier. Curves are densified so that no
  step turns more than 5°; a shared curve is densified the same way from both sides (see `_canonical`).
- rings are sorted into polygons by orientation as ArcGIS writes them: outer rings clockwise, holes
  counter-clockwise, several outer rings make a multipart polygon. A file whose rings all turn the other way is
  read by nesting instead (with a warning).
- `spatialReference` as `latestWkid`/`wkid` (EPSG, else ESRI codes) or `wkt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from gridmap.boundaries.problems import Problem, refused, warning
from gridmap.errors import InvalidInput

MAX_TURN_DEG = 5.0  # largest angle a densified curve turns between two vertices
# ... and the farthest a chord may stray from its arc, in the units of the CRS: 1 cm in a projected CRS, about as
# much in degrees. A 5° chord of a 600 m radius strays 0.57 m and drops 0.13 % of a circle's area; 1 cm keeps a
# courtyard of 60 m radius within 0.03 % of what ArcGIS's Shape_Area says, a grid with curved sides within 0.01 %.
MAX_DEVIATION = {"projected": 0.01, "geographic": 1e-7}
_MAX_STEPS = 1440  # per curve segment: a full circle at a quarter of a degree


@dataclass
class EsriFeatures:
    """What an Esri JSON file holds: attribute columns, geometries in its own CRS, and what went wrong."""

    columns: dict[str, list]
    geometries: list[shapely.Geometry | None]
    crs: CRS | None
    aliases: dict[str, str] = field(default_factory=dict)  # field alias → field name
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)


def looks_like_esrijson(document) -> bool:
    """Tell an Esri JSON document (features with `attributes`, or a `geometryType`) from GeoJSON."""
    if not isinstance(document, dict):
        return False
    if "geometryType" in document or ("spatialReference" in document and "type" not in document):
        return True
    if "error" in document and "type" not in document:
        return True
    features = document.get("features")
    return isinstance(features, list) and any(isinstance(f, dict) and "attributes" in f for f in features[:10])


def read_esrijson(path: Path, document: dict) -> EsriFeatures:
    """Read an Esri JSON feature set; per-feature problems are collected, not raised."""
    name = path.name
    if "error" in document and "features" not in document:
        error = document["error"] if isinstance(document["error"], dict) else {}
        detail = f"{error.get('code', '?')}: {error.get('message', 'no message')}"
        raise InvalidInput(f"{name}: is an ArcGIS error response ({detail}), not features")
    features = document.get("features")
    if not isinstance(features, list):
        raise InvalidInput(f"{name}: Esri JSON without a list of features")
    if not features:
        raise InvalidInput(f"{name}: has no features")
    geometry_type = document.get("geometryType")
    if geometry_type not in (None, "esriGeometryPolygon"):
        raise InvalidInput(f"{name}: holds {geometry_type} features; boundaries must be polygons (esriGeometryPolygon)")
    reference = document.get("spatialReference")
    if reference is None:
        first = next((f.get("geometry") for f in features if isinstance(f, dict) and f.get("geometry")), None)
        reference = first.get("spatialReference") if isinstance(first, dict) else None
    fields_ = [f for f in document.get("fields") or [] if isinstance(f, dict) and f.get("name")]
    names = [f["name"] for f in fields_]
    aliases = {f["alias"]: f["name"] for f in fields_ if f.get("alias") and f["alias"] != f["name"]}
    crs = spatial_reference(reference, name)
    deviation = None if crs is None else MAX_DEVIATION["projected" if crs.is_projected else "geographic"]
    rows, geometries, problems, notes = [], [], [], []
    for index, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise InvalidInput(f"{name}: feature {index + 1} is not a JSON object")
        attributes = feature.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise InvalidInput(f"{name}: feature {index + 1}: its attributes are not a JSON object")
        rows.append(attributes)
        names += [key for key in attributes if key not in names]
        try:
            geometry, orientation_note = polygon_from_esri(feature.get("geometry"), deviation)
        except RingError as exc:
            problems.append(refused(exc.reason, str(exc), feature=index + 1))
            geometry = None
        else:
            if orientation_note:
                notes.append(warning("bad_ring", orientation_note, feature=index + 1))
        geometries.append(geometry)
    if document.get("exceededTransferLimit"):
        notes.append(
            warning(
                "truncated",
                f"{name} says exceededTransferLimit: the server sent only the first {len(features)} features; "
                "page through the layer with resultOffset (or raise maxRecordCount) and load every part",
            )
        )
    columns = {column: [row.get(column) for row in rows] for column in names}
    return EsriFeatures(columns, geometries, crs, aliases, problems, notes)


def spatial_reference(reference, filename: str) -> CRS | None:
    """Return the CRS of an Esri `spatialReference` object (None when there is none)."""
    if not reference:
        return None
    if not isinstance(reference, dict):
        raise InvalidInput(f"{filename}: its spatialReference is not a JSON object; pass --crs")
    for key in ("latestWkid", "wkid"):
        code = reference.get(key)
        if code in (None, 0):
            continue
        for authority in ("EPSG", "ESRI"):
            try:
                return CRS.from_authority(authority, str(int(code)))
            except (CRSError, ValueError, TypeError):
                continue
    for key in ("wkt2", "latestWkt", "wkt"):
        text = reference.get(key)
        if text:
            try:
                return CRS.from_user_input(text)
            except CRSError as exc:
                raise InvalidInput(
                    f"{filename}: its spatialReference WKT is not understood ({exc}); pass --crs"
                ) from exc
    raise InvalidInput(f"{filename}: its spatialReference {reference} names no CRS pyproj knows; pass --crs")


# ---- geometry -----------------------------------------------------------------------------------------------
class RingError(ValueError):
    """A ring that cannot be turned into coordinates; `reason` is a problems.REASONS key."""

    def __init__(self, message: str, reason: str = "bad_ring") -> None:
        super().__init__(message)
        self.reason = reason


def polygon_from_esri(geometry, deviation: float | None = None) -> tuple[shapely.Geometry | None, str | None]:
    """Return the (multi)polygon of an Esri polygon geometry, and a note when its rings turn the wrong way.

    Curves are densified in steps of at most 5° that stray at most `deviation` (CRS units) from the curve.
    """
    if geometry is None:
        return None, None
    if not isinstance(geometry, dict):
        raise RingError("its geometry is not a JSON object")
    rings = geometry.get("curveRings", geometry.get("rings"))
    if rings is None:
        kind = "a point" if "x" in geometry else "a polyline" if "paths" in geometry else "not a polygon"
        raise RingError(f"its geometry is {kind}; boundaries must be polygons", "not_polygon")
    if not isinstance(rings, list):
        raise RingError("its rings are not a list")
    if not rings:
        return None, None
    coordinates = [_ring(ring, k + 1, deviation) for k, ring in enumerate(rings)]
    return _assemble(coordinates)


def _point(value, ring: int, vertex: int) -> tuple[float, float]:
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise RingError(f"ring {ring}, vertex {vertex} is not a pair of numbers: {str(value)[:60]}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RingError(f"ring {ring}, vertex {vertex} is not finite: {x}, {y}")
    return x, y


def _ring(ring, number: int, deviation: float | None) -> list[tuple[float, float]]:
    if not isinstance(ring, list) or not ring:
        raise RingError(f"ring {number} is empty or not a list")
    points = [_point(ring[0], number, 1)]
    for k, segment in enumerate(ring[1:], start=2):
        if isinstance(segment, dict):
            points += _curve(points[-1], segment, number, k, deviation)
        else:
            points.append(_point(segment, number, k))
    if points[0] != points[-1]:
        raise RingError(f"ring {number} is not closed (its last point differs from its first)")
    if len(points) < 4:
        raise RingError(f"ring {number} has too few points (a polygon ring needs at least 4)")
    return points


def _curve(start: tuple[float, float], segment: dict, ring: int, vertex: int, deviation: float | None) -> list:
    """Return the points after `start` up to and including the curve's end point."""
    try:
        if "c" in segment:
            end, interior = _point(segment["c"][0], ring, vertex), _point(segment["c"][1], ring, vertex)
            return _canonical(start, end, lambda s, e, flip: _circular_arc(s, interior, e, deviation))
        if "a" in segment:
            values = segment["a"]
            end, centre = _point(values[0], ring, vertex), _point(values[1], ring, vertex)
            clockwise = bool(values[3])
            rotation, axis, ratio = (float(v) for v in values[4:7]) if len(values) >= 7 else (0.0, None, 1.0)
            return _canonical(
                start,
                end,
                lambda s, e, flip: _elliptic_arc(s, e, centre, clockwise != flip, (rotation, axis, ratio), deviation),
            )
        if "b" in segment:
            end, c1, c2 = (_point(p, ring, vertex) for p in segment["b"][:3])
            return _canonical(start, end, lambda s, e, flip: _bezier(s, *((c2, c1) if flip else (c1, c2)), e))
    except (TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, RingError):
            raise
        raise RingError(f"ring {ring}, segment {vertex}: a malformed curve {str(segment)[:80]}", "curve") from None
    raise RingError(
        f"ring {ring}, segment {vertex}: a curve of an unknown kind ({', '.join(sorted(segment)) or 'empty'}); "
        "gridmap reads c (circular arcs), a (circular and elliptic arcs) and b (cubic Béziers)",
        "curve",
    )


def _canonical(start, end, densify) -> list[tuple[float, float]]:
    """Densify a curve from its lower end point, so that two polygons sharing it get the very same vertices."""
    if end < start:
        inner = densify(end, start, True)[:-1]  # the points strictly between, from `end` towards `start`
        return [*reversed(inner), end]
    return [*densify(start, end, False)[:-1], end]


def _steps(sweep: float, radius: float | None = None, deviation: float | None = None) -> int:
    """Return how many chords a curve turning `sweep` radians needs: ≤ 5° each, straying ≤ `deviation`."""
    step = math.radians(MAX_TURN_DEG)
    if radius and deviation and deviation < radius:
        step = min(step, 2 * math.acos(1 - deviation / radius))
    return max(1, min(_MAX_STEPS, math.ceil(abs(sweep) / step - 1e-9)))


def _circular_arc(start, interior, end, deviation: float | None) -> list[tuple[float, float]]:
    (ax, ay), (bx, by), (cx, cy) = start, interior, end
    if start == end:  # a full circle: the interior point is opposite the start
        ox, oy = (ax + bx) / 2, (ay + by) / 2
        radius = math.hypot(ax - ox, ay - oy)
        a0 = math.atan2(ay - oy, ax - ox)
        return [*_on_circle((ox, oy), radius, a0, 2 * math.pi, deviation), end]
    # Relative to the start point, for precision with large projected coordinates.
    bx, by, cx, cy = bx - ax, by - ay, cx - ax, cy - ay
    d = 2 * (bx * cy - by * cx)
    scale = max(abs(bx), abs(by), abs(cx), abs(cy))
    if abs(d) <= 1e-12 * scale * scale:
        return [end]  # the three points are collinear: a straight segment
    ux = (cy * (bx * bx + by * by) - by * (cx * cx + cy * cy)) / d
    uy = (bx * (cx * cx + cy * cy) - cx * (bx * bx + by * by)) / d
    centre = (ax + ux, ay + uy)
    radius = math.hypot(ux, uy)
    a0 = math.atan2(-uy, -ux)
    to_end = (math.atan2(cy - uy, cx - ux) - a0) % (2 * math.pi)
    to_interior = (math.atan2(by - uy, bx - ux) - a0) % (2 * math.pi)
    sweep = to_end if to_interior < to_end else to_end - 2 * math.pi
    return [*_on_circle(centre, radius, a0, sweep, deviation), end]


def _on_circle(centre, radius: float, a0: float, sweep: float, deviation: float | None) -> list[tuple[float, float]]:
    n = _steps(sweep, radius, deviation)
    angles = a0 + sweep * np.arange(1, n) / n
    xs, ys = centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def _elliptic_arc(start, end, centre, clockwise: bool, shape: tuple, deviation: float | None) -> list:
    # Esri gives the rotation of the major axis in radians, counter-clockwise from the x axis.
    rotation, axis, ratio = shape
    cos_r, sin_r = math.cos(rotation), math.sin(rotation)
    if axis is None:  # the old circular form: the radius is the distance from the centre
        axis = (math.dist(start, centre) + math.dist(end, centre)) / 2
        ratio = 1.0
    if not axis > 0 or not ratio > 0:
        raise RingError(f"an elliptic arc with axis {axis} and ratio {ratio}", "curve")

    def parameter(point) -> float:
        dx, dy = point[0] - centre[0], point[1] - centre[1]
        u, v = dx * cos_r + dy * sin_r, -dx * sin_r + dy * cos_r
        return math.atan2(v / (axis * ratio), u / axis)

    t0, t1 = parameter(start), parameter(end)
    sweep = 2 * math.pi if start == end else (t1 - t0) % (2 * math.pi)
    if clockwise:
        sweep = sweep - 2 * math.pi if sweep > 0 else -2 * math.pi
    # In steps of the parameter t a chord strays at most a·dt²/8 from the ellipse (a the semi-major axis): as a
    # circle of radius a would.
    n = _steps(sweep, axis * max(ratio, 1.0), deviation)
    t = t0 + sweep * np.arange(1, n) / n
    u, v = axis * np.cos(t), axis * ratio * np.sin(t)
    xs, ys = centre[0] + u * cos_r - v * sin_r, centre[1] + u * sin_r + v * cos_r
    return [*zip(xs.tolist(), ys.tolist(), strict=True), end]


def _bezier(start, c1, c2, end) -> list[tuple[float, float]]:
    legs = [np.subtract(b, a) for a, b in ((start, c1), (c1, c2), (c2, end))]
    legs = [leg for leg in legs if np.hypot(*leg) > 0]
    turn = sum(abs(math.atan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1])) for a, b in pairwise(legs))
    n = _steps(turn)
    t = np.arange(1, n)[:, None] / n
    p = np.array([start, c1, c2, end], dtype=float)
    points = (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
    return [*map(tuple, points.tolist()), end]


def _signed_area(points: list[tuple[float, float]]) -> float:
    xy = np.asarray(points, dtype=float)
    x, y = xy[:, 0] - xy[0, 0], xy[:, 1] - xy[0, 1]
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) / 2)


def _assemble(rings: list[list[tuple[float, float]]]) -> tuple[shapely.Geometry, str | None]:
    """Sort rings into polygons: clockwise rings are outer rings, counter-clockwise rings holes (ArcGIS's rule)."""
    signed = [_signed_area(r) for r in rings]
    outers = [k for k, a in enumerate(signed) if a <= 0]
    note = None
    if outers:
        holes = [k for k, a in enumerate(signed) if a > 0]
        shells = {k: shapely.Polygon(rings[k]) for k in outers}
        owned: dict[int, list[int]] = {k: [] for k in outers}
        for h in holes:
            inside = shapely.point_on_surface(shapely.Polygon(rings[h]))
            around = [k for k in outers if shells[k].covers(inside)]
            if not around:
                raise RingError(f"ring {h + 1} turns counter-clockwise (a hole in ArcGIS) but lies in no outer ring")
            owned[min(around, key=lambda k: abs(signed[k]))].append(h)
    else:
        # Every ring turns counter-clockwise: written by a tool with the other convention. Nest them instead:
        # a ring inside an even number of others is an outer ring, inside an odd number a hole.
        note = "every ring turns counter-clockwise (ArcGIS writes outer rings clockwise); read by nesting"
        owned, depth = {}, {}
        for k in sorted(range(len(rings)), key=lambda k: -abs(signed[k])):
            inside = shapely.point_on_surface(shapely.Polygon(rings[k]))
            containers = [j for j in depth if shapely.Polygon(rings[j]).covers(inside)]
            depth[k] = len(containers)
            if depth[k] % 2 == 0:
                owned[k] = []
            else:
                owned[max(containers, key=lambda j: depth[j])].append(k)
    polygons = [shapely.Polygon(rings[k], [rings[h] for h in owned[k]]) for k in owned]
    return (polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)), note
