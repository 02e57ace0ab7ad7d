"""The keyring: which device keys the back office vouches for, and ledger signatures against it.

A keyring is a JSON file the back office keeps off the share (and may publish like master
data): one entry per registered tablet key, with device, inspector, validity and revocation.
Signatures prove who wrote a ledger record only against such a trust root; a key found in
the ledger itself proves nothing, since whoever rewrites a ledger can put their own key there.

    {"format": "fieldsync-keyring/1",
     "keys": [{"device": "tablet-07", "inspector": "zhang.san", "key": "<base64 Ed25519>",
               "fingerprint": "SHA256:…", "valid_from": "2026-11-01", "valid_to": null,
               "revoked": null | {"at": "2027-03-02T10:00:00+08:00", "reason": "lost"},
               "added_at": "…"}]}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fieldsync.base import signing
from fieldsync.base.atomic import write_text
from fieldsync.base.clock import now_iso
from fieldsync.base.i18n import _
from fieldsync.errors import BadInput
from fieldsync.evidence import ledger

FORMAT = "fieldsync-keyring/1"
SHOWN_SEQS = 8  # record numbers named in one message before "…"


# --------------------------------------------------------------------------- the file

@dataclass
class Keyring:
    path: Path
    keys: list[dict[str, Any]] = field(default_factory=list)

    def lookup(self, public: object) -> dict[str, Any] | None:
        return next((entry for entry in self.keys if entry["key"] == public), None)

    def of_device(self, device: str) -> list[dict[str, Any]]:
        return [entry for entry in self.keys if entry["device"] == device]

    def save(self) -> None:
        write_text(self.path, json.dumps({"format": FORMAT, "keys": self.keys}, ensure_ascii=False,
                                         indent=1) + "\n")


def _when(text: object, what: str, path: Path) -> datetime | None:
    if text in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        raise BadInput(_("{path}: {what} {text!r} is not a date (YYYY-MM-DD or ISO 8601 time)").format(
                         path=path, what=what, text=text)) from None


def load_keyring(path: Path, *, missing_ok: bool = False) -> Keyring:
    """Read and check a keyring; a bad one names the file, the entry and what was expected."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return Keyring(path)
        raise BadInput(_("keyring {path} does not exist; the back office makes it with 'fieldsync keyring add "
                         "--keyring FILE ...'").format(path=path)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(_("keyring {path} cannot be read ({exc}); ask the back office for a good copy").format(
                         path=path, exc=exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keys"), list):
        raise BadInput(_("{path} is not a fieldsync keyring (expected format {FORMAT!r} and a 'keys' list)").format(
                         path=path, FORMAT=FORMAT))
    for number, entry in enumerate(data["keys"], start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("device"), str) \
                or not signing.is_public_key(entry.get("key")):
            raise BadInput(_("{path}: key {number} needs a device name and a base64 Ed25519 'key'").format(
                             path=path, number=number))
        for name in ("valid_from", "valid_to"):
            _when(entry.get(name), f"key {number} {name}", path)
        revoked = entry.get("revoked")
        if revoked is not None and not (isinstance(revoked, dict)
                                        and _when(revoked.get("at"), f"key {number} revoked.at", path)):
            raise BadInput(_("{path}: key {number} 'revoked' must be null or {{\"at\": TIME, \"reason\": "
                             "TEXT}}").format(
                             path=path, number=number))
        entry["fingerprint"] = signing.fingerprint(entry["key"])
    return Keyring(path, data["keys"])


def add_key(path: Path, device: str, inspector: str, public: str, *, valid_from: str | None = None,
            valid_to: str | None = None) -> dict[str, Any]:
    """Register a tablet's public key (as `fieldsync keyring device-key` printed it on the tablet)."""
    public = public.strip()
    if not signing.is_public_key(public):
        raise BadInput(_("{public!r} is not a base64 Ed25519 public key; copy it from 'fieldsync keyring "
                         "device-key' on the tablet").format(public=public))
    keyring = load_keyring(path, missing_ok=True)
    if keyring.lookup(public):
        raise BadInput(_("key {signing} is already in {path}").format(signing=signing.fingerprint(public), path=path))
    valid_from = valid_from or date.today().isoformat()
    for what, value in (("--from", valid_from), ("--to", valid_to)):
        _when(value, what, Path(path))
    entry = {"device": device, "inspector": inspector, "key": public,
             "fingerprint": signing.fingerprint(public), "valid_from": valid_from,
             "valid_to": valid_to, "revoked": None, "added_at": now_iso()}
    keyring.keys.append(entry)
    keyring.save()
    return entry


def revoke_key(path: Path, which: str, *, at: str | None = None, reason: str = "") -> list[dict[str, Any]]:
    """Revoke the key with this fingerprint, or every unrevoked key of this device."""
    keyring = load_keyring(path)
    at = at or now_iso()
    _when(at, "--at", Path(path))
    chosen = [e for e in keyring.keys if not e.get("revoked")
              and (e["fingerprint"] == which or e["device"] == which)]
    if not chosen:
        raise BadInput(_("no unrevoked key with fingerprint or device {which!r} in {path}; see 'fieldsync keyring "
                         "list'").format(which=which, path=path))
    for entry in chosen:
        entry["revoked"] = {"at": at, "reason": reason}
    keyring.save()
    return chosen


# --------------------------------------------------------------------------- checking a ledger

@dataclass
class SignatureCheck:
    """What one device's ledger's signatures prove."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signers: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> who, records
    unsigned: int = 0
    verified: set[str] = field(default_factory=set)


def _compare(a: datetime, b: datetime) -> int:
    # A date without a zone is read in the zone of the time it is compared with.
    if a.tzinfo is None and b.tzinfo is not None:
        a = a.replace(tzinfo=b.tzinfo)
    elif b.tzinfo is None and a.tzinfo is not None:
        b = b.replace(tzinfo=a.tzinfo)
    return (a > b) - (a < b)


def _parse_time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _seqs(seqs: list) -> str:
    shown = ", ".join(str(s) for s in seqs[:SHOWN_SEQS])
    more = _(", … ({count} records)").format(count=len(seqs)) if len(seqs) > SHOWN_SEQS else ""
    return (_("records {seqs}{more}") if len(seqs) > 1 else _("record {seqs}{more}")).format(seqs=shown, more=more)


def _entry_issue(entry: dict[str, Any], device: str, record: dict[str, Any]) -> str | None:
    """Why a validly signed record is not vouched for by its keyring entry, or None."""
    who = _("key {fingerprint} (device {device}, inspector {inspector})").format(
        fingerprint=entry["fingerprint"], device=entry["device"], inspector=entry.get("inspector") or "?")
    body = record.get("body") if isinstance(record.get("body"), dict) else {}
    if entry["device"] != device or body.get("device", device) != device:
        return (_("signed with {who}, which the keyring registers for another device: a record moved between "
                  "ledgers, or the ledger rebuilt").format(who=who))
    signed_at = _parse_time(record.get("signed_at"))
    if signed_at is None:
        return _("signed with {who}, but its signing time is not a time").format(who=who)
    revoked = entry.get("revoked")
    if revoked and _compare(signed_at, datetime.fromisoformat(str(revoked["at"]))) > 0:
        reason = f" ({revoked['reason']})" if revoked.get("reason") else ""
        return (_("signed with {who} after it was revoked on {at}{reason}: do not rely on these records; they may "
                  "come from a lost or stolen tablet").format(who=who, at=revoked["at"], reason=reason))
    start, end = entry.get("valid_from"), entry.get("valid_to")
    if (start and _compare(signed_at, datetime.fromisoformat(str(start))) < 0) or \
            (end and _compare(signed_at, datetime.fromisoformat(str(end))) > 0):
        return (_("signed with {who} outside its validity ({start} to {end}): a wrong tablet clock, or a key "
                  "used where it should not be").format(who=who, start=start or "…", end=end or "…"))
    return None


def _signature_valid(record: dict[str, Any], verified: set[str] | None, seen: set[str]) -> bool:
    """ledger.signature_valid, skipped for the exact (message, key, signature) checked before."""
    if verified is None:
        return ledger.signature_valid(record)
    token = hashlib.sha256(ledger.signed_message(record) + str(record.get("key")).encode()
                           + str(record.get("sig")).encode()).hexdigest()[:32]
    if token in verified or ledger.signature_valid(record):
        seen.add(token)
        return True
    return False


def check_ledger(device: str, parsed: ledger.Parsed, keyring: Keyring | None,
                 verified: set[str] | None = None) -> SignatureCheck:
    """Check every record's signature, and, given a keyring, that a registered, valid,
    unrevoked key of this device made it. Messages are grouped by cause, not one per record.

    verified: tokens of signatures that verified before (verify's cache); the ones that
    verify now are added to result.verified."""
    result = SignatureCheck()
    grouped: dict[str, list] = {}
    signing_began = False
    registered = keyring.of_device(device) if keyring else []
    since = min((datetime.fromisoformat(str(e["valid_from"])) for e in registered if e.get("valid_from")),
                default=None, key=lambda d: d.replace(tzinfo=None))
    for record in parsed.records:
        seq = record.get("seq")
        if "sig" not in record:
            body = record.get("body") if isinstance(record.get("body"), dict) else {}
            at = _parse_time(body.get("at"))
            if signing_began:
                grouped.setdefault(_("not signed, though records before it are: added or rewritten "
                                   "by someone without the tablet's key"), []).append(seq)
            elif since is not None and at is not None and _compare(at, since) >= 0:
                grouped.setdefault(_("not signed, though dated after {device} was registered in the keyring "
                                     "({since}): written without the tablet's key").format(
                                     device=device, since=since.date()),
                                   []).append(seq)
            else:
                result.unsigned += 1
            continue
        signing_began = True
        if not _signature_valid(record, verified, result.verified):
            grouped.setdefault(_("signature does not verify: record edited, or the ledger rebuilt "
                               "without the tablet's private key"), []).append(seq)
            continue
        fingerprint = signing.fingerprint(record["key"])
        signer = result.signers.setdefault(fingerprint, {"fingerprint": fingerprint, "key": record["key"],
                                                         "records": 0, "registered": None})
        signer["records"] += 1
        if keyring is None:
            continue
        entry = keyring.lookup(record["key"])
        if entry is None:
            grouped.setdefault(_("signed with key {fingerprint}, which keyring {name} does not list: not a "
                                 "registered tablet's key (ledger rebuilt by someone else), or {device} was never "
                                 "registered — the back office checks the tablet's 'fieldsync keyring device-key' "
                                 "and runs 'fieldsync keyring add'").format(
                                 fingerprint=fingerprint, name=keyring.path.name, device=device), []).append(seq)
            continue
        signer.update(registered={k: entry.get(k) for k in
                                  ("device", "inspector", "valid_from", "valid_to", "revoked")})
        issue = _entry_issue(entry, device, record)
        if issue:
            grouped.setdefault(issue, []).append(seq)
    for message, seqs in grouped.items():
        result.problems.append(f"{_seqs(seqs)}: {message}")
    if registered and parsed.records and not signing_began:
        result.problems.append(_("no record is signed, though the keyring registers {device}: the ledger was "
                                 "rebuilt without signatures, or the tablet has not synced since it got its key "
                                 "(sync it, then verify again)").format(device=device))
    elif keyring is not None and not registered and result.unsigned:
        result.problems.append(_("{unsigned} unsigned record(s) from {device}, a device the keyring {name} does not "
                                 "list: nothing vouches for them (a ledger planted on the share, or a tablet never "
                                 "registered)").format(
                                 unsigned=result.unsigned, device=device, name=keyring.path.name))
    elif result.unsigned:
        result.warnings.append(_("{unsigned} unsigned record(s), written before signing began: they prove only as "
                                 "much as the share's own integrity").format(unsigned=result.unsigned))
    return result
