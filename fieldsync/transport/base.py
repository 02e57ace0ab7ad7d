"""The transport interface the engine, publish/pull and the server side rely on.

Paths are POSIX paths relative to the remote root (the server tree mirrors ROOT literally).
An implementation must never write outside its root: `safe_rel` refuses `..`, absolute
paths and empty components before any I/O.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.errors import BadInput

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)
REMOTE_ROOT = PurePosixPath()  # the remote root itself, as a rel


@dataclass(frozen=True)
class RemoteEntry:
    rel: PurePosixPath
    size: int
    mtime: float
    is_dir: bool


def safe_rel(rel: PurePosixPath | str) -> PurePosixPath:
    """`rel` if it stays inside the remote root, else BadInput (never a silent fix)."""
    path = PurePosixPath(rel)
    if path.is_absolute() or any(part in ("", ".", "..") for part in path.parts) or "\\" in str(path):
        raise BadInput(f"refusing remote path {str(rel)!r}: it would leave the remote root")
    return path


class Transport(abc.ABC):
    """A remote root that receives files atomically."""

    url: str
    owner: str = ""  # this device's name, in upload temp names (see paths.part_name)

    @abc.abstractmethod
    def stat(self, rel: PurePosixPath) -> RemoteEntry | None:
        """The entry at `rel`, or None when absent."""

    @abc.abstractmethod
    def walk(self, rel: PurePosixPath = REMOTE_ROOT) -> Iterator[RemoteEntry]:
        """Every file and folder under `rel`, recursively (hidden names included)."""

    @abc.abstractmethod
    def makedirs(self, rel: PurePosixPath) -> None:
        """Create `rel` and its parents; existing is fine."""

    @abc.abstractmethod
    def upload(self, local: Path, rel: PurePosixPath, progress: ProgressFn | None = None) -> None:
        """Put `local` at `rel`: hidden temp name, size check, atomic rename; resumes a
        partial temp file when its bytes match the start of `local`."""

    @abc.abstractmethod
    def download(self, rel: PurePosixPath, local: Path) -> None:
        """Fetch `rel` into `local` atomically (temp + os.replace)."""

    @abc.abstractmethod
    def rename(self, old: PurePosixPath, new: PurePosixPath) -> None:
        """Move `old` (file or folder) to `new` atomically, replacing a file there (a renamed
        visit moves on the server, no re-upload)."""

    @abc.abstractmethod
    def remove(self, rel: PurePosixPath) -> None:
        """Delete the file at `rel` (only used with sync.deletes: mirror)."""

    def close(self) -> None:  # noqa: B027 - optional hook: a folder transport holds nothing to release
        """Release connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

