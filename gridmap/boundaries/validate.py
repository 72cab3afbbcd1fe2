"""Checking one feature of a boundary file: its code, name, attributes and geometry.

Each check returns what is wrong (a `problems.REASONS` key and a message) instead of raising, so one run reports
every problem of every feature. Limits follow the store's columns (`store/tables.py`): a code of at most 32
characters, a name of at most 200.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from gridmap import crs as crs_rules
from gridmap.errors import InvalidInput

MAX_CODE_LENGTH = 32
MAX_NAME_LENGTH = 200
# No Chinese county spans more than about 7° (Ruoqiang, Xinjiang); a bigger feature is a frame, a world
# polygon, or a ring wound the wrong way by the tool that wrote it.
MAX_EXTENT_DEG = 10.0
GRID_KINDS = ("综合", "专属")
OPTIONAL_INT_FIELDS = ("households", "population", "staff")
# Shapefile (dBase) field names hold at most 10 characters: `parent_code` is written as `parent_cod`.
DBF_NAME_LENGTH = 10
# Unicode categories a name or code may not contain: controls (newlines, tabs), format characters (zero-width
# spaces, direction overrides, byte-order marks), surrogates, private-use and unassigned code points.
_FORBIDDEN_CATEGORIES = {"Cc": "a control character", "Cf": "an invisible format character", "Cs": "a lone surrogate"}
_FORBIDDEN_CATEGORIES |= {"Co": "a private-use character", "Cn": "an unassigned code point"}

Issue = tuple[str, str]  # (reason, message)


class FieldMap:
    """The columns of the file that hold each attribute."""

    def __init__(
        self,
        frame: gpd.GeoDataFrame,
        path: Path,
        *,
        code: str,
        name: str,
        parent: str,
        aliases: dict[str, str] | None = None,
        extra: dict[str, str | None] | None = None,
    ) -> None:
        self._columns = [c for c in frame.columns if c != "geometry"]
        self._aliases = aliases or {}
        self._shapefile = path.suffix.lower() == ".shp"
        self._path = path
        self.code = self._require(code, "--code-field")
        self.name = self._require(name, "--name-field")
        self.parent = self._find(parent)
        if self.parent is None and parent != "parent_code":
            self._require(parent, "--parent-field")
        self.kind = self._find("kind")
        self.optional_ints = {n: col for n in OPTIONAL_INT_FIELDS if (col := self._find(n))}
        self.extra = {option: self._require(wanted, option) for option, wanted in (extra or {}).items() if wanted}

    def _find(self, wanted: str) -> str | None:
        if wanted in self._columns:
            return wanted
        if self._shapefile and wanted[:DBF_NAME_LENGTH] in self._columns:
            return wanted[:DBF_NAME_LENGTH]
        if self._aliases.get(wanted) in self._columns:
            return self._aliases[wanted]  # an Esri field alias (often the Chinese name of an English field)
        return None

    def _require(self, wanted: str, option: str) -> str:
        found = self._find(wanted)
        if found is None:
            listed = ", ".join(f"{c} ({alias})" if (alias := _alias_of(self._aliases, c)) else c for c in self._columns)
            raise InvalidInput(
                f"{self._path.name}: has no field {wanted!r} ({option}); its fields are: {listed or 'none'}"
            )
        return found


def _alias_of(aliases: dict[str, str], column: str) -> str | None:
    return next((alias for alias, name in aliases.items() if name == column), None)


def text(value) -> str:
    """Return an attribute as stripped text ("" for missing values); whole floats lose their ".0"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # numeric code columns in shapefiles come back as floats
    return str(value).strip()


def whole_number(value, name: str) -> tuple[int | None, Issue | None]:
    """Read a count such as households; return (number, None) or (None, issue)."""
    value_text = text(value)
    if not value_text:
        return None, None
    try:
        number = int(float(value_text))
    except (ValueError, OverflowError):
        return None, ("bad_value", f"{name} {value_text[:40]!r} is not a whole number")
    if number < 0:
        return None, ("bad_value", f"{name} {number} is negative")
    if number > 2**31 - 1:
        return None, ("bad_value", f"{name} {number} is too large")
    return number, None


def kind_of(value, level: str) -> tuple[str | None, Issue | None]:
    """Read a grid's kind (综合 comprehensive by default, or 专属 dedicated)."""
    value_text = text(value)
    if level != "grid":
        return None, None
    if not value_text:
        return "综合", None
    if value_text not in GRID_KINDS:
        return None, ("bad_value", f"kind {value_text[:20]!r} must be one of {', '.join(GRID_KINDS)}")
    return value_text, None


def _forbidden(value: str) -> tuple[int, str, str] | None:
    if value.isprintable() and "\ufffd" not in value:
        return None  # the common case, checked in C: no control, format, surrogate, private or unassigned character
    for position, character in enumerate(value):
        if character == "\ufffd":
            return position, character, "the replacement character � (the attribute encoding was wrong?)"
        what = _FORBIDDEN_CATEGORIES.get(unicodedata.category(character))
        if what:
            return position, character, what
    return None


def code_issue(code: str, what: str = "code") -> Issue | None:
    """Say what keeps a code (or a parent code) from being stored, if anything."""
    if len(code) > MAX_CODE_LENGTH:
        return "bad_code", f"the {what} has {len(code):,} characters; at most {MAX_CODE_LENGTH} fit ({code[:20]!r}…)"
    if any(c.isspace() for c in code):
        return "bad_code", f"the {what} {code!r} contains a space"
    found = _forbidden(code)
    if found:
        position, character, kind = found
        return "bad_code", f"the {what} contains {kind} (U+{ord(character):04X}) at position {position + 1}"
    return None


def name_issue(name: str) -> Issue | None:
    """Say what keeps a name from being stored or shown, if anything."""
    if len(name) > MAX_NAME_LENGTH:
        return "bad_name", f"the name has {len(name):,} characters; at most {MAX_NAME_LENGTH} fit ({name[:20]!r}…)"
    found = _forbidden(name)
    if found:
        position, character, what = found
        return "bad_name", f"the name contains {what} (U+{ord(character):04X}) at position {position + 1}"
    return None


def corner_problems(geometries: np.ndarray) -> list[set[str]]:
    """Classify the bounding-box corners of many geometries at once (see `crs.classify_lonlat`)."""
    present = np.array([g is not None and not g.is_empty for g in geometries], dtype=bool)
    bounds = np.full((len(geometries), 4), np.nan)
    if present.any():
        bounds[present] = shapely.bounds(np.asarray(geometries, dtype=object)[present])
    low = crs_rules.classify_lonlat(bounds[:, 0], bounds[:, 1])
    high = crs_rules.classify_lonlat(bounds[:, 2], bounds[:, 3])
    return [{a, b} - {""} for a, b in zip(low.tolist(), high.tolist(), strict=True)]


def geometry_issue(geometry, corners: set[str] | None = None) -> tuple[shapely.Geometry | None, Issue | None]:
    """Check a WGS84 geometry's type, coordinates and size; return it in 2-D, or the issue.

    `corners` are the problems of its bounding-box corners when already classified in bulk.
    """
    if geometry is None or geometry.is_empty:
        return None, ("no_geometry", "has no geometry")
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        return None, ("not_polygon", f"is a {geometry.geom_type}; boundaries must be polygons")
    if shapely.has_z(geometry):
        geometry = shapely.force_2d(geometry)
    minx, miny, maxx, maxy = geometry.bounds
    if corners is None:
        corners = corner_problems(np.array([geometry], dtype=object))[0]
    codes = corners
    where = f"bounds ({minx:g}, {miny:g}, {maxx:g}, {maxy:g})"
    for code in ("not_finite", "projected"):
        if code in codes:
            return None, ("bad_coordinates", f"{where} {crs_rules.PROBLEMS[code]}")
    if maxx - minx > MAX_EXTENT_DEG or maxy - miny > MAX_EXTENT_DEG:
        return None, (
            "too_large",
            f"spans {maxx - minx:.4g}° of longitude and {maxy - miny:.4g}° of latitude ({where}): larger than any "
            "Chinese county, so not a district, street, community or grid (a world or frame polygon?)",
        )
    for code in ("swapped", "zero"):
        if code in codes:
            return None, ("bad_coordinates", f"{where} {crs_rules.PROBLEMS[code]}")
    return geometry, None


def validity_issue(geometry: shapely.Geometry, fix_invalid: bool) -> tuple[shapely.Geometry | None, Issue | None, str]:
    """Check validity; with fix_invalid repair it. Return (geometry, issue, why it was repaired)."""
    if geometry.is_valid:
        return geometry, None, ""
    reason = shapely.is_valid_reason(geometry)
    if not fix_invalid:
        return None, ("invalid_geometry", f"invalid geometry: {reason} (use --fix-invalid to repair it)"), ""
    repaired = polygonal_part(shapely.make_valid(geometry))
    if repaired.is_empty:
        return None, ("invalid_geometry", f"invalid geometry ({reason}) that cannot be repaired into a polygon"), ""
    return repaired, None, reason


def polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """Return the polygons of a geometry (what make_valid returns may hold lines and points too)."""
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def as_multipolygon(geometry: shapely.Geometry) -> shapely.MultiPolygon:
    """Return a MultiPolygon (the store keeps every area as one)."""
    return shapely.MultiPolygon([geometry]) if geometry.geom_type == "Polygon" else geometry
