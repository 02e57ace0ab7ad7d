"""The device's position from the first positioning provider that answers (P12).

Providers, tried in the order of `locate.providers` in config.yaml (validated by config.Locate):
- gpsd:    the gpsd daemon's JSON protocol over TCP (default 127.0.0.1:2947, ?WATCH).
- nmea:    an NMEA-0183 serial device (a USB/Bluetooth GPS, /dev/ttyUSB0), parsed by pynmea2.
- termux:  Android under Termux, through the Termux:API `termux-location` command.
- windows: the Windows location API (System.Device.Location) through PowerShell.
Each either returns a Fix or raises ProviderFailed saying why (absent, refused, no fix in time);
first_fix collects those reasons so the person sees why nothing worked.
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fieldsync.base import geo
from fieldsync.base.clock import now_iso
from fieldsync.base.i18n import _
from fieldsync.config import Locate
from fieldsync.errors import BadInput, FieldsyncError

# Without a GST sentence, horizontal accuracy is estimated as HDOP × a typical user
# equivalent range error for a consumer receiver.
NMEA_UERE_M = 5.0


class ProviderFailed(Exception):
    """One provider could not give a fix; the message says why in a few words."""


class NoFix(FieldsyncError):
    """No positioning provider gave a fix."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Fix:
    lat: float
    lon: float
    accuracy_m: float | None
    source: str  # "gps:gpsd", "gps:nmea", ...
    at: str  # ISO 8601 with offset, when the fix was taken (the device's clock)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "accuracy_m": self.accuracy_m,
                "source": self.source, "at": self.at}


def _make_fix(lat: Any, lon: Any, accuracy: Any, provider: str, **detail: Any) -> Fix:
    try:
        point = geo.validate(lat, lon, _("{provider} fix").format(provider=provider))
        accuracy_m = geo.validate_accuracy(accuracy, _("{provider} accuracy").format(provider=provider))
    except BadInput as exc:
        raise ProviderFailed(_("unusable position ({exc})").format(exc=exc)) from None
    return Fix(point.lat, point.lon, None if accuracy_m is None else round(accuracy_m, 1),
               f"gps:{provider}", now_iso(), detail)


# --------------------------------------------------------------------------- streams

def _lines(read: Callable[[float], bytes | None], timeout: float, no_fix: str,
           closed: str) -> Iterator[bytes]:
    """Lines from a stream until the deadline: read(seconds_left) gives bytes, None for
    "nothing yet" or b"" when the other end closed. Ends only by raising ProviderFailed."""
    deadline = time.monotonic() + timeout
    pending = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProviderFailed(no_fix)
        chunk = read(left)
        if chunk is None:
            continue
        if not chunk:
            raise ProviderFailed(closed)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines


# --------------------------------------------------------------------------- gpsd

def from_gpsd(settings: Locate, timeout: float) -> Fix:
    """The first 2D/3D TPV report from gpsd (https://gpsd.io/gpsd_json.html)."""
    host, port = settings.gpsd_host, settings.gpsd_port
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, 5.0))
    except OSError as exc:
        raise ProviderFailed(_("gpsd is not reachable at {host}:{port} ({reason})").format(
                               host=host, port=port, reason=exc.strerror or exc)) from None
    with sock:
        sock.sendall(b'?WATCH={"enable":true,"json":true};\n')

        def read(left: float) -> bytes | None:
            sock.settimeout(left)
            try:
                return sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as exc:
                raise ProviderFailed(_("gpsd connection failed ({exc})").format(exc=exc)) from None

        no_fix = _("gpsd at {host}:{port} had no fix within {timeout:g} s").format(
                   host=host, port=port, timeout=timeout)
        closed = _("gpsd at {host}:{port} closed the connection without a fix").format(host=host, port=port)
        for line in _lines(read, timeout, no_fix, closed):
            fix = _gpsd_report(line)
            if fix is not None:
                return fix
    raise AssertionError("unreachable: _lines ends only by raising")


def _gpsd_report(line: bytes) -> Fix | None:
    try:
        report = json.loads(line)
    except ValueError:
        return None
    if not isinstance(report, dict) or report.get("class") != "TPV":
        return None
    if (report.get("mode") or 0) < 2 or "lat" not in report or "lon" not in report:
        return None
    # eph is gpsd's own horizontal error estimate; older gpsd only reports epx/epy.
    accuracy = report.get("eph")
    if accuracy is None and report.get("epx") is not None and report.get("epy") is not None:
        accuracy = math.hypot(report["epx"], report["epy"])
    return _make_fix(report["lat"], report["lon"], accuracy, "gpsd",
                     mode=report.get("mode"), device=report.get("device"), gps_time=report.get("time"))


# --------------------------------------------------------------------------- NMEA serial

def from_nmea(settings: Locate, timeout: float) -> Fix:
    """Read NMEA sentences from a serial device until a valid position (and its accuracy)."""
    # Only the NMEA serial provider needs pynmea2; gpsd, Termux and manual fixes never load it.
    import pynmea2

    device, baud = settings.nmea_device, settings.nmea_baud
    if os.name != "posix":
        raise ProviderFailed(_("the NMEA provider reads POSIX serial devices; use 'windows' on Windows"))
    if not os.path.exists(device):
        raise ProviderFailed(_("no serial device {device} (set locate.nmea_device)").format(device=device))
    try:
        fd = os.open(device, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProviderFailed(_("cannot open {device} ({strerror})").format(
                               device=device, strerror=exc.strerror)) from None
    try:
        _configure_tty(fd, baud)
        reader = _NmeaFix(pynmea2)

        def read(left: float) -> bytes | None:
            ready = select.select([fd], [], [], left)[0]
            if not ready:
                return None
            try:
                return os.read(fd, 4096)
            except BlockingIOError:
                return None
            except OSError as exc:
                raise ProviderFailed(_("reading {device} failed ({strerror})").format(
                                       device=device, strerror=exc.strerror)) from None

        no_fix = _("{device} gave no valid position within {timeout:g} s").format(device=device, timeout=timeout)
        closed = _("{device} closed without a valid position").format(device=device)
        for line in _lines(read, timeout, no_fix, closed):
            result = reader.feed(line.decode("ascii", "replace").strip())
            if result is not None:
                lat, lon, accuracy, how = result
                return _make_fix(lat, lon, accuracy, "nmea", device=device, accuracy_from=how)
        raise AssertionError("unreachable: _lines ends only by raising")
    finally:
        os.close(fd)


def _configure_tty(fd: int, baud: int) -> None:
    # Raw mode at the receiver's baud rate; a pty (tests) or a file accepts or ignores this.
    import termios
    import tty

    if not os.isatty(fd):
        return
    speed = getattr(termios, f"B{baud}", None)
    if speed is None:
        raise ProviderFailed(_("unsupported baud rate {baud} (locate.nmea_baud)").format(baud=baud))
    tty.setraw(fd, termios.TCSANOW)  # no flush: keep what the receiver already sent
    attrs = termios.tcgetattr(fd)
    attrs[4] = attrs[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class _NmeaFix:
    """Collects one epoch: a valid RMC/GGA position, then GST (best) or HDOP for accuracy."""

    def __init__(self, pynmea2: Any):
        self.pynmea2 = pynmea2
        self.position: tuple[float, float] | None = None
        self.epoch = None
        self.hdop: float | None = None

    def feed(self, line: str) -> tuple[float, float, float | None, str] | None:
        if not line.startswith("$"):
            return None
        try:
            sentence = self.pynmea2.parse(line, check=True)
        except (self.pynmea2.ParseError, ValueError, AttributeError):
            return None  # line noise while the port settles is normal
        kind = getattr(sentence, "sentence_type", "")
        stamp = getattr(sentence, "timestamp", None)
        if self.position is not None and stamp is not None and stamp != self.epoch:
            return self._done()  # a new epoch began without a GST: use HDOP
        if kind == "GGA" and int(sentence.gps_qual or 0) > 0:
            self._position(sentence)
            self.hdop = _float(sentence.horizontal_dil)
        elif kind == "RMC" and sentence.status == "A":
            self._position(sentence)
        elif kind == "GSA" and self.hdop is None:
            self.hdop = _float(sentence.hdop)
        elif kind == "GST" and self.position is not None:
            sd_lat, sd_lon = _float(sentence.std_dev_latitude), _float(sentence.std_dev_longitude)
            if sd_lat is not None and sd_lon is not None:
                return (*self.position, math.hypot(sd_lat, sd_lon), "GST")
        return None

    def _position(self, sentence: Any) -> None:
        if self.position is None:
            self.position = (sentence.latitude, sentence.longitude)
            self.epoch = sentence.timestamp

    def _done(self) -> tuple[float, float, float | None, str]:
        assert self.position is not None
        if self.hdop is None:
            return (*self.position, None, "none")
        return (*self.position, self.hdop * NMEA_UERE_M, "HDOP")


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- Termux

def from_termux(settings: Locate, timeout: float) -> Fix:
    """`termux-location -p gps -r once` (Termux:API) prints one JSON object."""
    program = shutil.which("termux-location")
    if program is None:
        raise ProviderFailed(_("termux-location not found (install the Termux:API app and 'pkg install termux-api')"))
    output = _run([program, "-p", settings.termux_provider, "-r", "once"], timeout, "termux-location")
    data = _json_object(output, "termux-location")
    if "API_ERROR" in data or "error" in data:
        raise ProviderFailed(_("termux-location: {error}").format(error=data.get('API_ERROR') or data.get('error')))
    if "latitude" not in data or "longitude" not in data:
        raise ProviderFailed(_("termux-location gave no position (location off or no permission?)"))
    return _make_fix(data["latitude"], data["longitude"], data.get("accuracy"), "termux",
                     android_provider=data.get("provider"))


# --------------------------------------------------------------------------- Windows

WINDOWS_SCRIPT = r"""
Add-Type -AssemblyName System.Device
$w = New-Object System.Device.Location.GeoCoordinateWatcher([System.Device.Location.GeoPositionAccuracy]::High)
$null = $w.TryStart($false, [TimeSpan]::FromSeconds({timeout}))
$deadline = (Get-Date).AddSeconds({timeout})
while ($w.Status -ne 'Ready' -and $w.Permission -ne 'Denied' -and (Get-Date) -lt $deadline) {{
  Start-Sleep -Milliseconds 200 }}
$c = $w.Position.Location
if ($w.Permission -eq 'Denied') {{ '{{"error":"location permission denied"}}' }}
elseif ($c.IsUnknown) {{ '{{"error":"no fix"}}' }}
else {{ @{{latitude=$c.Latitude; longitude=$c.Longitude; accuracy=$c.HorizontalAccuracy}} | ConvertTo-Json -Compress }}
$w.Stop()
"""


def from_windows(settings: Locate, timeout: float) -> Fix:
    """The Windows location service through PowerShell's System.Device.Location."""
    if sys.platform != "win32":
        raise ProviderFailed(_("the Windows location API exists only on Windows"))
    program = shutil.which("powershell") or shutil.which("powershell.exe")
    if program is None:
        raise ProviderFailed(_("powershell not found"))
    script = WINDOWS_SCRIPT.format(timeout=max(1, int(timeout)))
    output = _run([program, "-NoProfile", "-NonInteractive", "-Command", script], timeout + 10,
                  "powershell")
    return windows_fix(output)


def windows_fix(output: str) -> Fix:
    """Parse the PowerShell script's one line of JSON."""
    data = _json_object(output, "the Windows location API")
    if "error" in data:
        raise ProviderFailed(_("Windows location: {error}").format(error=data['error']))
    accuracy = data.get("accuracy")
    if isinstance(accuracy, str) and accuracy.lower() == "nan":
        accuracy = None
    return _make_fix(data.get("latitude"), data.get("longitude"), accuracy, "windows")


# --------------------------------------------------------------------------- shared

def _run(argv: list[str], timeout: float, what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              encoding="utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        raise ProviderFailed(_("{what} had no fix within {timeout:g} s").format(what=what, timeout=timeout)) from None
    except OSError as exc:
        raise ProviderFailed(_("cannot run {what} ({reason})").format(what=what, reason=exc.strerror or exc)) from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise ProviderFailed(_("{what} failed (exit {returncode}{detail})").format(
                               what=what, returncode=done.returncode, detail=': ' + message[-1] if message else ''))
    return done.stdout


def _json_object(output: str, what: str) -> dict[str, Any]:
    text = output.strip()
    if not text:
        raise ProviderFailed(_("{what} printed nothing (no fix)").format(what=what))
    try:
        data = json.loads(text)
    except ValueError:
        raise ProviderFailed(_("{what} printed something that is not JSON: {text!r}").format(
                               what=what, text=text[:80])) from None
    if not isinstance(data, dict):
        raise ProviderFailed(_("{what} printed JSON that is not an object").format(what=what))
    return data


PROVIDERS: dict[str, Callable[[Locate, float], Fix]] = {
    "gpsd": from_gpsd, "nmea": from_nmea, "termux": from_termux, "windows": from_windows,
}


def first_fix(settings: Locate) -> tuple[Fix, list[str]]:
    """The first provider's fix in config order, with the reasons earlier ones gave up."""
    reasons: list[str] = []
    for name in settings.providers:
        try:
            return PROVIDERS[name](settings, settings.timeout_seconds), reasons
        except ProviderFailed as exc:
            reasons.append(f"{name}: {exc}")
    raise NoFix(_("no positioning provider gave a fix; go outdoors or enter the position with "
                "--lat/--lon, or use --from-photo"), reasons)
