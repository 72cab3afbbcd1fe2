"""Coordinate systems: GCJ-02 / BD-09 transforms and their inverses, the China rule, sanity checks, metres."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

from gridmap import crs
from gridmap.errors import InvalidInput

# Well inside the China rule's outline (clear of its rectangles' edges, Taiwan and Vietnam), so a point
# and its shifted image are both inside.
china_lon = st.floats(min_value=98.0, max_value=119.0)
china_lat = st.floats(min_value=23.0, max_value=42.0)

TIANJIN = (117.2, 39.13)
OUTSIDE = {
    "Seoul": (126.98, 37.57),
    "Pyongyang": (125.75, 39.03),
    "Tokyo": (139.69, 35.69),
    "Taipei": (121.56, 25.04),
    "Hanoi": (105.85, 21.03),
    "Ulaanbaatar": (106.91, 47.92),
    "Vladivostok": (131.89, 43.12),
    "Delhi": (77.21, 28.61),
    "London": (-0.12, 51.5),
    "Sydney": (151.2, -33.87),
}
INSIDE = {
    "Tianjin": TIANJIN,
    "Hong Kong": (114.17, 22.3),
    "Urumqi": (87.6, 43.8),
    "Kashgar": (75.99, 39.47),
    "Lhasa": (91.1, 29.65),
    "Harbin": (126.63, 45.75),
    "Sanya": (109.51, 18.25),
}


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return crs.geodesic_distance_m(lon1=a[0], lat1=a[1], lon2=b[0], lat2=b[1])


# ---- reference values ------------------------------------------------------------------------------
def test_forward_transforms_match_the_published_reference_values():
    # The example in the README of wandergis/coordTransform, reproduced by many implementations.
    assert crs.wgs84_to_gcj02(lon=116.404, lat=39.915) == pytest.approx(
        (116.41024449916938, 39.91640428150164), abs=1e-12
    )
    assert crs.gcj02_to_bd09(lon=116.404, lat=39.915) == pytest.approx(
        (116.41036949371029, 39.92133699351021), abs=1e-12
    )
    assert crs.wgs84_to_bd09(lon=116.404, lat=39.915) == pytest.approx(
        (116.41662724378733, 39.922699552216216), abs=1e-12
    )
    # ... and what that README calls gcj02towgs84 is the one-step inverse.
    assert crs.gcj02_to_wgs84_one_step(lon=116.404, lat=39.915) == pytest.approx(
        (116.39775550083061, 39.91359571849836), abs=1e-12
    )


def test_bd09_inverse_refines_the_closed_form_by_centimetres():
    closed_form = (116.39762729119315, 39.90865673957631)  # the reference library's bd09togcj02(116.404, 39.915)
    refined = crs.bd09_to_gcj02(lon=116.404, lat=39.915)
    assert 0.01 < metres(refined, closed_form) < 0.2
    assert metres(crs.gcj02_to_bd09(lon=refined[0], lat=refined[1]), (116.404, 39.915)) < 1e-6


def test_tianjin_gcj02_offset_is_a_few_hundred_metres():
    shifted = crs.wgs84_to_gcj02(lon=TIANJIN[0], lat=TIANJIN[1])
    assert 100 < metres(TIANJIN, shifted) < 700
    assert 100 < metres(TIANJIN, crs.wgs84_to_bd09(lon=TIANJIN[0], lat=TIANJIN[1])) < 2000


# ---- inverses --------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat)
def test_gcj02_round_trip_is_within_a_centimetre(lon, lat):
    gcj = crs.wgs84_to_gcj02(lon=lon, lat=lat)
    assert metres((lon, lat), gcj) > 1  # the shift really happened
    assert metres((lon, lat), crs.gcj02_to_wgs84(lon=gcj[0], lat=gcj[1])) < 0.01


@settings(max_examples=300, deadline=None)
@given(lon=china_lon, lat=china_lat)
def test_bd09_round_trip_is_within_a_centimetre(lon, lat):
    bd = crs.wgs84_to_bd09(lon=lon, lat=lat)
    assert metres((lon, lat), crs.bd09_to_wgs84(lon=bd[0], lat=bd[1])) < 0.01
    gcj = crs.wgs84_to_gcj02(lon=lon, lat=lat)
    bd_from_gcj = crs.gcj02_to_bd09(lon=gcj[0], lat=gcj[1])
    assert metres(bd, bd_from_gcj) < 1e-6
    assert metres(gcj, crs.bd09_to_gcj02(lon=bd[0], lat=bd[1])) < 0.01


def test_one_step_inverse_is_metres_off_which_is_why_we_iterate():
    lon, lat = np.meshgrid(np.linspace(98, 119, 300), np.linspace(23, 42, 300))
    gcj_lon, gcj_lat = crs.wgs84_to_gcj02(lon=lon, lat=lat)
    naive = crs.gcj02_to_wgs84_one_step(lon=gcj_lon, lat=gcj_lat)
    iterated = crs.gcj02_to_wgs84(lon=gcj_lon, lat=gcj_lat)
    naive_error = crs.geodesic_distance_m(lon1=lon, lat1=lat, lon2=naive[0], lat2=naive[1])
    iterated_error = crs.geodesic_distance_m(lon1=lon, lat1=lat, lon2=iterated[0], lat2=iterated[1])
    assert 1.0 < naive_error.max() < 5.0
    assert iterated_error.max() < 0.001


# ---- inside / outside China ------------------------------------------------------------------------
@pytest.mark.parametrize("place", list(OUTSIDE))
def test_points_outside_china_are_returned_unchanged(place):
    lon, lat = OUTSIDE[place]
    assert not crs.in_china(lon=lon, lat=lat)
    for transform in (
        crs.wgs84_to_gcj02,
        crs.gcj02_to_wgs84,
        crs.gcj02_to_bd09,
        crs.bd09_to_gcj02,
        crs.wgs84_to_bd09,
        crs.bd09_to_wgs84,
        crs.gcj02_to_wgs84_one_step,
    ):
        assert transform(lon=lon, lat=lat) == (lon, lat), transform.__name__


@pytest.mark.parametrize("place", list(INSIDE))
def test_points_inside_china_are_shifted(place):
    lon, lat = INSIDE[place]
    assert crs.in_china(lon=lon, lat=lat)
    assert 30 < metres((lon, lat), crs.wgs84_to_gcj02(lon=lon, lat=lat)) < 1000


def test_the_china_rule_is_better_than_the_bounding_box():
    # Every one of these is inside the usual box (lon 72.004-137.8347, lat 0.8293-55.8271).
    for place in ("Seoul", "Pyongyang", "Taipei", "Hanoi", "Ulaanbaatar", "Vladivostok", "Delhi"):
        lon, lat = OUTSIDE[place]
        assert 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271
        assert not crs.in_china(lon=lon, lat=lat)


def test_arrays_give_the_same_answers_as_scalars_and_keep_their_shape():
    points = [*INSIDE.values(), *OUTSIDE.values(), (math.nan, 39.0)]
    lon = np.array([p[0] for p in points]).reshape(2, -1)
    lat = np.array([p[1] for p in points]).reshape(2, -1)
    for transform in (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84, crs.wgs84_to_bd09, crs.bd09_to_wgs84):
        out_lon, out_lat = transform(lon=lon, lat=lat)
        assert out_lon.shape == lon.shape and out_lat.shape == lat.shape
        for i, (x, y) in enumerate(points[:-1]):
            # An inverse iterates until the whole batch converges, so a batch may take one step more.
            assert (out_lon.flat[i], out_lat.flat[i]) == pytest.approx(transform(lon=x, lat=y), abs=1e-11)
        assert math.isnan(out_lon.flat[-1]) and out_lat.flat[-1] == 39.0
    assert lon.flat[0] == INSIDE["Tianjin"][0]  # the input array is not modified


def test_scalars_come_back_as_python_floats():
    lon, lat = crs.gcj02_to_wgs84(lon=117, lat=39)
    assert type(lon) is float and type(lat) is float
    assert crs.to_wgs84(lon=117, lat=39, crs="cgcs2000") == (117.0, 39.0)


# ---- dispatch --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wgs84", "wgs84"),
        ("GPS", "wgs84"),
        ("EPSG:4326", "wgs84"),
        ("epsg:4490", "cgcs2000"),
        ("CGCS2000", "cgcs2000"),
        ("GCJ-02", "gcj02"),
        ("gcj02", "gcj02"),
        (" BD09 ", "bd09"),
        ("bd-09", "bd09"),
    ],
)
def test_crs_names_and_aliases_are_case_insensitive(name, expected):
    assert crs.canonical_crs(name) == expected


def test_dispatcher_converts_each_system_to_wgs84_and_back():
    lon, lat = TIANJIN
    for name, forward in (("gcj02", crs.wgs84_to_gcj02), ("bd09", crs.wgs84_to_bd09)):
        shifted = forward(lon=lon, lat=lat)
        assert crs.from_wgs84(lon=lon, lat=lat, crs=name) == shifted
        assert metres(crs.to_wgs84(lon=shifted[0], lat=shifted[1], crs=name.upper()), TIANJIN) < 0.01
    assert crs.to_wgs84(lon=lon, lat=lat, crs="EPSG:4490") == TIANJIN
    assert crs.from_wgs84(lon=lon, lat=lat, crs="gps") == TIANJIN


@pytest.mark.parametrize("name", ["mars", "epsg:3857", ""])
def test_unknown_crs_is_refused_naming_the_allowed_values(name):
    with pytest.raises(InvalidInput, match="wgs84, cgcs2000, gcj02, bd09") as caught:
        crs.to_wgs84(lon=117.2, lat=39.1, crs=name)
    assert repr(name) in caught.value.message
    with pytest.raises(InvalidInput, match="unknown coordinate system"):
        crs.from_wgs84(lon=117.2, lat=39.1, crs=name)


# ---- sanity checks ---------------------------------------------------------------------------------
def test_plausible_points_pass():
    for lon, lat in [TIANJIN, OUTSIDE["London"], OUTSIDE["Sydney"], (-180.0, -90.0), (180.0, 90.0)]:
        crs.check_lonlat(lon=lon, lat=lat)


def test_swapped_coordinates_are_named():
    with pytest.raises(InvalidInput) as caught:
        crs.check_lonlat(lon=39.13, lat=117.2, where="row 12")
    assert caught.value.message == (
        "row 12: lon=39.13, lat=117.2 looks like latitude, longitude (swapped); give longitude first"
    )


def test_projected_metres_are_named():
    with pytest.raises(InvalidInput) as caught:
        crs.check_lonlat(lon=500000.0, lat=4330000.0, where="feature 3 (code 120104001001001)")
    assert caught.value.message == (
        "feature 3 (code 120104001001001): lon=500000, lat=4.33e+06 looks like projected metres, not degrees; "
        "give the file's CRS"
    )


@pytest.mark.parametrize(
    ("lon", "lat", "words"),
    [
        (math.nan, 39.0, "not a finite number"),
        (117.0, math.inf, "not a finite number"),
        (0.0, 0.0, "0, 0"),
        (117.2, 95.0, "projected"),
        (-200.0, 39.0, "projected"),
        ("abc", 39.0, "not a pair of numbers"),
        (None, 39.0, "not a pair of numbers"),
    ],
)
def test_other_bad_coordinates_are_named(lon, lat, words):
    with pytest.raises(InvalidInput, match=words):
        crs.check_lonlat(lon=lon, lat=lat, where="row 3")


def test_classify_tags_every_row_without_stopping():
    lon = np.array([117.2, 39.13, 500000.0, np.nan, 0.0, -0.12])
    lat = np.array([39.13, 117.2, 4330000.0, 39.0, 0.0, 51.5])
    assert crs.classify_lonlat(lon, lat).tolist() == ["", "swapped", "projected", "not_finite", "zero", ""]
    assert set(crs.PROBLEMS) == {"not_finite", "zero", "swapped", "projected"}


def test_bounds_of_a_whole_file_use_the_same_rules():
    crs.check_bounds(117.0, 39.0, 117.3, 39.2)
    with pytest.raises(InvalidInput, match=r"^grids.geojson: bounds \(39, 117, 39.2, 117.3\) .*swapped"):
        crs.check_bounds(39.0, 117.0, 39.2, 117.3, where="grids.geojson")
    with pytest.raises(InvalidInput, match="projected metres"):
        crs.check_bounds(500000, 4330000, 501000, 4331000, where="grids.geojson")
    with pytest.raises(InvalidInput, match="not a finite number"):
        crs.check_bounds(math.nan, math.nan, math.nan, math.nan, where="an empty file")


@settings(max_examples=200, deadline=None)
@given(lon=china_lon, lat=china_lat)
def test_every_point_in_china_passes_and_its_swap_is_caught(lon, lat):
    crs.check_lonlat(lon=lon, lat=lat)
    with pytest.raises(InvalidInput, match="swapped"):
        crs.check_lonlat(lon=lat, lat=lon)


# ---- metres ----------------------------------------------------------------------------------------
def test_local_metric_crs_is_centred_and_measures_true_areas():
    metric = crs.local_metric_crs(lon=117.2, lat=39.13)
    assert metric.is_projected and metric.axis_info[0].unit_name == "metre"
    to_metric = Transformer.from_crs("EPSG:4326", metric, always_xy=True)
    assert to_metric.transform(117.2, 39.13) == pytest.approx((0.0, 0.0), abs=1e-6)
    # A 0.01° square (about 860 m × 1,110 m): planar area in the local CRS against the geodesic area.
    ring = [(117.2, 39.13), (117.21, 39.13), (117.21, 39.14), (117.2, 39.14)]
    xs, ys = to_metric.transform([p[0] for p in ring], [p[1] for p in ring])
    planar = 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(4)))
    geodesic, _ = Geod(ellps="WGS84").polygon_area_perimeter([p[0] for p in ring], [p[1] for p in ring])
    assert planar == pytest.approx(abs(geodesic), rel=1e-4)
    with pytest.raises(InvalidInput, match="centre of the metric CRS"):
        crs.local_metric_crs(lon=math.nan, lat=39.0)


def test_geodesic_distance_of_one_degree_of_latitude_at_the_equator():
    assert crs.geodesic_distance_m(lon1=0.0, lat1=0.0, lon2=0.0, lat2=1.0) == pytest.approx(110574.389, abs=0.01)
    distances = crs.geodesic_distance_m(lon1=np.zeros(2), lat1=np.zeros(2), lon2=np.zeros(2), lat2=np.array([1.0, 0.0]))
    assert distances.tolist() == pytest.approx([110574.389, 0.0], abs=0.01)
