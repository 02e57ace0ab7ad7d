"""The customer's location (P12): record it in customer.yaml from a GPS fix, a photo or by hand.

Every new location is validated first and nothing is written when it fails; the previous
location is kept in `location_history`, so a wrong fix can be seen and undone. The inspector's
own last GPS fix goes to ROOT/.fieldsync/last_fix.json (private) for the pages' "distance and
bearing from here". Photos with GPS only ever produce suggestions, never silent changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import UnidentifiedImageError

from fieldsync.base import geo
from fieldsync.base.atomic import write_text
from fieldsync.base.clock import now_iso
from fieldsync.base.i18n import _
from fieldsync.base.platform import quote_command
from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.config import Config
from fieldsync.errors import BadInput, ImageError, TreeError
from fieldsync.evidence.manifest import current_entries, load
from fieldsync.location import gps
from fieldsync.media.exif import GPS_LAT, GPS_LAT_REF, GPS_LON, GPS_LON_REF, IFD_EXIF, IFD_GPS, taken_at
from fieldsync.media.imaging import is_photo_name, open_image, register_heif
from fieldsync.tree.folders import CUSTOMER_COMMENT
from fieldsync.tree.layout import CUSTOMER_FILE, MANIFEST_FILE, VISIT_FILE, account_of_folder

LAST_FIX_FILE = "last_fix.json"
GPS_H_POSITIONING_ERROR = 31  # EXIF GPSHPositioningError, metres


@dataclass(frozen=True)
class Location:
    """A validated WGS-84 location about to be stored (spec.md's location mapping)."""

    lat: float
    lon: float
    accuracy_m: float | None
    source: str  # manual | photo | gps:gpsd | gps:nmea | gps:termux | gps:windows
    at: str
    by: str  # the inspector
    device: str
    extra: tuple[tuple[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        record = {"lat": round(self.lat, 7), "lon": round(self.lon, 7), "accuracy_m": self.accuracy_m,
                  "source": self.source, "at": self.at, "by": self.by, "device": self.device}
        record.update(self.extra)
        return record


def _who(cfg: Config) -> tuple[str, str]:
    return cfg.inspector, cfg.device


# --------------------------------------------------------------------------- sources

def manual(cfg: Config, lat: Any, lon: Any, accuracy: Any = None) -> Location:
    point = geo.validate(lat, lon, "--lat/--lon")
    accuracy_m = geo.validate_accuracy(accuracy, "--accuracy")
    return Location(point.lat, point.lon, accuracy_m, "manual", now_iso(), *_who(cfg))


def from_fix(cfg: Config, fix: gps.Fix) -> Location:
    return Location(fix.lat, fix.lon, fix.accuracy_m, fix.source, fix.at, *_who(cfg))


def from_photo(cfg: Config, photo: Path) -> Location:
    """The position in a photo's EXIF GPS; a photo already filed whose shrunk copy lost its
    EXIF falls back to the GPS its manifest recorded from the original."""
    photo = Path(photo)
    gps_ifd, capture = _read_gps_ifd(photo)
    extra: list[tuple[str, Any]] = [("photo", _display_path(cfg, photo))]
    if gps_ifd:
        lat, lon, accuracy = exif_position(gps_ifd, photo.name)
    else:
        recorded = _manifest_gps(photo)
        if recorded is None:
            raise BadInput(_("{photo}: the photo has no GPS position in its EXIF (location was off in the camera "
                             "app?); use --gps or --lat/--lon").format(photo=photo))
        lat, lon, accuracy = recorded.get("lat"), recorded.get("lon"), None
        extra.append(("photo_gps_from", MANIFEST_FILE))
        capture = capture or recorded.get("taken_at")
    point = geo.validate(lat, lon, _("{photo} EXIF GPS").format(photo=photo.name))
    if capture:
        extra.append(("photo_taken_at", capture))
    return Location(point.lat, point.lon, accuracy, "photo", now_iso(), *_who(cfg), tuple(extra))


def _read_gps_ifd(photo: Path) -> tuple[dict, str | None]:
    register_heif()
    try:
        with open_image(photo) as image:
            exif = image.getexif()
            return dict(exif.get_ifd(IFD_GPS)), taken_at(exif, exif.get_ifd(IFD_EXIF))
    except FileNotFoundError:
        raise BadInput(_("{photo}: no such file").format(photo=photo)) from None
    except ImageError as exc:
        raise BadInput(str(exc)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadInput(_("{photo}: not a readable photo ({name})").format(
                         photo=photo, name=exc.__class__.__name__)) from None


_COMPONENTS = {GPS_LAT_REF: "GPSLatitudeRef", GPS_LAT: "GPSLatitude",
               GPS_LON_REF: "GPSLongitudeRef", GPS_LON: "GPSLongitude"}


def exif_position(gps_ifd: dict, name: str = "photo") -> tuple[float, float, float | None]:
    """(lat, lon, accuracy_m) from an EXIF GPS IFD, strictly: unlike exif.gps_position (which
    turns bad values into "unknown" for evidence), a location must be right or refused."""
    for tag, label in _COMPONENTS.items():
        if gps_ifd.get(tag) in (None, "", b""):
            raise BadInput(_("{name}: EXIF GPS has no {label}; the camera wrote an incomplete position, use --gps "
                             "or --lat/--lon").format(name=name, label=label))
    lat = _dms(gps_ifd[GPS_LAT], "GPSLatitude", name)
    lon = _dms(gps_ifd[GPS_LON], "GPSLongitude", name)
    lat_ref, lon_ref = _ref(gps_ifd[GPS_LAT_REF]), _ref(gps_ifd[GPS_LON_REF])
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        raise BadInput(_("{name}: EXIF GPS references {lat_ref!r}/{lon_ref!r} are not N/S and E/W").format(
                         name=name, lat_ref=lat_ref, lon_ref=lon_ref))
    accuracy = None
    if gps_ifd.get(GPS_H_POSITIONING_ERROR) is not None:
        accuracy = _rational(gps_ifd[GPS_H_POSITIONING_ERROR], "GPSHPositioningError", name)
    return (-lat if lat_ref == "S" else lat), (-lon if lon_ref == "W" else lon), accuracy


def _ref(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).replace("\x00", "").strip().upper()


def _rational(value: Any, label: str, name: str) -> float:
    denominator = getattr(value, "denominator", 1)
    if isinstance(value, (tuple, list)) and len(value) == 2:  # a raw (numerator, denominator)
        value, denominator = (value[0] / value[1]) if value[1] else math.nan, value[1]
    if not denominator:
        raise BadInput(_("{name}: EXIF {label} has a zero denominator (a corrupt or placeholder value); use --gps "
                         "or --lat/--lon").format(name=name, label=label))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(_("{name}: EXIF {label} is not a number ({value!r})").format(
                         name=name, label=label, value=value)) from None
    if not math.isfinite(number) or number < 0:
        raise BadInput(_("{name}: EXIF {label} is {number}, not a usable value").format(
                         name=name, label=label, number=number))
    return number


def _dms(value: Any, label: str, name: str) -> float:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise BadInput(_("{name}: EXIF {label} should be degrees, minutes, seconds; it has {parts} part(s)").format(
                         name=name, label=label, parts=len(value) if isinstance(value, (tuple, list)) else 1))
    degrees, minutes, seconds = (_rational(v, label, name) for v in value)
    if minutes >= 60 or seconds >= 60:
        raise BadInput(_("{name}: EXIF {label} has minutes/seconds of 60 or more").format(name=name, label=label))
    return degrees + minutes / 60 + seconds / 3600


def _manifest_gps(photo: Path) -> dict | None:
    # tree layout: visit/外观/photo.jpg; the manifest knows the original's GPS.
    photo = photo.resolve()
    entry = _manifest_entries(photo.parent.parent).get(f"{photo.parent.name}/{photo.name}")
    return (entry or {}).get("gps") or None


def _manifest_entries(visit: Path) -> dict[str, dict]:
    """path -> current manifest entry of a visit; empty when it has no readable manifest
    (a broken manifest is verify's business, not a reason to refuse a location)."""
    try:
        data = load(visit)
    except TreeError:
        return {}
    return current_entries(data) if data else {}


def _display_path(cfg: Config, photo: Path) -> str:
    try:
        return photo.resolve().relative_to(cfg.root.resolve()).as_posix()
    except ValueError:
        return photo.name  # outside the tree: its own path means nothing on the server


# --------------------------------------------------------------------------- accuracy gate

def max_accuracy_m(cfg: Config) -> float:
    return cfg.locate.max_accuracy_m  # checked when config.yaml was loaded


def accuracy_warning(cfg: Config, location: Location) -> str | None:
    """A sentence asking for confirmation when the fix is worse than locate.max_accuracy_m."""
    limit = max_accuracy_m(cfg)
    if location.accuracy_m is not None and location.accuracy_m > limit:
        return _("the position is only accurate to ±{accuracy:g} m, worse than "
                 "locate.max_accuracy_m ({limit:g} m)").format(accuracy=location.accuracy_m, limit=limit)
    return None


# --------------------------------------------------------------------------- storing

def save(cfg: Config, folder: Path, location: Location) -> dict[str, Any]:
    """Write the location into folder/customer.yaml (old one into location_history); the
    customer's page follows through sync.derive. Returns the stored mapping."""
    path = folder / CUSTOMER_FILE
    if not path.is_file():
        account = account_of_folder(folder.name, cfg.layout) or "ACCOUNT"
        raise TreeError(_("{path} is missing; run 'fieldsync customer open {account}'").format(
                          path=path, account=account))
    data = read_yaml(path)
    record = location.as_dict()
    previous = data.get("location")
    if isinstance(previous, dict) and previous:
        history = data.get("location_history")
        data["location_history"] = (history if isinstance(history, list) else []) + [previous]
    data["location"] = record
    write_yaml(path, data, CUSTOMER_COMMENT)
    return record


def last_fix_path(cfg: Config) -> Path:
    return cfg.state_dir / LAST_FIX_FILE


def save_last_fix(cfg: Config, fix: gps.Fix) -> None:
    """Remember the inspector's latest GPS fix (private state, baked into pages at render)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    record = {**fix.as_dict(), "by": cfg.inspector, "device": cfg.device}
    write_text(last_fix_path(cfg), json.dumps(record, ensure_ascii=False) + "\n", private=True)


def load_last_fix(cfg: Config) -> dict[str, Any] | None:
    """The last fix, or None when there is none or it is unusable (it is only a convenience)."""
    try:
        data = json.loads(last_fix_path(cfg).read_text(encoding="utf-8"))
        geo.validate(data["lat"], data["lon"])
    except (OSError, ValueError, KeyError, TypeError, BadInput):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- suggestions

def suggestions(cfg: Config) -> list[str]:
    """One `fieldsync locate ... --from-photo ...` line per customer that has no location yet
    but has a filed photo with GPS (from its manifest, else the photo's own EXIF)."""
    lines = []
    root = cfg.root
    if not root.is_dir():
        return lines
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        account = account_of_folder(folder.name, cfg.layout)
        if account is None or not (folder / CUSTOMER_FILE).is_file():
            continue
        try:
            if read_yaml(folder / CUSTOMER_FILE).get("location"):
                continue
        except TreeError:
            continue  # an unreadable customer.yaml is check's finding, not ours
        photo = _photo_with_gps(cfg, folder)
        if photo is not None:
            lines.append(quote_command(["fieldsync", "locate", account, "--from-photo", str(photo)]))
    return lines


def _photo_with_gps(cfg: Config, folder: Path) -> Path | None:
    # Newest visit first: the latest photo is the best guess of where the customer is.
    visits = sorted((v for business in cfg.layout.businesses for v in (folder / business).glob("*/*")
                     if (v / VISIT_FILE).is_file() or (v / MANIFEST_FILE).is_file()),
                    key=lambda v: v.name, reverse=True)
    for visit in visits:
        entries = _manifest_entries(visit)
        for rel, entry in entries.items():
            if entry.get("gps") and (visit / rel).is_file():
                return visit / rel
        # Photos the manifest already describes have been judged; read only the others' EXIF,
        # so `check` stays fast on a tablet with tens of thousands of filed photos.
        for kind_folder in cfg.layout.kind_folders.values():
            for photo in sorted((visit / kind_folder).glob("*")):
                if (is_photo_name(photo.name) and not photo.name.startswith(".")
                        and f"{kind_folder}/{photo.name}" not in entries and _has_gps(photo)):
                    return photo
    return None


def _has_gps(photo: Path) -> bool:
    try:
        gps_ifd, _ = _read_gps_ifd(photo)
        exif_position(gps_ifd, photo.name)
        return True
    except BadInput:
        return False


