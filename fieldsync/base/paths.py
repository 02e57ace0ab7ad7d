"""Paths that must stay inside their root: find a symbolic link planted on the way.

A writer on a shared tree (the server share, a tablet folder the file manager can reach)
checks the path it is about to create, replace or remove, so a link planted there is
reported and left alone, never followed out of the tree.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def planted_link(root: str | Path, rel: str | Path) -> str | None:
    """The first part of ROOT/rel (rel itself included) that is a symbolic link, relative to
    ROOT, or None. `root` itself is trusted: it is the admin's choice. A writer calls this
    before it creates, replaces or removes anything under ROOT/rel, so a link planted on the
    share (say SERVER/.fieldsync/site -> /etc) is never followed."""
    path = str(root)
    parts = Path(rel).parts
    for depth, part in enumerate(parts, 1):
        path = os.path.join(path, part)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return "/".join(parts[:depth])
        except (FileNotFoundError, NotADirectoryError):
            return None  # nothing further exists, so nothing further can be a link
    return None
