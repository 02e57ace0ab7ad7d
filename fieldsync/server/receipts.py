"""`fieldsync server receipts`: append what the server received to its own signed record.

Run by the index account from its timer. For every tree (the share, or each
SHARE/tablets/ACCOUNT/fieldsync) and every device ledger in it, the step records each visit
head the ledger seals that was not receipted yet, and the ledger's last record, in
SHARE/.fieldsync/receipts/receipts (format: evidence/receipts.py), signed with the server key.
That key is kept outside the share's writable area (the index account's own folder), so
nobody who can only write the share can forge or drop a receipt.

A ledger that no longer holds a record already receipted (rolled back, rewritten, deleted)
gets no new receipt; it is reported instead, and `verify --receipts` names what is gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from fieldsync.base import signing
from fieldsync.base.atomic import write_text
from fieldsync.base.clock import now_iso
from fieldsync.base.hashing import GENESIS, canonical
from fieldsync.base.i18n import _
from fieldsync.errors import EvidenceBroken
from fieldsync.evidence import ledger
from fieldsync.evidence import receipts as format_
from fieldsync.server import scan

KEY_FILE = "server_key.pem"  # default: in the index account's config folder (the CLI picks it)
PUBLIC_SUFFIX = ".pub"  # beside the private key: the base64 public key verifiers are given


@dataclass
class ReceiptsResult:
    path: Path
    public_key: str
    trees: int = 0
    ledgers: int = 0
    added: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return signing.fingerprint(self.public_key)


def server_key(key_path: Path) -> tuple[signing.Ed25519PrivateKey, str]:
    """The server's private key (made 0600 on first use) and its public key, which is also
    written beside it as KEY.pub for the back office to hand to verifiers."""
    key = signing.load_key(signing.ensure_key(key_path))
    public = signing.public_b64(key)
    pub_file = Path(str(key_path) + PUBLIC_SUFFIX)
    if not pub_file.is_file() or pub_file.read_text(encoding="utf-8").strip() != public:
        write_text(pub_file, public + "\n")
    return key, public


def take_receipts(share: Path, key_path: Path, *, tablets: bool = False) -> ReceiptsResult:
    """Append receipts for everything new in the share's ledgers; return what was done."""
    share = Path(share)
    key, public = server_key(key_path)
    path = format_.receipts_file(share)
    # Private to the index account: the web server and the tablets have no business there.
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    result = ReceiptsResult(path, public)
    with FileLock(path.parent / ".lock"):
        existing = format_.load(path, public) if path.exists() else format_.Receipts(path, public)
        if existing.problems:
            raise EvidenceBroken(_("the receipts at {path} were changed by someone without the server key; restore "
                                   "them from backup before recording more").format(path=path),
                                 existing.problems)
        seen_visits = {(b["tree"], b["visit_id"]): b.get("head") for b in _bodies(existing, "visit")}
        seen_ledgers = {(b["tree"], b["device"]): b for b in _bodies(existing, "ledger")}
        trees = scan.tablet_sources(share) if tablets else (format_.SINGLE_TREE,)
        new: list[dict[str, Any]] = []
        for tree in trees:
            result.trees += 1
            root = share if tree == format_.SINGLE_TREE else share / tree
            found = ledger.server_ledgers(root)
            for (seen_tree, device), body in seen_ledgers.items():
                if seen_tree == tree and device not in found:
                    result.problems.append(_("{tree}: ledger {device} is gone; the server received its record "
                                             "{ledger_seq} at {at}").format(
                                             tree=tree, device=device, ledger_seq=body["ledger_seq"], at=body["at"]))
            for device, ledger_path in found.items():
                result.ledgers += 1
                new += _receipts_for(tree, device, ledger.read(ledger_path), seen_ledgers.get((tree, device)),
                                     seen_visits, result.problems)
        _append(path, existing, new, key)
        result.added = len(new)
    return result


def _bodies(receipts: format_.Receipts, kind: str) -> list[dict[str, Any]]:
    return [r["body"] for r in receipts.records if isinstance(r.get("body"), dict)
            and r["body"].get("kind") == kind]


def _receipts_for(tree: str, device: str, parsed: ledger.Parsed, last: dict | None,
                  seen_visits: dict[tuple[str, str], Any], problems: list[str]) -> list[dict[str, Any]]:
    """The new receipt bodies for one ledger (none when it no longer holds what was received)."""
    where = f"{tree}: ledger {device}"
    if parsed.problems:
        problems.append(f"{where}: {parsed.problems[0]}; not receipted (run 'fieldsync verify --server')")
        return []
    if not parsed.records:
        return []
    hashes = {r.get("seq"): r.get("hash") for r in parsed.records}
    if last is not None and hashes.get(last["ledger_seq"]) != last["ledger_hash"]:
        problems.append(_("{where}: no longer holds record {ledger_seq} the server received at {at} (rolled back or "
                          "rewritten); not receipted").format(
                          where=where, ledger_seq=last["ledger_seq"], at=last["at"]))
        return []
    at = now_iso()
    latest: dict[str, dict[str, Any]] = {}
    for record in parsed.records:
        body = record.get("body")
        if isinstance(body, dict) and body.get("visit_id"):
            latest[body["visit_id"]] = record
    bodies = []
    for visit_id, record in latest.items():
        body = record["body"]
        if seen_visits.get((tree, visit_id)) == body.get("head"):
            continue
        bodies.append({"kind": "visit", "tree": tree, "device": device, "visit_id": visit_id,
                       "visit": body.get("visit"), "head": body.get("head"), "photos": body.get("photos"),
                       "ledger_seq": record.get("seq"), "ledger_hash": record.get("hash"), "at": at})
    end = parsed.records[-1]
    if last is None or last["ledger_seq"] != end.get("seq"):
        bodies.append({"kind": "ledger", "tree": tree, "device": device, "ledger_seq": end.get("seq"),
                       "ledger_hash": end.get("hash"), "at": at})
    return bodies


def _append(path: Path, existing: format_.Receipts, bodies: list[dict[str, Any]],
            key: signing.Ed25519PrivateKey) -> None:
    seq = len(existing.records)
    prev = str(existing.records[-1].get("hash")) if existing.records else GENESIS
    lines = []
    for body in bodies:
        seq += 1
        record = format_.make_receipt(seq, prev, body, key, body["at"])
        prev = record["hash"]
        lines.append(canonical(record) + b"\n")
    if not lines:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"".join(lines))
        os.fsync(fd)
    finally:
        os.close(fd)
