"""`server index --watch`: rebuild the pages as uploads land on the server tree.

The watchdog handler only notes which customer folder an event touched (watchdog's dispatcher
is one thread; a slow handler would stall every event). A builder thread waits until the tree
has been quiet for a moment (uploads come in bursts), then rebuilds just those customers.
Hidden names are ignored: the transport writes `.NAME.fieldsync-part` and renames it into
place, and our own output lives under `.fieldsync/`. A periodic incremental scan with the deep
check (every folder stat'ed, photo folders too) is the safety net for events the OS dropped.

With `tablets` the root is a share of chrooted tablet accounts: SHARE/tablets is watched, an
event in ACCOUNT/fieldsync/CUSTOMER/... touches CUSTOMER (one page over every tablet's folder
of it), and a tablet tree appearing or going away asks for a run over every customer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from fieldsync.base.debounce import Debouncer, visible_rel
from fieldsync.base.i18n import _
from fieldsync.config import Layout
from fieldsync.errors import FieldsyncError
from fieldsync.server.scan import TABLET_TREE, TABLETS_DIR
from fieldsync.server.site import BuildResult, build

log = logging.getLogger(__name__)

EVERY = ("every customer",)  # noted when a tablet tree comes or goes: not a folder name (a tuple)


def customer_of(root: Path, path: str) -> str | None:
    """The customer folder an event path belongs to, or None when it is hidden or a root file."""
    rel = visible_rel(root, path)
    if rel is None:
        return None
    parts = rel.parts
    if len(parts) == 1 and not (root / parts[0]).is_dir():
        return None  # a file at the root (e.g. our entry page), not a customer
    return parts[0]


def tablet_customer_of(tablets: Path, path: str) -> str | tuple | None:
    """For SHARE/tablets: the customer an event under ACCOUNT/fieldsync/ touches, EVERY when a
    tablet's chroot or tree itself changed, None for anything else (hidden names, the chroot's
    dev/log, a file at a tree's top)."""
    rel = visible_rel(tablets, path)
    if rel is None:
        return None
    parts = rel.parts
    if len(parts) == 1 or (len(parts) == 2 and parts[1] == TABLET_TREE):
        return EVERY
    if parts[1] != TABLET_TREE:
        return None
    if len(parts) == 3 and not (tablets / rel).is_dir():
        return None
    return parts[2]


class _Collector(FileSystemEventHandler):
    def __init__(self, root: Path, wake: Callable[[set], None], tablets: bool = False):
        self.root = root
        self.wake = wake
        self.folder_of = tablet_customer_of if tablets else customer_of

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        touched = set()
        for path in (event.src_path, getattr(event, "dest_path", "") or ""):
            if path:
                folder = self.folder_of(self.root, path)
                if folder:
                    touched.add(folder)
        if touched:
            self.wake(touched)


class IndexWatcher:
    """Watch `root`, rebuild affected customers after `quiet` seconds without events."""

    def __init__(self, root: Path, layout: Layout | None = None, *, quiet: float = 1.0,
                 max_wait: float = 10.0, rescan: float = 600.0, maps: dict | None = None,
                 on_build: Callable[[BuildResult], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None, tablets: bool = False):
        self.root = Path(root).resolve()
        self.tablets = tablets
        # A share's own output (.fieldsync/) and master/ are not watched at all: only the trees.
        self.watched = self.root / TABLETS_DIR if tablets else self.root
        self.layout = layout or Layout()
        self.quiet, self.max_wait, self.rescan = quiet, max_wait, rescan
        self.maps = maps
        self.on_build = on_build or (lambda result: None)
        self.on_error = on_error or (lambda exc: log.error("index build failed: %s", exc))
        self._pending = Debouncer(quiet=quiet, max_delay=max_wait)  # customer folder names
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None

    def _note(self, customers: set) -> None:
        self._pending.add(customers)

    def start(self) -> None:
        """Build once (catch up with what landed while nobody watched), then watch."""
        self._run_build(None, deep=True)
        observer = Observer()
        observer.schedule(_Collector(self.watched, self._note, self.tablets), str(self.watched), recursive=True)
        try:
            observer.start()
        except OSError as exc:  # typically the inotify watch limit on a large tree
            raise FieldsyncError(
                _("cannot watch {watched} ({exc}); raise fs.inotify.max_user_watches (see docs/deployment.md) or "
                  "run 'fieldsync server index' from a timer instead").format(watched=self.watched, exc=exc)) from None
        self._observer = observer
        self._thread = threading.Thread(target=self._loop, name="fieldsync-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pending.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        if self._thread is not None:
            self._thread.join()

    def request_stop(self) -> None:
        """Ask wait() to return (safe from a signal handler); stop() then joins the threads."""
        self._stop.set()
        self._pending.wake()

    def wait(self) -> None:
        """Block until request_stop() or stop() (or Ctrl-C in the caller)."""
        while not self._stop.wait(0.5):
            pass

    def _loop(self) -> None:
        next_rescan = time.monotonic() + self.rescan
        while not self._stop.is_set():
            batch = self._pending.take(max(0.05, next_rescan - time.monotonic()), stop=self._stop)
            if self._stop.is_set():
                return
            now = time.monotonic()
            if batch:
                self._run_build(None if EVERY in batch else set(batch))
            elif now >= next_rescan:
                self._run_build(None, deep=True)
                next_rescan = now + self.rescan

    def _run_build(self, only: set[str] | None, deep: bool | None = None) -> None:
        try:
            result = build(self.root, self.layout, only=only, maps=self.maps, deep=deep, tablets=self.tablets)
        except Exception as exc:  # keep watching: the next upload or rescan tries again
            self.on_error(exc)
            return
        self.on_build(result)
