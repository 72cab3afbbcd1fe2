"""Reading boundary files: formats, attribute encodings, coordinate systems, and conversion to WGS84 lon/lat.

Formats: GeoJSON, Shapefile, GeoPackage and KML through GDAL (pyogrio); Esri JSON through `esrijson`. A feature
whose geometry cannot be read is a refusal of that feature, not of the file, so every problem is listed at once.

Coordinate systems (`--crs`, else what the file declares, else WGS84): an EPSG code (`4547`, `EPSG:4547`, the
CGCS2000 Gauss–Krüger zones 4491–4554 among them), a PROJ string, WKT, or the path of a `.prj` file; and the names
wgs84, cgcs2000, gcj02 and bd09. Edges straight in a projected CRS are densified to 50 m before reprojecting, so a
straight side stays on its neighbour's side in lon/lat; GCJ-02 and BD-09 lon/lat are densified to at most 50 m
and converted vertex by vertex with the iterative inverse (`gridmap.crs`).
"""

from __future__ import annotations

import codecs
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gridmap import crs as crs_rules
from gridmap.boundaries.esrijson import looks_like_esrijson, read_esrijson
from gridmap.boundaries.problems import Problem, refused, warning
from gridmap.errors import InvalidInput

WGS84 = CRS.from_epsg(4326)
NAMED_CRS = {"wgs84": "EPSG:4326", "wgs-84": "EPSG:4326", "gps": "EPSG:4326", "cgcs2000": "EPSG:4490"}
SHIFTED = {"gcj02": "GCJ-02", "gcj-02": "GCJ-02", "bd09": "BD-09", "bd-09": "BD-09"}
SHIFT_TO_WGS84: dict[str, Callable] = {
    "GCJ-02": lambda x, y: crs_rules.gcj02_to_wgs84(lon=x, lat=y),
    "BD-09": lambda x, y: crs_rules.bd09_to_wgs84(lon=x, lat=y),
}
# GCJ-02/BD-09 edges are densified to this many degrees before conversion: 4e-4° is at most 44.5 m (of latitude;
# a degree of longitude is shorter), so no edge is longer than 50 m when its vertices are shifted.
SHIFT_STEP_DEG = 4e-4
# Edges of a projected source are densified to this many of its units (metres) before reprojecting.
PROJECTED_STEP = 50.0
SHAPE_AREA_TOLERANCE = 0.002  # 0.2 %: curves and reprojection must not change an area more than this
_SHAPE_AREA_FIELDS = {"shapearea", "shapestarea", "stareashape"}
_GB_ENCODINGS = {"GBK", "GB2312", "GB18030", "CP936", "936", "ANSI936", "CP 936", "MS936", "EUC-CN", "GB_2312-80"}
_JSON_SUFFIXES = (".geojson", ".json", ".esrijson")


@dataclass(frozen=True)
class SourceCRS:
    """The coordinate system of a file's coordinates, and where gridmap learnt it."""

    crs: CRS | None
    shift: str | None = None  # "GCJ-02" or "BD-09": lon/lat with the Chinese map providers' offset
    origin: str = "--crs"

    def describe(self) -> str:
        """Say how the coordinates were read, for the import summary."""
        if self.shift:
            return (
                f"{self.shift} lon/lat ({self.origin}), edges densified to ≤ 50 m and each vertex converted to WGS84 "
                "with the iterative inverse"
            )
        if self.crs is None:
            return "no CRS declared: taken as WGS84 lon/lat"
        code = self.crs.to_epsg(min_confidence=70)
        name = f"{self.crs.name} (EPSG:{code})" if code else self.crs.name
        if self.crs.is_projected:
            return f"{name} ({self.origin}), edges densified to ≤ {PROJECTED_STEP:g} m and reprojected to WGS84"
        return f"{name} ({self.origin})"


@dataclass
class SourceFile:
    """A boundary file read into WGS84: attributes, geometries (None where unreadable) and what went wrong."""

    path: Path
    frame: gpd.GeoDataFrame
    crs: SourceCRS
    problems: list[Problem] = field(default_factory=list)  # refusals of single features
    notes: list[Problem] = field(default_factory=list)  # warnings about the file or its features
    aliases: dict[str, str] = field(default_factory=dict)  # field alias → field name (Esri JSON)
    shape_area: dict | None = None  # {"compared": n, "largest_difference_percent": x} when the file has Shape_Area


# ---- the coordinate system ------------------------------------------------------------------------------------
def parse_crs(text: str) -> SourceCRS:
    """Read `--crs`: a name, an EPSG code, a PROJ string, WKT, or a .prj file; raise InvalidInput naming it."""
    given = str(text).strip()
    key = given.lower().replace(" ", "").replace("_", "")
    if key in SHIFTED:
        return SourceCRS(WGS84, SHIFTED[key])
    if key in NAMED_CRS:
        return SourceCRS(CRS.from_user_input(NAMED_CRS[key]))
    candidate = given
    if given.isdigit():
        candidate = f"EPSG:{given}"
    elif given.lower().endswith(".prj") or _names_a_file(given):
        path = Path(given)
        if not path.is_file():
            raise InvalidInput(f"--crs {given!r}: no such .prj file")
        raw = path.read_bytes()
        candidate = raw.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
        if not candidate:
            raise InvalidInput(f"--crs {given!r}: the .prj file is empty")
    try:
        return SourceCRS(CRS.from_user_input(candidate))
    except CRSError as exc:
        shown = given if len(given) <= 80 else given[:77] + "…"
        raise InvalidInput(
            f"--crs {shown!r} is not a coordinate reference system pyproj knows: give an EPSG code (e.g. 4548 for "
            "CGCS2000 / 3-degree Gauss–Krüger CM 117E), a PROJ string, WKT, the path of a .prj file, or one of "
            "wgs84, cgcs2000, gcj02, bd09"
        ) from exc


def _names_a_file(text: str) -> bool:
    if any(mark in text for mark in ("[", "=", "\n")):
        return False  # WKT or a PROJ string
    try:
        return Path(text).is_file()
    except OSError:
        return False


def _declared_crs(declared, filename: str) -> CRS | None:
    if declared is None or isinstance(declared, CRS):
        return declared
    try:
        return CRS.from_user_input(declared)
    except CRSError as exc:
        raise InvalidInput(f"{filename}: its CRS {str(declared)[:80]!r} is not understood; pass --crs") from exc


# ---- reading ----------------------------------------------------------------------------------------------------
def read_features(path: Path, *, crs: str | None = None) -> SourceFile:
    """Read a boundary file into WGS84; file-level failures raise, feature-level ones are collected."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"{path}: is a folder, not a boundary file")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name}: the file is empty")
    given = parse_crs(crs) if crs else None
    notes: list[Problem] = []
    aliases: dict[str, str] = {}
    document = _load_json(path) if path.suffix.lower() in _JSON_SUFFIXES else None
    if document is not None and (path.suffix.lower() == ".esrijson" or looks_like_esrijson(document)):
        esri = read_esrijson(path, document)
        columns, geometries, declared = esri.columns, esri.geometries, esri.crs
        problems, aliases = esri.problems, esri.aliases
        notes += esri.notes
    else:
        if document is not None:
            _check_geojson(document, path.name)
        columns, geometries, declared, problems, note = _read_with_gdal(path)
        notes += [note] if note else []
    source = given or SourceCRS(_declared_crs(declared, path.name), origin="the file")
    shape_area, area_notes = _shape_area_check(columns, geometries)
    notes += area_notes
    converted = to_wgs84(np.array(geometries, dtype=object), source, path.name)
    frame = gpd.GeoDataFrame(columns, geometry=list(converted), crs="EPSG:4326")
    return SourceFile(path, frame, source, problems, notes, aliases, shape_area)


def _load_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name}: GeoJSON must be UTF-8 (byte {exc.start} is not)") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{path.name}: JSON nested too deeply to be a boundary file") from exc


def _check_geojson(document, filename: str) -> None:
    if not isinstance(document, dict) or document.get("type") not in ("FeatureCollection", "Feature"):
        raise InvalidInput(
            f"{filename}: neither GeoJSON (a FeatureCollection or a Feature) nor Esri JSON (features with attributes)"
        )
    if document.get("type") == "FeatureCollection" and not document.get("features"):
        raise InvalidInput(f"{filename}: has no features")


def _read_with_gdal(path: Path):
    encoding, note = _shapefile_encoding(path) if path.suffix.lower() == ".shp" else (None, None)
    try:
        with warnings.catch_warnings():
            # GDAL reports problems such as unclosed rings as warnings and reads on; the per-feature checks
            # turn them into refusals that name the feature.
            warnings.simplefilter("ignore")
            meta, _fids, wkbs, field_data = pyogrio.raw.read(path, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{path.name}: cannot read it as a boundary file ({_gdal_reason(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path.name}: its attributes are not {encoding or 'UTF-8'} (at byte {exc.start} of a value); "
            "give the encoding in a .cpg file next to it (e.g. GBK or UTF-8)"
        ) from exc
    if wkbs is None or meta.get("geometry_type") in (None, "None"):
        raise InvalidInput(f"{path.name}: has no geometry column; it is not a geographic file")
    if len(wkbs) == 0:
        raise InvalidInput(f"{path.name}: has no features")
    columns = {name: list(values) for name, values in zip(meta["fields"], field_data, strict=True)}
    problems: list[Problem] = []
    geometries = []
    for index, wkb in enumerate(wkbs):
        geometry, problem = _geometry_from_wkb(wkb, index)
        geometries.append(geometry)
        if problem:
            problems.append(problem)
    return columns, geometries, meta.get("crs"), problems, note


def _geometry_from_wkb(wkb: bytes | None, index: int) -> tuple[shapely.Geometry | None, Problem | None]:
    if wkb is None:
        return None, None
    try:
        return shapely.from_wkb(wkb), None
    except shapely.errors.GEOSException as exc:
        reason = str(exc)
        if "closed linestring" in reason:
            reason = "a ring is not closed (its last point differs from its first)"
        elif "at least 4" in reason or "Invalid number of points" in reason:
            reason = "a ring has too few points (a polygon ring needs at least 4)"
        return None, refused("bad_ring", reason, feature=index + 1)


def _gdal_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if "not recognized as" in text else text


# ---- shapefile attribute encodings ----------------------------------------------------------------------------
def _shapefile_encoding(path: Path) -> tuple[str | None, Problem | None]:
    """Pick the attribute encoding of a shapefile: its .cpg when the records decode that way, else UTF-8 or GB18030.

    Chinese shapefiles are GBK more often than not, and a .cpg that says UTF-8 over GBK records is common (written
    by a tool that did not re-encode). Reading such a file as the .cpg says fails on the first Chinese name, so the
    records are tried first and the .cpg is overruled, with a warning, when they are plainly something else.
    """
    records = _dbf_records(path)
    cpg = next((p for p in (path.with_suffix(".cpg"), path.with_suffix(".CPG")) if p.exists()), None)
    if cpg is not None:
        declared = cpg.read_bytes().decode("ascii", errors="replace").strip()
        encoding = _encoding_name(declared)
        try:
            codecs.lookup(encoding)
        except LookupError:
            encoding = None
        if encoding and (records is None or _decodes(records, encoding)):
            return encoding, None
        for guess, label in (("UTF-8", "UTF-8"), ("GB18030", "GBK/GB18030")):
            if guess != encoding and records is not None and _decodes(records, guess):
                said = f"says {declared!r}" if encoding else f"names an unknown encoding {declared!r}"
                return guess, warning(
                    "encoding",
                    f"{cpg.name} {said} but the attributes are {label}; read them as {label} (check the names)",
                )
        raise InvalidInput(
            f"{cpg.name} says {declared!r} but the attributes of {path.with_suffix('.dbf').name} are neither that, "
            "UTF-8 nor GBK: write the right encoding into the .cpg file"
        )
    if records is None:
        return None, None
    # Chinese shapefiles without a .cpg are almost always GBK: UTF-8 text never decodes as GB18030 by
    # accident in practice, while GBK text almost never decodes as UTF-8.
    for guess in ("UTF-8", "GB18030"):
        if _decodes(records, guess):
            return guess, None
    raise InvalidInput(
        f"{path.with_suffix('.dbf').name}: its attributes are neither UTF-8 nor GBK: "
        "give their encoding in a .cpg file next to it"
    )


def _dbf_records(path: Path) -> bytes | None:
    dbf = next((p for p in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return None
    content = dbf.read_bytes()
    header_length = int.from_bytes(content[8:10], "little")  # the dBase header is binary; only records are text
    return content[header_length:]


def _encoding_name(declared: str) -> str:
    upper = declared.upper().replace(" ", "")
    if upper in ("UTF-8", "UTF8", "65001"):
        return "UTF-8"
    if upper in {e.replace(" ", "") for e in _GB_ENCODINGS}:
        return "GB18030"  # a superset of GBK and GB2312
    return declared


def _decodes(content: bytes, encoding: str) -> bool:
    try:
        content.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


# ---- Shape_Area --------------------------------------------------------------------------------------------------
def _shape_area_check(columns: dict, geometries: list) -> tuple[dict | None, list[Problem]]:
    """Compare each feature's area in the file's own CRS with its Shape_Area attribute (ArcGIS writes one)."""
    column = next((c for c in columns if re.sub(r"[^a-z]", "", str(c).lower()) in _SHAPE_AREA_FIELDS), None)
    if column is None:
        return None, []
    notes, differences = [], []
    for index, (value, geometry) in enumerate(zip(columns[column], geometries, strict=True)):
        try:
            expected = float(value)
        except (TypeError, ValueError):
            continue
        if geometry is None or not expected > 0 or geometry.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        difference = abs(geometry.area - expected) / expected
        differences.append(difference)
        if difference > SHAPE_AREA_TOLERANCE:
            notes.append(
                warning(
                    "area_mismatch",
                    f"area {geometry.area:,.1f} differs from its {column} {expected:,.1f} by {100 * difference:.2f} % "
                    f"(more than {100 * SHAPE_AREA_TOLERANCE:g} %)",
                    feature=index + 1,
                )
            )
    if not differences:
        return None, notes
    summary = {
        "field": column,
        "compared": len(differences),
        "largest_difference_percent": round(100 * max(differences), 5),
        "within_tolerance": sum(d <= SHAPE_AREA_TOLERANCE for d in differences),
    }
    return summary, notes


# ---- to WGS84 ----------------------------------------------------------------------------------------------------
def to_wgs84(geometries: np.ndarray, source: SourceCRS, filename: str) -> np.ndarray:
    """Return the geometries in WGS84 lon/lat, densifying edges first where the conversion bends them."""
    if source.shift:
        return map_rings(geometries, SHIFT_STEP_DEG, SHIFT_TO_WGS84[source.shift])
    if source.crs is None or source.crs.equals(WGS84):
        return geometries
    if not source.crs.is_geographic and not source.crs.is_projected:
        raise InvalidInput(f"{filename}: its CRS {source.crs.name!r} is neither geographic nor projected")
    # always_xy: files store x (easting, longitude) first whatever the CRS's axis order (EPSG:4490 is lat-first).
    transformer = Transformer.from_crs(source.crs, WGS84, always_xy=True)
    if source.crs.is_geographic:
        return map_rings(geometries, None, lambda x, y: transformer.transform(x, y))
    converted = map_rings(geometries, PROJECTED_STEP, lambda x, y: transformer.transform(x, y))
    _check_reprojection(converted, source, filename)
    return converted


def map_rings(geometries: np.ndarray, step: float | None, convert: Callable) -> np.ndarray:
    """Densify every ring of the (multi)polygons to `step` (when given), then convert each vertex with `convert`.

    Rings are densified as lines: shapely's segmentize of a polygon "repairs" an invalid result with buffer(0).
    Vertices shared by neighbours are converted identically, so shared edges stay shared.
    """
    out = np.array(geometries, dtype=object)
    polygonal = np.array(
        [g is not None and g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty for g in out], dtype=bool
    )
    others = np.flatnonzero(~polygonal & np.array([g is not None for g in out], dtype=bool))
    for i in others:  # points, lines: converted vertex by vertex (they are refused later anyway)
        out[i] = shapely.transform(out[i], lambda xy: np.column_stack(convert(xy[:, 0], xy[:, 1])))
    chosen = np.flatnonzero(polygonal)
    if not len(chosen):
        return out
    parts, owner = shapely.get_parts(out[chosen], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    lines = shapely.linestrings(
        shapely.get_coordinates(rings), indices=np.repeat(np.arange(len(rings)), shapely.get_num_coordinates(rings))
    )
    if step:
        lines = shapely.segmentize(lines, step)
    coords, ring_of = shapely.get_coordinates(lines, return_index=True)
    x, y = convert(coords[:, 0], coords[:, 1])
    new_rings = shapely.linearrings(np.column_stack([x, y]), indices=ring_of)
    new_parts = shapely.polygons(new_rings, indices=ring_part)
    multi = np.array([out[i].geom_type == "MultiPolygon" for i in chosen], dtype=bool)
    first = np.searchsorted(owner, np.arange(len(chosen)))
    rebuilt = np.empty(len(chosen), dtype=object)
    rebuilt[~multi] = new_parts[first[~multi]]
    if multi.any():
        grouped = shapely.multipolygons(new_parts, indices=owner)
        rebuilt[multi] = grouped[multi]
    out[chosen] = rebuilt
    return out


def _check_reprojection(converted: np.ndarray, source: SourceCRS, filename: str) -> None:
    """Refuse a projected file whose coordinates mostly land outside China: its CRS is wrong (a zone, a prefix)."""
    present = [g for g in converted if g is not None and not g.is_empty]
    if not present:
        return
    bounds = shapely.bounds(np.array(present, dtype=object))
    with np.errstate(invalid="ignore"):
        centre_lon, centre_lat = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
        inside = crs_rules.in_china(lon=centre_lon, lat=centre_lat)
    if np.mean(inside) >= 0.5:
        return
    hint = (
        "; for CGCS2000 Gauss–Krüger, eastings with the zone number in front (e.g. 39 500 000) need "
        "EPSG:4491–4501 (6°) or 4513–4533 (3°), eastings without it (500 000) EPSG:4502–4512 or 4534–4554"
    )
    raise InvalidInput(
        f"{filename}: read as {source.describe()}, most features land outside China "
        f"(e.g. near lon {centre_lon[0]:.4g}, lat {centre_lat[0]:.4g}): the coordinate system is wrong; "
        f"give the right one with --crs{hint}"
    )
