"""config.yaml: discovery order, validation messages, safe_load only."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldsync import config as config_mod
from fieldsync.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_is_valid():
    cfg = config_mod.load(REPO / "config.yaml")
    assert cfg.layout.businesses == ("周期检查", "专项检查", "违约用电检查")
    assert cfg.photos.max_edge == 1600
    assert cfg.sync.deletes == "keep"


def test_init_template_is_valid(tmp_path):
    text = config_mod.render_default(tmp_path / "t", "li.si", "tab-1", "sftp://u@host:2222/srv/fs")
    cfg = config_mod.from_mapping(config_mod.yaml.safe_load(text), tmp_path / "config.yaml")
    assert (cfg.inspector, cfg.device, cfg.server.url) == ("li.si", "tab-1", "sftp://u@host:2222/srv/fs")


def test_code_execution_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path / "config.yaml",
                 f"root: {tmp_path}\ninspector: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config_mod.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("text,key,expected", [
    ("photos: {max_edge: big}", "photos.max_edge", "whole number"),
    ("photos: {originals: keep}", "photos.originals", "archive"),
    ("sync: {deletes: all}", "sync.deletes", "keep"),
    ("layout: {businesses: [a, b]}", "layout.businesses", "three"),
    ("server: {url: 'http://x'}", "server.url", "sftp://"),
    ("server: {password: hunter2}", "server.password", ""),
    ("photoz: {}", "photoz", ""),
    ("search: {}", "search", "unknown key"),  # was accepted and never read
    ("maps: [a]", "maps", "a mapping"),
    ("maps: {tile_datum: bd09}", "maps.tile_datum", "wgs84 or gcj02"),
    ("maps: {zoom: 23}", "maps.zoom", "whole number from 0 to 22"),
    ("maps: {max_zoom: high}", "maps.max_zoom", "whole number from 0 to 22"),
    ("maps: {tile_url: 'http://tiles.lan/a.png'}", "maps.tile_url", "{z}, {x} and {y}"),
    ("maps: {attribution: [x]}", "maps.attribution", "a text"),
    ("maps: {tiles: x}", "maps.tiles", "unknown key"),
    ("locate: 5", "locate", "a mapping"),
    ("locate: {providers: [glonass]}", "locate.providers[0]", "gpsd or nmea or termux or windows"),
    ("locate: {providers: []}", "locate.providers", "a list of providers"),
    ("locate: {timeout_seconds: -1}", "locate.timeout_seconds", "a number from 1 to 600"),
    ("locate: {max_accuracy_m: 0}", "locate.max_accuracy_m", "a number from 1"),
    ("locate: {gpsd_port: '2947'}", "locate.gpsd_port", "whole number from 1 to 65535"),
    ("locate: {nmea_baud: 4801}", "locate.nmea_baud", "4800"),
    ("locate: {nmea_baud: true}", "locate.nmea_baud", "4800"),
    ("locate: {termux_provider: wifi}", "locate.termux_provider", "gps or network or passive"),
    ("locate: {gpsd_hots: x}", "locate.gpsd_hots", "unknown key"),
    # device and inspector become file names (ledgers/<device>, *.conflict-<device>.jpg)
    ("device: ../../etc", "device", "a name usable in a file name"),
    ("device: a/b", "device", "no / \\"),
    ("device: '..'", "device", "leading or trailing dots"),
    ("device: CON", "device", "device names like CON"),
    (f"device: {'x' * 65}", "device", "at most 64 UTF-8 bytes"),
    ("device: [a]", "device", "a non-empty text"),
    ("inspector: ../zhang", "inspector", "a name usable in a file name"),
    ("inspector: \"zhang\\\\san\"", "inspector", "a name usable in a file name"),
    ("inspector: \"a\\tb\"", "inspector", "control characters"),
])
def test_bad_values_name_file_key_and_expectation(tmp_path, text, key, expected):
    path = write(tmp_path / "config.yaml", f"root: {tmp_path}\n{text}\n")
    with pytest.raises(ConfigError) as info:
        config_mod.load(path)
    message = str(info.value)
    assert str(path) in message and key in message and expected in message


def test_names_from_config_that_are_safe_pass(tmp_path):
    path = write(tmp_path / "config.yaml", f"root: {tmp_path}\ndevice: tablet-07\ninspector: 张三\n")
    cfg = config_mod.load(path)
    assert (cfg.device, cfg.inspector) == ("tablet-07", "张三")


def test_maps_and_locate_are_typed(tmp_path):
    path = write(tmp_path / "config.yaml", f"root: {tmp_path}\n"
                 "maps: {tile_url: 'http://t/{z}/{x}/{y}.png', tile_datum: GCJ02, zoom: 15}\n"
                 "locate: {providers: termux, gpsd_port: 2948, timeout_seconds: 5}\n")
    cfg = config_mod.load(path)
    assert cfg.maps == config_mod.Maps(tile_url="http://t/{z}/{x}/{y}.png", tile_datum="gcj02", zoom=15)
    assert cfg.locate == config_mod.Locate(providers=("termux",), gpsd_port=2948, timeout_seconds=5.0)
    assert config_mod.load(write(tmp_path / "config.yaml", f"root: {tmp_path}\n")).locate == config_mod.Locate()


def test_missing_config_says_how_to_start():
    with pytest.raises(ConfigError, match="fieldsync init"):
        config_mod.load(None)


def test_config_is_frozen(tmp_path):
    cfg = config_mod.load(write(tmp_path / "config.yaml", f"root: {tmp_path}\n"))
    with pytest.raises(AttributeError):
        cfg.root = Path("/")  # type: ignore[misc]


def test_relative_root_is_relative_to_the_file(tmp_path):
    cfg = config_mod.load(write(tmp_path / "config.yaml", "root: tree\n"))
    assert cfg.root == tmp_path / "tree"


class TestDiscovery:
    def test_explicit_wins(self, tmp_path, monkeypatch):
        monkeypatch.setenv(config_mod.ENV_VAR, str(tmp_path / "env.yaml"))
        assert config_mod.discover(tmp_path / "explicit.yaml") == tmp_path / "explicit.yaml"

    def test_environment_before_cwd(self, tmp_path, monkeypatch):
        write(tmp_path / "config.yaml", "root: .\n")
        monkeypatch.setenv(config_mod.ENV_VAR, str(tmp_path / "env.yaml"))
        assert config_mod.discover(cwd=tmp_path) == tmp_path / "env.yaml"

    def test_cwd_then_enclosing_tree_then_user_dir(self, tmp_path, monkeypatch):
        monkeypatch.delenv(config_mod.ENV_VAR, raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        root = tmp_path / "tree"
        deep = root / "a" / "b"
        deep.mkdir(parents=True)
        assert config_mod.discover(cwd=deep) in (None, config_mod.user_config_path())
        (root / ".fieldsync").mkdir()
        write(root / "config.yaml", "root: .\n")
        assert config_mod.discover(cwd=deep) == root / "config.yaml"
        assert config_mod.discover(cwd=root) == root / "config.yaml"
        user = config_mod.user_config_path()
        user.parent.mkdir(parents=True)
        write(user, "root: .\n")
        assert config_mod.discover(cwd=tmp_path) == user
