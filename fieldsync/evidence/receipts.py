"""Server receipts: the server's own signed, hash-chained record of the ledger heads it received.

`fieldsync server receipts` (server/receipts.py) appends to SERVER/.fieldsync/receipts/receipts
one JSON line per thing it saw, chained like a ledger (seq, prev, body_sha256, hash) and signed
with the server's Ed25519 key, which lives outside the share's writable area:

    {"kind": "visit", "tree": "tablets/a/fieldsync", "device": "tablet-07", "visit_id": "…",
     "visit": "3300…/周期检查/计量装置/2026-11-25_1430", "head": "…", "photos": 12,
     "ledger_seq": 41, "ledger_hash": "…", "at": "2026-11-25T15:00:02+08:00"}
    {"kind": "ledger", "tree": …, "device": …, "ledger_seq": 41, "ledger_hash": …, "at": …}

A share admin can rewrite a device's ledger and delete a visit with it, but cannot forge or
drop a receipt without the server key: verify compares the tree with the receipts and names
what the server received that is gone. An evidence bundle carries an excerpt (the whole chain,
other visits' bodies removed, as for ledgers), so it proves "received by the server at T".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from fieldsync.base import signing
from fieldsync.base.hashing import canonical
from fieldsync.base.i18n import _
from fieldsync.config import STATE_DIR
from fieldsync.errors import BadInput
from fieldsync.evidence import ledger

RECEIPTS_DIR = PurePosixPath(STATE_DIR, "receipts")  # under the share (or a bundle's top folder)
RECEIPTS_NAME = "receipts"
SIGNATURE_FORMAT = "fieldsync-receipt-signature/1"  # never valid as a ledger signature, nor the reverse
SINGLE_TREE = "."  # the `tree` of a plain server tree (not a share of chrooted tablets)


def receipts_file(top: Path) -> Path:
    """Where the receipts of a share, or the excerpt in an extracted bundle, live."""
    return Path(top) / RECEIPTS_DIR / RECEIPTS_NAME


def signed_message(record: dict[str, Any]) -> bytes:
    return canonical({"format": SIGNATURE_FORMAT, "hash": record.get("hash"),
                      "key": record.get("key"), "signed_at": record.get("signed_at")})


def make_receipt(seq: int, prev: str, body: dict[str, Any], key: signing.Ed25519PrivateKey,
                 signed_at: str) -> dict[str, Any]:
    record = ledger.make_record(seq, prev, body)
    record["key"] = signing.public_b64(key)
    record["signed_at"] = signed_at
    record["sig"] = signing.sign(key, signed_message(record))
    return record


def tree_of(receipts_path: Path, tree_root: Path) -> str | None:
    """Which tree of the share the receipts at `receipts_path` speak of `tree_root` as: its path
    from the share ('.' for the share itself), or None (all receipts) when it is not inside it."""
    receipts_path, tree_root = Path(receipts_path).resolve(), Path(tree_root).resolve()
    if receipts_path.parent.name != RECEIPTS_DIR.name or receipts_path.parent.parent.name != STATE_DIR:
        return None
    share = receipts_path.parent.parent.parent
    try:
        rel = tree_root.relative_to(share).as_posix()
    except ValueError:
        return None
    return SINGLE_TREE if rel in ("", ".") else rel


def read_public_key(text_or_file: str) -> str:
    """The server's public key, given as its base64 text or a file holding it (server_key.pub)."""
    candidate = Path(text_or_file).expanduser()
    try:
        text = candidate.read_text(encoding="utf-8").strip() if candidate.is_file() else text_or_file.strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(_("cannot read the server key {candidate} ({exc})").format(
                         candidate=candidate, exc=exc)) from None
    if not signing.is_public_key(text):
        raise BadInput(_("{text_or_file!r} is not a server public key: give the base64 key that 'fieldsync server "
                         "receipts' printed, or the server_key.pub file beside its key").format(
                         text_or_file=text_or_file))
    return text


@dataclass
class Receipts:
    """The receipts that speak for one tree, checked against the server's public key."""

    path: Path
    server_key: str
    tree: str | None = None  # the tree (path from the share) whose bodies were kept; None: all
    records: list[dict[str, Any]] = field(default_factory=list)  # every record, as read
    problems: list[str] = field(default_factory=list)  # the file itself was changed
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)  # visit_id -> latest body
    ledgers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # device -> ledger bodies

    @property
    def fingerprint(self) -> str:
        return signing.fingerprint(self.server_key)


def load(path: Path, server_key: str, *, tree: str | None = None) -> Receipts:
    """Read and check a receipts file: its chain, and every record signed by `server_key`.

    tree: keep only the bodies about this tree (its path from the share, '.' for a plain
    tree); None keeps all (a bundle's excerpt holds one tree's). Bodies of records whose
    chain or signature fails are not used: a forged receipt must not accuse or excuse."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(_("no receipts at {path}; give the file (or the .fieldsync/receipts folder) 'fieldsync "
                         "server receipts' writes on the server").format(path=path))
    parsed = ledger.read(path)
    result = Receipts(path, server_key, tree, parsed.records,
                      [_("receipts: {problem}").format(problem=p) for p in parsed.problems])
    bad = []
    for record in parsed.records:
        if record.get("key") != server_key \
                or not signing.verify(server_key, record.get("sig"), signed_message(record)):
            bad.append(record.get("seq"))
            continue
        body = record.get("body")
        if not isinstance(body, dict) or (tree is not None and body.get("tree") != tree):
            continue
        if body.get("kind") == "visit" and body.get("visit_id"):
            result.visits[body["visit_id"]] = body
        elif body.get("kind") == "ledger" and body.get("device"):
            result.ledgers.setdefault(body["device"], []).append(body)
    if bad:
        more = _(", … ({count} records)").format(count=len(bad)) if len(bad) > 8 else ""
        shown = ", ".join(str(s) for s in bad[:8]) + more
        result.problems.append(_("receipts: record(s) {shown} not signed by server key {signing}: the receipts were "
                                 "edited or forged (or the wrong --server-key was given)").format(
                                 shown=shown, signing=signing.fingerprint(server_key)))
    return result


def excerpt(records: list[dict[str, Any]], visit_ids: set[str], devices: set[str], tree: str | None) -> str:
    """The receipts with only these visits' and devices' bodies (of `tree`) kept; the chain and
    every signature still verify, since a record's hash covers its body's hash, not the body."""
    lines = []
    for record in records:
        body = record.get("body")
        keep = isinstance(body, dict) and (tree is None or body.get("tree") == tree) and (
            (body.get("kind") == "visit" and body.get("visit_id") in visit_ids)
            or (body.get("kind") == "ledger" and body.get("device") in devices))
        shown = record if keep else {k: v for k, v in record.items() if k != "body"}
        lines.append(canonical(shown).decode("utf-8") + "\n")
    return "".join(lines)


# --------------------------------------------------------------------------- against a tree

def ledger_problems(receipts: Receipts, parsed: dict[str, ledger.Parsed]) -> dict[str, str]:
    """device -> what became of the ledger records the server received (rolled back, rewritten
    or gone); devices whose ledgers still hold every received record are not named."""
    found = {}
    for device, bodies in receipts.ledgers.items():
        latest = max(bodies, key=lambda b: b.get("ledger_seq") or 0)
        seq, at = latest.get("ledger_seq"), latest.get("at")
        said = (_("the server received record {seq} (hash {hash}…) of ledger {device} at {at}").format(
                  seq=seq, hash=str(latest.get("ledger_hash"))[:12], device=device, at=at))
        if device not in parsed:
            found[device] = _("{said}; the ledger is gone (deleted from the share)").format(said=said)
            continue
        hashes = {r.get("seq"): r.get("hash") for r in parsed[device].records}
        for body in sorted(bodies, key=lambda b: b.get("ledger_seq") or 0):
            got = hashes.get(body.get("ledger_seq"))
            if got is None:
                found[device] = (_("{said}; the ledger now ends at record {records_count}: rolled back (records "
                                   "removed from its end)").format(
                                   said=said, records_count=len(parsed[device].records)))
                break
            if got != body.get("ledger_hash"):
                found[device] = (_("the server received record {seq} of ledger {device} at {at}, and it is not "
                                   "the record there now: the ledger was rewritten").format(
                                   seq=body.get("ledger_seq"), device=device, at=body.get("at")))
                break
    return found


def visit_gone(body: dict[str, Any]) -> str:
    return (_("the server received head {head}… ({photos} photos) of visit {visit} from device {device} at {at}; "
              "it is gone (visit deleted, with its ledger records if no ledger names it)").format(
              head=str(body.get("head"))[:12], photos=body.get("photos"), visit=body.get("visit_id"),
              device=body.get("device"), at=body.get("at")))


def visit_rolled_back(body: dict[str, Any]) -> str:
    return (_("the server received head {head}… ({photos} photos) from device {device} at {at}, and this manifest "
              "does not hold it: replaced by an older or a rewritten version").format(
              head=str(body.get("head"))[:12], photos=body.get("photos"), device=body.get("device"),
              at=body.get("at")))
