"""Customer master data, stored with tinydb under ROOT/.fieldsync/ (P1's seven fields).

The store is replaced as a whole on import (write a new TinyDB file, then os.replace), so a
crash mid-import leaves the previous master data intact: all or nothing.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tinydb import Query, TinyDB

from fieldsync.base.clock import now_iso
from fieldsync.base.names import normalize_account
from fieldsync.errors import UnknownCustomer

FIELDS = ("account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage")
FIELD_LABELS = {
    "account_no": "户号", "name": "户名", "meter_no": "表计局号", "capacity_kva": "合同容量",
    "address": "用电地址", "line": "线路名称", "voltage": "供电电压等级",
}
STORE_NAME = "customers.json"
CUSTOMERS_TABLE = "customers"
META_TABLE = "meta"
STORE_STEP, INDEX_STEP = "store", "index"  # the phases an import reports, in order (see catalog.py)
WRITE_CHUNK = 10_000  # rows encoded per json call when the store is written


StepFn = Callable[[str], None]


@contextlib.contextmanager
def collector_paused():
    """Pause the cyclic garbage collector: making a million small dicts (none of them in a
    cycle) otherwise triggers full collections that walk every row already made, again and
    again (it made writing the store twice as slow)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass(frozen=True)
class ImportSummary:
    added: int
    changed: int
    unchanged: int
    total: int


class CustomerStore:
    """Read and replace the master data file ROOT/.fieldsync/customers.json."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / STORE_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def _open_read(self) -> TinyDB:
        return TinyDB(self.path, access_mode="r")

    def get(self, account_no: str) -> dict:
        """The customer record for `account_no`; UnknownCustomer if there is none."""
        account_no = normalize_account(account_no)
        if not self.exists():
            raise UnknownCustomer(
                f"no master data yet, so customer {account_no} is unknown; "
                "run 'fieldsync customers import FILE' (or 'customers pull') first")
        with self._open_read() as db:
            record = db.table(CUSTOMERS_TABLE).get(Query().account_no == account_no)
        if record is None:
            raise UnknownCustomer(
                f"customer {account_no} is not in master data; check the number with "
                "'fieldsync find', or import the latest export")
        return dict(record)

    def all(self) -> list[dict]:
        if not self.exists():
            return []
        with self._open_read() as db:
            return [dict(r) for r in db.table(CUSTOMERS_TABLE).all()]

    def meta(self) -> dict:
        if not self.exists():
            return {}
        with self._open_read() as db:
            rows = db.table(META_TABLE).all()
        return dict(rows[0]) if rows else {}

    def merge(self, records: Iterable[dict], source: str, step: StepFn | None = None) -> ImportSummary:
        """Add or update `records` by account number, then swap the store in one step.
        `step` hears the name of each phase as it begins (for a progress display)."""
        with collector_paused():
            return self._merge(records, source, step or (lambda name: None))

    def _merge(self, records: Iterable[dict], source: str, step: StepFn) -> ImportSummary:
        existing = {r["account_no"]: r for r in self.all()}
        added = changed = unchanged = 0
        for record in records:
            old = existing.get(record["account_no"])
            if old is None:
                added += 1
            elif {k: old.get(k) for k in FIELDS} != {k: record.get(k) for k in FIELDS}:
                changed += 1
            else:
                unchanged += 1
                continue
            existing[record["account_no"]] = record
        self.replace(existing.values(), source, step)
        return ImportSummary(added, changed, unchanged, len(existing))

    def replace(self, records: Iterable[dict], source: str, step: StepFn | None = None) -> list[dict]:
        """Write `records` as the whole store, atomically; returns the rows as written (in
        account order). catalog.IndexedStore also rebuilds the search index."""
        step = step or (lambda name: None)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".customers.", suffix=".tmp", dir=self.state_dir)
        os.close(fd)
        try:
            rows = sorted(records, key=lambda r: r["account_no"])
            step(STORE_STEP)
            _write_tinydb(Path(tmp), rows, {
                "source": source, "count": len(rows),
                "imported_at": now_iso(),
            })
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rows


def _write_tinydb(path: Path, rows: list[dict], meta: dict) -> None:
    # The file TinyDB itself would write ({table: {doc_id: document}}, json.dump's spacing):
    # TinyDB's insert_multiple takes minutes for a million rows. json.dump would encode in pure
    # Python (it streams); json.dumps uses the C encoder, so chunks of rows are encoded whole.
    encode = json.JSONEncoder(ensure_ascii=False).encode
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{{{encode(CUSTOMERS_TABLE)}: {{")
        for start in range(0, len(rows), WRITE_CHUNK):
            chunk = {str(i): row for i, row in enumerate(rows[start:start + WRITE_CHUNK], start=start + 1)}
            handle.write((", " if start else "") + encode(chunk)[1:-1])
        handle.write(f"}}, {encode(META_TABLE)}: {encode({'1': meta})}}}")
        handle.flush()
        os.fsync(handle.fileno())


