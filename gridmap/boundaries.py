"""Boundary files in and out: read, validate, normalise, import (dry run or one transaction), export.

Every refusal names the feature and the reason and happens before anything is written, so a failed import
leaves the database exactly as it was. Things real boundary files have (gaps, overlaps, grids reaching
outside their community, codes that do not start with the parent's code) are warnings, not errors: the
import loads them and the audit reports them.
"""

from __future__ import annotations

import json
import warnings
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
from gridmap.errors import InvalidInput
from gridmap.store import LEVELS, AreaRecord, Store, check_edition_name

IMPORT_LEVELS = ("district", "street", "community", "grid")
PARENT_LEVEL = {"district": "", "street": "district", "community": "street", "grid": "community"}
GRID_KINDS = ("综合", "专属")
OPTIONAL_INT_FIELDS = ("households", "population", "staff")
EXPORT_FORMATS = {"geojson": ("GeoJSON", ".geojson"), "gpkg": ("GPKG", ".gpkg"), "shp": ("ESRI Shapefile", ".shp")}
DEFAULT_EDITION = "main"
DEMO_FILES = {
    "district": "district.geojson",
    "street": "streets.geojson",
    "community": "communities.geojson",
    "grid": "grids.geojson",
}
# Shapefile (dBase) field names hold at most 10 characters: `parent_code` is written as `parent_cod`.
_DBF_NAME_LENGTH = 10
_WARNINGS_SHOWN = 20


@dataclass
class ImportPlan:
    """What an import would do; `commit_import` writes it."""

    path: Path
    level: str
    edition: str
    edition_status: str | None  # status the edition is created with, None when it exists already
    records: list[AreaRecord]
    warnings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Describe the plan in a few lines for people."""
        if self.edition_status:
            target = f"new edition {self.edition!r} (created as {self.edition_status})"
        else:
            target = f"edition {self.edition!r}"
        lines = [f"{len(self.records)} {self.level} areas from {self.path.name} into {target}"]
        lines += [f"repaired: {r}" for r in self.repairs]
        lines += [f"warning: {w}" for w in self.warnings[:_WARNINGS_SHOWN]]
        if len(self.warnings) > _WARNINGS_SHOWN:
            lines.append(f"... and {len(self.warnings) - _WARNINGS_SHOWN} more warnings")
        return lines


# ---- reading ----------------------------------------------------------------------------------------
def read_features(path: Path, *, crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a boundary file (GeoJSON, Shapefile, GeoPackage, KML) into EPSG:4326, naming any bad feature."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"{path}: is a folder, not a boundary file")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name}: the file is empty")
    if path.suffix.lower() in (".geojson", ".json"):
        _check_json_syntax(path)
    encoding = _shapefile_encoding(path) if path.suffix.lower() == ".shp" else None
    try:
        with warnings.catch_warnings():
            # GDAL reports problems such as unclosed rings as warnings and reads on; the per-feature
            # checks below turn them into errors that name the feature.
            warnings.simplefilter("ignore")
            meta, _fids, wkbs, field_data = pyogrio.raw.read(path, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{path.name}: cannot read it as a boundary file ({_gdal_reason(exc)})") from exc
    if wkbs is None or meta.get("geometry_type") in (None, "None"):
        raise InvalidInput(f"{path.name}: has no geometry column; it is not a geographic file")
    if len(wkbs) == 0:
        raise InvalidInput(f"{path.name}: has no features")
    columns = {name: values for name, values in zip(meta["fields"], field_data, strict=True)}
    geometries = [_geometry_from_wkb(wkb, index, path.name) for index, wkb in enumerate(wkbs)]
    frame = gpd.GeoDataFrame(columns, geometry=geometries, crs=_source_crs(meta.get("crs"), crs, path.name))
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4326")
    if not frame.crs.equals(CRS.from_epsg(4326)):
        if not frame.crs.is_geographic and not frame.crs.is_projected:
            raise InvalidInput(f"{path.name}: its CRS {frame.crs.name!r} is neither geographic nor projected")
        frame = frame.to_crs("EPSG:4326")
    return frame


def _check_json_syntax(path: Path) -> None:
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name}: GeoJSON must be UTF-8 (byte {exc.start} is not)") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(document, dict) or document.get("type") not in ("FeatureCollection", "Feature"):
        raise InvalidInput(f"{path.name}: not GeoJSON (expected a FeatureCollection or a Feature)")
    if document.get("type") == "FeatureCollection" and not document.get("features"):
        raise InvalidInput(f"{path.name}: has no features")


def _shapefile_encoding(path: Path) -> str | None:
    """Pick the attribute encoding of a shapefile: its .cpg when present, else UTF-8 if it decodes, else GB18030."""
    cpg = path.with_suffix(".cpg")
    if not cpg.exists():
        cpg = path.with_suffix(".CPG")
    if cpg.exists():
        declared = cpg.read_text(errors="replace").strip()
        return "UTF-8" if declared.upper() in ("UTF-8", "UTF8", "65001") else declared or None
    dbf = path.with_suffix(".dbf")
    if not dbf.exists():
        return None
    # Chinese shapefiles without a .cpg are almost always GBK: UTF-8 text never decodes as GB18030 by
    # accident in practice, while GBK text almost never decodes as UTF-8.
    content = dbf.read_bytes()
    header_length = int.from_bytes(content[8:10], "little")  # the dBase header is binary; only records are text
    try:
        content[header_length:].decode("utf-8")
    except UnicodeDecodeError:
        return "GB18030"
    return "UTF-8"


def _source_crs(declared: str | None, given: str | None, filename: str) -> CRS | None:
    if given:
        alias = {"wgs84": "EPSG:4326", "cgcs2000": "EPSG:4490"}.get(given.lower(), given)
        if given.lower() in ("gcj02", "bd09"):
            raise InvalidInput("GCJ-02 and BD-09 boundary files are not imported directly: convert them to WGS84 first")
        try:
            return CRS.from_user_input(alias)
        except CRSError as exc:
            raise InvalidInput(f"--crs {given!r} is not a coordinate reference system pyproj knows") from exc
    if declared:
        try:
            return CRS.from_user_input(declared)
        except CRSError as exc:
            raise InvalidInput(f"{filename}: its CRS {declared!r} is not understood; pass --crs") from exc
    return None


def _geometry_from_wkb(wkb: bytes | None, index: int, filename: str) -> shapely.Geometry | None:
    if wkb is None:
        return None
    try:
        return shapely.from_wkb(wkb)
    except shapely.errors.GEOSException as exc:
        reason = str(exc)
        if "closed linestring" in reason:
            reason = "a ring is not closed (its last point differs from its first)"
        elif "at least 4" in reason or "Invalid number of points" in reason:
            reason = "a ring has too few points (a polygon ring needs at least 4)"
        raise InvalidInput(f"{filename}: feature {index + 1}: {reason}") from exc


def _gdal_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if "not recognized as" in text else text


# ---- validating -------------------------------------------------------------------------------------
def plan_import(
    store: Store,
    path: Path,
    *,
    level: str,
    edition: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    parent_field: str = "parent_code",
    crs: str | None = None,
    fix_invalid: bool = False,
) -> ImportPlan:
    """Read and validate a boundary file against the database; raise on the first refusal, write nothing."""
    if level not in IMPORT_LEVELS:
        raise InvalidInput(f"--level must be one of {', '.join(IMPORT_LEVELS)}, not {level!r}")
    path = Path(path)
    frame = read_features(path, crs=crs)
    fields = _FieldMap(frame, path, code=code_field, name=name_field, parent=parent_field)

    edition_name, edition_status = _target_edition(store, edition)
    existing = store.area_codes(edition_name) if edition_status is None else {}
    parent_level = PARENT_LEVEL[level]
    parents = {code for code, lvl in existing.items() if lvl == parent_level}

    records: list[AreaRecord] = []
    repairs: list[str] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(frame.itertuples(index=False)):
        raw = row._asdict()
        code = _text(raw[fields.code])
        where = f"{path.name}: feature {index + 1}" + (f" (code {code})" if code else "")
        if not code:
            raise InvalidInput(f"{where}: the code field {fields.code!r} is empty")
        if code in seen:
            raise InvalidInput(f"{where}: duplicate code {code} (also feature {seen[code] + 1})")
        seen[code] = index
        if code in existing:
            raise InvalidInput(f"{where}: code {code} already exists in edition {edition_name!r}")
        parent = _text(raw[fields.parent]) if fields.parent else ""
        if parent:
            if level == "district":
                raise InvalidInput(f"{where}: a district is the top level and has no parent (found {parent})")
            if parent not in parents:
                raise InvalidInput(
                    f"{where}: parent code {parent} is not a {parent_level} of edition {edition_name!r}"
                    + ("" if parents else f" (it has no {parent_level} areas: load them first)")
                )
        elif level == "grid":
            raise InvalidInput(f"{where}: a grid needs the code of its community in {fields.parent or parent_field!r}")
        geometry = _checked_geometry(raw["geometry"], where, fix_invalid, repairs)
        records.append(
            AreaRecord(
                code=code,
                name=_text(raw[fields.name]) or code,
                level=level,
                parent_code=parent or None,
                geometry=geometry,
                kind=_kind(raw.get(fields.kind) if fields.kind else None, level, where),
                **{name: _int(raw.get(col), where, name) for name, col in fields.optional_ints.items()},
            )
        )
    plan = ImportPlan(path, level, edition_name, edition_status, records, repairs=repairs)
    plan.warnings = _coverage_warnings(store, plan, parent_level) if edition_status is None else []
    plan.warnings = _code_warnings(records) + plan.warnings + _overlap_warnings(records)
    return plan


def commit_import(store: Store, plan: ImportPlan) -> int:
    """Write a validated plan in one transaction."""
    return store.add_areas(plan.edition, plan.records, create_edition_status=plan.edition_status)


def _target_edition(store: Store, edition: str | None) -> tuple[str, str | None]:
    """Return the edition to load into and, when it must be created, its status.

    Without --edition the current edition is used; in a database with no editions at all a first edition
    named `main` is created as current (there is nothing it could replace). A named edition that does not
    exist yet is created as a draft, invisible to lookups until it is activated.
    """
    if edition:
        found = store.find_edition(edition)
        if found is None:
            return check_edition_name(edition), "draft"  # refused in the dry run already, not at --commit
        if found.status == "retired":
            raise InvalidInput(f"edition {edition!r} is retired; load into a new edition instead")
        return edition, None
    current = store.current_edition()
    if current is not None:
        return current.name, None
    if store.list_editions():
        raise InvalidInput("no edition is current: name one with --edition")
    return DEFAULT_EDITION, "current"


class _FieldMap:
    """The columns of the file that hold each attribute."""

    def __init__(self, frame: gpd.GeoDataFrame, path: Path, *, code: str, name: str, parent: str) -> None:
        self._columns = [c for c in frame.columns if c != "geometry"]
        self._shapefile = path.suffix.lower() == ".shp"
        self._path = path
        self.code = self._require(code, "--code-field")
        self.name = self._require(name, "--name-field")
        self.parent = self._find(parent)
        if self.parent is None and parent != "parent_code":
            self._require(parent, "--parent-field")
        self.kind = self._find("kind")
        self.optional_ints = {n: col for n in OPTIONAL_INT_FIELDS if (col := self._find(n))}

    def _find(self, wanted: str) -> str | None:
        if wanted in self._columns:
            return wanted
        if self._shapefile and wanted[:_DBF_NAME_LENGTH] in self._columns:
            return wanted[:_DBF_NAME_LENGTH]
        return None

    def _require(self, wanted: str, option: str) -> str:
        found = self._find(wanted)
        if found is None:
            raise InvalidInput(
                f"{self._path.name}: has no field {wanted!r} ({option}); its fields are: "
                + (", ".join(self._columns) or "none")
            )
        return found


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # numeric code columns in shapefiles come back as floats
    return str(value).strip()


def _int(value, where: str, name: str) -> int | None:
    text = _text(value)
    if not text:
        return None
    try:
        number = int(float(text))
    except ValueError as exc:
        raise InvalidInput(f"{where}: {name} {text!r} is not a whole number") from exc
    if number < 0:
        raise InvalidInput(f"{where}: {name} {number} is negative")
    return number


def _kind(value, level: str, where: str) -> str | None:
    text = _text(value)
    if level != "grid":
        return None
    if not text:
        return "综合"
    if text not in GRID_KINDS:
        raise InvalidInput(f"{where}: kind {text!r} must be one of {', '.join(GRID_KINDS)}")
    return text


def _checked_geometry(geometry, where: str, fix_invalid: bool, repairs: list[str]) -> shapely.Geometry:
    if geometry is None or geometry.is_empty:
        raise InvalidInput(f"{where}: has no geometry")
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(f"{where}: is a {geometry.geom_type}; boundaries must be polygons")
    if shapely.has_z(geometry):
        geometry = shapely.force_2d(geometry)
    minx, miny, maxx, maxy = geometry.bounds
    crs_rules.check_bounds(minx, miny, maxx, maxy, where=where)
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        if not fix_invalid:
            raise InvalidInput(f"{where}: invalid geometry: {reason} (use --fix-invalid to repair it)")
        repaired = _polygonal_part(shapely.make_valid(geometry))
        if repaired.is_empty:
            raise InvalidInput(f"{where}: invalid geometry ({reason}) that cannot be repaired into a polygon")
        before, after = _area_m2(geometry.buffer(0)), _area_m2(repaired)
        repairs.append(f"{where}: {reason}; area {before:,.0f} m² → {after:,.0f} m²")
        geometry = repaired
    if geometry.geom_type == "Polygon":
        geometry = shapely.MultiPolygon([geometry])
    return geometry


def _polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _area_m2(geometry: shapely.Geometry) -> float:
    if geometry.is_empty:
        return 0.0
    centre = geometry.centroid
    key = (round(centre.x, 1), round(centre.y, 1))
    if key not in _METRIC_TRANSFORMERS:
        # One transverse Mercator per 0.1° cell: building a pyproj transformer costs milliseconds.
        metric = crs_rules.local_metric_crs(lon=key[0], lat=key[1])
        _METRIC_TRANSFORMERS[key] = Transformer.from_crs("EPSG:4326", metric, always_xy=True)
    transformer = _METRIC_TRANSFORMERS[key]
    return float(
        shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))).area
    )


_METRIC_TRANSFORMERS: dict[tuple[float, float], Transformer] = {}


def _code_warnings(records: list[AreaRecord]) -> list[str]:
    return [
        f"{r.level} {r.code}: code does not start with its parent's code {r.parent_code}"
        for r in records
        if r.parent_code and not r.code.startswith(r.parent_code)
    ]


def _overlap_warnings(records: list[AreaRecord]) -> list[str]:
    geometries = np.array([r.geometry for r in records])
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="overlaps")
    pairs = sorted({(min(a, b), max(a, b)) for a, b in zip(left, right, strict=True) if a != b})
    return [f"{records[a].code} and {records[b].code} overlap" for a, b in pairs]


def _coverage_warnings(store: Store, plan: ImportPlan, parent_level: str) -> list[str]:
    """Warn about children reaching outside their parent and parents their children do not cover."""
    parent_codes = sorted({r.parent_code for r in plan.records if r.parent_code})
    if not parent_codes:
        return []
    parents = store.areas(plan.edition, parent_level, codes=parent_codes).set_index("code").geometry
    found: list[str] = []
    children: dict[str, list[shapely.Geometry]] = {}
    for record in plan.records:
        if record.parent_code in parents.index:
            children.setdefault(record.parent_code, []).append(record.geometry)
            outside = record.geometry.difference(parents[record.parent_code])
            if not outside.is_empty and _area_m2(outside) >= 1.0:
                found.append(
                    f"{record.level} {record.code} reaches {_area_m2(outside):,.0f} m² outside {record.parent_code}"
                )
    for code, parts in children.items():
        uncovered = parents[code].difference(shapely.union_all(parts))
        if not uncovered.is_empty and _area_m2(uncovered) >= 1.0:
            found.append(f"{parent_level} {code}: {_area_m2(uncovered):,.0f} m² covered by none of its {plan.level}s")
    return found


# ---- exporting --------------------------------------------------------------------------------------
def export_boundaries(
    store: Store, out: Path, *, level: str, edition: str | None = None, fmt: str | None = None
) -> int:
    """Write one level of an edition to a GeoJSON, GeoPackage or Shapefile; return the feature count."""
    if level not in LEVELS:
        raise InvalidInput(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    out = Path(out)
    fmt = (fmt or _format_from_suffix(out)).lower()
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    edition_name = edition or _current_edition_name(store)
    store.get_edition(edition_name)
    frame = store.areas(edition_name, level)
    if frame.empty:
        raise InvalidInput(f"edition {edition_name!r} has no {level} areas to export")
    frame = frame.drop(columns=["level"])
    for column in OPTIONAL_INT_FIELDS:
        frame[column] = frame[column].astype("Int64")
    driver, _suffix = EXPORT_FORMATS[fmt]
    if fmt == "shp":
        frame = frame.rename(columns={"parent_code": "parent_code"[:_DBF_NAME_LENGTH]})
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {"encoding": "UTF-8"} if fmt == "shp" else {}
    frame.to_file(out, driver=driver, engine="pyogrio", **options)
    return len(frame)


def _format_from_suffix(out: Path) -> str:
    for fmt, (_driver, suffix) in EXPORT_FORMATS.items():
        if out.suffix.lower() == suffix or (fmt == "geojson" and out.suffix.lower() == ".json"):
            return fmt
    raise InvalidInput(f"cannot tell the format of {out.name}: give --format geojson, gpkg or shp")


def _current_edition_name(store: Store) -> str:
    current = store.current_edition()
    if current is None:
        raise InvalidInput("no edition is current: name one with --edition")
    return current.name


def load_demo(store: Store, directory: Path, *, edition: str = DEFAULT_EDITION) -> dict[str, int]:
    """Load the demo district's streets, communities and grids into an edition and make it current."""
    counts: dict[str, int] = {}
    if store.find_edition(edition) is not None and store.area_codes(edition):
        raise InvalidInput(f"edition {edition!r} already has areas; the demo loads into an empty edition")
    for level, filename in DEMO_FILES.items():
        plan = plan_import(store, directory / filename, level=level, edition=edition)
        counts[level] = commit_import(store, plan)
    if store.get_edition(edition).status != "current":
        store.activate_edition(edition)
    return counts
