"""config.yaml: discovered once, loaded with yaml.safe_load, validated into frozen dataclasses.

A bad value names the file, the key and what was expected. Unknown keys are refused too:
a typo like `max_egde` would otherwise be silently ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click
import yaml

from fieldsync.base import clock, i18n
from fieldsync.base.i18n import _
from fieldsync.base.names import is_safe_component
from fieldsync.base.rendering import render_template
from fieldsync.errors import ConfigError

CONFIG_NAME = "config.yaml"
STATE_DIR = ".fieldsync"
ENV_VAR = "FIELDSYNC_CONFIG"

# device and inspector go into file names beside a photo's own name (conflict copies, upload
# temp names, ledgers): short enough to leave the photo's name room under MAX_COMPONENT_BYTES.
MAX_NAME_BYTES = 64

DEFAULT_BUSINESSES = ("周期检查", "专项检查", "违约用电检查")


@dataclass(frozen=True)
class Layout:
    customer_folder: str = "{account_no}_{name}"
    businesses: tuple[str, ...] = DEFAULT_BUSINESSES
    documents_folder: str = "用电资料"
    visit_folder: str = "{now:%Y-%m-%d_%H%M}"
    appearance_folder: str = "外观"
    nameplate_folder: str = "铭牌"

    @property
    def kind_folders(self) -> dict[str, str]:
        """Photo kind -> its level-4 folder name."""
        return {"appearance": self.appearance_folder, "nameplate": self.nameplate_folder}


@dataclass(frozen=True)
class Photos:
    max_edge: int = 1600
    jpeg_quality: int = 85
    originals: str = "archive"  # archive | delete
    max_pixels: int = 100_000_000  # larger images are treated as decompression bombs
    # Decoded pixels held at once by all workers (MB; 0: no limit). One 9999x9999 RGBA photo
    # is 400 MB decoded: 512 keeps a sync with server.parallel 8 under 1 GB RSS (bench.memory).
    decode_budget_mb: int = 512


@dataclass(frozen=True)
class Camera:
    inbox: Path | None = None
    mode: str = "move"  # move | copy
    idle_minutes: int = 240


@dataclass(frozen=True)
class Server:
    url: str | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    parallel: int = 8  # files in flight; 8 measured best at 50 ms RTT (BENCHMARKS.md), under MaxSessions 10
    timeout_seconds: float = 15.0

    @property
    def scheme(self) -> str | None:
        return urlsplit(self.url).scheme if self.url else None


@dataclass(frozen=True)
class Sync:
    deletes: str = "keep"  # keep | mirror
    rescan_seconds: int = 600
    polling: str = "auto"  # auto | always | never
    settle_seconds: float = 0.3
    incomplete_retry_seconds: float = 600  # a photo that does not decode is retried this long before quarantine
    # How often a pass lists the server and pushes again what it lost (a restore from backup,
    # a disk swap); 0 = never (only `fieldsync sync --recheck-server`).
    verify_server_hours: float = 24


TILE_DATUMS = ("wgs84", "gcj02")  # BD-09 tiles use their own projection: not supported


@dataclass(frozen=True)
class Maps:
    """The customer pages' map (P12); without tiles the page still shows an offline sketch."""

    tile_url: str | None = None  # e.g. http://tiles.intranet/{z}/{x}/{y}.png
    tile_datum: str = "wgs84"  # wgs84 | gcj02 (AMap-style tile servers draw in GCJ-02)
    attribution: str = ""
    subdomains: str = "abc"
    zoom: int = 17
    max_zoom: int = 19


# location.gps implements one reader per name; tests/test_gps.py checks the two lists agree.
LOCATE_PROVIDERS = ("gpsd", "nmea", "termux", "windows")
NMEA_BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
TERMUX_PROVIDERS = ("gps", "network", "passive")


@dataclass(frozen=True)
class Locate:
    """`fieldsync locate --gps` and `fieldsync where`: positioning providers, tried in order."""

    providers: tuple[str, ...] = LOCATE_PROVIDERS
    timeout_seconds: float = 20.0  # per provider
    max_accuracy_m: float = 50.0  # a worse fix asks for confirmation
    gpsd_host: str = "127.0.0.1"
    gpsd_port: int = 2947
    nmea_device: str = "/dev/ttyUSB0"
    nmea_baud: int = 4800  # NMEA-0183's standard rate; most USB receivers also do 9600
    termux_provider: str = "gps"


@dataclass(frozen=True)
class Ui:
    language: str = "auto"  # auto (the locale: zh_* -> Chinese) | zh | en
    timezone: str = clock.AUTO  # the zone pages, reports and tables show times in: auto (this machine's) | IANA name


@dataclass(frozen=True)
class Config:
    """Everything fieldsync reads from config.yaml, with defaults for what it leaves out."""

    path: Path | None
    root: Path
    inspector: str
    device: str
    layout: Layout = field(default_factory=Layout)
    photos: Photos = field(default_factory=Photos)
    camera: Camera = field(default_factory=Camera)
    server: Server = field(default_factory=Server)
    sync: Sync = field(default_factory=Sync)
    maps: Maps = field(default_factory=Maps)
    locate: Locate = field(default_factory=Locate)
    ui: Ui = field(default_factory=Ui)

    @property
    def state_dir(self) -> Path:
        """ROOT/.fieldsync: private state, never mirrored."""
        return self.root / STATE_DIR


# --------------------------------------------------------------------------- discovery

def user_config_path() -> Path:
    """The per-user config file (e.g. ~/.config/fieldsync/config.yaml, %APPDATA% on Windows)."""
    return Path(click.get_app_dir("fieldsync")) / CONFIG_NAME


def discover(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Path | None:
    """Find config.yaml: --config, $FIELDSYNC_CONFIG, ./config.yaml, the enclosing tree, user dir.

    The enclosing tree (a parent folder holding config.yaml beside .fieldsync/) lets an inspector
    run commands from inside any visit folder, the way git finds its repository.
    """
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cwd = Path.cwd() if cwd is None else cwd
    if (cwd / CONFIG_NAME).is_file():
        return cwd / CONFIG_NAME
    for parent in cwd.parents:
        if (parent / CONFIG_NAME).is_file() and (parent / STATE_DIR).is_dir():
            return parent / CONFIG_NAME
    user = user_config_path()
    return user if user.is_file() else None


def load(path: Path | None) -> Config:
    """Read and validate config.yaml at `path` (discovered already)."""
    if path is None:
        raise ConfigError(_(
            "no config.yaml found (looked at --config, $FIELDSYNC_CONFIG, ./config.yaml, the "
            "folders above this one and {user_config}); run 'fieldsync init ROOT' first"
        ).format(user_config=user_config_path()))
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(_("{path}: file not found; run 'fieldsync init ROOT' to create one").format(
            path=path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_("{path}: cannot read it ({error})").format(path=path, error=exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_("{path}: not valid YAML ({error}); only plain YAML is accepted").format(
            path=path, error=exc)) from None
    return from_mapping(data or {}, path)


def from_mapping(data: Any, path: Path | None, base: Path | None = None) -> Config:
    """Validate a parsed mapping into a Config; `base` resolves a relative root."""
    where = str(path) if path else "<config>"
    base = base or (Path(path).resolve().parent if path else Path.cwd())
    checker = _Checker(where)
    if not isinstance(data, dict):
        raise ConfigError(_("{where}: expected a mapping of keys at the top level").format(where=where))
    checker.known(data, "", {"inspector", "device", "root", "layout", "photos", "camera",
                             "server", "sync", "maps", "locate", "ui"})

    root_value = data.get("root")
    if root_value is None:
        raise ConfigError(_("{where}: key 'root' is missing; expected the tablet tree's folder").format(where=where))
    root = checker.path(root_value, "root", base)
    layout = _layout(checker, data.get("layout") or {})
    photos = _photos(checker, data.get("photos") or {})
    camera = _camera(checker, data.get("camera") or {}, base)
    server = _server(checker, data.get("server") or {}, base)
    sync = _sync(checker, data.get("sync") or {})
    return Config(
        path=Path(path) if path else None,
        root=root,
        inspector=checker.name(data.get("inspector") or getpass.getuser(), "inspector"),
        device=checker.name(data.get("device") or socket.gethostname(), "device"),
        layout=layout, photos=photos, camera=camera, server=server, sync=sync,
        maps=_maps(checker, data.get("maps") or {}), locate=_locate(checker, data.get("locate") or {}),
        ui=_ui(checker, data.get("ui") or {}),
    )


def ui_language(path: Path | None) -> str:
    """ui.language of the config.yaml at `path`, or "auto" when there is none or it is unreadable.

    Read before the command is parsed (its help is already in the chosen language), so a broken
    file is not reported here: the command's own load names the problem.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig")) if path else None
        value = data["ui"]["language"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return "auto"
    return value if value in UI_LANGUAGES else "auto"


# --------------------------------------------------------------------------- sections

def _layout(c: _Checker, d: Any) -> Layout:
    c.mapping(d, "layout")
    c.known(d, "layout.", {f.name for f in dataclasses.fields(Layout)})
    base = Layout()
    template = c.text(d.get("customer_folder", base.customer_folder), "layout.customer_folder")
    if "{account_no}" not in template:
        c.fail("layout.customer_folder", _("a pattern containing {account_no} (it keeps folders unique)"))
    after = template.split("{account_no}", 1)[1][:1]
    if after and (after.isalnum() or after == "-"):
        c.fail("layout.customer_folder", _("{account_no} followed by a separator such as '_'"))
    try:
        template.format(account_no="1", name="x")
    except (KeyError, IndexError, ValueError) as exc:
        c.fail("layout.customer_folder", _("a pattern using only {{account_no}} and {{name}} ({exc})").format(exc=exc))
    businesses = d.get("businesses", list(base.businesses))
    if not isinstance(businesses, list) or len(businesses) != 3:
        c.fail("layout.businesses", _("a list of exactly three business-type folder names"))
    names = {}
    for key in ("documents_folder", "appearance_folder", "nameplate_folder"):
        names[key] = c.folder(d.get(key, getattr(base, key)), f"layout.{key}")
    for i, name in enumerate(businesses):
        c.folder(name, f"layout.businesses[{i}]")
    if len(set(businesses) | {names["documents_folder"]}) != 4:
        c.fail("layout.businesses", _("three different names, none equal to documents_folder"))
    if names["appearance_folder"] == names["nameplate_folder"]:
        c.fail("layout.nameplate_folder", _("a name different from appearance_folder"))
    visit = c.text(d.get("visit_folder", base.visit_folder), "layout.visit_folder")
    try:
        sample = visit.format(now=dt.datetime(2026, 1, 2, 3, 4, 5))
    except (KeyError, IndexError, ValueError) as exc:
        c.fail("layout.visit_folder", _("a pattern using {{now:...}} strftime codes ({exc})").format(exc=exc))
    if not is_safe_component(sample):
        c.fail("layout.visit_folder", _("a pattern giving a safe folder name (gives {sample!r})").format(sample=sample))
    return Layout(customer_folder=template, businesses=tuple(businesses), visit_folder=visit, **names)


def _photos(c: _Checker, d: Any) -> Photos:
    c.mapping(d, "photos")
    c.known(d, "photos.", {f.name for f in dataclasses.fields(Photos)})
    base = Photos()
    return Photos(
        max_edge=c.integer(d.get("max_edge", base.max_edge), "photos.max_edge", 64, 20000),
        jpeg_quality=c.integer(d.get("jpeg_quality", base.jpeg_quality), "photos.jpeg_quality", 1, 100),
        originals=c.choice(d.get("originals", base.originals), "photos.originals", ("archive", "delete")),
        max_pixels=c.integer(d.get("max_pixels", base.max_pixels), "photos.max_pixels", 1_000_000, 10**10),
        decode_budget_mb=c.integer(d.get("decode_budget_mb", base.decode_budget_mb),
                                   "photos.decode_budget_mb", 0, 1_000_000),
    )


def _camera(c: _Checker, d: Any, base_dir: Path) -> Camera:
    c.mapping(d, "camera")
    c.known(d, "camera.", {f.name for f in dataclasses.fields(Camera)})
    base = Camera()
    inbox = d.get("inbox")
    return Camera(
        inbox=c.path(inbox, "camera.inbox", base_dir) if inbox else None,
        mode=c.choice(d.get("mode", base.mode), "camera.mode", ("move", "copy")),
        idle_minutes=c.integer(d.get("idle_minutes", base.idle_minutes), "camera.idle_minutes", 1, 7 * 24 * 60),
    )


_URL = re.compile(r"^(sftp|file)://")


def _server(c: _Checker, d: Any, base_dir: Path) -> Server:
    c.mapping(d, "server")
    c.known(d, "server.", {f.name for f in dataclasses.fields(Server)} | {"password"})
    if "password" in d:
        c.fail("server.password", _("no password in config: use key_file (SSH key) or ssh-agent"))
    base = Server()
    url = d.get("url")
    if url is not None:
        url = c.text(url, "server.url")
        if not _URL.match(url):
            c.fail("server.url", _("sftp://user@host[:port]/path or file:///path"))
        parts = urlsplit(url)
        if parts.scheme == "sftp" and not parts.hostname:
            c.fail("server.url", _("a host name in sftp://user@host/path"))
        if not unquote(parts.path).startswith("/"):
            c.fail("server.url", _("an absolute remote path, e.g. sftp://u@host/srv/fieldsync"))
    key_file = d.get("key_file")
    known_hosts = d.get("known_hosts", "~/.ssh/known_hosts")
    return Server(
        url=url,
        key_file=c.path(key_file, "server.key_file", base_dir) if key_file else None,
        known_hosts=c.path(known_hosts, "server.known_hosts", base_dir) if known_hosts else None,
        parallel=c.integer(d.get("parallel", base.parallel), "server.parallel", 1, 32),
        timeout_seconds=c.number(d.get("timeout_seconds", base.timeout_seconds),
                                 "server.timeout_seconds", 1, 600),
    )


def _sync(c: _Checker, d: Any) -> Sync:
    c.mapping(d, "sync")
    c.known(d, "sync.", {f.name for f in dataclasses.fields(Sync)})
    base = Sync()
    return Sync(
        deletes=c.choice(d.get("deletes", base.deletes), "sync.deletes", ("keep", "mirror")),
        rescan_seconds=c.integer(d.get("rescan_seconds", base.rescan_seconds), "sync.rescan_seconds", 5, 86400),
        polling=c.choice(d.get("polling", base.polling), "sync.polling", ("auto", "always", "never")),
        settle_seconds=c.number(d.get("settle_seconds", base.settle_seconds), "sync.settle_seconds", 0, 60),
        incomplete_retry_seconds=c.number(d.get("incomplete_retry_seconds", base.incomplete_retry_seconds),
                                          "sync.incomplete_retry_seconds", 0, 86400),
        verify_server_hours=c.number(d.get("verify_server_hours", base.verify_server_hours),
                                     "sync.verify_server_hours", 0, 24 * 365),
    )


def maps_settings(d: Any, where: str = "<maps>") -> Maps:
    """A `maps:` mapping that did not come from config.yaml (a page's bare location), validated."""
    return _maps(_Checker(where), d or {})


def _maps(c: _Checker, d: Any) -> Maps:
    c.mapping(d, "maps")
    c.known(d, "maps.", {f.name for f in dataclasses.fields(Maps)})
    base = Maps()
    tile_url = d.get("tile_url")
    if tile_url is not None:
        tile_url = c.text(tile_url, "maps.tile_url")
        if not all(part in tile_url for part in ("{z}", "{x}", "{y}")):
            c.fail("maps.tile_url", _("a tile URL with {z}, {x} and {y}, e.g. http://tiles.lan/{z}/{x}/{y}.png"),
                   tile_url)
    datum = d.get("tile_datum", base.tile_datum)
    return Maps(
        tile_url=tile_url,
        tile_datum=c.choice(datum.lower() if isinstance(datum, str) else datum, "maps.tile_datum", TILE_DATUMS),
        attribution=c.optional_text(d.get("attribution", base.attribution), "maps.attribution"),
        subdomains=c.text(d.get("subdomains", base.subdomains), "maps.subdomains"),
        zoom=c.integer(d.get("zoom", base.zoom), "maps.zoom", 0, 22),
        max_zoom=c.integer(d.get("max_zoom", base.max_zoom), "maps.max_zoom", 0, 22),
    )


UI_LANGUAGES = i18n.SETTINGS


def _ui(c: _Checker, d: Any) -> Ui:
    c.mapping(d, "ui")
    c.known(d, "ui.", {f.name for f in dataclasses.fields(Ui)})
    return Ui(language=c.choice(d.get("language", Ui.language), "ui.language", UI_LANGUAGES),
              timezone=_timezone(c, d.get("timezone", Ui.timezone), "ui.timezone"))


def _timezone(c: _Checker, value: Any, key: str) -> str:
    """`value` if it names a time zone the clock knows (auto, or an IANA name)."""
    try:
        clock.zone(value)
    except ValueError:
        c.fail(key, _("auto or an IANA time zone name such as Asia/Shanghai"), value)
    return value.strip()


def _locate(c: _Checker, d: Any) -> Locate:
    c.mapping(d, "locate")
    c.known(d, "locate.", {f.name for f in dataclasses.fields(Locate)})
    base = Locate()
    providers = d.get("providers", list(base.providers))
    if isinstance(providers, str):
        providers = [providers]
    expected = _("a list of providers from {providers}").format(providers=", ".join(LOCATE_PROVIDERS))
    if not isinstance(providers, list) or not providers:
        c.fail("locate.providers", expected, providers)
    for i, name in enumerate(providers):
        c.choice(name, f"locate.providers[{i}]", LOCATE_PROVIDERS)
    return Locate(
        providers=tuple(providers),
        timeout_seconds=c.number(d.get("timeout_seconds", base.timeout_seconds), "locate.timeout_seconds", 1, 600),
        max_accuracy_m=c.number(d.get("max_accuracy_m", base.max_accuracy_m), "locate.max_accuracy_m", 1, 100_000),
        gpsd_host=c.text(d.get("gpsd_host", base.gpsd_host), "locate.gpsd_host"),
        gpsd_port=c.integer(d.get("gpsd_port", base.gpsd_port), "locate.gpsd_port", 1, 65535),
        nmea_device=c.text(d.get("nmea_device", base.nmea_device), "locate.nmea_device"),
        nmea_baud=c.choice(d.get("nmea_baud", base.nmea_baud), "locate.nmea_baud", NMEA_BAUDS),
        termux_provider=c.choice(d.get("termux_provider", base.termux_provider), "locate.termux_provider",
                                 TERMUX_PROVIDERS),
    )


class _Checker:
    """Small validators that all fail the same way: file, key, expected."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, expected: str, got: Any = dataclasses.MISSING) -> None:
        shown = "" if got is dataclasses.MISSING else _(", got {value}").format(value=repr(got))
        raise ConfigError(_("{file}: key '{key}': expected {expected}").format(
            file=self.where, key=key, expected=expected) + shown)

    def known(self, d: dict, prefix: str, allowed: set[str]) -> None:
        for key in d:
            if key not in allowed:
                self.fail(f"{prefix}{key}", _("one of {keys} (unknown key)").format(keys=", ".join(sorted(allowed))))

    def mapping(self, d: Any, key: str) -> None:
        if not isinstance(d, dict):
            self.fail(key, _("a mapping of keys"), d)

    def text(self, v: Any, key: str) -> str:
        if not isinstance(v, str) or not v.strip():
            self.fail(key, _("a non-empty text"), v)
        return v.strip()

    def optional_text(self, v: Any, key: str) -> str:
        if v is None:
            return ""
        if not isinstance(v, str):
            self.fail(key, _("a text (may be empty)"), v)
        return v.strip()

    def folder(self, v: Any, key: str) -> str:
        v = self.text(v, key)
        if not is_safe_component(v):
            self.fail(key, _("a folder name without / \\ : * ? \" < > |, leading dots or trailing spaces"), v)
        return v

    def name(self, v: Any, key: str) -> str:
        """A name that becomes part of file names (ledgers/<device>, *.conflict-<device>.jpg)."""
        v = self.text(v, key)
        if not is_safe_component(v) or len(v.encode("utf-8")) > MAX_NAME_BYTES:
            self.fail(key, _('a name usable in a file name: at most {MAX_NAME_BYTES} UTF-8 bytes, no / \\ : * ? " < '
                             '> |, control characters, leading or trailing dots, trailing spaces or device names '
                             'like CON (e.g. tablet-07, zhang.san, 张三)').format(MAX_NAME_BYTES=MAX_NAME_BYTES), v)
        return v

    def integer(self, v: Any, key: str, low: int, high: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            self.fail(key, _("a whole number from {low} to {high}").format(low=low, high=high), v)
        return v

    def number(self, v: Any, key: str, low: float, high: float) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            self.fail(key, _("a number from {low} to {high}").format(low=low, high=high), v)
        return float(v)

    def choice(self, v: Any, key: str, options: tuple) -> Any:
        # bool == 1 in Python: never let True pass as a baud rate or a choice.
        if isinstance(v, bool) or v not in options:
            self.fail(key, _(" or ").join(map(str, options)), v)
        return v

    def path(self, v: Any, key: str, base: Path) -> Path:
        # A NUL cannot be in any path the OS accepts (and makes resolve() raise ValueError).
        if not isinstance(v, (str, os.PathLike)) or not str(v).strip() or "\0" in str(v):
            self.fail(key, _("a folder or file path"), v)
        p = Path(os.path.expandvars(str(v))).expanduser()
        return p if p.is_absolute() else (base / p).resolve()


def render_default(root: Path, inspector: str, device: str, server_url: str | None) -> str:
    """A commented config.yaml for `fieldsync init`, from the shipped example."""
    return render_template("config.yaml.j2", root=str(root), inspector=inspector, device=device,
                           server_url=server_url)
