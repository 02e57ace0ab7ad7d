"""The transport interface the engine, publish/pull and the server side rely on.

Paths are POSIX paths relative to the remote root (the server tree mirrors ROOT literally).
An implementation must never write outside its root: `safe_rel` refuses `..`, absolute
paths and empty components before any I/O.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.i18n import _
from fieldsync.errors import BadInput, TransportError

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)
REMOTE_ROOT = PurePosixPath()  # the remote root itself, as a rel
# A random id the first tablet writes into the server's private folder: a server replaced by
# a new, empty one at the same URL (a remounted share, a reinstalled host) has another id.
SERVER_ID = PurePosixPath(".fieldsync/server-id")
MAX_SERVER_ID = 200  # characters: anything longer is not an id fieldsync wrote


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
        raise BadInput(_("refusing remote path {rel!r}: it would leave the remote root").format(rel=str(rel)))
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

    def begin_pass(self) -> None:  # noqa: B027 - optional hook: local checks every path on every call
        """A new sync pass starts: forget what was checked on the server before it, so a
        folder swapped for a symlink between passes is seen (the engine calls this first)."""

    def open_ahead(self, rel: PurePosixPath, reconnect: bool = True) -> bool:  # noqa: ARG002 - no round trips
        """Prepare an upload of `rel` that is about to come (folders, the temp file), so it
        starts with its first bytes; the next upload(..., rel) uses it. True when something
        was prepared (reconnect False: only on a live connection). drop_ahead(rel) releases it
        when the upload does not come."""
        return False

    def write_ahead(self, local: Path, rel: PurePosixPath) -> bool:  # noqa: ARG002 - see open_ahead
        """Everything of an upload of `local` to `rel` but the step that makes it visible (the
        rename): for a file whose turn comes after others' (a visit's manifest after its
        photos), so that turn costs one round trip. The next upload(local, rel) then only
        renames, if `local` is as it was written (else it writes it again). True when done;
        drop_ahead(rel) releases it when the upload does not come."""
        return False

    def drop_ahead(self, rel: PurePosixPath) -> None:  # noqa: B027 - optional hook, see open_ahead
        """Release what open_ahead(rel) prepared and no upload used (nothing otherwise)."""

    def host_key(self) -> str | None:
        """The fingerprint of the key the server presented (None: not a network server)."""
        return None

    def identity(self, scratch: Path) -> dict[str, str | None]:
        """Which server this is: its URL, its host key (SFTP) and the id in SERVER_ID, which
        is written (a new random one) when the server has none. `scratch`: a private local
        folder for the download. The sync state records this to know which server it describes.

        Raises TransportError (unreachable, or SERVER_ID is not a plain file).
        """
        try:
            server_id = self._read_server_id(scratch)
            if server_id is None:
                new = scratch / f".server-id-{uuid.uuid4().hex}"
                try:
                    new.write_text(uuid.uuid4().hex + "\n", encoding="ascii")
                    self.upload(new, SERVER_ID)
                finally:
                    new.unlink(missing_ok=True)
                # Read back: two tablets meeting a new server at once keep whichever id won.
                server_id = self._read_server_id(scratch)
        except BadInput as exc:
            raise TransportError(_("the server's {SERVER_ID} is not a plain file ({exc}); the server admin must "
                                   "remove it").format(SERVER_ID=SERVER_ID, exc=exc)) from None
        return {"url": self.url, "host_key": self.host_key(), "server_id": server_id}

    def _read_server_id(self, scratch: Path) -> str | None:
        there = self.stat(SERVER_ID)
        if there is None:
            return None
        if there.is_dir or there.size > MAX_SERVER_ID:
            raise BadInput(_("{SERVER_ID} is a folder or too big").format(SERVER_ID=SERVER_ID))
        copy = scratch / f".server-id-{uuid.uuid4().hex}"
        try:
            self.download(SERVER_ID, copy)
            text = copy.read_bytes().decode("ascii", "replace").strip()
        finally:
            copy.unlink(missing_ok=True)
        return text or None

    def close(self) -> None:  # noqa: B027 - optional hook: a folder transport holds nothing to release
        """Release connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

