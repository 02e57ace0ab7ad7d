"""Remote entries of the server's leaf folders, listed once per pass (one round trip per folder)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from pathlib import PurePosixPath

from fieldsync.errors import TransportError
from fieldsync.sync.plan import case_key
from fieldsync.tree.layout import classify

log = logging.getLogger(__name__)


class FolderListings:
    """Remote entries of leaf folders (photo folders, documents), listed once per pass.

    A file fieldsync never pushed must be looked up on the server before it is written (to
    keep other content as a conflict); one listing per folder costs one round trip where a
    stat per file costs one each. Folders made in this pass are known to be empty.
    """

    LISTED_ROLES = ("photo-folder", "documents")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[str, dict[str, object] | None] = {}
        self._folder_locks: dict[str, threading.Lock] = {}
        self._planned: dict[str, int] = {}
        self._ahead: dict[PurePosixPath, Future] = {}

    def expect(self, rels) -> None:
        """The files this pass will look up: a folder with a single one gets a stat instead
        of a listing (one round trip, where a listing takes two: the daemon's photo-at-a-time)."""
        for rel in rels:
            key = rel.parent.as_posix()
            self._planned[key] = self._planned.get(key, 0) + 1

    def made(self, rel: PurePosixPath) -> None:
        with self._lock:
            self._folders[rel.as_posix()] = {}

    def prefetch(self, pool, transport, rel: PurePosixPath, layout) -> None:
        """Start looking `rel` up on `pool` (while the photo is shrunk and sealed: the round
        trips overlap the CPU work); entry() then takes the answer."""
        with self._lock:
            if rel in self._ahead:
                return
            self._ahead[rel] = pool.submit(self._lookup, transport, rel, layout)

    def entry(self, transport, rel: PurePosixPath, layout):
        with self._lock:
            ahead = self._ahead.pop(rel, None)
        if ahead is not None:
            try:
                return ahead.result()
            except TransportError:
                pass  # looked up again below: a network error then stops the file as usual
        return self._lookup(transport, rel, layout)

    def _lookup(self, transport, rel: PurePosixPath, layout):
        parent = rel.parent
        key = parent.as_posix()
        if classify(parent, layout, True).role not in self.LISTED_ROLES or self._planned.get(key, 0) == 1:
            with self._lock:
                if self._folders.get(key) == {}:
                    return None
            return transport.stat(rel)
        with self._lock:
            folder_lock = self._folder_locks.setdefault(key, threading.Lock())
        with folder_lock:
            with self._lock:
                listing = self._folders.get(key)
            if listing is None:
                try:
                    # By case_key: on a case-insensitive server `img_1.jpg` there is IMG_1.jpg.
                    listing = {case_key(e.rel.name): e for e in transport.walk(parent) if e.rel.parent == parent}
                except TransportError:
                    return transport.stat(rel)  # not listable (gone?): ask for the one file
                with self._lock:
                    self._folders[key] = listing
        return listing.get(case_key(rel.name))
