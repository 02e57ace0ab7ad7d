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
from fieldsync.base.i18n import _
from fieldsync.base.names import normalize_account
from fieldsync.errors import UnknownCustomer

FIELDS = ("account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage")
_FIELD_SET = frozenset(FIELDS)
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


CHANGES_SHOWN = 10  # changed customers an import summary shows (old -> new), a sample


@dataclass(frozen=True)
class Change:
    """One customer an import changes: (field, old, new) for each field that differs."""
    account_no: str
    fields: tuple[tuple[str, object, object], ...]


@dataclass(frozen=True)
class ImportSummary:
    added: int
    changed: int
    unchanged: int
    total: int  # customers in the store after the import
    missing: tuple[str, ...] = ()  # accounts in the store that the file lacks (kept unless replace)
    removed: int = 0  # of those, removed (replace)
    changes: tuple[Change, ...] = ()  # the first CHANGES_SHOWN changed customers


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
            raise UnknownCustomer(_(
                "no master data yet, so customer {account} is unknown; "
                "run 'fieldsync customers import FILE' (or 'customers pull') first").format(account=account_no))
        with self._open_read() as db:
            record = db.table(CUSTOMERS_TABLE).get(Query().account_no == account_no)
        if record is None:
            raise UnknownCustomer(_(
                "customer {account} is not in master data; check the number with "
                "'fieldsync find', or import the latest export").format(account=account_no))
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

    def merge(self, records: Iterable[dict], source: str, step: StepFn | None = None,
              fields: Iterable[str] = FIELDS, replace: bool = False) -> ImportSummary:
        """Add or update `records` by account number, then swap the store in one step.

        Only `fields` (the columns the file has) are updated: a field the file says nothing
        about keeps its value. With `replace`, the file is the whole master data: fields it
        lacks are blanked and accounts it lacks are removed.
        `step` hears the name of each phase as it begins (for a progress display)."""
        with collector_paused():
            summary, rows = self._plan(records, tuple(fields), replace)
            self.replace(rows, source, step or (lambda name: None))
            return summary

    def preview(self, records: Iterable[dict], fields: Iterable[str] = FIELDS,
                replace: bool = False) -> ImportSummary:
        """What merge would do, without writing anything."""
        with collector_paused():
            return self._plan(records, tuple(fields), replace)[0]

    def _plan(self, records: Iterable[dict], fields: tuple[str, ...],
              replace: bool) -> tuple[ImportSummary, Iterable[dict]]:
        existing = {r["account_no"]: r for r in self.all()}
        merged = {} if replace else existing
        added = changed = unchanged = 0
        changes: list[Change] = []
        seen: set[str] = set()
        for record in records:
            account = record["account_no"]
            seen.add(account)
            old = existing.get(account)
            if old is None:
                added += 1
                # the parsed record itself when it is already a whole row: a second dict per
                # customer is 300 MB at a million
                merged[account] = record if record.keys() == _FIELD_SET else {key: record.get(key) for key in FIELDS}
                continue
            new = {key: record.get(key) for key in FIELDS} if replace else \
                {**old, **{key: record.get(key) for key in fields}}
            merged[account] = new
            if all(old.get(key) == new.get(key) for key in FIELDS):
                unchanged += 1
                continue
            changed += 1
            if len(changes) < CHANGES_SHOWN:
                changes.append(Change(account, tuple((key, old.get(key), new.get(key)) for key in FIELDS
                                                     if old.get(key) != new.get(key))))
        missing = tuple(sorted(account for account in existing if account not in seen))
        summary = ImportSummary(added, changed, unchanged, len(merged), missing,
                                len(missing) if replace else 0, tuple(changes))
        return summary, merged.values()

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


