"""Shared fixtures. Area-specific fixtures live in tests/fixtures/*.py and load automatically."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from fieldsync import config as config_mod

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_real_part(available: bool, what: str) -> None:
    """Skip locally when a real part (sshd, chromium, gpsd) is missing; fail under CI=true."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing under CI; ./run tests installs it")
    pytest.skip(f"{what} is not installed")


SAMPLE_CSV = (
    "户号,户名,表计局号,合同容量,用电地址,线路名称,供电电压等级\n"
    "3300001234,杭州某某机械有限公司,5100012345678,315,杭州市西湖区文三路100号,文三线,10kV\n"
    "3300005678,宁波港口物流有限公司,5100087654321,630kVA,宁波市北仑区港口路8号,港城线,10kV\n"
    "3300009999,绍兴纺织厂,5100011112222,1250,绍兴市柯桥区纺都路1号,纺都线,35kV\n"
)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch) -> config_mod.Config:
    """An initialised tablet tree with a file:// server and three imported customers."""
    from fieldsync.masterdata import importer
    from fieldsync.masterdata.catalog import IndexedStore
    from fieldsync.tree.folders import init_root

    root = tmp_path / "tablet"
    server = tmp_path / "server"
    server.mkdir()
    text = config_mod.render_default(root, "zhang.san", "tablet-07", server.as_uri())
    config_path = init_root(root, text)
    monkeypatch.setenv(config_mod.ENV_VAR, str(config_path))
    cfg = config_mod.load(config_path)
    csv_path = tmp_path / "customers.csv"
    csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
    IndexedStore(cfg.state_dir).merge(importer.parse(csv_path), str(csv_path))
    return cfg


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """Run the fieldsync CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from fieldsync.cli import cli

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return run


def screenshot_dir(tmp_path_factory=None) -> Path:
    """docs/img when FIELDSYNC_SCREENSHOTS=1 (to refresh the docs' pictures), else a temp folder,
    so an ordinary test run never changes tracked files."""
    import tempfile

    if os.environ.get("FIELDSYNC_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parent.parent / "docs" / "img"
    else:
        target = Path(tempfile.gettempdir()) / "fieldsync-screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target
