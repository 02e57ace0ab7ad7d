"""The per-device ledger: an append-only, hash-chained log of every visit's manifest head.

ROOT/.fieldsync/ledger holds one JSON line per change: a visit's manifest got a new head or
its remark history a new seal. Each record names the previous record's hash, so a removed,
edited or reordered line breaks the chain; and because every manifest head is logged, a
manifest rolled back to an older version, or rewritten whole, no longer matches the last
record for its visit. The engine pushes the file to `.fieldsync/ledgers/<device>` on the
server (ledger_upload_items), where `fieldsync verify --server` reads it.

A record's hash covers (seq, prev, SHA-256 of its body), not the body itself, so an excerpt
for a dispute bundle can drop other customers' bodies and still prove the whole chain.

Each record is signed with the device's Ed25519 key (ROOT/.fieldsync/device_key.pem, never
pushed): `key` (the public key), `signed_at` and `sig` over (hash, key, signed_at). The hash
chain alone needs no secret, so anyone who can write the share could rebuild it; the
signature cannot be rebuilt without the tablet. Records written before signing existed have
no `sig` (verify reports them as unsigned); signing starts with the next record.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock

from fieldsync.base import signing
from fieldsync.base.clock import now_iso
from fieldsync.base.hashing import GENESIS, canonical, digest
from fieldsync.base.i18n import _
from fieldsync.base.names import is_safe_component
from fieldsync.config import STATE_DIR, Config

LEDGER_NAME = "ledger"
REMOTE_DIR = PurePosixPath(STATE_DIR, "ledgers")  # on the server: .fieldsync/ledgers/<device>
LOCK_NAME = "evidence.lock"
SIGNATURE_FORMAT = "fieldsync-ledger-signature/1"  # inside every signed message: never reusable elsewhere

_thread_lock = threading.RLock()
_depth = threading.local()


def local_path(cfg: Config) -> Path:
    return cfg.state_dir / LEDGER_NAME


def key_path(cfg: Config) -> Path:
    """This device's private signing key (made at init, or on the first record of an older tree)."""
    return cfg.state_dir / signing.KEY_FILE


def remote_rel(device: str) -> PurePosixPath:
    """Where a device's ledger lives under the server's remote root."""
    if not is_safe_component(device):
        raise ValueError(f"device name {device!r} is not a safe file name")
    return REMOTE_DIR / device


@contextlib.contextmanager
def lock(cfg: Config) -> Iterator[None]:
    """Hold the evidence lock: manifests and the ledger change under it, one writer at a time,
    across threads (the engine's workers) and processes (the daemon and `fieldsync add`)."""
    with _thread_lock:
        depth = getattr(_depth, "n", 0)
        _depth.n = depth + 1
        try:
            if depth:  # already held by this thread (record_result -> log_visit)
                yield
            else:
                cfg.state_dir.mkdir(parents=True, exist_ok=True)
                with FileLock(cfg.state_dir / LOCK_NAME):
                    yield
        finally:
            _depth.n = depth


# --------------------------------------------------------------------------- records (pure)

def record_hash(seq: int, prev: str, body_sha256: str) -> str:
    return digest({"seq": seq, "prev": prev, "body_sha256": body_sha256})


def make_record(seq: int, prev: str, body: dict[str, Any]) -> dict[str, Any]:
    body_sha256 = digest(body)
    return {"seq": seq, "prev": prev, "body_sha256": body_sha256,
            "hash": record_hash(seq, prev, body_sha256), "body": body}


def signed_message(record: dict[str, Any]) -> bytes:
    """What a record's signature covers: its hash (so seq, prev and body), key and time."""
    return canonical({"format": SIGNATURE_FORMAT, "hash": record.get("hash"),
                      "key": record.get("key"), "signed_at": record.get("signed_at")})


def sign_record(record: dict[str, Any], key: signing.Ed25519PrivateKey, signed_at: str) -> dict[str, Any]:
    record["key"] = signing.public_b64(key)
    record["signed_at"] = signed_at
    record["sig"] = signing.sign(key, signed_message(record))
    return record


def signature_valid(record: dict[str, Any]) -> bool:
    return signing.verify(record.get("key"), record.get("sig"), signed_message(record))


@dataclass
class Parsed:
    """A ledger file read back: its records and what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def head(self) -> str:
        return str(self.records[-1].get("hash")) if self.records else GENESIS

    @functools.cached_property
    def _index(self) -> dict[str, list[dict[str, Any]]]:
        # Built once: verify asks per visit, and a city's ledgers hold millions of records.
        bodies: dict[str, list[dict[str, Any]]] = {}
        for record in self.records:
            body = record.get("body")
            if isinstance(body, dict) and body.get("visit_id"):
                bodies.setdefault(body["visit_id"], []).append(body)
        return bodies

    def latest_by_visit(self) -> dict[str, dict[str, Any]]:
        """visit_id -> the body of the last record about it (redacted records are skipped)."""
        return {visit_id: bodies[-1] for visit_id, bodies in self._index.items()}

    def bodies_by_visit(self) -> dict[str, list[dict[str, Any]]]:
        """visit_id -> every body logged for it, oldest first."""
        return self._index


def parse(text: str) -> Parsed:
    """Read ledger lines and check the chain: seq 1, 2, 3..., each naming the one before.

    Problems are worded without the file's name; the caller says which ledger it read."""
    result = Parsed()
    prev, expected_seq = GENESIS, 1
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        result.problems.append(_("last line is incomplete (file truncated or still being written)"))
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
        except ValueError:
            result.problems.append(_("line {number}: not a ledger record").format(number=number))
            prev = None
            continue
        seq = record.get("seq")
        if seq != expected_seq:
            what = _("reordered") if isinstance(seq, int) and seq < expected_seq else _("removed or reordered")
            result.problems.append(_("line {number}: record {seq!r} where {expected} was expected (records "
                                     "{what})").format(number=number, seq=seq, expected=expected_seq, what=what))
        body = record.get("body")
        if body is not None and digest(body) != record.get("body_sha256"):
            result.problems.append(_("record {seq}: body does not match its hash (record edited)").format(seq=seq))
        if record.get("hash") != record_hash(seq, record.get("prev"), record.get("body_sha256")):
            result.problems.append(_("record {seq}: hash is wrong (record edited)").format(seq=seq))
        if prev is not None and record.get("prev") != prev:
            result.problems.append(_("record {seq}: does not follow the record before it (records removed, inserted "
                                     "or reordered)").format(seq=seq))
        prev = record.get("hash")
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        result.records.append(record)
    return result


def read(path: Path) -> Parsed:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Parsed()
    except (OSError, UnicodeDecodeError) as exc:
        return Parsed(problems=[_("cannot be read ({exc})").format(exc=exc)])
    return parse(text)


def excerpt(records: Iterable[dict[str, Any]], visit_ids: set[str]) -> str:
    """The ledger with only `visit_ids`' bodies kept: the chain still verifies end to end."""
    lines = []
    for record in records:
        body = record.get("body")
        keep = isinstance(body, dict) and body.get("visit_id") in visit_ids
        shown = record if keep else {k: v for k, v in record.items() if k != "body"}
        lines.append(canonical(shown).decode("utf-8"))
    return "".join(line + "\n" for line in lines)


def extends(old: bytes, new: bytes) -> bool:
    """True when `new` only appends to `old`: the engine may replace the server's ledger
    with the tablet's only then (anything else is a rewrite and must be kept as a conflict)."""
    return new.startswith(old)


# --------------------------------------------------------------------------- appending

class _Tail:
    """What the next append needs (last seq and hash, last body per visit), cached per file."""

    def __init__(self) -> None:
        self.stamp: tuple[int, int] | None = None
        self.seq = 0
        self.hash = GENESIS
        self.latest: dict[str, dict[str, Any]] = {}


_tails: dict[Path, _Tail] = {}


def _tail(path: Path) -> _Tail:
    tail = _tails.setdefault(path, _Tail())
    try:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        stamp = None
    if stamp is not None and stamp == tail.stamp:
        return tail
    tail.__init__()
    if stamp is not None:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            # A crash mid-append left half a line that never sealed anything: drop it, so the
            # next record starts on a line of its own.
            cut = data.rfind(b"\n") + 1
            os.truncate(path, cut)
            data = data[:cut]
        parsed = parse(data.decode("utf-8", "replace"))
        if parsed.records:
            tail.seq = parsed.records[-1].get("seq", len(parsed.records))
            tail.hash = parsed.head
        tail.latest = parsed.latest_by_visit()
        st = path.stat()
        tail.stamp = (st.st_size, st.st_mtime_ns)
    return tail


def append(cfg: Config, body: dict[str, Any]) -> dict[str, Any]:
    """Append one record to this device's ledger (caller holds lock(cfg)); return it."""
    path = local_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tail = _tail(path)
    key = signing.load_key(signing.ensure_key(key_path(cfg)))
    record = sign_record(make_record(tail.seq + 1, tail.hash, body), key, now_iso())
    line = canonical(record) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    st = path.stat()
    tail.stamp = (st.st_size, st.st_mtime_ns)
    tail.seq, tail.hash = record["seq"], record["hash"]
    if body.get("visit_id"):
        tail.latest[body["visit_id"]] = body
    return record


def log_visit(cfg: Config, visit_rel: PurePosixPath, manifest: dict[str, Any]) -> dict | None:
    """Log a visit's manifest head and remark seal, unless the ledger already has exactly that."""
    body = {"visit_id": manifest["visit_id"], "visit": str(visit_rel), "head": manifest["head"],
            "photos": len(manifest["entries"]), "remarks": manifest.get("remarks"),
            "device": cfg.device, "inspector": cfg.inspector,
            "at": now_iso()}
    with lock(cfg):
        last = _tail(local_path(cfg)).latest.get(body["visit_id"])
        same = ("visit_id", "visit", "head", "photos", "remarks")
        if last and all(last.get(k) == body[k] for k in same):
            return None
        return append(cfg, body)


# --------------------------------------------------------------------------- server copy

def export_for_server(cfg: Config) -> tuple[Path, PurePosixPath] | None:
    """(local ledger file, its path under the remote root), or None before the first record."""
    path = local_path(cfg)
    return (path, remote_rel(cfg.device)) if path.exists() else None


def ledger_upload_items(cfg: Config) -> list[tuple[Path, PurePosixPath]]:
    """What the engine pushes after the tree: this device's ledger to .fieldsync/ledgers/<device>.

    Push it after the manifests of the same pass (then the server never holds a ledger
    newer than its manifests), with the same temp-name + rename as any file, and only when
    ledger.extends(server_copy, local_copy); otherwise keep both and report a conflict.
    """
    item = export_for_server(cfg)
    return [item] if item else []


def snapshot(cfg: Config) -> bytes:
    """The ledger's bytes as of now, read under the lock: never half an appended line.
    (An engine that uploads from bytes rather than from the path should use this.)"""
    with lock(cfg):
        try:
            return local_path(cfg).read_bytes()
        except FileNotFoundError:
            return b""


def server_ledgers(tree_root: Path) -> dict[str, Path]:
    """device -> ledger file in a server tree or an extracted bundle (.fieldsync/ledgers/*)."""
    folder = Path(tree_root) / REMOTE_DIR
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}
