"""`fieldsync locate` / `fieldsync where`: sources, validation (nothing written on error),
history, the accuracy gate, photo suggestions."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest
import yaml
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from fieldsync.base import geo
from fieldsync.config import load
from fieldsync.location import locate
from fieldsync.views import mapview
from tests.fixtures.gps import LOG_LAT, LOG_LON

ACCOUNT = "3300001234"


def customer_yaml(cfg) -> Path:
    return next(cfg.root.glob(f"{ACCOUNT}_*/customer.yaml"))


def set_config(cfg, section: str, **values):
    data = yaml.safe_load(cfg.path.read_text(encoding="utf-8"))
    data[section] = {**(data.get(section) or {}), **values}
    cfg.path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load(cfg.path)


def jpeg_with_gps(path: Path, gps: dict | None, size=(64, 48)) -> Path:
    """A real JPEG with an EXIF GPS IFD written by Pillow (tag number -> value)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:11:25 14:30:05"
    if gps is not None:
        ifd = exif.get_ifd(0x8825)
        for tag, value in gps.items():
            ifd[tag] = value
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 160)).save(buffer, "JPEG", exif=exif)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def new_visit(cfg, invoke) -> Path:
    assert invoke("category", "add", ACCOUNT, "1", "计量装置").exit_code == 0
    result = invoke("visit", "new", ACCOUNT, "1", "计量装置")
    assert result.exit_code == 0, result.output
    visit = Path(result.stdout.strip())
    assert visit.is_dir() and cfg.root in visit.parents
    return visit


HANGZHOU_GPS = {1: "N", 2: (30.0, 16.0, 47.64), 3: "E", 4: (120.0, 7.0, 44.4)}


@pytest.fixture
def opened(tree, invoke):
    assert invoke("customer", "open", ACCOUNT).exit_code == 0
    return tree


def test_manual_location_is_stored_with_history_and_page(opened, invoke):
    result = invoke("locate", ACCOUNT, "--lat", "30.2799", "--lon", "120.129", "--accuracy", "8")
    assert result.exit_code == 0, result.output
    assert "30.279900, 120.129000 ±8 m" in result.stdout
    data = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))
    loc = data["location"]
    assert (loc["lat"], loc["lon"], loc["accuracy_m"], loc["source"]) == (30.2799, 120.129, 8.0, "manual")
    assert loc["by"] == "zhang.san" and loc["device"] == "tablet-07" and loc["at"][:4].isdigit()
    assert data["name"] == "杭州某某机械有限公司"  # master data kept

    # Southern/western hemisphere, and the old location goes into the history.
    assert invoke("locate", ACCOUNT, "--lat", "-33.8568", "--lon", "-151.2153").exit_code == 0
    data = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))
    assert (data["location"]["lat"], data["location"]["lon"]) == (-33.8568, -151.2153)
    assert [h["lat"] for h in data["location_history"]] == [30.2799]
    page = (customer_yaml(opened).parent / "index.html").read_text(encoding="utf-8")
    assert 'data-lat="-33.8568000"' in page
    # The page's Leaflet copy in ROOT/_assets/ is part of the tree, not a misplaced folder.
    assert (opened.root / "_assets" / "leaflet" / "leaflet.js").is_file()
    checked = invoke("check")
    assert checked.exit_code == 0 and "_assets" not in checked.output


@pytest.mark.parametrize("args, words", [
    (["--lat", "91", "--lon", "120"], "out of range"),
    (["--lat", "30", "--lon", "180.1"], "out of range"),
    (["--lat", "nan", "--lon", "120"], "finite"),
    (["--lat", "30", "--lon", "inf"], "finite"),
    (["--lat", "0", "--lon", "0"], "without a fix"),
    (["--lat", "30.2", "--lon", "120.1", "--accuracy", "-5"], "0 or more"),
    (["--lat", "30,2", "--lon", "120.1"], "not a number"),
    (["--lat", "30.2"], "both --lat and --lon"),
    ([], "exactly one source"),
    (["--lat", "30", "--lon", "120", "--gps"], "--lat/--lon and --gps"),
    (["--gps", "--accuracy", "5"], "--accuracy goes with --lat/--lon"),
])
def test_validation_errors_write_nothing(opened, invoke, args, words):
    path = customer_yaml(opened)
    before = path.read_bytes()
    result = invoke("locate", ACCOUNT, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and words in result.stderr
    assert path.read_bytes() == before
    assert not locate.last_fix_path(opened).exists()


def test_unknown_customer_folder(tree, invoke):
    result = invoke("locate", "3300009999", "--lat", "30", "--lon", "120")
    assert result.exit_code == 2 and "customer open 3300009999" in result.stderr


def test_from_photo(opened, invoke, tmp_path):
    photo = jpeg_with_gps(tmp_path / "IMG_1.jpg", {**HANGZHOU_GPS, 31: IFDRational(12, 1)})
    result = invoke("locate", ACCOUNT, "--from-photo", photo)
    assert result.exit_code == 0, result.output
    loc = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location"]
    assert (loc["lat"], loc["lon"]) == pytest.approx((30.2799, 120.129), abs=1e-6)
    assert loc["source"] == "photo" and loc["accuracy_m"] == 12.0
    assert loc["photo"] == "IMG_1.jpg" and loc["photo_taken_at"] == "2026-11-25T14:30:05"


def test_from_photo_south_west(opened, invoke, tmp_path):
    photo = jpeg_with_gps(tmp_path / "sw.jpg", {1: "S", 2: (33.0, 51.0, 24.48), 3: "W", 4: (70.0, 39.0, 0.0)})
    assert invoke("locate", ACCOUNT, "--from-photo", photo).exit_code == 0
    loc = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location"]
    assert (loc["lat"], loc["lon"]) == pytest.approx((-33.8568, -70.65), abs=1e-6)


@pytest.mark.parametrize("gps, words", [
    (None, "no GPS position"),
    ({**HANGZHOU_GPS, 2: (IFDRational(30, 0), IFDRational(16, 1), IFDRational(4764, 100))},
     "GPSLatitude has a zero denominator"),
    ({1: "N", 2: (30.0, 16.0, 47.64), 3: "E"}, "no GPSLongitude"),
    ({2: (30.0, 16.0, 47.64), 3: "E", 4: (120.0, 7.0, 44.4)}, "no GPSLatitudeRef"),
    ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "without a fix"),
    ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (120.0, 0.0, 0.0)}, "out of range"),
    ({**HANGZHOU_GPS, 31: IFDRational(5, 0)}, "GPSHPositioningError has a zero denominator"),
])
def test_from_photo_bad_exif(opened, invoke, tmp_path, gps, words):
    photo = jpeg_with_gps(tmp_path / "bad.jpg", gps)
    before = customer_yaml(opened).read_bytes()
    result = invoke("locate", ACCOUNT, "--from-photo", photo)
    assert result.exit_code == 2 and words in result.stderr, result.stderr
    assert customer_yaml(opened).read_bytes() == before


def test_from_photo_not_an_image(opened, invoke, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not a jpeg")
    result = invoke("locate", ACCOUNT, "--from-photo", bad)
    assert result.exit_code == 2 and "not a readable photo" in result.stderr


def test_from_filed_photo_uses_manifest_gps(opened, invoke):
    visit = new_visit(opened, invoke)
    photo = jpeg_with_gps(visit / "外观" / "IMG_2.jpg", None)  # shrunk copy without EXIF GPS
    (visit / "manifest.json").write_text(json.dumps({"entries": [
        {"path": "外观/IMG_2.jpg", "gps": {"lat": 30.28, "lon": 120.13}, "taken_at": "2026-11-25T09:00:00"}]}),
        encoding="utf-8")
    # The suggestion comes from the manifest too, as the shrunk photo has no EXIF GPS.
    assert locate.suggestions(opened) == [f"fieldsync locate {ACCOUNT} --from-photo {shlex.quote(str(photo))}"]
    result = invoke("locate", ACCOUNT, "--from-photo", photo)
    assert result.exit_code == 0, result.output
    loc = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location"]
    assert (loc["lat"], loc["lon"], loc["photo_gps_from"]) == (30.28, 120.13, "manifest.json")
    assert loc["photo"].endswith("/外观/IMG_2.jpg")


def test_gps_termux_saves_location_and_last_fix(opened, invoke, termux_stub):
    set_config(opened, "locate", providers=["termux"], timeout_seconds=10)
    termux_stub()
    result = invoke("locate", ACCOUNT, "--gps")
    assert result.exit_code == 0, result.output
    loc = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location"]
    assert (loc["source"], loc["accuracy_m"]) == ("gps:termux", 8.5)
    last = json.loads(locate.last_fix_path(opened).read_text(encoding="utf-8"))
    assert (last["lat"], last["lon"], last["source"]) == (30.2799, 120.129, "gps:termux")


def test_gps_via_real_gpsd(opened, invoke, gpsfake_port, tmp_path):
    set_config(opened, "locate", providers=["nmea", "gpsd"], gpsd_port=gpsfake_port,
               nmea_device=str(tmp_path / "no-such-tty"), timeout_seconds=60)
    result = invoke("locate", ACCOUNT, "--gps")
    assert result.exit_code == 0, result.output
    assert "skipped nmea: no serial device" in result.stderr
    loc = yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location"]
    assert (loc["lat"], loc["lon"], loc["source"]) == (LOG_LAT, LOG_LON, "gps:gpsd")


def test_no_provider_lists_reasons(opened, invoke, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    set_config(opened, "locate", providers=["termux", "windows"], timeout_seconds=1)
    before = customer_yaml(opened).read_bytes()
    result = invoke("locate", ACCOUNT, "--gps")
    assert result.exit_code == 2
    assert "no positioning provider gave a fix" in result.stderr
    assert "termux: termux-location not found" in result.stderr and "windows:" in result.stderr
    assert customer_yaml(opened).read_bytes() == before


def test_poor_accuracy_asks(opened, invoke, termux_stub):
    set_config(opened, "locate", providers=["termux"], max_accuracy_m=50)
    termux_stub('{"latitude": 30.2799, "longitude": 120.129, "accuracy": 120.0, "provider": "network"}')
    before = customer_yaml(opened).read_bytes()

    refused = invoke("locate", ACCOUNT, "--gps", input="n\n")
    assert refused.exit_code == 2 and "±120 m" in refused.stderr and "--accept-accuracy" in refused.stderr
    assert customer_yaml(opened).read_bytes() == before
    assert invoke("locate", ACCOUNT, "--gps").exit_code == 2  # no answer (no terminal): not saved
    assert customer_yaml(opened).read_bytes() == before
    # The inspector's own position is still worth remembering for distances.
    assert locate.last_fix_path(opened).exists()

    assert invoke("locate", ACCOUNT, "--gps", input="y\n").exit_code == 0
    assert yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location"]["accuracy_m"] == 120.0
    accepted = invoke("locate", ACCOUNT, "--gps", "--accept-accuracy")
    assert accepted.exit_code == 0 and "Save this position anyway?" not in accepted.stderr
    assert len(yaml.safe_load(customer_yaml(opened).read_text(encoding="utf-8"))["location_history"]) == 1


def test_manual_accuracy_above_threshold_also_asks(opened, invoke):
    result = invoke("locate", ACCOUNT, "--lat", "30.2", "--lon", "120.1", "--accuracy", "500")
    assert result.exit_code == 2 and "locate.max_accuracy_m (50 m)" in result.stderr


def test_suggestions_for_photos_with_gps(opened, invoke):
    assert locate.suggestions(opened) == []
    visit = new_visit(opened, invoke)
    jpeg_with_gps(visit / "铭牌" / "IMG_9.jpg", None)  # no GPS: nothing to suggest
    assert locate.suggestions(opened) == []
    photo = jpeg_with_gps(visit / "外观" / "IMG_3.jpg", HANGZHOU_GPS)
    lines = locate.suggestions(opened)
    assert lines == [f"fieldsync locate {ACCOUNT} --from-photo {shlex.quote(str(photo))}"]
    # Following the suggestion works, and then there is nothing left to suggest.
    assert invoke(*shlex.split(lines[0])[1:]).exit_code == 0
    assert locate.suggestions(opened) == []


def test_where_bakes_distance_into_pages(opened, invoke, termux_stub):
    assert invoke("locate", ACCOUNT, "--lat", "30.2889", "--lon", "120.129").exit_code == 0
    page = customer_yaml(opened).parent / "index.html"
    assert "fieldsync where" in page.read_text(encoding="utf-8")  # no last fix yet
    set_config(opened, "locate", providers=["termux"])
    termux_stub()
    result = invoke("where")
    assert result.exit_code == 0, result.output
    assert "1 customer page(s) refreshed" in result.stdout
    text = page.read_text(encoding="utf-8")
    expected = geo.distance_m(30.2799, 120.129, 30.2889, 120.129)
    assert f"{mapview.format_distance(expected)}，方位 北 (0°)" in text
    assert mapview.format_distance(expected) == "1.0 km"


def test_check_suggests_locating_from_a_photo(tree, invoke, tmp_path):
    """A customer without a location but with a GPS-tagged photo filed gets a suggestion."""
    from fieldsync.demo import write_sample_photo
    from fieldsync.tree.visits import now

    invoke("customer", "open", "3300005678")
    invoke("category", "add", "3300005678", "1", "计量装置")
    visit = invoke("visit", "new", "3300005678", "1", "计量装置").stdout.strip()
    photo = write_sample_photo(tmp_path / "gps.jpg", now(), (29.8896, 121.8436), size=(320, 240))
    invoke("add", photo, "--visit", visit, "--kind", "appearance")
    result = invoke("check")
    assert "suggestion: fieldsync locate 3300005678 --from-photo" in result.output
