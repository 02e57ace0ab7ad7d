"""Watchdog -> a queue of "look here soon": the daemon's eyes on the tree.

The handler only records paths (watchdog's dispatcher is one thread: I/O there would stall
every event). The daemon takes them in batches once the tree has been quiet for a moment.
Close-after-write events (inotify IN_CLOSE_WRITE) mark a file as complete. A new folder is
queued as a folder, and the engine scans it after the event, so files made before its watch
landed are not missed. When events are lost (queue overflow, watch limit) or never arrive
(Android shared storage), the watcher asks for a full rescan and, if needed, falls back to a
PollingObserver.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from fieldsync.base.debounce import Debouncer, visible_rel
from fieldsync.config import STATE_DIR

log = logging.getLogger(__name__)

PROBE_NAME = "watch-probe"
PROBE_TIMEOUT = 3.0  # seconds for our own probe write to come back as an event
POLL_INTERVAL = 2.0  # PollingObserver: seconds between directory snapshots
IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


@dataclass
class Batch:
    """What the watcher saw since the last take()."""

    paths: set[PurePosixPath] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)  # rels closed after writing: complete
    full: bool = False
    reasons: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.paths or self.full)


class Changes:
    """Thread-safe accumulator between the watchdog thread and the daemon loop (a Debouncer
    of path, closed-after-write and rescan notes)."""

    def __init__(self) -> None:
        self._pending = Debouncer(max_delay=2.0)
        self.events = 0  # every path event ever seen (the daemon compares with rescans)

    def add(self, rel: PurePosixPath, closed: bool = False) -> None:
        self.events += 1  # only watchdog's one dispatcher thread adds
        self._pending.add([("path", rel), ("closed", rel)] if closed else [("path", rel)])

    def rescan(self, reason: str) -> None:
        self._pending.add([("rescan", reason)])

    def wake(self) -> None:
        self._pending.wake()

    def take(self, timeout: float, quiet: float, max_delay: float = 2.0,
             stop: threading.Event | None = None) -> Batch:
        """Wait up to `timeout` for changes, then until none came for `quiet` seconds (but no
        longer than max_delay after the first), and return them. Empty on timeout or stop."""
        batch = Batch()
        for note, value in self._pending.take(timeout, quiet=quiet, max_delay=max_delay, stop=stop,
                                              ready=_all_closed):
            if note == "path":
                batch.paths.add(value)
            elif note == "closed":
                batch.closed.add(value.as_posix())
            else:
                batch.full = True
                batch.reasons.append(value)
        return batch


def _all_closed(notes: list) -> bool:
    # Every file was closed after writing: complete, no need to wait for quiet.
    paths = {value for note, value in notes if note == "path"}
    closed = {value for note, value in notes if note == "closed"}
    return bool(paths) and not any(note == "rescan" for note, _ in notes) and paths <= closed


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's dispatcher thread: turns an event into rels, nothing else."""

    def __init__(self, root: Path, changes: Changes, probe_seen: threading.Event):
        self.root = root
        self.changes = changes
        self.probe_seen = probe_seen
        self.probe_path = str(root / STATE_DIR / PROBE_NAME)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's mtime changes with every file in it; the file event says more
        for raw in (event.src_path, getattr(event, "dest_path", "") or ""):
            if not raw:
                continue
            path = raw.decode() if isinstance(raw, bytes) else raw
            if path == self.probe_path:
                self.probe_seen.set()
                continue
            rel = visible_rel(self.root, path)  # not temp files of uploads and shrinks, nor our state
            if rel is not None:
                self.changes.add(rel, closed=event.event_type == "closed")


class _OverflowSpy(logging.Handler):
    # watchdog rebuilds its watches after an inotify queue overflow but tells only its log,
    # so we listen there: the events lost in the overflow are found by a full rescan.
    def __init__(self, changes: Changes):
        super().__init__(logging.WARNING)
        self.changes = changes

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.changes.rescan("inotify queue overflowed: events were lost")


class Watcher:
    """Starts and stops the observer; `changes` is what the daemon reads."""

    def __init__(self, root: Path, polling: str = "auto"):
        self.root = Path(root).resolve()
        self.polling = polling  # auto | always | never
        self.changes = Changes()
        self.mode = "stopped"  # events | polling | stopped
        self._observer = None
        self._probe_seen = threading.Event()
        self._spy = _OverflowSpy(self.changes)
        self._watchdog_level = logging.NOTSET

    def start(self) -> None:
        watchdog_log = logging.getLogger("watchdog")
        watchdog_log.addHandler(self._spy)
        # Quiet output raises the root logger's level so library chatter is never formatted;
        # the overflow warning must still reach the spy (the stderr handler still hides it).
        self._watchdog_level = watchdog_log.level
        if watchdog_log.getEffectiveLevel() > logging.WARNING:
            watchdog_log.setLevel(logging.WARNING)
        if self.polling == "always":
            self._start(polling=True)
            return
        try:
            self._start(polling=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EMFILE) or self.polling == "never":
                raise
            self.use_polling(f"no more inotify watches ({exc.strerror}); raise "
                             "fs.inotify.max_user_watches to get events back")
            return
        if self.polling == "auto" and not self._probe():
            self.use_polling("file events do not arrive on this storage")

    def _start(self, polling: bool) -> None:
        observer = PollingObserver(timeout=POLL_INTERVAL) if polling else Observer()
        observer.schedule(_Handler(self.root, self.changes, self._probe_seen), str(self.root),
                          recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self.mode = "polling" if polling else "events"

    def _probe(self) -> bool:
        """Write a file of our own and check its event comes back."""
        probe = self.root / STATE_DIR / PROBE_NAME
        probe.parent.mkdir(parents=True, exist_ok=True)
        self._probe_seen.clear()
        probe.write_text(str(time.time()), encoding="utf-8")
        return self._probe_seen.wait(PROBE_TIMEOUT)

    def use_polling(self, reason: str) -> None:
        """Switch to the PollingObserver (storage without usable events) and rescan."""
        if self.mode == "polling":
            return
        log.warning("switching to polling the tree every %.0f s: %s", POLL_INTERVAL, reason)
        self._stop_observer()
        self._start(polling=True)
        self.changes.rescan(reason)

    def _stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=10)
            self._observer = None

    def stop(self) -> None:
        self._stop_observer()
        logging.getLogger("watchdog").removeHandler(self._spy)
        logging.getLogger("watchdog").setLevel(self._watchdog_level)
        self.mode = "stopped"
        self.changes.wake()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
