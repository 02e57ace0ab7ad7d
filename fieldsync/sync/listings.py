"""Remote entries of the server's leaf folders, listed once per pass (one round trip per folder)."""

from __future__ import annotations

import logging
import threading
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

    def made(self, rel: PurePosixPath) -> None:
        with self._lock:
            self._folders[rel.as_posix()] = {}

    def entry(self, transport, rel: PurePosixPath, layout):
        parent = rel.parent
        key = parent.as_posix()
        if classify(parent, layout, True).role not in self.LISTED_ROLES:
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
