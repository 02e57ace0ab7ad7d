"""Positioning providers against real parts: gpsd under gpsfake, an NMEA pty, a Termux stub."""

from __future__ import annotations

import math

import pytest

from fieldsync.config import LOCATE_PROVIDERS, Locate
from fieldsync.location import gps
from tests.fixtures.gps import LOG_LAT, LOG_LON, NMEA_LOG, free_port

pytestmark = pytest.mark.timeout(120)


def test_gpsd_gives_fix_with_accuracy(gpsfake_port):
    fix = gps.from_gpsd(Locate(gpsd_port=gpsfake_port), timeout=60)
    assert (fix.lat, fix.lon) == pytest.approx((LOG_LAT, LOG_LON), abs=1e-7)
    assert fix.source == "gps:gpsd"
    # gpsd's eph for HDOP 0.9 in this log; any positive metre figure is its own estimate.
    assert fix.accuracy_m is not None and 0 < fix.accuracy_m < 100
    assert fix.detail["mode"] in (2, 3)


def test_gpsd_absent_says_why():
    port = free_port()  # nothing listens there
    with pytest.raises(gps.ProviderFailed, match=f"not reachable at 127.0.0.1:{port}"):
        gps.from_gpsd(Locate(gpsd_port=port), timeout=2)


def test_nmea_pty_uses_gst_accuracy(nmea_pty):
    device, write = nmea_pty
    write("garbage from a port settling\r\n$GPGGA,bad*00\r\n" + NMEA_LOG.read_text())
    fix = gps.from_nmea(Locate(nmea_device=device, nmea_baud=9600), timeout=30)
    assert (fix.lat, fix.lon) == pytest.approx((LOG_LAT, LOG_LON), abs=1e-7)
    assert fix.accuracy_m == pytest.approx(round(math.hypot(3.2, 2.8), 1))
    assert fix.detail == {"device": device, "accuracy_from": "GST"}


def test_nmea_pty_without_gst_estimates_from_hdop(nmea_pty):
    device, write = nmea_pty
    write("".join(line + "\n" for line in NMEA_LOG.read_text().splitlines() if "GST" not in line))
    fix = gps.from_nmea(Locate(nmea_device=device), timeout=30)
    assert fix.accuracy_m == pytest.approx(0.9 * gps.NMEA_UERE_M)
    assert fix.detail["accuracy_from"] == "HDOP"


def test_nmea_no_fix_times_out(nmea_pty):
    device, write = nmea_pty
    # A receiver that is on but has no fix yet: status V, quality 0.
    write("$GPRMC,063000.00,V,,,,,,,251126,,,N*7D\r\n")
    with pytest.raises(gps.ProviderFailed, match="no valid position within 1 s"):
        gps.from_nmea(Locate(nmea_device=device), timeout=1)


def test_nmea_missing_device(tmp_path):
    with pytest.raises(gps.ProviderFailed, match="no serial device"):
        gps.from_nmea(Locate(nmea_device=str(tmp_path / "ttyUSB9")), timeout=1)


def test_termux_stub_json(termux_stub):
    folder = termux_stub()
    fix = gps.from_termux(Locate(), timeout=10)
    assert (fix.lat, fix.lon, fix.accuracy_m, fix.source) == (30.2799, 120.129, 8.5, "gps:termux")
    assert (folder / "args.txt").read_text().split() == ["-p", "gps", "-r", "once"]


@pytest.mark.parametrize("output, exit_code, words", [
    ("", 0, "printed nothing"),
    ('{"API_ERROR": "Location permission not granted"}', 0, "permission not granted"),
    ("not json", 0, "not JSON"),
    ('{"latitude": 0, "longitude": 0, "accuracy": 5}', 0, "without a fix"),
    ("", 3, "exit 3"),
])
def test_termux_problems_are_reasons(termux_stub, output, exit_code, words):
    termux_stub(output, exit_code)
    with pytest.raises(gps.ProviderFailed, match=words):
        gps.from_termux(Locate(), timeout=10)


def test_first_fix_in_config_order_collects_reasons(termux_stub, tmp_path):
    termux_stub()
    settings = Locate(providers=("gpsd", "nmea", "windows", "termux"), timeout_seconds=2,
                      gpsd_port=free_port(), nmea_device=str(tmp_path / "none"))
    fix, reasons = gps.first_fix(settings)
    assert fix.source == "gps:termux"
    assert [r.split(":")[0] for r in reasons] == ["gpsd", "nmea", "windows"]
    assert "only on Windows" in reasons[2]


def test_first_fix_gpsd_first(gpsfake_port, termux_stub):
    termux_stub()
    fix, reasons = gps.first_fix(Locate(providers=("gpsd", "termux"), gpsd_port=gpsfake_port,
                                         timeout_seconds=60))
    assert fix.source == "gps:gpsd" and reasons == []


def test_no_provider_works(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no termux-location
    with pytest.raises(gps.NoFix) as caught:
        gps.first_fix(Locate(providers=("termux", "windows"), timeout_seconds=1))
    assert len(caught.value.problems) == 2
    assert "termux-location not found" in caught.value.problems[0]


def test_config_names_every_provider():
    # config.yaml's locate.providers is validated against config's list (tests/test_config.py).
    assert set(LOCATE_PROVIDERS) == set(gps.PROVIDERS)


def test_windows_output_parsing():
    # The script's output on Windows (cannot run here): ConvertTo-Json -Compress.
    fix = gps.windows_fix('{"latitude":30.2799,"longitude":120.129,"accuracy":35}\r\n')
    assert (fix.lat, fix.lon, fix.accuracy_m, fix.source) == (30.2799, 120.129, 35.0, "gps:windows")
    with pytest.raises(gps.ProviderFailed, match="permission denied"):
        gps.windows_fix('{"error":"location permission denied"}')
