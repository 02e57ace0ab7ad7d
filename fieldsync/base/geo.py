"""Coordinates: validation, WGS-84 ↔ GCJ-02 ↔ BD-09, great-circle distance and bearing.

GPS receivers and EXIF give WGS-84. Maps published in China (AMap/高德, Tencent) use GCJ-02,
Baidu uses BD-09; a WGS-84 point drawn on their maps lands several hundred metres off, so the
links we hand to those apps carry converted coordinates. The forward transforms are the public
formulas every implementation shares (e.g. eviltransform); the inverses are solved by fixed-
point iteration to well below a centimetre. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from fieldsync.base.i18n import _
from fieldsync.errors import BadInput

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_BD_X_PI = math.pi * 3000.0 / 180.0
# Mean Earth radius (IUGG) for haversine: within 0.5 % of the ellipsoid everywhere.
EARTH_RADIUS_M = 6_371_008.8
# The inverse transforms stop once a step moves less than this (degrees, about 1 mm).
_INVERSE_TOLERANCE_DEG = 1e-8
_INVERSE_MAX_STEPS = 30


class Point(NamedTuple):
    lat: float
    lon: float


# --------------------------------------------------------------------------- validation

def validate(lat: object, lon: object, what: str = "") -> Point:
    """A checked WGS-84 point, or BadInput saying what is wrong with it.

    0,0 is refused because it is what phones and receivers write when they had no fix,
    never a real customer site (it is in the Gulf of Guinea).
    """
    what = what or _("position")
    values = []
    for name, value, limit in ((_("latitude"), lat, 90.0), (_("longitude"), lon, 180.0)):
        if isinstance(value, bool):
            raise BadInput(_("{what}: {name} {value!r} is not a number").format(what=what, name=name, value=value))
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadInput(_("{what}: {name} {value!r} is not a number; give decimal degrees such as 30.2799").format(
                             what=what, name=name, value=value)) from None
        if not math.isfinite(number):
            raise BadInput(_("{what}: {name} is {value!r}; give a finite decimal-degree value").format(
                             what=what, name=name, value=value))
        if abs(number) > limit:
            raise BadInput(_("{what}: {name} {number} is out of range (-{limit:g} to {limit:g}); check that "
                             "latitude and longitude are not swapped").format(
                             what=what, name=name, number=number, limit=limit))
        values.append(number)
    if values[0] == 0 and values[1] == 0:
        raise BadInput(_("{what}: 0,0 is what a device writes without a fix, not a real place; get a fix first or "
                         "enter the coordinates by hand").format(what=what))
    return Point(values[0], values[1])


def validate_accuracy(accuracy: object, what: str = "") -> float | None:
    """Accuracy in metres (None when unknown); negative, NaN or infinite is refused."""
    what = what or _("accuracy")
    if accuracy is None:
        return None
    try:
        number = float(accuracy)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput(_("{what} {accuracy!r} is not a number of metres").format(
                         what=what, accuracy=accuracy)) from None
    if isinstance(accuracy, bool) or not math.isfinite(number) or number < 0:
        raise BadInput(_("{what} {accuracy!r} must be a number of metres, 0 or more").format(
                         what=what, accuracy=accuracy))
    return number


# --------------------------------------------------------------------------- China datums

def in_china(lat: float, lon: float) -> bool:
    """The rough box inside which GCJ-02 applies; outside it GCJ-02 equals WGS-84.

    It is the same box every public implementation uses, so our links agree with the apps.
    """
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def _gcj_delta(lat: float, lon: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    d_lat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
             + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
             + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
             + (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    d_lon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
             + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
             + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
             + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _GCJ_EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_GCJ_A * (1 - _GCJ_EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_GCJ_A / sqrt_magic * math.cos(rad) * math.pi)
    return d_lat, d_lon


def wgs84_to_gcj02(lat: float, lon: float) -> Point:
    if not in_china(lat, lon):
        return Point(lat, lon)
    d_lat, d_lon = _gcj_delta(lat, lon)
    return Point(lat + d_lat, lon + d_lon)


def gcj02_to_bd09(lat: float, lon: float) -> Point:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _BD_X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _BD_X_PI)
    return Point(z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065)


def wgs84_to_bd09(lat: float, lon: float) -> Point:
    return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))


def _invert(forward, lat: float, lon: float) -> Point:
    # Both offsets are smooth and small (< 0.01°), so x ← x - (f(x) - target) converges fast.
    guess_lat, guess_lon = lat, lon
    for _step in range(_INVERSE_MAX_STEPS):
        got_lat, got_lon = forward(guess_lat, guess_lon)
        step_lat, step_lon = got_lat - lat, got_lon - lon
        guess_lat, guess_lon = guess_lat - step_lat, guess_lon - step_lon
        if abs(step_lat) < _INVERSE_TOLERANCE_DEG and abs(step_lon) < _INVERSE_TOLERANCE_DEG:
            break
    return Point(guess_lat, guess_lon)


def gcj02_to_wgs84(lat: float, lon: float) -> Point:
    if not in_china(lat, lon):
        return Point(lat, lon)
    return _invert(wgs84_to_gcj02, lat, lon)


def bd09_to_gcj02(lat: float, lon: float) -> Point:
    return _invert(gcj02_to_bd09, lat, lon)


def bd09_to_wgs84(lat: float, lon: float) -> Point:
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))


# --------------------------------------------------------------------------- distances

def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres on the mean-radius sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    d_lat, d_lon = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(d_lat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(d_lon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees clockwise from north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    d_lon = math.radians(lon2 - lon1)
    y = math.sin(d_lon) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(d_lon)
    return math.degrees(math.atan2(y, x)) % 360.0


_COMPASS = ("北", "东北", "东", "东南", "南", "西南", "西", "西北")


def compass_point(bearing: float) -> str:
    """The nearest of the eight compass points, in Chinese (北, 东北, ...)."""
    return _COMPASS[int((bearing % 360.0) / 45.0 + 0.5) % 8]
