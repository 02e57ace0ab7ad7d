"""The sync engine: reconcile the tree with the state cache and the server into a plan, run it.

`fieldsync sync` (sync_once) and the daemon drive the same Engine. A pass:
  0. check which server answers (Transport.identity): when the state cache describes another
     one, it is emptied (SyncState.rebind) and the pass is a full one, reconciled afresh;
  1. scan the tree (or the paths the watcher named), skipping private names and symlinks;
  2. reconcile every entry against the state cache (and, when the cache is new or lost, one
     listing of the server) into folders to make and files to push; names that differ only
     by case from another in the same folder are set apart and reported (CaseClashes);
     every sync.verify_server_hours (or when asked: `sync --recheck-server`) a full pass also
     lists the server once and marks as pending whatever the state calls done but the server
     lacks or holds with another size (a restore from backup, a disk swap): it goes up again;
  3. take only files that are ready (`_ready`): a refused name (base.names.photo_name_problem)
     is left in place and reported; a young file must hold still for a window that widens
     when a writer fooled it; a photo must not be open for writing (Linux) and must decode
     to the end, else it waits (with backoff, up to sync.incomplete_retry_seconds);
  4. make folders, then push files with server.parallel in flight: photos go through the
     photo pipeline first (sync/pipeline.py: evidence, shrink, archive), anything else as it is;
  5. derive what follows from the changes (sync.derive: remark seals, pages), then push the
     manifests those photos changed with the rewritten pages, then this device's ledger.
A photo still corrupt after the retry period is quarantined and the rest continue; a failing
tablet (disk full, I/O error) fails the file with its reason and retries it, never quarantines
it; a network error stops the pass, leaves everything resumable and is retried with capped
exponential backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout

from fieldsync.base.i18n import _
from fieldsync.config import Config
from fieldsync.errors import (
    BadInput,
    FieldsyncError,
    ImageError,
    IncompleteImage,
    KeyRefused,
    LocalFault,
    QuarantineError,
    SyncBusy,
    TransportError,
    TreeError,
)
from fieldsync.evidence import ledger, manifest
from fieldsync.sync.derive import derive
from fieldsync.sync.listings import FolderListings
from fieldsync.sync.pipeline import PhotoPipeline
from fieldsync.sync.plan import CaseClashes, Plan, reconcile, written_after
from fieldsync.sync.readiness import STILL_WRITTEN, Readiness
from fieldsync.sync.result import Progress, SyncResult
from fieldsync.sync.scan import Entry, scan
from fieldsync.sync.state import FileState, SyncState, backoff_delay
from fieldsync.transport import open_transport
from fieldsync.tree.layout import MANIFEST_FILE, PAGE_FILE, is_private, relative
from fieldsync.tree.visits import read_visit

log = logging.getLogger(__name__)

LOCK_FILE = "sync.lock"
LOST = "lost on the server: pushed again"
AHEAD_NAMES = (MANIFEST_FILE, PAGE_FILE)  # a visit's files written ahead of their turn


# --------------------------------------------------------------------------- engine

class Engine:
    """Holds the tree lock, the state cache and one transport for as many passes as needed."""

    def __init__(self, cfg: Config, transport=None, wait_for_lock: float = 0):
        self.cfg = cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(cfg.state_dir / LOCK_FILE)
        try:
            self._lock.acquire(timeout=wait_for_lock)
        except Timeout:
            raise SyncBusy(_("another sync is running on this tree (the daemon?); "
                             "see 'fieldsync status' or stop the daemon first")) from None
        self.state = SyncState(cfg.state_dir)
        self._transport = transport
        self._identified = None  # the transport whose server identity this engine last checked
        self._own_transport = transport is None
        self.photos = PhotoPipeline(cfg, self.state)
        self._stop = threading.Event()
        self.readiness = Readiness(cfg, self.state, self._stop)
        # Visits renamed on the server this pass: their files are known under the new name, so
        # the plan does not name them, yet their visit.yaml and pages must follow the rename.
        self._renamed: list[PurePosixPath] = []
        self._listings = FolderListings()
        # Server folders found blocked this pass (a file or symlink where a folder must be):
        # what is below them fails with the reason, everything else goes on.
        self._conflicts: dict[PurePosixPath, str] = {}
        self._lock_conflicts = threading.Lock()
        # Server look-ups started before a photo is prepared, so they overlap its CPU work.
        self._lookahead = ThreadPoolExecutor(2, thread_name_prefix="fieldsync-lookahead")
        # Uploads written ahead while the last photos go up (_push_plan), each holding a
        # channel until its rename: at most half the pool, so the photos keep the rest.
        self._ahead_room = self.cfg.server.parallel // 2
        self._writing_ahead = ThreadPoolExecutor(max(1, self._ahead_room), thread_name_prefix="fieldsync-ahead")
        self._open_ahead = False
        self._written_ahead: list[PurePosixPath] = []  # this pass's, released when it ends

    # ------------------------------------------------------------------ lifecycle

    @property
    def transport(self):
        if self._transport is None:
            self._transport = open_transport(self.cfg)
        return self._transport

    def drop_transport(self) -> None:
        """Forget the connection after a network error, so the next pass reconnects."""
        if self._own_transport and self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
            self._transport = None

    def stop(self) -> None:
        """Ask a running pass to finish the files in flight and start no new ones."""
        self._stop.set()

    def close(self) -> None:
        self._lookahead.shutdown(wait=True)
        self._writing_ahead.shutdown(wait=True)
        try:
            self.state.close()
        finally:
            if self._own_transport and self._transport is not None:
                with contextlib.suppress(Exception):
                    self._transport.close()
            self._lock.release()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ a pass

    def run(self, scope: Iterable[PurePosixPath] | None = None, progress: Progress | None = None,
            closed: Iterable[str] = (), respect_backoff: bool = False,
            recheck_server: bool = False) -> SyncResult:
        """One reconcile-and-push pass over the tree (scope None) or over `scope`.

        `closed`: rels the OS reported closed after writing (no stability wait needed).
        respect_backoff: skip files whose next retry is still in the future (the daemon).
        recheck_server: compare the server with the done records now (a full pass does it
        anyway once sync.verify_server_hours have passed since the last time).
        """
        progress = progress or Progress()
        result = SyncResult()
        self._stop.clear()
        self._listings = FolderListings()  # a listing is only trusted within one pass
        self._conflicts = {}
        full = scope is None
        scope = None if full else list(scope)
        try:
            self.transport.begin_pass()
            # Which server this is costs a stat and a download: asked on every full pass and on
            # every new connection, not on each of the daemon's quick passes for one new photo.
            if (full or self.transport is not self._identified) and self._rebind_server():
                full, scope = True, None  # no file is known to be on this server: look at all
            self._identified = self.transport
            if scope is not None:
                recheck_server = False  # a recheck compares the whole tree
            entries = scan(self.cfg, scope)
            fresh = not self.state.meta("server_listed")  # the state is new or was lost
            if not fresh:  # with a fresh listing, reconcile adopts what is there anyway
                self._follow_renames(entries)
            recheck = full and not fresh and (recheck_server or self._recheck_due())
            remote = self._server_listing() if fresh or recheck else None
            if recheck:
                result.rechecked = True
                result.lost = self._mark_lost(entries, remote)
            plan = reconcile(entries, self.state, remote, full)
            result.unchanged = plan.unchanged
            self._set_apart_case_clashes(plan, result)
            if remote is not None:
                self.state.set_meta("server_listed", time.time())
                self.state.set_meta("server_checked", time.time())
            if respect_backoff:
                plan.files = self.readiness.due(plan.files, result)
            plan.files = self.readiness.ready(plan.files, set(closed), result)
            progress.planned(len(plan.files), plan.bytes)
            self._listings.expect(e.rel for e in plan.files)
            derived, manifests, ledger_ahead = self._push_plan(plan, entries if fresh else None, progress, result)
            if not result.error:
                self._push_tail(manifests, [e for e in derived if e.rel.name != MANIFEST_FILE], progress, result,
                                ledger_ahead)
            if not result.error:
                self._handle_gone(plan.gone, result)
        except TransportError as exc:
            result.error = str(exc)
            result.refused_key = isinstance(exc, KeyRefused)
            self.drop_transport()
        finally:
            self._release_written_ahead()
            # Only a push changes the state's meta: rewriting the cache after every pass
            # would cost a full write of it (status.json says when the last pass ran).
            try:
                if result.uploaded and not result.error:
                    self.state.set_meta("last_push", time.time())
                self.state.flush()
            except OSError as exc:  # the state is a cache: the next pass re-derives it
                result.error = result.error or str(LocalFault.from_os_error(exc, _))
        return result

    def _push_plan(self, plan: Plan, everything: dict[str, Entry] | None, progress: Progress,
                   result: SyncResult) -> tuple[list[Entry], list[Entry], Future | None]:
        """Push the plan's files, and derive what follows from them as soon as every photo is
        through the photo pipeline: the pages and the manifests' ledger records are computed
        while the last photos' bytes go up, instead of after them on an idle link, and what
        must wait for the photos (manifests, then the ledger) is written to the server beside
        their bytes, to be renamed into place after them. Returns (derived entries, manifests
        to push, the ledger items when written ahead), the manifests' heads logged in the
        ledger unless the pass failed."""
        early: dict = {}

        def derive_early(visits: set[Path]) -> None:
            try:
                early["derived"] = derived = self._derive(plan, visits, everything)
                planned = [e for e in plan.files + derived if e.rel.name == MANIFEST_FILE]
                manifests = self._manifests(visits, planned)
                early["logged"] = self._log_heads(manifests)
                # Only this tablet's own files (its visits' manifests and pages, its ledger):
                # a customer's page is also pushed by other tablets on a shared tree, and one
                # of theirs found there would leave ours unused as a temp file.
                own = [e for e in manifests + derived if e.info.role == "visit-file" and e.rel.name in AHEAD_NAMES]
                if self._ahead_room:  # the ledger first: it is the last to be renamed
                    early["ledger"] = self._writing_ahead.submit(self._ledger_items, "write")
                    early["ahead"] = [self._writing_ahead.submit(self._write_ahead, e)
                                      for e in own[:self._ahead_room - 1]]
            except BaseException as exc:  # raised where the pass runs, after the pushes
                early["error"] = exc

        def all_prepared(visits: set[Path]) -> None:
            # On a thread of its own: the worker that got here goes on with its upload.
            early["deriving"] = thread = threading.Thread(target=derive_early, args=(visits,),
                                                          name="fieldsync-derive")
            thread.start()

        def make_folders() -> None:
            try:
                self._make_folders(plan.folders, result)
            except BaseException as exc:  # raised where the pass runs, after the pushes
                early["folders"] = exc

        # The folders are made alongside the first files, not before them: an upload makes the
        # folders on its way itself (parents first), and the round trips of a new visit's
        # folders then overlap the first photos' bytes.
        maker = threading.Thread(target=make_folders, name="fieldsync-folders")
        maker.start()
        files = [e for e in plan.files if e.rel.name != MANIFEST_FILE]
        self._open_ahead = len(files) == 1  # more files in flight hide each other's round trips
        try:
            touched = self._push_files(files, progress, result, all_prepared)
        finally:
            maker.join()
            if "deriving" in early:
                early["deriving"].join()
            for ahead in [*early.get("ahead", ()), *([early["ledger"]] if "ledger" in early else [])]:
                _wait_quietly(ahead)  # none goes on into the next pass
            self._open_ahead = False
        for failure in ("folders", "error"):
            if failure in early:
                raise early[failure]
        derived = early["derived"] if "derived" in early else self._derive(plan, touched, everything)
        manifests = self._manifests(touched, [e for e in plan.files + derived if e.rel.name == MANIFEST_FILE])
        if not result.error:
            logged = early.get("logged", {})
            self._log_heads([m for m in manifests if logged.get(m.key) != (m.size, m.mtime_ns)])
        return derived, manifests, early.get("ledger")

    def _release_written_ahead(self) -> None:
        """What this pass wrote ahead and did not rename (it failed first) is removed from the
        server now, while the connection lives (a lost one took its temp files' channels; the
        next push of those files, all of them this tablet's own, resumes or replaces them)."""
        written, self._written_ahead = self._written_ahead, []
        if self._transport is not None:
            for rel in written:
                self._transport.drop_ahead(rel)

    def _write_ahead(self, entry: Entry) -> None:
        if self.transport.write_ahead(entry.path, entry.rel):
            self._written_ahead.append(entry.rel)

    def _derive(self, plan: Plan, touched: set[Path], everything: dict[str, Entry] | None) -> list[Entry]:
        """Run sync.derive for what this pass saw change (files and folders it found, photos it
        shrank, files gone); returns what that rewrote, as entries to push in this pass. After a
        network error they stay unpushed, and the retry's full rescan finds them.

        everything: the whole scan when the state was new or lost (what changed is unknown then,
        and files adopted from the server listing are not in the plan)."""
        found = everything.values() if everything is not None else plan.files + plan.folders
        changed = [e.rel for e in found] + [PurePosixPath(rel) for rel in plan.gone]
        changed += [relative(self.cfg.root, visit) for visit in touched] + self._renamed
        self._renamed = []
        if not changed:
            return []
        done = derive(self.cfg, changed)
        for problem in done.problems:
            log.warning("%s", problem)
        entries = []
        for rel in done.written:
            try:
                st = os.stat(self.cfg.root / rel, follow_symlinks=False)
            except OSError:
                continue
            entries.append(Entry(rel.as_posix(), self.cfg.root, False, st.st_size, st.st_mtime_ns, self.cfg.layout))
        return entries

    def _log_heads(self, manifests: list[Entry]) -> dict[str, tuple[int, int]]:
        """Returns the manifests logged, as key -> (size, mtime_ns) when they were."""
        # A kill -9 between a manifest's save and its ledger record must not leave the server
        # with a head no ledger seals (the photo is not offered again: it is sealed as is).
        logged = {}
        for entry in manifests:
            with contextlib.suppress(FieldsyncError, OSError, KeyError, TypeError):
                manifest.ensure_logged(self.cfg, entry.path.parent)  # a broken one: verify says so
            logged[entry.key] = (entry.size, entry.mtime_ns)
        return logged

    def _follow_renames(self, entries: dict[str, Entry]) -> None:
        """A visit renamed on the tablet (`visit edit --name` or a file manager) is renamed on
        the server too, no re-upload: a visit folder the state does not know, whose old
        name is known to the state, gone from the tree and still on the server."""
        for entry in list(entries.values()):
            if not entry.is_dir or entry.key.count("/") != 3 or self.state.peek(entry.key) is not None:
                continue
            if entry.info.role != "visit":
                continue
            old = self._renamed_from(entry)
            if old is None:
                continue
            there = self.transport.stat(PurePosixPath(old))
            if there is None or not there.is_dir or self.transport.stat(entry.rel) is not None:
                continue  # old copy not on the server (or the new name taken): upload as usual
            self.transport.rename(PurePosixPath(old), entry.rel)
            moved = self.state.rekey(old, entry.key)
            self._renamed += [entry.rel, PurePosixPath(old)]
            log.info("visit renamed %s -> %s on the server (%d records kept)", old, entry.key, moved)

    def _renamed_from(self, entry: Entry) -> str | None:
        """The old key of a renamed visit: from visit.yaml's name history, else the visit_id
        of its manifest.json as recorded when that was pushed under the old name."""
        parent = entry.key.rsplit("/", 1)[0]
        candidates = []
        with contextlib.suppress(FieldsyncError, OSError):
            history = read_visit(entry.path).get("history") or []
            candidates = [f"{parent}/{h['old']}" for h in reversed(history)
                          if isinstance(h, dict) and h.get("field") == "name" and h.get("new") == entry.rel.name
                          and isinstance(h.get("old"), str) and "/" not in h["old"]]
        with contextlib.suppress(FieldsyncError, OSError):
            visit_id = (manifest.load(entry.path) or {}).get("visit_id")
            if visit_id:
                prefix = parent + "/"
                candidates += [r.rel[:-len(MANIFEST_FILE) - 1] for r in self.state.all()
                               if r.rel.startswith(prefix) and r.rel.endswith("/" + MANIFEST_FILE)
                               and r.extra.get("visit_id") == visit_id]
        for old in candidates:
            record = self.state.peek(old)
            if record is not None and record.is_dir and not self.cfg.root.joinpath(old).exists():
                return old
        return None

    def _rebind_server(self) -> bool:
        """True when the state described another server (or none) and now describes this
        one, emptied: server.url changed, or a new server answers at the same URL. The pass
        then lists the server once and pushes whatever it lacks."""
        identity = self.transport.identity(self.cfg.state_dir)
        if self.state.describes(identity):
            return False
        before = self.state.server()
        dropped = self.state.rebind(identity)
        if before is not None:
            log.warning("the server is not the one the sync state describes (%s, now %s): "
                        "reconciling with it afresh (%d records dropped)", before.get("url"), identity["url"], dropped)
        return True

    def _recheck_due(self) -> bool:
        hours = self.cfg.sync.verify_server_hours
        if not hours:
            return False
        return time.time() - (self.state.meta("server_checked") or 0.0) >= hours * 3600

    def _mark_lost(self, entries: dict[str, Entry], remote: dict[str, tuple[int, float]]) -> list[str]:
        """The recheck: every file and folder of the tree the state calls done that the server
        listing lacks (or holds with another size than was pushed) is marked pending, so this
        pass pushes it again: a restore from an older backup, a disk swap, an admin's mistake.
        Sizes only, no hashing: one listing is the whole cost. This device's ledger (private,
        so not in the listing) is checked with one stat."""
        lost = []
        for key, entry in entries.items():
            record = self.state.peek(key)
            if record is None or record.status != "done":
                continue
            pushed_as = record.extra.get("pushed_as")
            there = remote.get(entry.rel.with_name(pushed_as).as_posix() if pushed_as else key)
            if there is not None and (entry.is_dir or there[0] == record.remote_size):
                continue
            lost.append(key)
            # remote_size stays: the push goes to the file's own path (ours, damaged or gone)
            # instead of a conflict name beside it; but a copy that was kept beside other
            # content (pushed_as) is placed afresh, so that content is never overwritten.
            # "prepared": a photo already shrunk and sealed goes up as it is.
            extra = {k: v for k, v in record.extra.items() if k != "pushed_as"}
            if entry.info.role == "photo" and record.matches(entry.size, entry.mtime_ns):
                extra["prepared"] = True
            self.state.update(key, status="pending", reason=LOST, extra=extra,
                              remote_size=None if pushed_as else record.remote_size)
        for _item, rel in ledger.ledger_upload_items(self.cfg):
            record = self.state.peek(rel.as_posix())
            if record is None or record.status != "done":
                continue
            there = self.transport.stat(rel)
            if there is None or there.size != record.remote_size:
                lost.append(rel.as_posix())
                self.state.update(rel.as_posix(), status="pending", reason=LOST)
        if lost:
            log.warning("server recheck: %d file(s) the server lost are pushed again", len(lost))
        return sorted(lost)

    def _set_apart_case_clashes(self, plan: Plan, result: SyncResult) -> None:
        """Leave out of the plan the files and folders whose name differs only by case from
        another in the same tablet folder (see CaseClashes), reported as refused names."""
        clashes = CaseClashes(self.cfg.root, self.state)
        kept_folders, kept_files = [], []
        for entry in plan.folders + plan.files:
            problem = clashes.problem(entry.rel)
            if problem is None:
                (kept_folders if entry.is_dir else kept_files).append(entry)
                continue
            result.refused.append((entry.key, problem))
            self.state.update(entry.key, size=entry.size, mtime_ns=entry.mtime_ns, is_dir=entry.is_dir,
                              status="pending", reason=problem)
        plan.folders, plan.files = kept_folders, kept_files

    def _server_listing(self) -> dict[str, tuple[int, float]]:
        # The state is new or was lost: one listing of the server lets reconcile adopt what
        # is already there instead of pushing it twice.
        return {entry.rel.as_posix(): (entry.size, entry.mtime)
                for entry in self.transport.walk() if not is_private(entry.rel)}

    def _make_folders(self, folders: list[Entry], result: SyncResult) -> None:
        # Parents first (P7: a new visit reaches the server even before its first photo), each
        # folder as soon as its own parent is there, all others at once: a visit's 外观 and
        # 铭牌 together, and a new visit never waits for an unrelated folder higher up (the
        # query page's), as each costs round trips on a mobile link.
        planned: dict[PurePosixPath, Future] = {}
        workers = max(1, min(self.cfg.server.parallel, len(folders)))
        with ThreadPoolExecutor(workers, thread_name_prefix="fieldsync-mkdir") as pool:
            # Submitted parents first, so a folder waiting for its parent never holds the
            # worker its parent needs.
            for entry in sorted(folders, key=lambda e: len(e.rel.parts)):
                parent = next((planned[p] for p in entry.rel.parents if p in planned), None)
                planned[entry.rel] = pool.submit(self._make_folder_after, entry, parent)
            made = [future.result() for future in planned.values()]
        done = [record for record in made if record is not None]
        result.folders += len(done)
        self.state.put_many(done)

    def _make_folder_after(self, entry: Entry, parent: Future | None) -> FileState | None:
        if parent is not None:
            parent.result()  # its network error is this folder's too
        return self._make_folder(entry)

    def _make_folder(self, entry: Entry) -> FileState | None:
        if self._blocked_by(entry.rel) is not None:
            return None  # below a folder in conflict: its files fail with that reason
        try:
            self.transport.makedirs(entry.rel)
        except (TransportError, BadInput) as exc:
            conflict = self._path_conflict(entry.rel, exc, is_folder=True)
            if conflict is None:
                raise
            self.state.update(entry.key, is_dir=True, status="failed", reason=conflict)
            log.warning("%s", conflict)
            return None
        self._listings.made(entry.rel)
        return FileState(entry.key, is_dir=True, status="done", pushed_at=time.time())

    def _blocked_by(self, rel: PurePosixPath) -> str | None:
        """The conflict found this pass on `rel` or a folder above it, if any."""
        with self._lock_conflicts:
            for folder in (rel, *rel.parents):
                if folder in self._conflicts:
                    return self._conflicts[folder]
        return None

    def _path_conflict(self, rel: PurePosixPath, exc: Exception, is_folder: bool = False) -> str | None:
        """Why `rel` cannot be written when the server holds a file or a symlink where the
        tablet needs a folder (a per-path failure, saying what to do); None when nothing is in
        the way, so `exc` was the network's (a stat that fails raises TransportError itself).
        """
        needed = [p for p in reversed(rel.parents) if p.parts] + ([rel] if is_folder else [])
        for folder in needed:
            try:
                there = self.transport.stat(folder)
            except BadInput:  # a symlink on the way that leads out of the root
                there = None
            else:
                if there is None or there.is_dir:
                    continue
            message = (_("the server holds a file or a symlink at {folder} where the tablet needs a folder ({url}); "
                         "move or remove it on the server, then sync again").format(
                         folder=folder, url=self.cfg.server.url))
            with self._lock_conflicts:
                self._conflicts[folder] = message
            log.debug("%s is blocked on the server (%s)", rel, exc)
            return message
        return None

    def _push_files(self, files: list[Entry], progress: Progress, result: SyncResult,
                    all_prepared: Callable[[set[Path]], None] | None = None,
                    lock: threading.Lock | None = None) -> set[Path]:
        """Push files with server.parallel in flight; returns the visit folders whose photos
        changed (their manifests go next). all_prepared(visits) is called once, on the worker
        that got there last, when every photo is through the photo pipeline (its bytes may
        still be going up); `visits` are those of the photos prepared. `lock`: the one that
        guards `result`, when another push counts into it at the same time."""
        touched: set[Path] = set()
        lock = lock or threading.Lock()
        halted = threading.Event()
        prepared = _Countdown(files, all_prepared, lock)

        def work(entry: Entry) -> None:
            try:
                push(entry)
            finally:
                prepared(entry, False)

        def push(entry: Entry) -> None:
            if halted.is_set() or self._stop.is_set():
                return
            try:
                blocked = self._blocked_by(entry.rel)
                if blocked is not None:
                    outcome, reason = "failed", blocked
                    self._failed(entry, blocked, result, lock)
                else:
                    outcome, reason = self._push_one(entry, progress, result, lock, prepared)
            except TransportError as exc:
                conflict = self._path_conflict(entry.rel, exc)
                if conflict is None:  # the network: stop the pass, everything stays resumable
                    halted.set()
                    self._failed(entry, str(exc), result, lock)
                    progress.finished(entry.key, "failed", str(exc))
                    with lock:
                        if result.error is None:
                            result.error = str(exc)
                    return
                outcome, reason = "failed", conflict
                self._failed(entry, conflict, result, lock)
            except BadInput as exc:  # a symlink on the way, met before the folders' pass saw it
                conflict = self._path_conflict(entry.rel, exc)
                outcome, reason = "failed", conflict or str(exc)
                self._failed(entry, reason, result, lock)
            except Exception as exc:  # one file's unknown fault must not stop the others
                outcome, reason = self._unexpected(entry, exc, result, lock)
            progress.finished(entry.key, outcome, reason)
            if entry.info.role == "photo" and outcome in ("uploaded", "unchanged"):
                with lock:
                    touched.add(entry.path.parent.parent)

        if not files:
            return touched
        workers = max(1, min(self.cfg.server.parallel, len(files)))
        with ThreadPoolExecutor(workers, thread_name_prefix="fieldsync-push") as pool:
            for future in [pool.submit(work, entry) for entry in files]:
                future.result()
        if result.error:
            self.drop_transport()
        return touched

    def _push_one(self, entry: Entry, progress: Progress, result: SyncResult, lock: threading.Lock,
                  on_prepared: Callable[[Entry, bool], None] = lambda entry, ok: None) -> tuple[str, str]:
        # The daemon's photo at a time: its upload is opened on the server (folders checked,
        # temp file created) while it is shrunk and sealed, so its bytes follow at once.
        ahead = None
        if self._open_ahead and entry.info.role == "photo":
            ahead = self._lookahead.submit(self.transport.open_ahead, entry.rel)
        try:
            return self._push_entry(entry, progress, result, lock, on_prepared, ahead)
        finally:
            if ahead is not None:
                _wait_quietly(ahead)
                self.transport.drop_ahead(entry.rel)  # unused (another name, no upload): released

    def _push_entry(self, entry: Entry, progress: Progress, result: SyncResult, lock: threading.Lock,
                    on_prepared: Callable[[Entry, bool], None], ahead: Future | None) -> tuple[str, str]:
        record = self.state.get(entry.key) or FileState(entry.key)
        try:
            st = entry.path.stat()
        except FileNotFoundError:
            self.state.forget([entry.key])
            return "gone", _("removed before it was pushed")
        if st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns:
            self.readiness.widen()
            with lock:
                result.waiting.append(entry.key)
            return "waiting", _("changed while queued")
        final = entry.path
        if entry.info.role == "photo" and not (record.extra.get("prepared")
                                               and record.matches(st.st_size, st.st_mtime_ns)):
            if record.remote_size is None and record.status != "failed":
                self._listings.prefetch(self._lookahead, self.transport, entry.rel, self.cfg.layout)
            prepared = self._prepare(entry, result, lock)
            if isinstance(prepared, tuple):
                return prepared
            final = prepared
            st = final.stat()
            record = self.state.update(entry.key, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                       extra={**record.extra, "prepared": True})
            if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                with lock:
                    result.wrote[entry.key] = (st.st_size, st.st_mtime_ns)
        on_prepared(entry, True)
        target = entry.rel
        if record.remote_size is None and record.status != "failed":
            target = self._conflict_free_target(entry, st.st_size, result, lock)
            if target is None:
                self.state.update(entry.key, size=st.st_size, mtime_ns=st.st_mtime_ns, status="done",
                                  remote_size=st.st_size, reason="", attempts=0, pushed_at=time.time())
                with lock:
                    result.unchanged += 1
                return "unchanged", _("already on the server")
        self.state.update(entry.key, size=st.st_size, mtime_ns=st.st_mtime_ns, status="uploading")
        progress.started(entry.key, st.st_size)
        if ahead is not None:
            _wait_quietly(ahead)  # the upload takes what it opened
        try:
            self.transport.upload(final, target, lambda done, total: progress.advanced(entry.key, done, total))
        except BadInput as exc:  # a name the server side refuses, the file became unreadable,
            reason = self._path_conflict(entry.rel, exc) or str(exc)  # or a symlink on the way
            self._failed(entry, reason, result, lock)
            return "failed", reason
        extra = self._pushed_extra(entry, final)
        if target != entry.rel:  # kept beside other content: the recheck looks for it there
            extra["pushed_as"] = target.name
        self.state.update(entry.key, status="done", remote_size=st.st_size, reason="", attempts=0,
                          next_try=0.0, pushed_at=time.time(), extra=extra)
        if entry.info.role == "photo" and self.cfg.photos.originals == "delete":
            self.photos.drop_original(entry)
        with lock:
            result.uploaded += 1
            result.bytes += st.st_size
        return "uploaded", ""

    def _quarantine(self, entry: Entry, reason: str, result: SyncResult,
                    lock: threading.Lock) -> tuple[str, str]:
        try:
            self.photos.quarantine(entry, reason)
        except OSError as exc:  # the quarantine folder is on the tablet too
            fault = str(LocalFault.from_os_error(exc, _))
            self._failed(entry, fault, result, lock)
            return "failed", fault
        except QuarantineError as exc:  # it stays in the tree, and is retried
            self._failed(entry, str(exc), result, lock)
            return "failed", str(exc)
        with lock:
            result.quarantined.append((entry.key, reason))
        return "quarantined", reason

    def _prepare(self, entry: Entry, result: SyncResult, lock: threading.Lock) -> Path | tuple[str, str]:
        """The photo through the pipeline: its final path, or (outcome, reason) when it waits,
        fails or is quarantined."""
        try:
            return self.photos.prepare(entry)
        except ImageError as exc:
            if self._changed_since(entry):
                self.readiness.widen()
                with lock:
                    result.waiting.append(entry.key)
                return "waiting", STILL_WRITTEN
            if isinstance(exc, IncompleteImage) and self.readiness.keep_trying(entry, result, lock):
                return "waiting", STILL_WRITTEN
            return self._quarantine(entry, str(exc), result, lock)
        except LocalFault as exc:
            self._failed(entry, str(exc), result, lock)
            return "failed", str(exc)
        except OSError as exc:  # writing a manifest, archiving: the tablet's storage
            reason = str(LocalFault.from_os_error(exc, _))
            self._failed(entry, reason, result, lock)
            return "failed", reason
        except TreeError as exc:
            self._failed(entry, str(exc), result, lock)
            return "failed", str(exc)
        except Exception as exc:  # an unknown fault in this photo's processing (a bug, a
            return self._unprocessable(entry, exc, result, lock)  # file built to hurt)

    def _unprocessable(self, entry: Entry, exc: Exception, result: SyncResult,
                       lock: threading.Lock) -> tuple[str, str]:
        """A photo whose processing raised something unforeseen: failed and retried (with
        backoff) for sync.incomplete_retry_seconds since it last changed, then quarantined
        with the reason, as any photo that cannot be processed."""
        log.debug("processing %s failed", entry.key, exc_info=exc)
        reason = _("cannot process this photo ({name}: {exc})").format(name=type(exc).__name__, exc=exc)
        record = self.state.get(entry.key) or FileState(entry.key)
        seen = record.extra.get("unprocessable") or {}
        if (seen.get("size"), seen.get("mtime_ns")) != (entry.size, entry.mtime_ns):
            seen = {"size": entry.size, "mtime_ns": entry.mtime_ns, "since": time.time()}
        if time.time() >= seen["since"] + self.cfg.sync.incomplete_retry_seconds:
            return self._quarantine(entry, reason, result, lock)
        self.state.update(entry.key, size=entry.size, mtime_ns=entry.mtime_ns,
                          extra={**record.extra, "unprocessable": seen})
        reason += _("; retried, quarantined if it still fails after sync.incomplete_retry_seconds")
        self._failed(entry, reason, result, lock)
        return "failed", reason

    def _unexpected(self, entry: Entry, exc: Exception, result: SyncResult,
                    lock: threading.Lock) -> tuple[str, str]:
        """Anything else one file's push raised (hashing, a manifest, the upload): that file
        fails with the reason and is retried; the pass goes on."""
        log.debug("pushing %s failed", entry.key, exc_info=exc)
        reason = _("unexpected {name}: {exc}; retried by the next pass").format(name=type(exc).__name__, exc=exc)
        self._failed(entry, reason, result, lock)
        return "failed", reason

    def _pushed_extra(self, entry: Entry, final: Path) -> dict:
        # A pushed manifest remembers its visit_id: a visit renamed in a file manager (no
        # name history in visit.yaml) is then still recognised by its manifest.
        if entry.rel.name != MANIFEST_FILE or entry.key.count("/") != 4:
            return {}
        with contextlib.suppress(FieldsyncError, OSError):
            visit_id = manifest.parse(final.read_bytes(), final).get("visit_id")
            if isinstance(visit_id, str):
                return {"visit_id": visit_id}
        return {}

    def _changed_since(self, entry: Entry) -> bool:
        try:
            st = entry.path.stat()
        except FileNotFoundError:
            return True
        return st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns

    def _conflict_free_target(self, entry: Entry, size: int, result: SyncResult,
                              lock: threading.Lock) -> PurePosixPath | None:
        """Where a file fieldsync never pushed before goes: its own path when free; None when
        the server already holds it (same size, written after it); otherwise, for files that
        are not fieldsync's own records, a conflict name beside it, so nothing is overwritten."""
        there = self._listings.entry(self.transport, entry.rel, self.cfg.layout)
        if there is None or there.is_dir:
            return entry.rel
        if there.size == size and written_after(there.mtime, entry.mtime_ns):
            return None
        if entry.info.role in ("visit-file", "customer-file", "root-file", "assets"):
            # fieldsync's own yaml/json/html and the pages' generated assets (_assets, _query):
            # the tablet's copy is the current one.
            return entry.rel
        stem, suffix = entry.rel.stem, entry.rel.suffix
        conflict = entry.rel.with_name(f"{stem}.conflict-{self.cfg.device}{suffix}")
        with lock:
            result.conflicts.append((entry.key, _("server holds other content; kept both, ours as {name}").format(
                name=conflict.name)))
        return conflict

    def _failed(self, entry: Entry, reason: str, result: SyncResult, lock: threading.Lock) -> None:
        record = self.state.get(entry.key) or FileState(entry.key, entry.size, entry.mtime_ns)
        attempts = record.attempts + 1
        self.state.update(entry.key, status="failed", reason=reason, attempts=attempts,
                          next_try=time.time() + backoff_delay(attempts))
        with lock:
            result.failed.append((entry.key, reason))

    # ------------------------------------------------------------------ after the files

    def _manifests(self, visits: set[Path], planned: list[Entry]) -> list[Entry]:
        """The manifests to push: those planned, plus those of visits whose photos just
        changed (re-read now: shrinking rewrote them after the scan)."""
        wanted = {e.key: e for e in planned}
        for visit in visits:
            path = visit / MANIFEST_FILE
            rel = PurePosixPath(path.relative_to(self.cfg.root).as_posix())
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            record = self.state.get(rel.as_posix())
            if record and record.status == "done" and record.matches(st.st_size, st.st_mtime_ns):
                continue
            wanted[rel.as_posix()] = Entry(rel.as_posix(), self.cfg.root, False, st.st_size, st.st_mtime_ns,
                                           self.cfg.layout)
        for entry in wanted.values():  # the scan may predate the last record_result
            with contextlib.suppress(FileNotFoundError):
                st = entry.path.stat()
                entry.size, entry.mtime_ns = st.st_size, st.st_mtime_ns
        return list(wanted.values())

    def _push_tail(self, manifests: list[Entry], pages: list[Entry], progress: Progress,
                   result: SyncResult, ledger_ahead: Future | None = None) -> None:
        """The manifests, then the ledger that logs them; the pages beside both (they are
        derived, not evidence: nothing waits for them). Written ahead, a manifest or the
        ledger is one rename now; otherwise the ledger's look-up on the server and its temp
        file are made while the manifests go up, so only its bytes and rename follow."""
        ahead = ledger_ahead or self._lookahead.submit(self._ledger_items, "open")
        lock = threading.Lock()  # one for both pushes: they count into the same result
        result.wrote.update((e.key, (e.size, e.mtime_ns)) for e in manifests + pages)
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="fieldsync-pages") as beside:
                pages_pushed = beside.submit(self._push_files, pages, progress, result, lock=lock)
                self._push_files(manifests, progress, result, lock=lock)
                if not result.error:
                    self._push_ledger(result, ahead.result())
                pages_pushed.result()
        finally:
            _wait_quietly(ahead)
            for _item, rel in ledger.ledger_upload_items(self.cfg):
                self.transport.drop_ahead(rel)  # unused after a failure or a conflict name
            for entry in manifests + pages:
                self.transport.drop_ahead(entry.rel)

    def _ledger_items(self, ahead: str = "") -> list[tuple]:
        """(local, rel, stat, record, server entry) of each ledger copy to push; ahead "open"
        or "write": its upload to its own name prepared that far (open_ahead, write_ahead)."""
        items = []
        for local, rel in ledger.ledger_upload_items(self.cfg):
            st = local.stat()
            record = self.state.get(rel.as_posix())
            if record and record.status == "done" and record.matches(st.st_size, st.st_mtime_ns):
                continue
            there = self.transport.stat(rel)
            if ahead and (there is None or (record is not None and there.size == record.remote_size)):
                if ahead == "write":
                    if self.transport.write_ahead(local, rel):
                        self._written_ahead.append(rel)
                else:
                    self.transport.open_ahead(rel)
            items.append((local, rel, st, record, there))
        return items

    def _push_ledger(self, result: SyncResult, items: list[tuple] | None = None) -> None:
        """This device's ledger after the manifests, replacing the server copy only when the
        local one extends it (an append-only log); anything else is kept as a conflict."""
        for local, rel, st, record, there in self._ledger_items() if items is None else items:
            key = rel.as_posix()
            target = rel
            if there is not None and (record is None or there.size != record.remote_size):
                server_copy = self._fetch(rel)
                if server_copy == local.read_bytes():
                    target = None  # the server has it already (the state cache was lost)
                elif not ledger.extends(server_copy, local.read_bytes()):
                    target = rel.with_name(f"{rel.name}.conflict-{int(time.time())}")
                    result.conflicts.append((key, _("server ledger differs; ours kept as {name}").format(
                                                    name=target.name)))
            if target is not None:
                st = local.stat()  # as it goes up now: the items may have been read before its last records
                self.transport.upload(local, target)
            self.state.put(FileState(key, st.st_size, st.st_mtime_ns, remote_size=st.st_size,
                                     status="done", pushed_at=time.time()))

    def _fetch(self, rel: PurePosixPath) -> bytes:
        copy = self.cfg.state_dir / f".fetch-{os.getpid()}-{threading.get_ident()}"
        try:
            self.transport.download(rel, copy)
            return copy.read_bytes()
        finally:
            copy.unlink(missing_ok=True)

    def _handle_gone(self, gone: list[str], result: SyncResult) -> None:
        """Files deleted on the tablet: forgotten (sync.deletes: keep, the default, so the
        server keeps its evidence) or removed on the server too (mirror)."""
        if not gone:
            return
        if self.cfg.sync.deletes == "mirror":
            for rel in gone:
                record = self.state.get(rel)
                if record and not record.is_dir and record.status == "done":
                    self.transport.remove(PurePosixPath(rel))
                    self.photos.record_removal(PurePosixPath(rel))
        self.state.forget(gone)


def _wait_quietly(future: Future) -> None:
    """Wait for a look-ahead; its failure only means the work is done the usual way."""
    with contextlib.suppress(Exception):
        future.result()


class _Countdown:
    """Calls done(visits) once every file of a push went through preparation (or ended before
    it); `visits`: those of the photos prepared. Thread-safe; each file counts once."""

    def __init__(self, files: list[Entry], done: Callable[[set[Path]], None] | None, lock: threading.Lock):
        self._waiting = {entry.key for entry in files}
        self._visits: set[Path] = set()
        self._done = done
        self._lock = lock

    def __call__(self, entry: Entry, ok: bool) -> None:
        with self._lock:
            if entry.key not in self._waiting:
                return
            self._waiting.discard(entry.key)
            if ok and entry.info.role == "photo":
                self._visits.add(entry.path.parent.parent)
            last = not self._waiting
        if last and self._done is not None:
            self._done(set(self._visits))


# --------------------------------------------------------------------------- one pass

def sync_once(cfg: Config, progress: Progress | None = None, transport=None) -> SyncResult:
    """One full pass over the tree: what `fieldsync sync` and the demo run."""
    with Engine(cfg, transport=transport) as engine:
        return engine.run(progress=progress)
