"""What the tablet watcher and the server index watcher share: one debouncer, one path filter.

Watchdog handlers only note paths (its dispatcher is one thread: work there stalls every
event); a Debouncer holds them until the tree has been quiet for a moment, since copies and
uploads come in bursts. visible_rel says which event paths are worth noting at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path, PurePosixPath

# Names other programs write while a file is still arriving (browsers, file managers, rsync-
# like copiers); the finished file's own event follows under its real name.
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", "~")
WAIT_SLICE = 0.5  # seconds: the longest a take() waits before looking at a stop request


def visible_rel(root: Path, path: str | bytes) -> PurePosixPath | None:
    """`path` relative to `root` (POSIX), or None when it is outside the root, the root itself,
    hidden anywhere (upload and shrink temp files, the private .fieldsync/) or a temp name."""
    text = path.decode() if isinstance(path, bytes) else path
    try:
        rel = PurePosixPath(Path(text).relative_to(root).as_posix())
    except ValueError:
        return None
    if not rel.parts or rel.as_posix() == "." or any(part.startswith(".") for part in rel.parts):
        return None
    if rel.name.lower().endswith(TEMP_SUFFIXES):
        return None
    return rel


class Debouncer:
    """Batches items (paths, folder names, ...) until none came for `quiet` seconds, or
    `max_delay` after the first. Thread-safe: producers add(), one consumer take()s."""

    def __init__(self, quiet: float = 1.0, max_delay: float = 10.0):
        self.quiet = quiet
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._items: dict[Hashable, None] = {}  # insertion-ordered set
        self._last = 0.0
        self._stopped = False

    def add(self, items: Iterable[Hashable]) -> None:
        with self._cond:
            for item in items:
                self._items[item] = None
            self._last = time.monotonic()
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a waiting take() look again (at its stop event, for one)."""
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        """Every take() from now on returns at once, with what is pending."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def take(self, timeout: float, *, quiet: float | None = None, max_delay: float | None = None,
             stop: threading.Event | None = None,
             ready: Callable[[list], bool] | None = None) -> list:
        """Wait up to `timeout` for a first item, then until the batch is quiet (or `ready(items)`
        says it is complete, or max_delay passed) and return it, in arrival order. Empty on
        timeout; whatever is pending on stop."""
        quiet = self.quiet if quiet is None else quiet
        max_delay = self.max_delay if max_delay is None else max_delay
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            halted = lambda: self._stopped or (stop is not None and stop.is_set())  # noqa: E731
            while not self._items and not halted():
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(min(left, WAIT_SLICE))  # short slices: a stop request is seen soon
            first = time.monotonic()
            while self._items and not halted() and not (ready and ready(list(self._items))):
                wait = min(self._last + quiet, first + max_delay) - time.monotonic()
                if wait <= 0:
                    break
                self._cond.wait(min(wait, WAIT_SLICE))
            items, self._items = list(self._items), {}
            return items
