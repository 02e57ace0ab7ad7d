"""What both transports share about names in flight: the hidden temp name and per-path locks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import PurePosixPath

from fieldsync.base.i18n import _
from fieldsync.base.names import clean_component, fit_name
from fieldsync.errors import BadInput
from fieldsync.transport.base import safe_rel

PART_SUFFIX = ".fieldsync-part"


def file_rel(rel: PurePosixPath | str) -> PurePosixPath:
    """`rel` checked by safe_rel and naming a file (not the remote root itself)."""
    path = safe_rel(rel)
    if not path.parts:
        raise BadInput(_("refusing an empty remote file name"))
    return path


def part_name(name: str, owner: str = "") -> str:
    """The hidden temp name an upload of `name` writes first (`.NAME.OWNER.fieldsync-part`).

    Hidden, so file managers, the server index and `ls` skip it; fixed (not random), so an
    interrupted upload finds its partial file again and resumes it; tagged with the uploading
    device, so two tablets pushing the same path at once never share (and steal) a temp file.
    A long name is cut short with a digest of it (base.names.fit_name): a photo name near the
    filesystem's 255-byte limit must not make its temp name too long to create.
    """
    tag = f".{clean_component(owner)}" if owner else ""
    return fit_name(".", name, f"{tag}{PART_SUFFIX}")


class PathLocks:
    """One upload per remote path at a time: two would share the same temp file."""

    def __init__(self) -> None:
        self._busy: set[PurePosixPath] = set()
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, rel: PurePosixPath) -> Iterator[None]:
        with self._cond:
            while rel in self._busy:
                self._cond.wait()
            self._busy.add(rel)
        try:
            yield
        finally:
            with self._cond:
                self._busy.discard(rel)
                self._cond.notify_all()
