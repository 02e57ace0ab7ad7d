"""Crash-safe local writes: temp file in the same folder, fsync, os.replace, fsync the folder."""

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

__all__ = ["atomic_open", "fsync_dir", "is_stale_temp", "write_bytes", "write_text"]

# atomic_open's temp names: "." + the target's name (cut to 40) + "." + mkstemp's 8 characters
# + ".tmp". A kill -9 between mkstemp and os.replace leaves one behind.
_TEMP_NAME = re.compile(r"^\..{1,40}\.[a-z0-9_]{8}\.tmp$", re.DOTALL)
STALE_TEMP_SECONDS = 60


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file next to `path`; on clean exit it replaces `path` in one step.

    On an exception the temp file is removed and `path` is untouched, so readers only ever
    see the old content or the new, never half of either.
    """
    path = Path(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding,
                       newline=None if binary else "\n") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_text(path: Path | str, text: str) -> None:
    """Atomically replace `path` with `text` (UTF-8)."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_bytes(path: Path | str, data: bytes) -> None:
    """Atomically replace `path` with `data`."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def is_stale_temp(name: str, mtime: float) -> bool:
    """True for a temp file of atomic_open's naming untouched for over a minute: left by a
    killed process (a live writer finishes in well under that), so safe to remove."""
    return bool(_TEMP_NAME.match(name)) and time.time() - mtime > STALE_TEMP_SECONDS
