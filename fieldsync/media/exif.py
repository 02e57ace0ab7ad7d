"""Facts a photo carries about itself: pixel size, EXIF capture time, GPS, camera.

Pure: reads the file's header and EXIF (no pixel decoding), returns plain JSON-able values.
Cameras write odd EXIF (zero denominators, 0/0 positions, missing refs) and damaged files
carry EXIF blocks Pillow cannot parse: a bad value, or a whole bad block, becomes "unknown",
never an exception, because the photo is still evidence.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from fieldsync.base.i18n import _
from fieldsync.errors import ImageError
from fieldsync.media.imaging import open_image

log = logging.getLogger(__name__)

# EXIF tag numbers (CIPA DC-008)
TAG_MAKE, TAG_MODEL, TAG_DATETIME, TAG_ORIENTATION = 0x010F, 0x0110, 0x0132, 0x0112
IFD_EXIF, IFD_GPS = 0x8769, 0x8825
TAG_DATETIME_ORIGINAL, TAG_DATETIME_DIGITIZED = 0x9003, 0x9004
TAG_OFFSET_ORIGINAL, TAG_OFFSET = 0x9011, 0x9010
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6

_EXIF_TIME = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def photo_facts(path: Path | str) -> dict[str, Any]:
    """{format, width, height, taken_at, gps, camera} of the photo at `path`.

    width/height are as displayed (EXIF orientation 5-8 swaps them). taken_at is ISO 8601,
    with the offset when the camera wrote one. gps is {lat, lon[, alt]} in decimal degrees
    and metres, or None. camera is {make, model} or None.
    """
    try:
        with open_image(path) as image:
            width, height = image.size
            fmt = image.format
            facts = _exif_facts(image, path)
    except FileNotFoundError:
        raise ImageError(_("{path}: no such file").format(path=path)) from None
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(_("{path}: not a readable image ({name}); quarantine or replace it").format(
                           path=path, name=exc.__class__.__name__)) from None
    if facts.pop("orientation") in (5, 6, 7, 8):
        width, height = height, width
    return {"format": fmt, "width": width, "height": height, **facts}


def _exif_facts(image: Image.Image, path: Path | str) -> dict[str, Any]:
    """{orientation, taken_at, gps, camera} from the EXIF block; all unknown when the block
    itself is damaged (Pillow then raises anything from struct.error to TypeError)."""
    try:
        exif = image.getexif()
        exif_ifd, gps_ifd = exif.get_ifd(IFD_EXIF), exif.get_ifd(IFD_GPS)
        return {"orientation": exif.get(TAG_ORIENTATION), "taken_at": taken_at(exif, exif_ifd),
                "gps": gps_position(gps_ifd), "camera": camera(exif)}
    except Exception as exc:  # the pixels are still evidence: say what is unknown, go on
        log.debug("%s: EXIF unreadable, its facts are unknown", path, exc_info=True)
        log.info("%s: EXIF block unreadable (%s): capture time, GPS and camera unknown",
                 path, type(exc).__name__)
        return {"orientation": None, "taken_at": None, "gps": None, "camera": None}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def taken_at(exif: Any, exif_ifd: Any) -> str | None:
    """EXIF DateTimeOriginal (else Digitized, else DateTime) as ISO 8601."""
    for source, tag, offset_tag in ((exif_ifd, TAG_DATETIME_ORIGINAL, TAG_OFFSET_ORIGINAL),
                                    (exif_ifd, TAG_DATETIME_DIGITIZED, TAG_OFFSET_ORIGINAL),
                                    (exif, TAG_DATETIME, TAG_OFFSET)):
        text = _text(source.get(tag))
        match = _EXIF_TIME.match(text or "")
        if not match:
            continue
        try:
            moment = datetime(*(int(g) for g in match.groups()))
        except ValueError:  # 0000:00:00 00:00:00 and other placeholders
            continue
        iso = moment.isoformat()
        offset = _text(exif_ifd.get(offset_tag))
        return iso + offset if offset and _OFFSET.match(offset) else iso
    return None


def _number(value: Any) -> float | None:
    """A rational/int/float as float; None for 0 denominators, NaN and junk."""
    numerator = getattr(value, "numerator", None)
    denominator = getattr(value, "denominator", None)
    if numerator is not None and denominator is not None:
        if not denominator:
            return None
        result = float(numerator) / float(denominator)
    elif isinstance(value, (tuple, list)) and len(value) == 2:  # raw (num, den) pairs
        if not value[1]:
            return None
        result = float(value[0]) / float(value[1])
    else:
        try:
            result = float(value)
        except (TypeError, ValueError):
            return None
    return result if math.isfinite(result) else None


def _degrees(value: Any) -> float | None:
    if isinstance(value, (tuple, list)) and len(value) == 3:
        parts = [_number(v) for v in value]
        if parts[0] is None:
            return None
        minutes, seconds = parts[1] or 0.0, parts[2] or 0.0
        return parts[0] + minutes / 60 + seconds / 3600
    return _number(value)


def gps_position(gps_ifd: Any) -> dict[str, float] | None:
    """{lat, lon[, alt]} from an EXIF GPS IFD, or None when absent or unusable."""
    if not gps_ifd:
        return None
    lat, lon = _degrees(gps_ifd.get(GPS_LAT)), _degrees(gps_ifd.get(GPS_LON))
    if lat is None or lon is None:
        return None
    if (_text(gps_ifd.get(GPS_LAT_REF)) or "N").upper().startswith("S"):
        lat = -lat
    if (_text(gps_ifd.get(GPS_LON_REF)) or "E").upper().startswith("W"):
        lon = -lon
    # 0,0 is what phones write when they had no fix; out-of-range values are corrupt.
    if abs(lat) > 90 or abs(lon) > 180 or (lat == 0 and lon == 0):
        return None
    position = {"lat": round(lat, 7), "lon": round(lon, 7)}
    alt = _number(gps_ifd.get(GPS_ALT)) if gps_ifd.get(GPS_ALT) is not None else None
    if alt is not None:
        ref = gps_ifd.get(GPS_ALT_REF)
        below = ref in (1, b"\x01") or (isinstance(ref, bytes) and ref[:1] == b"\x01")
        position["alt"] = round(-alt if below else alt, 2)
    return position


def camera(exif: Any) -> dict[str, str] | None:
    make, model = _text(exif.get(TAG_MAKE)), _text(exif.get(TAG_MODEL))
    if not make and not model:
        return None
    return {"make": make, "model": model}
