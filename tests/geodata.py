"""Tiny hand-drawn districts near Nankai (lon 117.1, lat 39.1), small enough to check by eye.

One street 120104001 (0.02° × 0.02°), split into two communities (west, east), each split into two grids
(north, south). Codes follow the 15-digit scheme; every boundary is an axis-aligned box so areas and
shared edges are exact.
"""

from __future__ import annotations

import json
from pathlib import Path

from shapely.geometry import box, mapping

W, S, E, N = 117.10, 39.10, 117.12, 39.12
MID_LON, MID_LAT = 117.11, 39.11

STREET = {"code": "120104001", "name": "长虹街道", "parent_code": "", "geometry": box(W, S, E, N)}
COMMUNITIES = [
    {"code": "120104001001", "name": "百合社区", "parent_code": "120104001", "geometry": box(W, S, MID_LON, N)},
    {"code": "120104001002", "name": "翠澜社区", "parent_code": "120104001", "geometry": box(MID_LON, S, E, N)},
]
GRIDS = [
    {
        "code": "120104001001001",
        "name": "百合第1网格",
        "parent_code": "120104001001",
        "kind": "综合",
        "households": 420,
        "population": 1100,
        "staff": 2,
        "geometry": box(W, MID_LAT, MID_LON, N),
    },
    {
        "code": "120104001001002",
        "name": "百合第2网格",
        "parent_code": "120104001001",
        "kind": "综合",
        "households": 380,
        "population": 990,
        "staff": 1,
        "geometry": box(W, S, MID_LON, MID_LAT),
    },
    {
        "code": "120104001002001",
        "name": "翠澜第1网格",
        "parent_code": "120104001002",
        "kind": "专属",
        "households": 35,
        "population": 80,
        "staff": 1,
        "geometry": box(MID_LON, MID_LAT, E, N),
    },
    {
        "code": "120104001002002",
        "name": "翠澜第2网格",
        "parent_code": "120104001002",
        "kind": "综合",
        "households": 510,
        "population": 1400,
        "staff": 3,
        "geometry": box(MID_LON, S, E, MID_LAT),
    },
]


def feature_collection(rows: list[dict]) -> dict:
    """Turn rows with a shapely `geometry` into a GeoJSON FeatureCollection."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {k: v for k, v in row.items() if k != "geometry"},
                "geometry": row["geometry"] if isinstance(row["geometry"], dict) else mapping(row["geometry"]),
            }
            for row in rows
        ],
    }


def write_geojson(path: Path, rows: list[dict]) -> Path:
    """Write rows as a GeoJSON file and return its path."""
    path.write_text(json.dumps(feature_collection(rows), ensure_ascii=False), encoding="utf-8")
    return path


def write_district(directory: Path) -> dict[str, Path]:
    """Write the tiny district as streets/communities/grids GeoJSON files."""
    return {
        "street": write_geojson(directory / "streets.geojson", [STREET]),
        "community": write_geojson(directory / "communities.geojson", COMMUNITIES),
        "grid": write_geojson(directory / "grids.geojson", GRIDS),
    }


def load_district(store, directory: Path, *, edition: str | None = None) -> None:
    """Load the tiny district (street, communities, grids) into a store through the real import path."""
    from gridmap import boundaries

    files = write_district(directory)
    for level in ("street", "community", "grid"):
        boundaries.commit_import(store, boundaries.plan_import(store, files[level], level=level, edition=edition))
