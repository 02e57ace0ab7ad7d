"""Crash-safe local writes: temp file in the same folder, fsync, os.replace, fsync the folder.

File modes. mkstemp makes its temp file 0600 whatever the umask, and the rename keeps that
mode, so every writer says what it writes:
- ordinary (the default): what people or other accounts read — the tree (photos, customer.yaml,
  visit.yaml, manifest.json, tablet pages and query data), the server's site, thumbnails,
  reports, evidence bundles. They get the mode a newly created file gets: 0666 & ~umask.
- private (`private=True`): the tablet's state under .fieldsync/ — host key pins (known_hosts),
  the customer store and its search index (personal data), the last GPS fix, sync and daemon
  state, quarantine records, the filed-photo memory. They stay 0600 whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# Re-exported: writers that rename by themselves (engine, local transport) fsync through here.
from fieldsync.base.platform import fsync_dir

__all__ = ["atomic_open", "fsync_dir", "is_stale_temp", "ordinary_mode", "set_ordinary_mode", "write_bytes",
           "write_text"]

_PROC_UMASK = re.compile(rb"^Umask:\s*([0-7]+)$", re.MULTILINE)


def _proc_umask() -> int | None:
    """The umask as Linux shows it in /proc (4.7+), read without changing it; None elsewhere."""
    try:
        with open("/proc/self/status", "rb") as handle:
            found = _PROC_UMASK.search(handle.read())
    except OSError:
        return None
    return int(found.group(1), 8) if found else None


def _swap_umask() -> int:
    # os.umask can only be read by setting it: safe at import, before other threads make files.
    current = os.umask(0o022)
    os.umask(current)
    return current


_IMPORT_UMASK = _proc_umask()
if _IMPORT_UMASK is None:
    _IMPORT_UMASK = _swap_umask()


def ordinary_mode() -> int:
    """The mode the umask gives a newly created file (0644 under umask 022, 0640 under 027)."""
    umask = _proc_umask()
    return 0o666 & ~(_IMPORT_UMASK if umask is None else umask)


def set_ordinary_mode(fd: int) -> None:
    """Give a file made by mkstemp (0600) the mode an ordinary new file gets (POSIX only)."""
    if os.name == "posix":
        os.fchmod(fd, ordinary_mode())

# atomic_open's temp names: "." + the target's name (cut to 40) + "." + mkstemp's 8 characters
# + ".tmp". A kill -9 between mkstemp and os.replace leaves one behind.
_TEMP_NAME = re.compile(r"^\..{1,40}\.[a-z0-9_]{8}\.tmp$", re.DOTALL)
STALE_TEMP_SECONDS = 60


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8",
                private: bool = False) -> Iterator[IO]:
    """Open a temp file next to `path`; on clean exit it replaces `path` in one step.

    On an exception the temp file is removed and `path` is untouched, so readers only ever
    see the old content or the new, never half of either. The file gets the umask's mode, or
    0600 when `private` (see the module docstring for which is which).
    """
    path = Path(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else "\n") as handle:
            if not private:
                set_ordinary_mode(handle.fileno())
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_text(path: Path | str, text: str, private: bool = False) -> None:
    """Atomically replace `path` with `text` (UTF-8); 0600 when `private`."""
    with atomic_open(path, "w", private=private) as handle:
        handle.write(text)


def write_bytes(path: Path | str, data: bytes, private: bool = False) -> None:
    """Atomically replace `path` with `data`; 0600 when `private`."""
    with atomic_open(path, "wb", private=private) as handle:
        handle.write(data)


def is_stale_temp(name: str, mtime: float) -> bool:
    """True for a temp file of atomic_open's naming untouched for over a minute: left by a
    killed process (a live writer finishes in well under that), so safe to remove."""
    return bool(_TEMP_NAME.match(name)) and time.time() - mtime > STALE_TEMP_SECONDS
