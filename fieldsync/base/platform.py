"""The OS-specific bits in one place: process liveness, fsync of folders, quoting a command.

Each function takes `os_name` (default `os.name`: "posix" or "nt") so both branches read side
by side and the Windows choices are tested on any machine where they can run.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Windows API values (processthreadsapi.h, winerror.h, minwinbase.h).
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_ERROR_ACCESS_DENIED = 5
_STILL_ACTIVE = 259


def pid_alive(pid: int, os_name: str = os.name) -> bool:
    """Whether a process with this id is running now.

    POSIX: signal 0 checks without sending anything. Not on Windows, where os.kill(pid, 0)
    sends CTRL_C_EVENT to the console group: there the process is opened and its exit code read.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False  # 0 and negatives name process groups, never one process
    if os_name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    except OSError:
        return False
    return True


def _windows_pid_alive(pid: int) -> bool:
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        # Access denied means the process exists but belongs to someone else.
        return ctypes.get_last_error() == _ERROR_ACCESS_DENIED  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return False
        # A process that returned 259 itself looks alive; the API has no better answer.
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def fsync_dir(folder: Path | str, os_name: str = os.name) -> None:
    """Make a rename inside `folder` durable: it is only on disk once the folder entry is.

    Windows cannot open a folder for fsync (NTFS journals the rename itself): a no-op there.
    """
    if os_name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quote_command(args: Sequence[str], os_name: str = os.name) -> str:
    """A command line a person can paste into this OS's shell (for display only, never run)."""
    args = [str(arg) for arg in args]
    if os_name == "nt":
        return subprocess.list2cmdline(args)
    return shlex.join(args)
