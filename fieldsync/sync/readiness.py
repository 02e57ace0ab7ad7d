"""Which files a pass takes now: complete before taken, never while a writer is still at them.

A file must hold still for a stability window that widens when a writer fooled it (a slow
camera) and narrows again when none does; a photo must not be open for writing (Linux) and
must decode to the end, else it waits, with backoff, up to sync.incomplete_retry_seconds.
Names the engine refuses (base.names.photo_name_problem) are left in place and reported.
"""

from __future__ import annotations

import logging
import threading
import time

from fieldsync.base.names import photo_name_problem
from fieldsync.config import Config
from fieldsync.media.shrink import is_complete
from fieldsync.sync.result import SyncResult
from fieldsync.sync.scan import Entry, held_for_writing
from fieldsync.sync.state import FileState, SyncState, backoff_delay

log = logging.getLogger(__name__)

# How often a pass re-checks a young file before leaving it for the next pass.
STABILITY_ROUNDS = 3
# The stability window widens (doubles) each time a file grew after it had looked stable,
# up to this; each pass that takes files without being fooled narrows it again by a tenth.
MAX_WINDOW_SECONDS = 8.0
# Photos younger than this are checked for a process holding them open for writing.
YOUNG_SECONDS = 120.0
STILL_WRITTEN = "still being written"


class Readiness:
    """The engine's judge of when a file is ready; keeps the stability window across passes."""

    def __init__(self, cfg: Config, state: SyncState, stop: threading.Event):
        self.cfg, self.state, self._stop = cfg, state, stop
        self.window = cfg.sync.settle_seconds  # widened by writers that fooled it

    def ready(self, files: list[Entry], closed: set[str], result: SyncResult) -> list[Entry]:
        """The files to take now; the others are left in place for a later pass, reported.

        Refused: a name base.names.photo_name_problem refuses (rename it). Waiting: a file
        whose size and mtime did not hold still for the stability window (`closed`: the OS
        said it was closed after writing, so no window), a photo some process still holds
        open for writing, a photo that does not decode to the end (retried with backoff for
        sync.incomplete_retry_seconds, then let through to be quarantined).
        """
        files = [entry for entry in files if not self._refused(entry, result)]
        ready, young = [], []
        for entry in files:
            age = time.time() - entry.mtime_ns / 1e9
            (ready if entry.key in closed or age >= self.window else young).append(entry)
        for _ in range(STABILITY_ROUNDS):
            if not young or self._stop.is_set():
                break
            time.sleep(min(self.window, 1.0))
            still = []
            for entry in young:
                try:
                    st = entry.path.stat()
                except FileNotFoundError:
                    continue
                if st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns:
                    entry.size, entry.mtime_ns = st.st_size, st.st_mtime_ns
                    still.append(entry)
                elif time.time() - st.st_mtime_ns / 1e9 >= self.window:
                    ready.append(entry)
                else:
                    still.append(entry)
            young = still
        for entry in young:
            self._wait(entry, result, STILL_WRITTEN)
        return self._whole(ready, result)

    def due(self, files: list[Entry], result: SyncResult) -> list[Entry]:
        """`files` without those whose next try is still ahead (unchanged since it was set: a
        changed file is new work). A photo waiting to decode stays in result.waiting, so the
        daemon looks at it again when it is due."""
        now, due = time.time(), []
        for entry in files:
            record = self.state.get(entry.key)
            if record is None or record.next_try <= now or not record.matches(entry.size, entry.mtime_ns):
                due.append(entry)
            elif record.status == "pending":
                result.waiting.append(entry.key)
                result.look_at(record.next_try)
        return due

    def _refused(self, entry: Entry, result: SyncResult) -> bool:
        problem = photo_name_problem(entry.rel.name)
        if problem is None:
            return False
        result.refused.append((entry.key, problem))
        self.state.update(entry.key, size=entry.size, mtime_ns=entry.mtime_ns, status="pending", reason=problem)
        return True

    def _whole(self, files: list[Entry], result: SyncResult) -> list[Entry]:
        """`files` without the photos that are still open for writing or do not decode yet."""
        now = time.time()
        photos = [entry for entry in files if entry.info.role == "photo" and not self._prepared(entry)]
        held = held_for_writing([e.path for e in photos if now - e.mtime_ns / 1e9 < YOUNG_SECONDS])
        waiting = set()
        for entry in photos:
            if entry.path in held:
                self._wait(entry, result, f"{STILL_WRITTEN} (open in another app)")
                waiting.add(entry.key)
                continue
            try:
                whole = is_complete(entry.path)
            except OSError:
                whole = True  # gone or unreadable: the push says which
            if not whole and self.keep_trying(entry, result, threading.Lock()):
                waiting.add(entry.key)
        if files and not waiting:
            self.window = max(self.cfg.sync.settle_seconds, self.window * 0.9)
        return [entry for entry in files if entry.key not in waiting]

    def _prepared(self, entry: Entry) -> bool:
        # Shrunk and sealed by an earlier pass (its push failed): our own output, whole.
        record = self.state.peek(entry.key)
        return bool(record and record.extra.get("prepared") and record.matches(entry.size, entry.mtime_ns))

    def _wait(self, entry: Entry, result: SyncResult, reason: str) -> None:
        result.waiting.append(entry.key)
        result.look_at(time.time() + self.window)
        self.state.update(entry.key, size=entry.size, mtime_ns=entry.mtime_ns, status="pending", reason=reason)

    def keep_trying(self, entry: Entry, result: SyncResult, lock: threading.Lock) -> bool:
        """A photo that does not decode to the end: True (it waits, with backoff) while it may
        still be being written, i.e. for sync.incomplete_retry_seconds since it last changed;
        False once that is over (the caller quarantines it).

        A photo that grew after it was found incomplete had fooled the stability window: the
        window widens for the next files.
        """
        now = time.time()
        record = self.state.get(entry.key) or FileState(entry.key)
        seen = record.extra.get("incomplete") or {}
        if (seen.get("size"), seen.get("mtime_ns")) != (entry.size, entry.mtime_ns):
            if seen:
                self.widen()
            seen = {"size": entry.size, "mtime_ns": entry.mtime_ns, "since": now, "tries": 0}
        give_up = seen["since"] + self.cfg.sync.incomplete_retry_seconds
        if now >= give_up:
            return False
        seen["tries"] += 1
        next_try = min(now + backoff_delay(seen["tries"]), give_up)
        self.state.update(entry.key, size=entry.size, mtime_ns=entry.mtime_ns, status="pending",
                          reason=f"{STILL_WRITTEN} (does not decode to the end yet)", next_try=next_try,
                          extra={**record.extra, "incomplete": seen})
        with lock:
            result.waiting.append(entry.key)
            result.look_at(next_try)
        return True

    def widen(self) -> None:
        self.window = min(MAX_WINDOW_SECONDS, max(self.window, 0.5) * 2)
        log.info("a file grew after it looked complete: stability window now %.1f s", self.window)
