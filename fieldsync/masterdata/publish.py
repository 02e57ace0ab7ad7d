"""Master data travels: the server publishes customers.json, tablets pull it when it changed.

Layout on the server (hidden, so never mirrored back by sync):
    REMOTE_ROOT/.fieldsync/master/customers.json   the TinyDB file, byte for byte
    REMOTE_ROOT/.fieldsync/master/version.json     {sha256, bytes, count, published_at, source}
version.json is written last, so a tablet that sees a new version finds its data complete; the
tablet checks the sha256 before it swaps its own copy in one step (os.replace).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.atomic import write_text
from fieldsync.base.clock import now_iso
from fieldsync.base.hashing import file_sha256
from fieldsync.errors import BadInput, TransportError, UnknownCustomer
from fieldsync.masterdata import index_file
from fieldsync.masterdata.store import CUSTOMERS_TABLE, STORE_NAME, CustomerStore
from fieldsync.transport import open_transport

REMOTE_DIR = PurePosixPath(".fieldsync/master")
REMOTE_DATA = REMOTE_DIR / STORE_NAME
REMOTE_VERSION = REMOTE_DIR / "version.json"
PULLED_FILE = "master-pulled.json"  # in the tablet's .fieldsync/: the version it holds


@dataclass(frozen=True)
class Published:
    sha256: str
    bytes: int
    count: int


def publish(state_dir: Path, transport) -> Published:
    """Put this machine's master data into the remote root for tablets to pull."""
    store = CustomerStore(state_dir)
    if not store.exists():
        raise UnknownCustomer("no master data to publish; run 'fieldsync customers import FILE' first")
    meta = store.meta()
    version = {"sha256": file_sha256(store.path)[0], "bytes": store.path.stat().st_size,
               "count": meta.get("count"), "source": meta.get("source"),
               "published_at": now_iso()}
    transport.makedirs(REMOTE_DIR)
    transport.upload(store.path, REMOTE_DATA)
    note = Path(state_dir) / ".publish-version.json"
    write_text(note, json.dumps(version, ensure_ascii=False, indent=1), private=True)
    try:
        transport.upload(note, REMOTE_VERSION)
    finally:
        note.unlink(missing_ok=True)
    return Published(version["sha256"], version["bytes"], version["count"] or 0)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pull_if_changed(cfg, transport=None) -> bool:
    """Fetch the published master data when it differs from ours; True when it was replaced.

    The daemon calls this on a schedule. Nothing published yet is not an error (False).
    The caller derives what follows (customer.yaml, pages): sync.derive with master_data_changed.
    """
    state_dir = Path(cfg.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    own = transport is None
    transport = transport or open_transport(cfg)
    try:
        if transport.stat(REMOTE_VERSION) is None:
            return False
        version_tmp = state_dir / ".pull-version.json"
        transport.download(REMOTE_VERSION, version_tmp)
        remote = _read_json(version_tmp)
        version_tmp.unlink(missing_ok=True)
        if not remote or not isinstance(remote.get("sha256"), str):
            raise BadInput(f"{transport.url}: {REMOTE_VERSION} is not a fieldsync master data version; "
                           "run 'fieldsync customers publish' on the server again")
        pulled = _read_json(state_dir / PULLED_FILE) or {}
        store = CustomerStore(state_dir)
        if (pulled.get("sha256") == remote["sha256"] and store.exists()
                and file_sha256(store.path)[0] == remote["sha256"]):
            return False
        data_tmp = state_dir / ".pull-customers.json"
        try:
            transport.download(REMOTE_DATA, data_tmp)
            if file_sha256(data_tmp)[0] != remote["sha256"]:
                raise TransportError("the master data on the server changed while it was fetched "
                                     "(or was damaged); pull again")
            records = _customer_rows(data_tmp)
            os.replace(data_tmp, store.path)
        finally:
            data_tmp.unlink(missing_ok=True)
    finally:
        if own:
            transport.close()
    index_file.rebuild_index(state_dir, records)
    write_text(state_dir / PULLED_FILE, json.dumps(remote, ensure_ascii=False, indent=1), private=True)
    return True


def _customer_rows(path: Path) -> list[dict]:
    """The customers in a fetched TinyDB file; refuses anything else before it replaces ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = list(data[CUSTOMERS_TABLE].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadInput("the published master data is not a fieldsync customers file; "
                       "run 'fieldsync customers publish' on the server again") from None
    if not all(isinstance(r, dict) and r.get("account_no") for r in rows):
        raise BadInput("the published master data has rows without an account no.; publish it again")
    return rows
