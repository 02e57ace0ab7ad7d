"""Progress on long work (issue 19): imports, sync, evidence bundles and page builds draw one
bar on a terminal, say nothing about progress when stderr is piped, and --json output is the
same either way.

The CLI runs as a real process with stderr on a pseudo-terminal (pty), so click sees a terminal
exactly as an inspector's shell gives one.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_CSV

REPO = Path(__file__).resolve().parent.parent
EN = {"LANG": "en_US.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
ZH = {"LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}


def fieldsync(*args, terminal: bool, lang: dict = EN) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python -m fieldsync ARGS`; stderr is a pseudo-terminal
    when `terminal`, else a pipe. stdout is always a pipe (what a script reads)."""
    env = {**os.environ, **lang, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    command = [sys.executable, "-m", "fieldsync", *map(str, args)]
    if not terminal:
        done = subprocess.run(command, capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
        return done.returncode, done.stdout.decode(), done.stderr.decode()
    master, slave = pty.openpty()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=120), stdout, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def bigger_csv(tmp_path) -> Path:
    """Enough rows that reading takes more than one step of the bar."""
    header, *rows = SAMPLE_CSV.splitlines()
    lines = [header] + [f"33{n:08d},客户{n},51{n:011d},315,杭州市文三路{n}号,文三线,10kV" for n in range(3000)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_draws_a_bar_on_a_terminal_only(tree, bigger_csv):
    code, stdout, terminal = fieldsync("customers", "import", "--dry-run", bigger_csv, terminal=True)
    assert code == 0, terminal
    assert "reading" in terminal and "%" in terminal and "#" in terminal
    assert "reading" not in stdout and "dry run, nothing written: 3000 customers" in stdout
    code, piped_out, piped_err = fieldsync("customers", "import", "--dry-run", bigger_csv, terminal=False)
    assert code == 0, piped_err
    assert piped_err == ""  # no label, no bar, nothing
    assert piped_out == stdout


def test_the_bar_speaks_the_locale(tree, bigger_csv):
    code, _stdout, terminal = fieldsync("customers", "import", bigger_csv, terminal=True, lang=ZH)
    assert code == 0, terminal
    assert "读取" in terminal and "建立搜索索引" in terminal
    assert "reading" not in terminal and "building the search index" not in terminal


def test_json_output_is_the_same_on_a_terminal(tree, bigger_csv):
    code, on_terminal, terminal = fieldsync("customers", "import", "--dry-run", "--json", bigger_csv, terminal=True)
    assert code == 0, terminal
    assert "reading" in terminal  # the bar went to stderr ...
    code, piped, _err = fieldsync("customers", "import", "--dry-run", "--json", bigger_csv, terminal=False)
    assert on_terminal == piped  # ... and stdout is the JSON alone, byte for byte
    assert json.loads(piped)["records"] == 3000


def test_quiet_means_no_bar(tree, bigger_csv):
    code, _stdout, terminal = fieldsync("-q", "customers", "import", "--dry-run", bigger_csv, terminal=True)
    assert code == 0, terminal
    assert "reading" not in terminal


def test_sync_bundle_and_full_index_draw_bars(filed_visit, tmp_path):
    cfg, _visit = filed_visit
    code, stdout, terminal = fieldsync("sync", terminal=True)
    assert code == 0, terminal
    assert "pushing" in terminal and "%" in terminal and "uploaded" in stdout

    out = tmp_path / "bundle.zip"
    code, stdout, terminal = fieldsync("evidence", "3300001234", "--out", out, terminal=True)
    assert code == 0, terminal
    assert "making the report" in terminal and "100%" in terminal and out.is_file()
    out.unlink()
    code, stdout, piped_err = fieldsync("evidence", "3300001234", "--out", out, terminal=False)
    assert code == 0, piped_err
    assert "making the report" not in piped_err and "%" not in piped_err

    code, stdout, terminal = fieldsync("verify", terminal=True)
    assert code == 0, terminal
    assert "checking photos" in terminal and "100%" in terminal and "verified" in stdout
    code, stdout, piped_err = fieldsync("verify", "--json", terminal=False)
    assert code == 0 and "checking photos" not in piped_err and json.loads(stdout)

    server = Path(cfg.server.url.removeprefix("file://"))
    code, stdout, terminal = fieldsync("server", "index", "--full", server, terminal=True)
    assert code == 0, terminal
    assert "building pages" in terminal and "100%" in terminal and "pages written" in stdout
    code, stdout, piped_err = fieldsync("server", "index", "--full", server, terminal=False)
    assert code == 0, piped_err
    assert "building pages" not in piped_err and "pages written" in stdout
