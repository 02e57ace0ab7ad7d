"""Output readable by whom it is for: no library chatter by default (-v, -vv for more), and a
reader that stops early (`fieldsync status | head -3`) ends the command quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fieldsync.cli import EXIT_PIPE_CLOSED
from fieldsync.tree import folders as tree_mod

REPO = Path(__file__).resolve().parent.parent
FIELDSYNC = [sys.executable, "-c", "from fieldsync.cli import main; main()"]


def run(*args: str, stdout=subprocess.PIPE, timeout: float = 120) -> subprocess.CompletedProcess:
    # FIELDSYNC_CONFIG (set by the `tree` fixture) and PYTHONPATH reach the child.
    return subprocess.run([*FIELDSYNC, *map(str, args)], cwd=REPO, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, env=os.environ.copy())


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader has already gone, like `| head -0`."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return run(*args, stdout=write_end)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [
    ("status",), ("find", "杭州"), ("customers", "show", "3300001234"),
])
def test_a_closed_pipe_ends_quietly(tree, args):
    done = run_into_closed_pipe(*args)
    assert done.stderr == ""
    assert done.returncode == EXIT_PIPE_CLOSED


def test_a_pipe_closed_after_the_first_line(tree):
    shell = subprocess.run(f"{' '.join(map(repr, FIELDSYNC))} find 3300 | head -1; exit ${{PIPESTATUS[0]}}",
                           shell=True, executable="/bin/bash", cwd=REPO, capture_output=True, text=True,
                           timeout=120, env=os.environ.copy())
    assert shell.stdout.count("\n") == 1
    assert "Error" not in shell.stderr and "Traceback" not in shell.stderr
    assert shell.returncode in (0, EXIT_PIPE_CLOSED)  # head may read all before the second write


def test_evidence_prints_no_font_tool_lines(filed_visit, tmp_path):
    done = run("evidence", "3300001234", "--out", tmp_path / "bundle.zip")
    assert done.returncode == 0, done.stderr
    assert "fontTools" not in done.stderr + done.stdout
    assert done.stderr == ""


def test_sync_over_sftp_prints_no_paramiko_lines(sftp_tree):
    tree_mod.open_customer(sftp_tree, "3300001234")
    done = run("sync")
    assert done.returncode == 0, done.stderr
    assert "paramiko" not in done.stderr and "Authentication" not in done.stderr
    tree_mod.add_category(sftp_tree, "3300001234", "1", "计量装置")
    loud = run("-vv", "sync")
    assert loud.returncode == 0, loud.stderr
    assert "paramiko" in loud.stderr  # the libraries' lines are there when asked for


def test_library_warnings_are_silent_unless_asked(tree):
    # Pillow, watchdog, fontTools warn through the warnings module: none of it on stderr by default.
    probe = ("import warnings, sys; from fieldsync.cli.base import setup_logging; "
             "setup_logging(int(sys.argv[1])); "
             "exec(compile('import warnings; warnings.warn(\"Callback already exists\", RuntimeWarning)', "
             "'watchdog/x.py', 'exec'), {'__name__': 'watchdog.observers.inotify_c'}); "
             "import logging; logging.getLogger('paramiko.transport').info('Connected'); "
             "logging.getLogger('fieldsync.sync').debug('own detail')")
    quiet = subprocess.run([sys.executable, "-c", probe, "0"], capture_output=True, text=True, cwd=REPO)
    assert quiet.stderr == ""
    verbose = subprocess.run([sys.executable, "-c", probe, "1"], capture_output=True, text=True, cwd=REPO)
    assert "own detail" in verbose.stderr and "Connected" not in verbose.stderr
    assert "Callback" not in verbose.stderr
    loud = subprocess.run([sys.executable, "-c", probe, "2"], capture_output=True, text=True, cwd=REPO)
    assert "Callback already exists" in loud.stderr and "Connected" in loud.stderr


def test_the_daemon_log_keeps_fieldsyncs_lines_and_only_warnings_from_libraries(tree):
    """paramiko logs every SFTP command at INFO: the daemon's log file must not fill with it."""
    import logging

    from fieldsync.cli.sync import _log_to_file

    path = _log_to_file(tree)
    root = logging.getLogger()
    handler = root.handlers[-1]
    try:
        logging.getLogger("fieldsync.daemon").info("pass done: 3 uploaded")
        logging.getLogger("paramiko.transport.sftp").info("[chan 0] Opened sftp connection")
        logging.getLogger("paramiko.transport").warning("Oops, unhandled type 3")
        handler.flush()
        text = path.read_text(encoding="utf-8")
    finally:
        root.removeHandler(handler)
        handler.close()
    assert "pass done" in text and "unhandled type" in text and "Opened sftp" not in text
