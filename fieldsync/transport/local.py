"""The mirror on a local or mounted folder (file:// URL): same atomic protocol as SFTP.

Uploads go to `.NAME.fieldsync-part` beside the target, are fsynced and size-checked, then
`os.replace`d into place, so a reader of the share never sees half a photo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as stat_mod
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from fieldsync.base.atomic import fsync_dir
from fieldsync.base.i18n import _
from fieldsync.errors import BadInput, ConfigError, TransportError
from fieldsync.transport.base import REMOTE_ROOT, ProgressFn, RemoteEntry, Transport, safe_rel
from fieldsync.transport.paths import PathLocks, file_rel, part_name

CHUNK = 1024 * 1024


class LocalTransport(Transport):
    """A remote root that is a folder this machine can write (a share mounted on the tablet)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = self.root.as_uri() if self.root.is_absolute() else str(self.root)
        self._locks = PathLocks()

    @classmethod
    def from_config(cls, cfg) -> LocalTransport:
        parts = urlsplit(cfg.server.url or "")
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ConfigError(_("{path}: key 'server.url': expected file:///path, got {url!r}").format(
                                path=cfg.path, url=cfg.server.url))
        transport = cls(Path(unquote(parts.path)))
        transport.owner = cfg.device
        return transport

    # ------------------------------------------------------------------ path safety

    def _real_root(self) -> Path:
        if not self.root.is_dir():
            # An unmounted share looks like a missing folder: wait for it, never create it,
            # or the photos would land on the tablet's own disk under the mount point.
            raise TransportError(_("server folder {root} is not there (share not mounted?); "
                                   "sync retries when it is back").format(root=self.root))
        return self.root.resolve()

    def _path(self, rel: PurePosixPath | str) -> Path:
        """The local path for `rel`, refused when it (or a symlink on the way) leaves the root."""
        rel = safe_rel(rel)
        real_root = self._real_root()
        if not rel.parts:
            return real_root
        path = real_root.joinpath(*rel.parts)
        # resolve() follows every symlink that exists on the way; what does not exist yet is
        # created by us below the resolved parent, so checking the resolved parent suffices.
        if path.parent != real_root and not path.parent.resolve().is_relative_to(real_root):
            raise BadInput(_("refusing {rel}: a symlink on the server side leads out of {root}").format(
                             rel=rel, root=self.root))
        # `path` itself may be a symlink: stat/remove act on the link, os.replace replaces it,
        # and download refuses it; nothing follows it.
        return path

    # ------------------------------------------------------------------ interface

    def stat(self, rel: PurePosixPath) -> RemoteEntry | None:
        path = self._path(rel)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(_("cannot read {path}: {strerror}").format(path=path, strerror=exc.strerror)) from None
        return RemoteEntry(PurePosixPath(rel), st.st_size, st.st_mtime, stat_mod.S_ISDIR(st.st_mode))

    def walk(self, rel: PurePosixPath = REMOTE_ROOT) -> Iterator[RemoteEntry]:
        start, base = self._path(rel), self._real_root()
        if not start.is_dir():
            return
        try:
            for folder, dirs, files in os.walk(start, onerror=_raise):
                here = Path(folder)
                for name in sorted(dirs) + sorted(files):
                    st = (here / name).lstat()
                    if stat_mod.S_ISLNK(st.st_mode):
                        continue  # never followed: it could point anywhere
                    yield RemoteEntry(PurePosixPath((here / name).relative_to(base).as_posix()),
                                      st.st_size, st.st_mtime, stat_mod.S_ISDIR(st.st_mode))
        except OSError as exc:
            raise TransportError(_("cannot list {start}: {exc}").format(start=start, exc=exc)) from None

    def makedirs(self, rel: PurePosixPath) -> None:
        path = self._path(rel)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise TransportError(_("cannot make folder {path}: a file has that name").format(path=path)) from None
        except OSError as exc:
            raise TransportError(_("cannot make folder {path}: {strerror}").format(
                                   path=path, strerror=exc.strerror)) from None
        if path.is_symlink():
            raise BadInput(_("refusing {rel}: it is a symlink on the server side, not a folder").format(rel=rel))

    def upload(self, local: Path, rel: PurePosixPath, progress: ProgressFn | None = None) -> None:
        rel = file_rel(rel)
        with self._locks.hold(rel):
            self._upload(Path(local), rel, progress)

    def _upload(self, local: Path, rel: PurePosixPath, progress: ProgressFn | None) -> None:
        if rel.parent != PurePosixPath("."):
            self.makedirs(rel.parent)
        target = self._path(rel)
        part = target.with_name(part_name(target.name, self.owner))
        try:
            source = open(local, "rb")
        except OSError as exc:
            raise BadInput(_("cannot read {local}: {strerror}").format(local=local, strerror=exc.strerror)) from None
        with source:
            size = os.fstat(source.fileno()).st_size
            offset = _resumable_offset(part, source, size)
            try:
                self._write_part(source, part, offset, size, progress)
                done = part.stat().st_size
                if done != size:
                    raise TransportError(_("{part}: holds {done} bytes, expected {size}; retrying later").format(
                                           part=part, done=done, size=size))
                os.replace(part, target)
                fsync_dir(target.parent)
            except OSError as exc:
                # The part stays: it is a clean prefix, so the next try resumes from it.
                raise TransportError(_("cannot write {target}: {reason}").format(
                                       target=target, reason=exc.strerror or exc)) from None

    @staticmethod
    def _write_part(source, part: Path, offset: int, size: int, progress: ProgressFn | None) -> None:
        if part.is_symlink():
            part.unlink()
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (0 if offset else os.O_TRUNC)
        fd = os.open(part, flags, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.seek(offset)
            out.truncate(offset)
            source.seek(offset)
            done = offset
            if progress:
                progress(done, size)
            while chunk := source.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, size)
            out.flush()
            os.fsync(out.fileno())

    def download(self, rel: PurePosixPath, local: Path) -> None:
        source = self._path(rel)
        if source.is_symlink():
            raise BadInput(_("refusing {rel}: it is a symlink on the server side").format(rel=rel))
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(part_name(local.name))
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, local)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise TransportError(_("{rel} is not on the server").format(rel=rel)) from None
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise TransportError(_("cannot fetch {source}: {reason}").format(
                                   source=source, reason=exc.strerror or exc)) from None

    def rename(self, old: PurePosixPath, new: PurePosixPath) -> None:
        """Move `old` to `new` inside the root (a renamed visit: no re-upload)."""
        src, dst = self._path(old), self._path(new)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            fsync_dir(dst.parent)
        except OSError as exc:
            raise TransportError(_("cannot rename {src} to {dst}: {reason}").format(
                                   src=src, dst=dst, reason=exc.strerror or exc)) from None

    def remove(self, rel: PurePosixPath) -> None:
        path = self._path(rel)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise TransportError(_("cannot remove {path}: {reason}").format(
                                   path=path, reason=exc.strerror or exc)) from None


def _raise(exc: OSError) -> None:
    raise exc


def _resumable_offset(part: Path, source, size: int) -> int:
    """Bytes of `part` that equal the start of `source` (all of it or nothing)."""
    try:
        st = part.lstat()
    except FileNotFoundError:
        return 0
    if not stat_mod.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_size > size:
        return 0
    # A local or mounted part is cheap to read back whole, so the whole prefix is compared.
    with open(part, "rb") as held:
        source.seek(0)
        remaining = st.st_size
        while remaining:
            want = min(CHUNK, remaining)
            if held.read(want) != source.read(want):
                return 0
            remaining -= want
    return st.st_size
