"""base.platform: the POSIX paths against the real OS, the Windows choices by passing os_name."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from fieldsync.base import platform

posix_only = pytest.mark.skipif(os.name != "posix", reason="exercises the POSIX branch against the real OS")


@posix_only
def test_pid_alive_for_this_process_and_not_for_a_reaped_one():
    assert platform.pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the id names no process now
    assert not platform.pid_alive(child.pid)


@posix_only
def test_pid_of_another_users_process_is_alive():
    # pid 1 (init) belongs to root: signal 0 is refused with EPERM, yet the process exists.
    assert platform.pid_alive(1)


@pytest.mark.parametrize("os_name", ["posix", "nt"])
@pytest.mark.parametrize("pid", [0, -1, True, "123", None])
def test_no_process_group_or_junk_is_alive(os_name, pid):
    # os.kill(0, 0) would succeed (it names this process group): refused before any OS call.
    assert platform.pid_alive(pid, os_name=os_name) is False


@pytest.mark.skipif(os.name != "nt", reason="OpenProcess exists only on Windows")
def test_windows_pid_alive():
    assert platform.pid_alive(os.getpid(), os_name="nt")


@posix_only
def test_fsync_dir_on_posix(tmp_path):
    platform.fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        platform.fsync_dir(tmp_path / "missing")


def test_fsync_dir_is_a_no_op_on_windows(tmp_path):
    # Windows cannot open a folder for fsync: nothing is opened, so not even a missing one fails.
    platform.fsync_dir(tmp_path / "missing", os_name="nt")


ARGS = ["fieldsync", "locate", "3300001234", "--from-photo", "D:\\相机\\IMG 0001.jpg", 'say "hi"', ""]


def test_quote_command_posix_round_trips_through_shlex():

    line = platform.quote_command(ARGS, os_name="posix")
    assert shlex.split(line) == ARGS
    assert platform.quote_command(["fieldsync", "status"], os_name="posix") == "fieldsync status"


def test_quote_command_windows_uses_the_msvcrt_rules():
    line = platform.quote_command(ARGS, os_name="nt")
    assert line == subprocess.list2cmdline(ARGS)
    assert '"D:\\相机\\IMG 0001.jpg"' in line and '"say \\"hi\\""' in line and line.endswith(' ""')
