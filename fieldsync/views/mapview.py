"""What a page needs to show a location on a map (P12), online or offline.

`view()` turns a stored location into everything templates/_map.html.j2 shows: the Leaflet
settings (tile URL from config), coordinates in the datum the tiles use, distance and bearing
from the inspector's last fix, and links that open native map apps: a `geo:` URI (WGS-84),
AMap (GCJ-02), Baidu (BD-09) and OpenStreetMap (WGS-84). `install_assets()` copies the
vendored Leaflet beside the pages (ROOT/_assets/), so nothing is fetched from the internet.
"""

from __future__ import annotations

import filecmp
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2.utils import htmlsafe_json_dumps

from fieldsync.base import geo
from fieldsync.base.atomic import write_bytes
from fieldsync.base.i18n import _
from fieldsync.base.paths import planted_link
from fieldsync.base.rendering import template_dirs
from fieldsync.config import Maps, maps_settings
from fieldsync.errors import BadInput, TreeError
from fieldsync.tree.layout import ASSETS_DIR

DEFAULT_ZOOM = Maps().zoom


def asset_sources() -> list[tuple[Path, str]]:
    """(shipped file, path under ROOT/_assets/) for Leaflet and our map script."""
    base = template_dirs()[0]
    leaflet = base / "vendor" / "leaflet"
    files = [(leaflet / name, f"leaflet/{name}") for name in ("leaflet.js", "leaflet.css", "LICENSE")]
    files += [(png, f"leaflet/images/{png.name}") for png in sorted((leaflet / "images").glob("*.png"))]
    files.append((base / "fieldsync-map.js", "fieldsync-map.js"))
    return files


_installed: set[Path] = set()


def install_assets(root: Path) -> Path:
    """Copy Leaflet and the map script into ROOT/_assets/ when missing or different.

    Checked once per process and root: a refresh may render thousands of pages. Raises
    TreeError, writing nothing through it, when a symbolic link is found on the way (the
    server's site folder is on a share that tablets write to).
    """
    target = Path(root) / ASSETS_DIR
    if target in _installed:
        return target
    for source, rel in asset_sources():
        link = planted_link(root, f"{ASSETS_DIR}/{rel}")
        if link is not None:
            raise TreeError(_("{link} is a symbolic link fieldsync did not make; the map files were not copied "
                              "through it. Remove it and run fieldsync again").format(link=Path(root) / link))
        dest = target / rel
        if dest.is_file() and filecmp.cmp(source, dest, shallow=False):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(dest, source.read_bytes())
    _installed.add(target)
    return target


# --------------------------------------------------------------------------- the view

def view(location: Mapping[str, Any] | None, *, maps: Maps | Mapping[str, Any] | None = None,
         assets: str | None = None, last_fix: Mapping[str, Any] | None = None,
         name: str = "", address: str = "") -> dict[str, Any] | None:
    """Everything _map.html.j2 shows for `location` (customer.yaml's mapping), or None when
    there is no usable location. `assets` is the relative href of ROOT/_assets from the page
    (None: no interactive map, the offline panel only). `maps` is config.yaml's section; a plain
    mapping (a server page's bare location) is validated by config the same way."""
    if not isinstance(location, Mapping):
        return None
    try:
        point = geo.validate(location.get("lat"), location.get("lon"), _("location"))
    except BadInput:
        return None
    if not isinstance(maps, Maps):
        maps = maps_settings(maps)
    accuracy = location.get("accuracy_m")
    gcj = geo.wgs84_to_gcj02(*point)
    bd = geo.gcj02_to_bd09(*gcj)
    result: dict[str, Any] = {
        "lat": point.lat, "lon": point.lon,
        "accuracy_m": accuracy if isinstance(accuracy, (int, float)) else None,
        "source": source_label(_text(location.get("source"))), "at": _text(location.get("at")),
        "by": _text(location.get("by")),
        "gcj02": {"lat": gcj.lat, "lon": gcj.lon}, "bd09": {"lat": bd.lat, "lon": bd.lon},
        "links": links(point, gcj, bd, name, address),
        "from_last_fix": from_last_fix(point, last_fix),
        "assets": assets,
    }
    display = _display(point, maps.tile_datum)
    settings = {
        "lat": display.lat, "lon": display.lon, "accuracy_m": result["accuracy_m"],
        "name": name, "tile_url": maps.tile_url, "attribution": maps.attribution,
        "subdomains": maps.subdomains, "zoom": maps.zoom, "max_zoom": maps.max_zoom,
        "last_fix": None,
    }
    if result["from_last_fix"]:
        me = _display(geo.Point(last_fix["lat"], last_fix["lon"]), maps.tile_datum)  # type: ignore[index]
        settings["last_fix"] = {"lat": me.lat, "lon": me.lon, "at": result["from_last_fix"]["at"]}
    # The JSON sits inside <script>: < > & ' are escaped, so no text from data can close the
    # element ("</script>") or open a comment ("<!--") that changes how it is parsed.
    result["settings_json"] = htmlsafe_json_dumps(settings)
    return result


def _display(point: geo.Point, datum: str) -> geo.Point:
    # Tiles from AMap-style servers are drawn in GCJ-02: the marker must be shifted to match.
    return geo.wgs84_to_gcj02(*point) if datum == "gcj02" else point


def _text(value: Any) -> str:
    return "" if value is None else str(value)


_SOURCE_LABELS = {"manual": "手动输入", "photo": "照片 EXIF", "gps": "GPS"}


def source_label(source: str) -> str:
    """'gps:gpsd' -> 'GPS (gpsd)', 'manual' -> '手动输入': what the page shows as 来源."""
    kind, _, detail = source.partition(":")
    label = _SOURCE_LABELS.get(kind, kind)
    return f"{label} ({detail})" if detail else label


def links(point: geo.Point, gcj: geo.Point, bd: geo.Point, name: str = "",
          address: str = "") -> dict[str, str]:
    """Links that open a map app at the customer, each in the datum that app expects."""
    label = name or f"{point.lat:.6f},{point.lon:.6f}"
    wgs = f"{point.lat:.6f},{point.lon:.6f}"
    return {
        # RFC 5870: geo: is WGS-84; "q=lat,lon(label)" makes Android apps drop a named pin.
        "geo": f"geo:{wgs}?q={wgs}({quote(label)})",
        "amap": "https://uri.amap.com/marker?" + urlencode({
            "position": f"{gcj.lon:.6f},{gcj.lat:.6f}", "name": label, "src": "fieldsync",
            "coordinate": "gaode", "callnative": "1"}),
        "baidu": "https://api.map.baidu.com/marker?" + urlencode({
            "location": f"{bd.lat:.6f},{bd.lon:.6f}", "title": label, "content": address or label,
            "output": "html", "coord_type": "bd09ll", "src": "webapp.fieldsync"}),
        "osm": f"https://www.openstreetmap.org/?mlat={point.lat:.6f}&mlon={point.lon:.6f}"
               f"#map={DEFAULT_ZOOM}/{point.lat:.6f}/{point.lon:.6f}",
    }


def from_last_fix(point: geo.Point, last_fix: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Distance and bearing from the inspector's last fix to the customer, or None."""
    if not isinstance(last_fix, Mapping):
        return None
    try:
        me = geo.validate(last_fix.get("lat"), last_fix.get("lon"), _("last fix"))
    except BadInput:
        return None
    metres = geo.distance_m(*me, *point)
    bearing = geo.bearing_deg(*me, *point)
    return {"distance_m": metres, "distance": format_distance(metres), "bearing_deg": bearing,
            "compass": geo.compass_point(bearing), "at": _text(last_fix.get("at")),
            "accuracy_m": last_fix.get("accuracy_m"), "source": _text(last_fix.get("source"))}


def format_distance(metres: float) -> str:
    if metres < 1000:
        return f"{metres:.0f} m"
    return f"{metres / 1000:.1f} km" if metres < 100_000 else f"{metres / 1000:.0f} km"
