"""The tree as the engine sees it: one scan of ROOT (or of the paths the watcher named) into Entries.

Private names (hidden temp files, .fieldsync/) and symlinks are skipped: a symlink could lead
out of the tree, and hidden files are temp files or state. held_for_writing() tells which
young files a process still has open for writing, where the platform can tell (Linux /proc).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat as stat_mod
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from fieldsync.base.atomic import is_stale_temp
from fieldsync.config import Config, Layout
from fieldsync.tree.layout import PathInfo, classify

log = logging.getLogger(__name__)


class Entry:
    """One path of the tree as scanned. Kept small (slots, no path string: it is derived from
    the root and the key): a restart holds one per file of the tree, 100,000 and more, and
    most need no more than their key, size and mtime; the rest is computed on demand."""

    __slots__ = ("key", "is_dir", "size", "mtime_ns", "_root", "_layout", "_info")

    def __init__(self, key: str, root: Path, is_dir: bool, size: int, mtime_ns: int, layout: Layout):
        self.key = key  # POSIX path relative to ROOT
        self._root = root
        self.is_dir = is_dir
        self.size = size
        self.mtime_ns = mtime_ns
        self._layout = layout
        self._info = None

    @property
    def rel(self) -> PurePosixPath:
        return PurePosixPath(self.key)

    @property
    def path(self) -> Path:
        return self._root / self.key

    @property
    def info(self) -> PathInfo:
        if self._info is None:
            self._info = classify(self.rel, self._layout, self.is_dir)
        return self._info


def scan(cfg: Config, scope: Iterable[PurePosixPath] | None = None) -> dict[str, Entry]:
    """rel -> Entry for the whole tree, or for `scope` (paths the watcher named, with their
    ancestors so a new visit's folders are made too). Private names and symlinks are skipped:
    a symlink could lead out of the tree, and hidden files are temp files or state."""
    tree = _TreeScan(cfg)
    if scope is None:
        tree.walk(str(cfg.root), "")
    else:
        for rel in sorted(set(scope), key=lambda r: len(r.parts)):
            tree.walk_to(rel)
    return tree.found


class _TreeScan:
    """One scan's walk: the entries found so far, keyed by rel."""

    def __init__(self, cfg: Config):
        self.root = cfg.root
        self.layout = cfg.layout
        self.skip = str(cfg.path.resolve()) if cfg.path else None  # config.yaml inside the tree
        self.found: dict[str, Entry] = {}

    def add(self, key: str, name: str, path: str, st: os.stat_result) -> bool:
        """Record one path when it is mirrored; True when it is a folder to descend into."""
        if name.startswith(".") and stat_mod.S_ISREG(st.st_mode) and is_stale_temp(name, st.st_mtime):
            # A temp file of base.atomic left by a kill -9 (a .manifest.json.XXXXXXXX.tmp):
            # nobody will finish it. Nothing else hidden is ever touched.
            with contextlib.suppress(OSError):
                os.unlink(path)
                log.info("removed a temp file left by an interrupted write: %s", key)
        if name.startswith(".") or stat_mod.S_ISLNK(st.st_mode) or path == self.skip:
            return False
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        if not is_dir and not stat_mod.S_ISREG(st.st_mode):
            return False  # sockets, fifos: nothing to mirror
        self.found[key] = Entry(key, self.root, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, self.layout)
        return is_dir

    def walk(self, folder: str, key: str) -> None:
        """Everything under `folder` (whose rel is `key`), recursively."""
        try:
            items = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            log.warning("cannot read folder %s: %s", folder, exc.strerror)
            return
        for item in items:
            child = f"{key}/{item.name}" if key else item.name
            try:
                st = item.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished between listing and stat
            if self.add(child, item.name, item.path, st):
                self.walk(item.path, child)

    def walk_to(self, rel: PurePosixPath) -> None:
        """`rel`'s ancestors, then everything under `rel` when it is a folder."""
        if not rel.parts or rel.as_posix() == ".":
            self.walk(str(self.root), "")
            return
        for depth in range(1, len(rel.parts) + 1):
            part = PurePosixPath(*rel.parts[:depth])
            key = part.as_posix()
            if key in self.found:
                continue
            path = str(self.root.joinpath(*part.parts))
            try:
                st = os.lstat(path)
            except OSError:
                return
            if not self.add(key, part.name, path, st):
                return
            if depth == len(rel.parts):
                self.walk(path, key)


PROC = Path("/proc")
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)


def held_for_writing(paths: Iterable[Path]) -> set[Path]:
    """The `paths` some process of this user holds open for writing: a camera app still
    writing through one open file. Linux only (/proc/PID/fd and fdinfo); elsewhere the
    platform cannot tell cheaply and the answer is the empty set (stability decides alone).

    Costs one readlink per open file descriptor of this user's processes (bench-free figure:
    tests/test_slow_writers.py prints it), so the engine asks for its few young photos only.
    """
    wanted = {os.path.realpath(path): path for path in paths}
    if not wanted or not (PROC / "self" / "fdinfo").is_dir():
        return set()
    uid = os.getuid()
    held: set[Path] = set()
    for pid in os.listdir(PROC):
        if not pid.isdigit():
            continue
        try:
            if os.stat(PROC / pid).st_uid != uid:
                continue
            fds = os.listdir(PROC / pid / "fd")
        except OSError:
            continue  # exited, or not ours to read
        for fd in fds:
            try:
                target = os.readlink(PROC / pid / "fd" / fd)
            except OSError:
                continue
            if target in wanted and _open_for_writing(PROC / pid / "fdinfo" / fd):
                held.add(wanted[target])
    return held


def _open_for_writing(fdinfo: Path) -> bool:
    # "flags:\t0100001" (octal): a reader (a gallery making thumbnails) does not count.
    try:
        for line in fdinfo.read_text().splitlines():
            if line.startswith("flags:"):
                return (int(line.split()[1], 8) & os.O_ACCMODE) in _WRITE_MODES
    except (OSError, ValueError, IndexError):
        pass
    return False
