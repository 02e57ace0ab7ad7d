"""Coordinate conversions against published reference points, both directions, with bounds.

References:
- WGS-84 ↔ GCJ-02: the three points of eviltransform's test suite (googollee/eviltransform,
  shared by its Go/Ruby/Rust/Haskell ports): Shanghai, Shenzhen, Beijing.
- GCJ-02 ↔ BD-09 and WGS-84 → GCJ-02 at 116.404, 39.915: wandergis/coordtransform's README
  (also used by hutool's CoordinateUtilTest).
Forward formulas are closed-form, so they must match to 1e-9°. The published inverses are the
one-step approximations; ours iterate to the exact inverse, so they agree within 0.5 m of the
published value and round-trip within 1 cm.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldsync.base import geo
from fieldsync.errors import BadInput

EVILTRANSFORM = [  # (wgs lat, wgs lon), (gcj lat, gcj lon)
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),     # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),     # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),     # Beijing
]
COORDTRANSFORM_INPUT = (39.915, 116.404)
COORDTRANSFORM = {
    "wgs84_to_gcj02": (39.91640428150164, 116.41024449916938),
    "gcj02_to_bd09": (39.92133699351021, 116.41036949371029),
    "bd09_to_gcj02": (39.90865673957631, 116.39762729119315),    # one-step approximation
    "gcj02_to_wgs84": (39.91359571849836, 116.39775550083061),   # one-step approximation
}
FORWARD_BOUND_DEG = 1e-9
PUBLISHED_INVERSE_BOUND_M = 0.5
ROUND_TRIP_BOUND_M = 0.01


@pytest.mark.parametrize("wgs, gcj", EVILTRANSFORM)
def test_wgs84_to_gcj02_matches_eviltransform(wgs, gcj):
    got = geo.wgs84_to_gcj02(*wgs)
    assert got.lat == pytest.approx(gcj[0], abs=FORWARD_BOUND_DEG)
    assert got.lon == pytest.approx(gcj[1], abs=FORWARD_BOUND_DEG)


@pytest.mark.parametrize("wgs, gcj", EVILTRANSFORM)
def test_gcj02_to_wgs84_recovers_eviltransform_point(wgs, gcj):
    got = geo.gcj02_to_wgs84(*gcj)
    assert geo.distance_m(*got, *wgs) < ROUND_TRIP_BOUND_M


@pytest.mark.parametrize("name", ["wgs84_to_gcj02", "gcj02_to_bd09"])
def test_forward_matches_coordtransform(name):
    got = getattr(geo, name)(*COORDTRANSFORM_INPUT)
    lat, lon = COORDTRANSFORM[name]
    assert got.lat == pytest.approx(lat, abs=FORWARD_BOUND_DEG)
    assert got.lon == pytest.approx(lon, abs=FORWARD_BOUND_DEG)


@pytest.mark.parametrize("name", ["bd09_to_gcj02", "gcj02_to_wgs84"])
def test_inverse_close_to_coordtransform(name):
    got = getattr(geo, name)(*COORDTRANSFORM_INPUT)
    assert geo.distance_m(*got, *COORDTRANSFORM[name]) < PUBLISHED_INVERSE_BOUND_M


def test_bd09_both_directions_through_wgs84():
    bd = geo.wgs84_to_bd09(*COORDTRANSFORM_INPUT)
    # WGS → GCJ → BD composes the two published forward steps.
    expected = geo.gcj02_to_bd09(*COORDTRANSFORM["wgs84_to_gcj02"])
    assert bd.lat == pytest.approx(expected.lat, abs=FORWARD_BOUND_DEG)
    back = geo.bd09_to_wgs84(*bd)
    assert geo.distance_m(*back, *COORDTRANSFORM_INPUT) < ROUND_TRIP_BOUND_M


def test_outside_china_is_unchanged_by_gcj02():
    paris = (48.8584, 2.2945)
    assert geo.wgs84_to_gcj02(*paris) == paris
    assert geo.gcj02_to_wgs84(*paris) == paris


china = st.tuples(st.floats(18.0, 53.5), st.floats(73.5, 135.0))


@given(china)
def test_gcj02_round_trip(point):
    there = geo.wgs84_to_gcj02(*point)
    # The offset is real (tens to hundreds of metres) but the way back is exact.
    assert geo.distance_m(*there, *point) > 1
    assert geo.distance_m(*geo.gcj02_to_wgs84(*there), *point) < ROUND_TRIP_BOUND_M


@given(china)
def test_bd09_round_trip(point):
    there = geo.wgs84_to_bd09(*point)
    assert geo.distance_m(*geo.bd09_to_wgs84(*there), *point) < ROUND_TRIP_BOUND_M


def test_distance_reference_and_bearings():
    # eviltransform's test: Shanghai → Beijing is 1,078,164 m on its 6,378,137 m sphere;
    # the same central angle on our mean-radius sphere.
    (_, sh), (_, bj) = EVILTRANSFORM[0], EVILTRANSFORM[2]
    metres = geo.distance_m(*sh, *bj)
    assert metres * 6378137 / geo.EARTH_RADIUS_M == pytest.approx(1078164, abs=1)
    # One degree of the equator and of a meridian: 2πR/360.
    assert geo.distance_m(0, 10, 0, 11) == pytest.approx(2 * math.pi * geo.EARTH_RADIUS_M / 360)
    assert geo.bearing_deg(30, 120, 31, 120) == pytest.approx(0)
    assert geo.bearing_deg(0, 120, 0, 121) == pytest.approx(90)
    assert geo.bearing_deg(30, 120, 29, 120) == pytest.approx(180)
    assert geo.bearing_deg(0, 120, 0, 119) == pytest.approx(270)
    assert geo.compass_point(44) == "东北" and geo.compass_point(359) == "北"


@given(china, china)
def test_distance_symmetric_and_bearing_in_range(a, b):
    assert geo.distance_m(*a, *b) == pytest.approx(geo.distance_m(*b, *a))
    assert 0 <= geo.bearing_deg(*a, *b) < 360


@pytest.mark.parametrize("lat, lon, words", [
    (91, 120, "out of range"), (30, -180.5, "out of range"), (float("nan"), 120, "finite"),
    (30, float("inf"), "finite"), (0, 0, "without a fix"), ("abc", 120, "not a number"),
    (True, 120, "not a number"),
])
def test_validate_refuses(lat, lon, words):
    with pytest.raises(BadInput, match=words):
        geo.validate(lat, lon)


def test_validate_accepts_edges_and_accuracy():
    assert geo.validate("-90", 180) == (-90.0, 180.0)
    assert geo.validate(0, 120) == (0.0, 120.0)  # one zero is a real place
    assert geo.validate_accuracy(None) is None
    assert geo.validate_accuracy("12.5") == 12.5
    for bad in (-1, float("nan"), "x"):
        with pytest.raises(BadInput):
            geo.validate_accuracy(bad)
