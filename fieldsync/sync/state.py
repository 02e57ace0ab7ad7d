"""What the engine has pushed: a tinydb cache under ROOT/.fieldsync/ (never the truth).

One record per tree path: local size/mtime (and sha for photos), what the server got, and a
status (pending | uploading | done | failed | quarantined) with reason, attempts and the
earliest next try. Losing this file costs a re-listing of the server, never a photo: the
engine rebuilds it from the tree, the manifests and the server (sync.plan.reconcile).

The cache describes one server: its identity (URL, SFTP host key fingerprint, the random id in
the server's .fieldsync/server-id; transport.base.Transport.identity) is kept in the meta table.
Pointed at another server (server.url changed, a new empty share at the same mount point, a
re-keyed host), `rebind` forgets what was pushed, so the engine reconciles against a listing
of that server as if the cache were lost: nothing is taken as "on the server" that is not.

TinyDB's JSONStorage rewrites the whole file on every write (bench/sync.py measures it), and
TinyDB keeps every document as a dict beside anything the engine builds from it: at 100,000
files that is most of the daemon's memory. So the cache is TinyDB with a storage of its own
(StateStorage, TinyDB's documented extension point): the file is TinyDB's JSON format, one
document a line and defaults left out, read line by line straight into slotted FileState
records (the only in-memory copy), and written atomically (temp file, fsync, rename) on
flush(): every `flush_every` updates, at least every FLUSH_SECONDS while busy, at the end of a
pass and on close. A crash loses at most the updates since the last flush, which the next
pass re-derives from the tree and the server; the file itself is never half-written.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document

from fieldsync.base.atomic import atomic_open

log = logging.getLogger(__name__)

STATE_FILE = "sync-state.json"
STATUSES = ("pending", "uploading", "done", "failed", "quarantined")

FLUSH_SECONDS = 5.0  # longest time a state update waits in memory
BACKOFF_BASE = 2.0  # seconds before the first retry
BACKOFF_CAP = 600.0  # never wait more than this between tries


def backoff_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with "full jitter" between half and all of the step, so
    hundreds of tablets coming back online do not hammer the server in lockstep."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    return step * (0.5 + 0.5 * (rng or random).random())


@dataclass(slots=True)  # slots: 100,000 records in memory on a restart
class FileState:
    rel: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None
    remote_size: int | None = None
    status: str = "pending"
    reason: str = ""
    attempts: int = 0
    next_try: float = 0.0
    pushed_at: float | None = None
    is_dir: bool = False
    extra: dict = field(default_factory=dict)

    def matches(self, size: int, mtime_ns: int) -> bool:
        """True when the local file still has the size and mtime this record saw."""
        return self.size == size and self.mtime_ns == mtime_ns


_FIELDS = tuple((f.name, f.default) for f in fields(FileState) if f.name not in ("rel", "extra"))
_HEAD = '{"files": {'  # the first line of a file written by StateStorage


class StateStorage(Storage):
    """TinyDB storage for the state file: the `files` table lives in `files` (rel ->
    FileState, filled while reading), other tables (meta) go through TinyDB as usual.

    File layout (valid TinyDB JSON; older single-line files are still read):
        {"files": {
        "1": {"rel": "...", "size": 1, ...},
        ...
        },
        "meta": {...}}
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.files: dict[str, FileState] = {}
        self._tables: dict[str, dict] = {}
        self.dirty = False
        try:
            self._load()
        except (ValueError, KeyError, TypeError):  # damaged by hand or by a foreign writer
            broken = self.path.with_suffix(f".broken-{int(time.time())}")
            self.path.replace(broken)
            log.warning("sync state unreadable, kept as %s; it is rebuilt from the tree and server", broken)
            self.files, self._tables = {}, {}

    def _load(self) -> None:
        try:
            handle = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        with handle:
            first = handle.readline()
            if first.rstrip("\n") != _HEAD:  # one JSON document (TinyDB's own format)
                data = json.loads(first + handle.read()) if first.strip() else {}
                for doc in data.pop("files", {}).values():
                    self._add(doc)
                self._tables = data
                return
            for line in handle:  # one document a line: no copy of the whole file in memory
                if line.startswith("}"):
                    self._tables = json.loads("{" + handle.read())
                    return
                self._add(json.loads(line.rstrip(",\n").partition(": ")[2]))
            raise ValueError("state file cut short")

    def _add(self, doc: dict) -> None:
        record = _record(doc)
        if record is not None:
            self.files[record.rel] = record

    # TinyDB's side: every table but `files`
    def read(self) -> dict:
        return self._tables

    def write(self, data: dict) -> None:
        data.pop("files", None)
        self._tables = data
        self.dirty = True

    def flush(self) -> None:
        if not self.dirty:
            return
        with atomic_open(self.path, "w", private=True) as handle:
            handle.write(_HEAD + "\n")
            last = len(self.files)
            for n, record in enumerate(self.files.values(), 1):
                text = json.dumps(_doc(record), ensure_ascii=False)
                handle.write(f'"{n}": {text}{"," if n < last else ""}\n')
            handle.write("},\n")
            handle.write(json.dumps(self._tables, ensure_ascii=False)[1:] + "\n")
        self.dirty = False

    def close(self) -> None:
        self.flush()


class SyncState:
    """Thread-safe access to the cache; lookups and per-file updates are O(1) dict operations
    (the file is rewritten on flush only, amortised over flush_every updates)."""

    def __init__(self, state_dir: Path, flush_every: int = 200):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / STATE_FILE
        self._lock = threading.RLock()
        self._db = TinyDB(self.path, storage=StateStorage)
        self._storage: StateStorage = self._db.storage
        self._meta = self._db.table("meta")
        self._index = self._storage.files
        self._flush_every = flush_every
        self._unflushed = 0
        self._flushed = time.monotonic()

    # ------------------------------------------------------------------ reading

    def get(self, rel: str) -> FileState | None:
        """A copy of the record for `rel` (changing it changes nothing until put())."""
        with self._lock:
            record = self._index.get(rel)
            return _copy(record) if record else None

    def peek(self, rel: str) -> FileState | None:
        """The record for `rel`, read-only (no copy: for scans over the whole tree)."""
        return self._index.get(rel)  # one dict lookup: atomic under the GIL

    def all(self) -> list[FileState]:
        """Every record, read-only: put() replaces records, it never changes them in place,
        so no copies are needed (a restart with 100,000 files reads them all)."""
        with self._lock:
            return list(self._index.values())

    def __len__(self) -> int:
        return len(self._index)

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts = dict.fromkeys(STATUSES, 0)
            for record in self._index.values():
                if not record.is_dir:
                    counts[record.status] = counts.get(record.status, 0) + 1
            return counts

    # ------------------------------------------------------------------ writing

    def put(self, record: FileState) -> None:
        """Insert or replace the record for record.rel (cached until the next flush)."""
        self.put_many([record])

    def put_many(self, records: Iterable[FileState]) -> None:
        records = list(records)
        if not records:
            return  # nothing changed: no rewrite at the next flush
        with self._lock:
            for record in records:
                self._index[record.rel] = _copy(record)
            self._changed(len(records))

    def update(self, rel: str, **changes) -> FileState:
        with self._lock:
            record = self.get(rel) or FileState(rel)
            for key, value in changes.items():
                setattr(record, key, value)
            self.put(record)
            return record

    def forget(self, rels: Iterable[str]) -> None:
        with self._lock:
            gone = [rel for rel in rels if self._index.pop(rel, None) is not None]
            if gone:
                self._changed(len(gone))

    def rekey(self, old: str, new: str) -> int:
        """Move the records of folder `old` and everything under it to `new` (a visit renamed
        on the tablet and on the server). O(records) once per rename, which is rare."""
        with self._lock:
            prefix = old + "/"
            moved = [rel for rel in self._index if rel == old or rel.startswith(prefix)]
            for rel in moved:
                record = self._index.pop(rel)
                key = new + rel[len(old):]
                self._index[key] = replace(record, rel=key, extra=dict(record.extra))
            if moved:
                self._changed(len(moved))
            return len(moved)

    def server(self) -> dict | None:
        """The identity of the server this cache describes (None: not known yet)."""
        value = self.meta("server")
        return value if isinstance(value, dict) else None

    def describes(self, identity: dict) -> bool:
        """True when this cache is about the server with `identity` (every field equal)."""
        return self.server() == identity

    def rebind(self, identity: dict) -> int:
        """Make this the cache of the server `identity`: every record of what was pushed is
        dropped (it described another server), quarantined files are kept (a fact about the
        tree), and the next pass lists the server once. Returns the records dropped."""
        with self._lock:
            dropped = [rel for rel, record in self._index.items() if record.status != "quarantined"]
            for rel in dropped:
                del self._index[rel]
            self.set_meta("server_listed", None)
            self.set_meta("server", identity)
            self._changed(len(dropped) + 1)
            return len(dropped)

    def set_meta(self, key: str, value) -> None:
        with self._lock:
            self._meta.upsert(Document({"value": value}, doc_id=_meta_id(key)))

    def meta(self, key: str, default=None):
        with self._lock:
            doc = self._meta.get(doc_id=_meta_id(key))
            return doc["value"] if doc else default

    def flush(self) -> None:
        with self._lock:
            self._storage.flush()
            self._unflushed = 0
            self._flushed = time.monotonic()

    def _changed(self, count: int) -> None:
        # Saved every flush_every updates, and at least every FLUSH_SECONDS while busy.
        self._storage.dirty = True
        self._unflushed += count
        if self._unflushed >= self._flush_every or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SyncState:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ids by position: append only. server_checked: when a pass last compared the server's listing
# with the done records (engine recheck), so the schedule survives restarts.
_META_KEYS = ("last_push", "last_pass", "server_listed", "server", "server_checked")


def _meta_id(key: str) -> int:
    return _META_KEYS.index(key) + 1


def _copy(record: FileState) -> FileState:
    return replace(record, extra=dict(record.extra))


def _doc(record: FileState) -> dict:
    """The TinyDB document of a record: fields at their default are left out (smaller file,
    faster restart); _record() puts them back."""
    doc = {"rel": record.rel}
    for name, default in _FIELDS:
        value = getattr(record, name)
        if value != default:
            doc[name] = value
    if record.extra:
        doc["extra"] = record.extra
    return doc


_STATUS = {status: status for status in STATUSES}


def _record(doc: dict) -> FileState | None:
    # A record from another version or a hand edit: drop it; the engine re-derives it.
    try:
        known = {k: v for k, v in doc.items() if k in FileState.__dataclass_fields__}
        record = FileState(**known)
    except TypeError:
        return None
    if not isinstance(record.rel, str):
        return None
    # One shared string per status instead of one per record (100,000 records on a restart).
    record.status = _STATUS.get(record.status) or sys.intern(str(record.status))
    return record
