"""`pip install .` gives a working `fieldsync` command outside the checkout, templates included."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs_from_anywhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("fieldsync-*.whl"))
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    # Dependencies come from this test run's environment (no network needed), fieldsync
    # itself only from the wheel: a missing template or data file fails below.
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": "", "HOME": str(tmp_path)}
    env.pop("FIELDSYNC_CONFIG", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([str(target / "bin" / "fieldsync"), "demo", "--dir", str(tmp_path / "d")],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    location = subprocess.check_output([str(python), "-c", "import fieldsync;print(fieldsync.__file__)"],
                                       cwd=elsewhere, env=env, text=True)
    assert str(REPO) not in location  # really the installed copy
    assert (tmp_path / "d" / "tablet" / "index.html").is_file()
    # The compiled Chinese catalog ships in the wheel (issue 19).
    chinese = subprocess.run([str(target / "bin" / "fieldsync"), "--help"], cwd=elsewhere, capture_output=True,
                             text=True, env={**env, "LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""})
    assert chinese.returncode == 0 and "显示此帮助并退出" in chinese.stdout, chinese.stdout + chinese.stderr
    launcher = subprocess.run([sys.executable, str(REPO / "cli.py"), "--help"], capture_output=True, text=True)
    assert launcher.returncode == 0 and "customer" in launcher.stdout
