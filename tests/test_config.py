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
])
def test_bad_values_name_file_key_and_expectation(tmp_path, text, key, expected):
    path = write(tmp_path / "config.yaml", f"root: {tmp_path}\n{text}\n")
    with pytest.raises(ConfigError) as info:
        config_mod.load(path)
    message = str(info.value)
    assert str(path) in message and key in message and expected in message


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
