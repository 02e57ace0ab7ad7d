"""`fieldsync daemon`: the watcher's batches and a periodic full rescan, driving the one engine.

`fieldsync sync` while it runs asks it for a pass (sync/requests.py): a thread looks for
requests twice a second, the next full pass serves them, and each gets that pass's result.

It never exits on a bad file (the engine quarantines it) or a network error (it waits with
capped exponential backoff and tries again). stop() — the CLI calls it on SIGINT/SIGTERM —
lets the files in flight finish; anything cut short is resumable from its temp file. What
it is doing goes to ROOT/.fieldsync/status.json, written atomically, for `fieldsync status`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

from fieldsync.base.atomic import write_text
from fieldsync.base.clock import stamp_iso
from fieldsync.base.platform import pid_alive
from fieldsync.config import Config
from fieldsync.errors import FieldsyncError
from fieldsync.masterdata import publish as masterdata
from fieldsync.sync import requests
from fieldsync.sync.derive import derive
from fieldsync.sync.engine import Engine
from fieldsync.sync.result import Progress, SyncResult
from fieldsync.sync.state import SyncState, backoff_delay
from fieldsync.sync.watcher import Watcher
from fieldsync.tree.inbox import InboxFiler

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
STATUS_EVERY = 0.5  # seconds between status.json writes while bytes are moving
MAX_LISTED = 200  # failed/quarantined files named in status.json
REFUSED = "refused"  # activity when the server refused this tablet's key (revoked?)
REQUEST_POLL = 0.5  # seconds between looks for `fieldsync sync` requests
OFFLINE_STEPS = 2  # backoff steps while offline: retried every 2-4 s (bench.link: flapping link)


def status_path(cfg: Config) -> Path:
    return cfg.state_dir / STATUS_FILE


def running(cfg: Config) -> bool:
    """True when status.json names a daemon that has not stopped and whose process is alive."""
    try:
        status = json.loads(status_path(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    pid = status.get("pid") if isinstance(status, dict) else None
    return bool(pid and status.get("activity") != "stopped" and pid_alive(pid))


def _iso(moment: float | None) -> str | None:
    return stamp_iso(moment) if moment else None


class StatusBoard(Progress):
    """Keeps status.json current: also the progress sink of every pass the daemon runs."""

    def __init__(self, cfg: Config, state: SyncState, mode: str):
        self.cfg = cfg
        self.state = state
        self.data: dict[str, Any] = {"pid": os.getpid(), "mode": mode, "activity": "starting",
                                     "uploading": {}, "error": None, "next_retry": None,
                                     "last_pass": None, "watcher": None}
        self._lock = threading.Lock()
        self._written = 0.0

    # Progress callbacks (worker threads)
    def planned(self, files: int, total_bytes: int) -> None:
        self.set(activity="syncing", planned={"files": files, "bytes": total_bytes})

    def started(self, rel: str, size: int) -> None:
        with self._lock:
            self.data["uploading"][rel] = [0, size]
        self.write(throttle=True)

    def advanced(self, rel: str, done: int, total: int) -> None:
        with self._lock:
            self.data["uploading"][rel] = [done, total]
        self.write(throttle=True)

    def finished(self, rel: str, outcome: str, reason: str = "") -> None:
        with self._lock:
            self.data["uploading"].pop(rel, None)
        self.write(throttle=True)

    # daemon side
    def set(self, **values) -> None:
        with self._lock:
            self.data.update(values)
        self.write()

    def passed(self, result: SyncResult, full: bool, next_retry: str | None = None) -> None:
        activity = "idle"
        if result.error:  # a refused key is not the network: retrying will not fix it
            activity = REFUSED if result.refused_key else "offline"
        self.set(activity=activity, error=result.error, next_retry=next_retry,
                 last_pass={"at": _iso(time.time()), "full": full, "summary": str(result),
                            "uploaded": result.uploaded, "waiting": result.waiting[:MAX_LISTED],
                            "lost_on_server": result.lost[:MAX_LISTED]})

    def write(self, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._written < STATUS_EVERY:
            return
        with self._lock:
            self._written = now
            snapshot = dict(self.data, updated_at=_iso(time.time()), **summarize(self.state))
            text = json.dumps(snapshot, ensure_ascii=False, indent=1) + "\n"
            write_text(status_path(self.cfg), text, private=True)


def summarize(state: SyncState) -> dict[str, Any]:
    """Counts per status, the files that failed or were quarantined (and why), last push."""
    failed, quarantined, pending = [], [], []
    for record in state.all():
        if record.is_dir:
            continue
        item = {"path": record.rel, "reason": record.reason}
        if record.status == "failed":
            failed.append({**item, "attempts": record.attempts, "next_try": _iso(record.next_try)})
        elif record.status == "quarantined":
            quarantined.append({**item, "moved_to": record.extra.get("moved_to")})
        elif record.status in ("pending", "uploading"):
            pending.append(item)
    return {"counts": state.counts(), "failed": failed[:MAX_LISTED],
            "quarantined": quarantined[:MAX_LISTED], "pending": pending[:MAX_LISTED],
            "last_push": _iso(state.meta("last_push"))}


def write_pass_status(cfg: Config, engine: Engine, result: SyncResult, mode: str = "sync") -> None:
    """status.json after a one-off `fieldsync sync` (so `status` works without a daemon)."""
    board = StatusBoard(cfg, engine.state, mode)
    board.data["pid"] = None
    board.passed(result, full=True)


class Daemon:
    """watch + periodic rescan + retry, all through one Engine."""

    def __init__(self, cfg: Config, transport=None):
        self.cfg = cfg
        self._transport = transport
        self._stop = threading.Event()
        self.engine: Engine | None = None
        self.watcher = Watcher(cfg.root, cfg.sync.polling)
        self.passes = 0
        self.idle = threading.Event()  # set whenever the daemon waits with nothing to do
        self._own: dict[str, tuple[int, int]] = {}  # files the last passes wrote in the tree
        self._looking: set[PurePosixPath] = set()  # still being written: look again at _look_at
        self._look_at = math.inf
        self._asked: dict[str, requests.Request] = {}  # sync requests the next full pass serves
        self._seen: set[str] = set()  # request ids ever taken (never served twice)
        self._asked_lock = threading.Lock()

    def stop(self) -> None:
        """Safe from a signal handler: sets flags only."""
        self._stop.set()
        if self.engine is not None:
            self.engine.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Until stop(): raises only for what a restart would not fix (lock held, bad config)."""
        self.engine = Engine(self.cfg, transport=self._transport, wait_for_lock=5)
        board = StatusBoard(self.cfg, self.engine.state, "daemon")
        failures = 0
        # Camera photos (camera.inbox) are filed into the active visit on a thread of their
        # own; each filed photo wakes the sync loop for its path at once.
        filer = InboxFiler(self.cfg)
        inbox_stop = threading.Event()
        inbox_thread = threading.Thread(
            target=filer.run, name="fieldsync-inbox", daemon=True,
            args=(inbox_stop, lambda rel: self.watcher.changes.add(rel, closed=True)),
        ) if filer.enabled else None
        requests_stop = threading.Event()
        request_thread = threading.Thread(target=self._watch_requests, args=(requests_stop,),
                                          name="fieldsync-requests", daemon=True)
        try:
            self.watcher.start()
            if inbox_thread is not None:
                inbox_thread.start()
            request_thread.start()
            board.set(watcher=self.watcher.mode)
            next_rescan = 0.0  # the first pass is a full one
            retry_at = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                due = [next_rescan - now, self._look_at - now] + ([retry_at - now] if failures else [])
                self.idle.set()
                batch = self.watcher.changes.take(max(0.0, min(due)), self.cfg.sync.settle_seconds,
                                                  stop=self._stop)
                self.idle.clear()
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if now >= self._look_at:
                    batch.paths.update(self._looking)
                    self._looking.clear()
                    self._look_at = math.inf
                full = batch.full or now >= next_rescan or (failures and now >= retry_at)
                for reason in batch.reasons:
                    log.warning("full rescan: %s", reason)
                if not full and not batch:
                    continue
                events_before = self.watcher.changes.events
                closed = self._closed(batch)
                if full:  # echoes the watcher never delivered (polling, overflow) stop here
                    self._own.clear()
                    # A fresh login every full pass (sync.rescan_seconds), even with nothing
                    # to push: an open session outlives a key the admin revoked, and the
                    # tablet must learn it (status shows it) rather than look fine.
                    self.engine.drop_transport()
                serving = self._take_requests(full)
                result = self._pass(board, None if full else batch.paths, closed, serving)
                self.passes += 1
                self._expect_echo(result)
                if full:
                    next_rescan = time.monotonic() + self.cfg.sync.rescan_seconds
                    self._pull_master_data()
                    if not failures:  # a retry pushing earlier files proves nothing about events
                        self._check_events(result, events_before, batch)
                failures, retry_at, retry = self._retry_after(result, failures, retry_at)
                board.passed(result, full, next_retry=retry)
                self._answer(serving, result)
                if result.uploaded or result.quarantined or result.failed:
                    log.info("%s pass: %s", "full" if full else "event", result)
                self._look_again(result)
        finally:
            requests_stop.set()
            if request_thread.is_alive():
                request_thread.join()
            inbox_stop.set()
            if inbox_thread is not None and inbox_thread.is_alive():
                inbox_thread.join()
            self.watcher.stop()
            board.set(activity="stopped", uploading={}, watcher="stopped")
            self.engine.close()
            self.engine = None

    def _retry_after(self, result: SyncResult, failures: int, retry_at: float) -> tuple[int, float, str | None]:
        """After a pass: how many passes in a row failed, when to try again (monotonic) and
        that moment as status.json shows it (None when nothing is due)."""
        if result.error or result.failed:
            failures += 1
            delay = backoff_delay(failures)
            if result.error and not result.refused_key:
                # The network (a dropped 4G link, the server unreachable): a try costs
                # one connection attempt, and the photos must flow within seconds of
                # the link coming back, so the wait stops growing at 2-4 s (jittered,
                # so tablets do not come back in lockstep). Files that fail on their
                # own (the tablet's disk, a bad name) keep the growing backoff.
                delay = min(delay, backoff_delay(OFFLINE_STEPS))
            log.warning("sync pass incomplete (%s); retrying in %.0f s", result, delay)
            return failures, time.monotonic() + delay, _iso(time.time() + delay)
        if failures and self.engine.state.counts()["failed"]:
            return failures, retry_at, _iso(time.time() + max(0.0, retry_at - time.monotonic()))  # still due
        return 0, retry_at, None

    def _look_again(self, result: SyncResult) -> None:
        """Files still being written are looked at again when the engine says (result.next_look:
        the stability window, or the backoff of a photo that does not decode yet), not at once:
        a photo that takes minutes to arrive must not keep the daemon in a busy loop."""
        if not result.waiting:
            return
        self._looking.update(PurePosixPath(rel) for rel in result.waiting)
        delay = self.cfg.sync.settle_seconds
        if result.next_look is not None:
            delay = max(delay, result.next_look - time.time())
        self._look_at = min(self._look_at, time.monotonic() + delay)

    def _expect_echo(self, result: SyncResult) -> None:
        """The engine's own writes (a shrunk photo replacing the original, manifests) come back
        as watcher events without a close-write (they are renames into place). Marking them
        complete here spares the next batch the settle wait, which would otherwise delay a
        photo taken right after (bench/sync.py's latency figure)."""
        for rel, seen in result.wrote.items():
            self._own[rel] = seen
            self.watcher.changes.add(PurePosixPath(rel), closed=True)

    def _closed(self, batch) -> set[str]:
        # An own write counts as complete only while the file is still exactly as written:
        # if anything touched it since, it gets the usual stability wait.
        closed = set(batch.closed)
        for rel in [rel for rel in self._own if rel in closed]:
            seen = self._own.pop(rel)
            try:
                st = os.stat(self.cfg.root / rel)
            except OSError:
                closed.discard(rel)
                continue
            if (st.st_size, st.st_mtime_ns) != seen:
                closed.discard(rel)
        return closed

    def _pull_master_data(self) -> None:
        """Fetch newer customer master data with each full rescan (customers publish on the
        server side); an unreachable server is retried with the next rescan."""
        try:
            if not masterdata.pull_if_changed(self.cfg):
                return
        except FieldsyncError as exc:
            log.warning("master data not pulled: %s", exc)
            return
        log.info("customer master data updated from the server")
        done = derive(self.cfg, [], master_data_changed=True)
        for problem in done.problems:
            log.warning("%s", problem)
        # customer.yaml files and pages it rewrote go up with the next pass, at once: they are
        # complete, and the watcher may not even report them (polling, or echoes dropped).
        for rel in done.written:
            try:
                st = os.stat(self.cfg.root / rel)
            except OSError:
                continue
            self._own[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
            self.watcher.changes.add(rel, closed=True)

    def _watch_requests(self, done: threading.Event) -> None:
        """Take `fieldsync sync` requests as they come and ask the loop for a full pass."""
        while not done.wait(REQUEST_POLL) and not self._stop.is_set():
            try:
                found = requests.waiting_requests(self.cfg)
            except OSError as exc:
                log.warning("sync requests not readable: %s", exc)
                continue
            with self._asked_lock:
                new = [r for r in found if r.id not in self._seen]
                for request in new:
                    self._seen.add(request.id)
                    self._asked[request.id] = request
            if new:
                log.info("sync requested by 'fieldsync sync' (%d request(s))", len(new))
                self.watcher.changes.rescan("requested by 'fieldsync sync'")

    def _take_requests(self, full: bool) -> list[requests.Request]:
        """The requests this pass serves: all taken so far, when it is a full pass (one that
        started after they came); a quick pass over some paths serves none."""
        if not full:
            return []
        with self._asked_lock:
            taken = list(self._asked.values())
            self._asked.clear()
        return taken

    def _answer(self, serving: list[requests.Request], result: SyncResult) -> None:
        for request in serving:
            try:
                requests.answer(self.cfg, request, result)
            except OSError as exc:  # the asker times out and says so
                log.warning("could not answer sync request %s: %s", request.id, exc)

    def _pass(self, board: StatusBoard, scope, closed, serving: list[requests.Request] = ()) -> SyncResult:
        try:
            return self.engine.run(scope, progress=board, closed=closed, respect_backoff=scope is not None,
                                   recheck_server=any(r.recheck_server for r in serving))
        except FieldsyncError as exc:  # e.g. a manifest that cannot be read: report, keep going
            log.error("sync pass failed: %s", exc)
            return SyncResult(error=str(exc))
        except Exception as exc:  # a bug must not stop the photos from flowing next time
            log.exception("unexpected error in a sync pass")
            return SyncResult(error=f"unexpected {type(exc).__name__}: {exc}")

    def _check_events(self, result: SyncResult, events_before: int, batch) -> None:
        # A rescan that found new files nobody announced means events are not arriving
        # (e.g. another app writing through Android's FUSE layer): poll from now on.
        if (self.cfg.sync.polling == "auto" and self.watcher.mode == "events" and self.passes > 1
                and result.uploaded and not batch.paths and self.watcher.changes.events == events_before
                and not batch.reasons):
            self.watcher.use_polling("a rescan found files that no event announced")
