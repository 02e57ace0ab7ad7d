"""What the engine has pushed: a tinydb cache under ROOT/.fieldsync/ (never the truth).

One record per tree path: local size/mtime (and sha for photos), what the server got, and a
status (pending | uploading | done | failed | quarantined) with reason, attempts and the
earliest next try. Losing this file costs a re-listing of the server, never a photo: the
engine rebuilds it from the tree, the manifests and the server (engine.reconcile).

TinyDB's JSONStorage rewrites the whole file on every write (bench/sync.py measures it), so
writes go through CachingMiddleware and reach the disk on flush(): after each file batch, at
the end of a pass and on close. A crash loses at most the last batch of cached updates,
which the next pass re-derives from the tree and the server.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator

from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import JSONStorage
from tinydb.table import Document

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


class SyncState:
    """Thread-safe access to the cache; an in-memory index keeps lookups O(1)."""

    def __init__(self, state_dir: Path, flush_every: int = 200):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / STATE_FILE
        self._lock = threading.RLock()
        self._db = self._open(flush_every)
        self._files = self._db.table("files")
        self._meta = self._db.table("meta")
        self._index: dict[str, tuple[int, FileState]] = {}
        for doc in self._files.all():
            record = _record(doc)
            if record is not None:
                self._index[record.rel] = (doc.doc_id, record)
        self._flushed = time.monotonic()
        self._next_id = max((doc_id for doc_id, _ in self._index.values()), default=0) + 1

    def _open(self, flush_every: int) -> TinyDB:
        try:
            db = TinyDB(self.path, storage=CachingMiddleware(JSONStorage), ensure_ascii=False)
            db.tables()  # reads the file now, so a damaged one is caught here
        except ValueError:  # damaged JSON (a crash mid-write on a filesystem without rename)
            self.path.replace(self.path.with_suffix(f".broken-{int(time.time())}"))
            db = TinyDB(self.path, storage=CachingMiddleware(JSONStorage), ensure_ascii=False)
        db.storage.WRITE_CACHE_SIZE = flush_every
        return db

    # ------------------------------------------------------------------ reading

    def get(self, rel: str) -> FileState | None:
        """A copy of the record for `rel` (changing it changes nothing until put())."""
        with self._lock:
            entry = self._index.get(rel)
            return _copy(entry[1]) if entry else None

    def peek(self, rel: str) -> FileState | None:
        """The record for `rel`, read-only (no copy: for scans over the whole tree)."""
        entry = self._index.get(rel)  # one dict lookup: atomic under the GIL
        return entry[1] if entry else None

    def all(self) -> list[FileState]:
        """Every record, read-only: put() replaces records, it never changes them in place,
        so no copies are needed (a restart with 100,000 files reads them all)."""
        with self._lock:
            return [record for _, record in self._index.values()]

    def __len__(self) -> int:
        return len(self._index)

    def counts(self) -> dict[str, int]:
        with self._lock:
            counts = dict.fromkeys(STATUSES, 0)
            for _, record in self._index.values():
                if not record.is_dir:
                    counts[record.status] = counts.get(record.status, 0) + 1
            return counts

    def with_status(self, *statuses: str) -> Iterator[FileState]:
        for record in self.all():
            if record.status in statuses and not record.is_dir:
                yield record

    # ------------------------------------------------------------------ writing

    def put(self, record: FileState) -> None:
        """Insert or replace the record for record.rel (cached until the next flush)."""
        self.put_many([record])

    def put_many(self, records: Iterable[FileState]) -> None:
        # Table.upsert rebuilds the whole table dict on every call (O(files) per update);
        # going through the storage's cached dict keeps one update O(1), still TinyDB's format.
        records = list(records)
        if not records:
            return  # a write would mark the cache dirty and cost a full rewrite at flush
        with self._lock:
            data = self._db.storage.read() or {}
            table = data.setdefault(self._files.name, {})
            for record in records:
                entry = self._index.get(record.rel)
                doc_id = entry[0] if entry else self._next_id
                if entry is None:
                    self._next_id += 1
                copy = _copy(record)
                self._index[record.rel] = (doc_id, copy)
                table[str(doc_id)] = asdict(copy)
            self._db.storage.write(data)
            self._files.clear_cache()
            self._flush_if_due()

    def update(self, rel: str, **changes) -> FileState:
        with self._lock:
            record = self.get(rel) or FileState(rel)
            for key, value in changes.items():
                setattr(record, key, value)
            self.put(record)
            return record

    def forget(self, rels: Iterable[str]) -> None:
        rels = [rel for rel in rels if rel in self._index]
        if not rels:
            return
        with self._lock:
            data = self._db.storage.read() or {}
            table = data.setdefault(self._files.name, {})
            for rel in rels:
                entry = self._index.pop(rel, None)
                if entry is not None:
                    table.pop(str(entry[0]), None)
            self._db.storage.write(data)
            self._files.clear_cache()

    def set_meta(self, key: str, value) -> None:
        with self._lock:
            self._meta.upsert(Document({"value": value}, doc_id=_meta_id(key)))

    def meta(self, key: str, default=None):
        with self._lock:
            doc = self._meta.get(doc_id=_meta_id(key))
            return doc["value"] if doc else default

    def flush(self) -> None:
        with self._lock:
            self._db.storage.flush()
            self._flushed = time.monotonic()

    def _flush_if_due(self) -> None:
        # Besides every WRITE_CACHE_SIZE writes: a busy daemon saves at least this often.
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "SyncState":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_META_KEYS = ("last_push", "last_pass", "server_listed")


def _meta_id(key: str) -> int:
    return _META_KEYS.index(key) + 1


def _copy(record: FileState) -> FileState:
    return replace(record, extra=dict(record.extra))


def _record(doc: dict) -> FileState | None:
    # A record from another version or a hand edit: drop it; the engine re-derives it.
    try:
        known = {k: v for k, v in doc.items() if k in FileState.__dataclass_fields__}
        return FileState(**known)
    except TypeError:
        return None
