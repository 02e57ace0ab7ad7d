"""Check a tree against its evidence: photos vs manifests, manifest chains, ledgers, remarks.

Works the same on the tablet tree, on the server's mirror and on an extracted evidence
bundle: each holds visit folders with manifest.json, and ledgers (the tablet its own,
ROOT/.fieldsync/ledger; the server and a bundle .fieldsync/ledgers/<device>).

Problems are breaches of evidence (a photo altered, missing or unlisted, a broken chain, a
manifest that does not match the ledger, a rewritten remark history). Warnings are doubts
about a photo's circumstances (far from the customer, EXIF time far from filing, no GPS) or
work in progress (a photo filed but not sealed yet, remark edits not yet sealed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from fieldsync.base import geo
from fieldsync.base.hashing import GENESIS, digest, handle_sha256
from fieldsync.base.i18n import _
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Layout
from fieldsync.errors import TreeError
from fieldsync.evidence import keys, ledger, manifest
from fieldsync.evidence import receipts as receipts_mod
from fieldsync.evidence.hashcache import HashCache
from fieldsync.media.imaging import is_photo_name
from fieldsync.tree.layout import CUSTOMER_FILE, MANIFEST_FILE, NOTE_FIELDS, VISIT_FILE, classify

PROBLEM, WARNING = "problem", "warning"
HASH_BATCH = 32  # files per thread hand-off


@dataclass(frozen=True)
class Finding:
    level: str  # problem | warning
    path: str   # relative to the verified tree, POSIX form
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Options:
    max_distance_m: float = 500.0      # photo GPS vs customer location; 0 turns it off
    max_skew: timedelta = timedelta(hours=12)  # EXIF time vs filed time
    warn_missing_gps: bool = True
    threads: int = max(2, min(16, (os.cpu_count() or 2) * 2))


DEFAULT_OPTIONS = Options()


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    visits: int = 0
    photos: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    cached: int = 0
    ledgers: dict[str, int] = field(default_factory=dict)  # device -> records
    ledger_heads: dict[str, str] = field(default_factory=dict)  # device -> last record's hash
    signers: dict[str, list[dict]] = field(default_factory=dict)  # device -> keys that signed its records
    unsigned: dict[str, int] = field(default_factory=dict)  # device -> records without a signature
    keyring: str | None = None  # the keyring the signatures were checked against, if any
    # With server receipts: server key fingerprint, records, and visit path -> what the server
    # received of it ({at, head, photos, current}); None when no receipts were given.
    receipts: dict[str, Any] | None = None

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == PROBLEM]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def clean(self) -> bool:
        return not self.findings

    def add(self, level: str, path: PurePosixPath | str, message: str) -> None:
        self.findings.append(Finding(level, str(path), message))

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "ok": not self.problems, "visits": self.visits,
                "photos": self.photos, "hashed": self.hashed, "hashed_bytes": self.hashed_bytes,
                "cached": self.cached, "ledgers": self.ledgers, "ledger_heads": self.ledger_heads,
                "signers": self.signers, "unsigned": self.unsigned, "keyring": self.keyring,
                "receipts": self.receipts,
                "problems": [asdict(f) for f in self.problems],
                "warnings": [asdict(f) for f in self.warnings]}


@dataclass
class _Visit:
    rel: PurePosixPath
    path: Path
    customer: str
    photos: set[str] = field(default_factory=set)  # relative to the visit, POSIX
    links: list[str] = field(default_factory=list)  # symbolic links inside it, never followed


# --------------------------------------------------------------------------- entry points

def verify_tree(root: Path, layout: Layout, ledger_files: dict[str, Path], *,
                cache: HashCache | None = None, options: Options = Options(),
                excerpts: bool | None = None, keyring: keys.Keyring | None = None,
                receipts: receipts_mod.Receipts | None = None,
                progress: Callable[[int, int], None] | None = None) -> Report:
    """Verify every visit under `root` against its manifest and the given ledgers.

    Every ledger record's signature is checked; with a `keyring`, also that a registered,
    valid, unrevoked key of the ledger's device made it (without one, a rewriter's own key
    would pass: report.keyring stays None and the caller must say so).

    excerpts: the ledgers may have records without bodies (an evidence bundle's excerpt);
    None decides by the presence of bundle.json. A full ledger never has them: a removed
    body could hide the latest seal of a visit.

    receipts: what the server received (checked against its key): every received visit head
    and ledger record must still be there, else the visit was deleted or the ledger rolled back.

    progress(done, total) is told of the photos hashed (those the cache cannot vouch for).
    """
    root = Path(root)
    if not root.is_dir():
        raise TreeError(_("{root} is not a folder; give the tree to verify").format(root=root))
    if excerpts is None:
        excerpts = (root / BUNDLE_FILE).is_file()
    report = Report(keyring=str(keyring.path) if keyring else None)
    parsed = _read_ledgers(root, ledger_files, excerpts, report)
    # Signatures are checked on a thread of their own while the tree is walked and hashed:
    # Ed25519 holds the GIL, but hashing photos releases it, so the two overlap on two cores.
    signer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-signatures")
    signatures = signer.submit(_check_signatures, ledger_files, parsed, keyring,
                               cache.signatures if cache is not None else None)
    signer.shutdown(wait=False)
    if receipts is not None:
        _start_receipts(root, receipts, parsed, ledger_files, report)
    visits = _find_visits(root, layout)
    report.visits = len(visits)
    checks: list[tuple[_Visit, dict, dict]] = []  # (visit, manifest, current entries)
    seen_ids: dict[str, PurePosixPath] = {}
    manifest_digests: set[str] = set()
    _report_links(visits, report)
    for visit in visits:
        loaded = _load_manifest(visit, report)
        if loaded is None:
            continue
        data, raw_sha256 = loaded
        manifest_digests.add(raw_sha256)
        visit_id = data.get("visit_id")
        if not isinstance(visit_id, str) or not visit_id:
            report.add(PROBLEM, visit.rel / MANIFEST_FILE, _("has no visit_id (not written by fieldsync)"))
        elif visit_id in seen_ids:
            report.add(PROBLEM, visit.rel, _("same visit_id as {other} (a visit folder copied; evidence can "
                                             "belong to one visit only)").format(other=seen_ids[visit_id]))
        seen_ids.setdefault(visit_id, visit.rel)
        for problem in _chain_problems(data, raw_sha256, cache):
            report.add(PROBLEM, visit.rel / MANIFEST_FILE, problem)
        checks.append((visit, data, manifest.current_entries(data)))
        _check_ledger(visit, data, parsed, report)
        _check_remarks(visit, data, parsed, report)
        if receipts is not None and visit_id in receipts.visits:
            _check_receipt(visit, data, receipts.visits[visit_id], report)
    if cache is not None:
        cache.chains &= manifest_digests  # forget manifests that have since changed
    try:
        _check_photos(root, checks, report, cache, options, progress)
    finally:
        checked = signatures.result()  # also when hashing failed: never leave the thread behind
    _report_signatures(root, ledger_files, checked, report, cache)
    if cache is not None:
        cache.save()
    _report_missing(parsed, receipts, seen_ids, report)
    report.findings.sort(key=lambda f: (f.level != PROBLEM, f.path, f.message))
    return report


def _read_ledgers(root: Path, ledger_files: dict[str, Path], excerpts: bool,
                  report: Report) -> dict[str, ledger.Parsed]:
    """Parse each ledger and check its chain; report what is wrong with it."""
    parsed: dict[str, ledger.Parsed] = {}
    for device, path in sorted(ledger_files.items()):
        parsed[device] = ledger.read(path)
        report.ledgers[device] = len(parsed[device].records)
        report.ledger_heads[device] = parsed[device].head
        problems = list(parsed[device].problems)
        if not excerpts:
            problems += [_("record {seq}: has no body (records must be complete outside a bundle)").format(
                             seq=r.get("seq")) for r in parsed[device].records if not isinstance(r.get("body"), dict)]
        for problem in problems:
            report.add(PROBLEM, _ledger_rel(root, path),
                       _("ledger {device}: {problem}").format(device=device, problem=problem))
    return parsed


def _check_signatures(ledger_files: dict[str, Path], parsed: dict[str, ledger.Parsed],
                      keyring: keys.Keyring | None, verified: set[str] | None) -> dict[str, keys.SignatureCheck]:
    """Every ledger's signatures (on the signature thread: reads, never writes, shared state)."""
    return {device: keys.check_ledger(device, parsed[device], keyring, verified) for device in sorted(ledger_files)}


def _report_signatures(root: Path, ledger_files: dict[str, Path], checked: dict[str, keys.SignatureCheck],
                       report: Report, cache: HashCache | None) -> None:
    verified: set[str] = set()
    for device, signatures in checked.items():
        where = _ledger_rel(root, ledger_files[device])
        verified |= signatures.verified
        report.signers[device] = list(signatures.signers.values())
        report.unsigned[device] = signatures.unsigned
        for problem in signatures.problems:
            report.add(PROBLEM, where, _("ledger {device}: {problem}").format(device=device, problem=problem))
        for warning in signatures.warnings:
            report.add(WARNING, where, _("ledger {device}: {problem}").format(device=device, problem=warning))
    if cache is not None:
        cache.signatures = verified  # forget signatures no ledger holds any more


def _report_missing(parsed: dict[str, ledger.Parsed], receipts: receipts_mod.Receipts | None,
                    seen_ids: dict[str, PurePosixPath], report: Report) -> None:
    """Visits a ledger logged, or the server received, that the tree no longer holds."""
    for device, result in parsed.items():
        for visit_id, body in result.latest_by_visit().items():  # once per ledger
            if visit_id not in seen_ids:
                report.add(PROBLEM, body.get("visit", visit_id),
                           _("visit logged in ledger {device} is missing from the tree (visit folder or its "
                             "manifest.json deleted)").format(device=device))
    for visit_id, body in (receipts.visits if receipts else {}).items():
        if visit_id not in seen_ids:
            report.add(PROBLEM, body.get("visit") or visit_id, receipts_mod.visit_gone(body))


def _start_receipts(root: Path, receipts: receipts_mod.Receipts, parsed: dict[str, ledger.Parsed],
                    ledger_files: dict[str, Path], report: Report) -> None:
    """The receipts file's own problems, and ledgers no longer holding what the server received."""
    where = _ledger_rel(root, receipts.path)
    for problem in receipts.problems:
        report.add(PROBLEM, where, problem)
    for device, problem in receipts_mod.ledger_problems(receipts, parsed).items():
        path = ledger_files.get(device, root / ledger.remote_rel(device))
        report.add(PROBLEM, _ledger_rel(root, path),
                   _("ledger {device}: {problem}").format(device=device, problem=problem))
    report.receipts = {"server_key": receipts.fingerprint, "records": len(receipts.records),
                       "file": where, "received": {}}


def _check_receipt(visit: _Visit, data: dict, body: dict, report: Report) -> None:
    chain = {GENESIS} | {e.get("hash") for e in data["entries"] if isinstance(e, dict)}
    if body.get("head") not in chain:
        report.add(PROBLEM, visit.rel / MANIFEST_FILE, receipts_mod.visit_rolled_back(body))
        return
    if report.receipts is not None:  # set by _start_receipts
        report.receipts["received"][str(visit.rel)] = {
            "at": body.get("at"), "head": body.get("head"), "photos": body.get("photos"),
            "device": body.get("device"), "current": body.get("head") == data.get("head")}


def tablet_ledgers(state_dir: Path, device: str) -> dict[str, Path]:
    """The tablet's own ledger (plus any pulled ones under .fieldsync/ledgers/)."""
    found = ledger.server_ledgers(state_dir.parent)
    found[device] = state_dir / ledger.LEDGER_NAME
    return found


# --------------------------------------------------------------------------- the walk

def _find_visits(root: Path, layout: Layout) -> list[_Visit]:
    """Visit folders and the photo files in them (any photo under a visit, at any depth).

    A photo is what media.imaging.is_photo_name says, the rule the engine seals by: a photo
    the engine filed is always found here. Photos outside the kind folders (which the engine
    does not seal) are found too, and reported as not in the manifest.

    Plain strings, and no descent into documents or folders that cannot hold visits: on a
    server tree of millions of files the walk is a large part of a re-verify.
    """
    visits: dict[str, _Visit] = {}
    top = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top).replace(os.sep, "/") if dirpath != top else ""
        parts = rel.split("/") if rel else []
        depth = len(parts)
        keep = sorted(d for d in dirnames if not d.startswith("."))
        if depth == 1:
            keep = [d for d in keep if d in layout.businesses]
        elif depth == 4:
            if classify(PurePosixPath(rel), layout, is_dir=True).role == "visit":
                visits[rel] = _Visit(PurePosixPath(rel), Path(dirpath), parts[0])
            else:
                keep = []
        dirnames[:] = keep
        if depth < 4:
            continue
        owner = visits.get("/".join(parts[:4]))
        if owner is None:
            continue
        inside = "/".join(parts[4:])
        # A link in a visit is not evidence: a photo reached through one could be any file
        # anywhere. os.walk lists links to folders among the folders and never enters them.
        for name in keep:
            if os.path.islink(os.path.join(dirpath, name)):
                owner.links.append(f"{inside}/{name}".lstrip("/"))
        for name in filenames:
            if os.path.islink(os.path.join(dirpath, name)):
                owner.links.append(f"{inside}/{name}".lstrip("/"))
            elif depth > 4 and is_photo_name(name):
                owner.photos.add(f"{inside}/{name}")
    return [visits[k] for k in sorted(visits)]


def _report_links(visits: list[_Visit], report: Report) -> None:
    for visit in visits:
        for link in visit.links:
            report.add(WARNING, visit.rel / link, _("is a symbolic link: not followed, not checked "
                       "(a visit holds files, not links; someone planted it or copied the folder badly)"))


def _load_manifest(visit: _Visit, report: Report) -> tuple[dict, str] | None:
    """(manifest, SHA-256 of its bytes), or None after reporting why there is none."""
    path = visit.path / MANIFEST_FILE
    try:
        raw = path.read_bytes()
        data = manifest.parse(raw, path)
    except FileNotFoundError:
        for photo in sorted(visit.photos):
            report.add(PROBLEM, visit.rel / photo, _("photo not in any manifest (visit has no "
                       "manifest.json: added by hand, or not filed yet — run 'fieldsync sync')"))
        return None
    except (OSError, TreeError) as exc:
        report.add(PROBLEM, visit.rel / MANIFEST_FILE,
                   _("unreadable ({reason})").format(reason=str(exc).split(": ", 1)[-1]))
        for photo in sorted(visit.photos):
            report.add(PROBLEM, visit.rel / photo, _("cannot be checked: its manifest is unreadable"))
        return None
    return data, hashlib.sha256(raw).hexdigest()


def _chain_problems(data: dict, raw_sha256: str, cache: HashCache | None) -> list[str]:
    """manifest.chain_problems, skipped for manifest bytes that passed before (by content
    hash, so no timing or stat trick can make a changed manifest look checked)."""
    if cache is not None and raw_sha256 in cache.chains:
        return []
    problems = manifest.chain_problems(data)
    if cache is not None and not problems:
        cache.chains.add(raw_sha256)
    return problems


def _ledger_rel(root: Path, path: Path) -> str:
    try:
        return PurePosixPath(Path(path).relative_to(root).as_posix()).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- ledger vs manifest

def _check_ledger(visit: _Visit, data: dict, parsed: dict[str, ledger.Parsed], report: Report) -> None:
    visit_id = data.get("visit_id")
    chain = {GENESIS} | {e.get("hash") for e in data["entries"] if isinstance(e, dict)}
    bodies = [body for result in parsed.values() for body in result.bodies_by_visit().get(visit_id, [])]
    for device, result in parsed.items():
        logged = result.bodies_by_visit().get(visit_id)
        latest = logged[-1] if logged else None
        if latest is not None and (latest.get("head") not in chain
                                   or len(data["entries"]) < (latest.get("photos") or 0)):
            report.add(PROBLEM, visit.rel / MANIFEST_FILE,
                       _("older than or different from what ledger {device} last sealed ({photos} photos, head "
                         "{head}…): manifest replaced by an older version or rewritten").format(
                         device=device, photos=latest.get("photos"), head=str(latest.get("head"))[:12]))
    if not data["entries"] and not data.get("remarks"):
        return
    if not bodies:
        report.add(PROBLEM, visit.rel / MANIFEST_FILE, _("no ledger seals this visit (ledger "
                   "missing, truncated or not pushed yet: sync the tablet, then verify again)"))
        return
    if data.get("head") not in {body.get("head") for body in bodies}:
        report.add(PROBLEM, visit.rel / MANIFEST_FILE, _("its last entries are not sealed in any "
                   "ledger (entries appended or rewritten after sealing, or the ledger was "
                   "truncated or not pushed yet)"))
    # The manifest keeps the remark seal it last logged: if no ledger record holds it, the
    # ledger lost its tail (or was not pushed after the last remark edit).
    if data.get("remarks") and digest(data["remarks"]) not in {digest(b.get("remarks")) for b in bodies}:
        report.add(PROBLEM, visit.rel / MANIFEST_FILE, _("its last remark seal is not in any ledger "
                   "(ledger truncated, or not pushed yet after a remark edit)"))


# --------------------------------------------------------------------------- remarks

def _check_remarks(visit: _Visit, data: dict, parsed: dict[str, ledger.Parsed], report: Report) -> None:
    latest = [result.bodies_by_visit().get(data.get("visit_id"), [None])[-1] for result in parsed.values()]
    seals = [body["remarks"] for body in latest if body and isinstance(body.get("remarks"), dict)]
    where = visit.rel / VISIT_FILE
    if not (visit.path / VISIT_FILE).exists():
        if seals:
            report.add(PROBLEM, where, _("missing, but the ledger sealed its remark history"))
        return
    try:
        yaml_data = read_yaml(visit.path / VISIT_FILE)
    except TreeError as exc:
        report.add(PROBLEM, where, str(exc).split(": ", 1)[-1])
        return
    history = yaml_data.get("history") or []
    if not isinstance(history, list):
        report.add(PROBLEM, where, "'history' is not a list")
        return
    _check_history_consistent(yaml_data, history, where, report)
    if not seals:
        return
    seal = max(seals, key=lambda s: s.get("history_len") or 0)
    sealed_len = seal.get("history_len") or 0
    if digest(manifest.remarks_origin(yaml_data)) != seal.get("origin_sha256"):
        report.add(PROBLEM, where, _("creation fields or first remark texts differ from the sealed "
                   "ones (remark history rewritten)"))
    if len(history) < sealed_len:
        report.add(PROBLEM, where, _("remark history has {history_count} edits, the ledger sealed {sealed_len} "
                                     "(edits removed)").format(history_count=len(history), sealed_len=sealed_len))
    elif digest(history[:sealed_len]) != seal.get("history_sha256"):
        report.add(PROBLEM, where, _("the first {sealed_len} remark edits differ from the sealed ones (remark "
                                     "history rewritten)").format(sealed_len=sealed_len))
    elif len(history) > sealed_len:
        report.add(WARNING, where, _("{count} remark edit(s) not sealed in the ledger yet (they are sealed with the "
                                     "next photo or 'visit edit')").format(count=len(history) - sealed_len))


def _check_history_consistent(data: dict, history: list, where: PurePosixPath, report: Report) -> None:
    # Each edit must start from the value the one before left, and the current remark must be
    # the last edit's result: otherwise a remark was changed without leaving history.
    values = manifest.remarks_origin(data)
    for index, edit in enumerate(history, start=1):
        if not isinstance(edit, dict) or not {"at", "by", "field", "old", "new"} <= edit.keys():
            report.add(PROBLEM, where, _("remark edit {index} is incomplete (needs at, by, field, old, new)").format(
                index=index))
            continue
        field_name = edit["field"]
        if field_name in NOTE_FIELDS:
            if (edit["old"] or "") != (values[field_name] or ""):
                report.add(PROBLEM, where, _("remark edit {index} ({field_name}) does not start from the text the "
                                             "edit before left (history rewritten)").format(
                                             index=index, field_name=field_name))
            values[field_name] = edit["new"] or ""
    for field_name in NOTE_FIELDS:
        if (data.get(field_name) or "") != (values[field_name] or ""):
            report.add(PROBLEM, where, _("{field_name} differs from its last recorded edit (changed without "
                                         "history)").format(field_name=field_name))


# --------------------------------------------------------------------------- photos

def _check_photos(root: Path, checks: list, report: Report, cache: HashCache | None,
                  options: Options, progress: Callable[[int, int], None] | None = None) -> None:
    jobs = _photo_jobs(checks, report)
    report.photos = len(jobs)
    # Plain strings: pathlib costs more than a cached stat on a 100,000-photo re-verify.
    keys = [f"{visit.rel.as_posix()}/{rel}" for visit, rel, _ in jobs]
    results = _hash_all(os.fspath(root) + os.sep, keys, cache, options.threads, progress)
    customers: dict[str, dict | None] = {}
    for (visit, _rel, entry), key, (sha256, size, hashed) in zip(jobs, keys, results):
        if hashed:
            report.hashed += 1
            report.hashed_bytes += size or 0
        else:
            report.cached += 1
        if sha256 is None:
            report.add(PROBLEM, key, _("cannot be read"))
        elif sha256 != entry.get("sha256") or size != entry.get("bytes"):
            report.add(PROBLEM, key, _("content differs from its manifest entry (SHA-256 {sha256}…, sealed "
                                       "{sealed}…): photo altered").format(
                                       sha256=sha256[:12], sealed=str(entry.get("sha256"))[:12]))
        if visit.customer not in customers:
            customers[visit.customer] = _customer_location(root / visit.customer)
        _circumstances(key, entry, customers[visit.customer], options, report)
    if cache is not None:
        cache.forget_missing(set(keys))  # saved by verify_tree, with the signatures' results


def _photo_jobs(checks: list, report: Report) -> list[tuple[_Visit, str, dict]]:
    """Compare each visit's photos with its manifest's names; return the photos to hash."""
    jobs: list[tuple[_Visit, str, dict]] = []
    for visit, data, current in checks:
        pending = data.get("pending") or {}
        for photo in sorted(visit.photos):
            if current.get(photo, {}).get("removed"):
                report.add(PROBLEM, visit.rel / photo, _("present, but its manifest entry says it was "
                           "withdrawn (a photo put back or replaced)"))
            elif photo in current:
                continue
            elif photo in pending:
                report.add(WARNING, visit.rel / photo, _("filed but not sealed yet (shrink or "
                           "sync still to run: 'fieldsync sync')"))
            else:
                report.add(PROBLEM, visit.rel / photo, _("photo not in the visit's manifest "
                           "(added by hand, or not filed yet: run 'fieldsync sync')"))
        for rel, entry in sorted(current.items()):
            if entry.get("removed"):
                continue
            if rel not in visit.photos:
                report.add(PROBLEM, visit.rel / rel, _("listed in the manifest but missing (deleted or renamed)"))
            else:
                jobs.append((visit, rel, entry))
    return jobs


def _hash_all(top: str, keys: list[str], cache: HashCache | None, threads: int,
              progress: Callable[[int, int], None] | None = None) -> list[tuple[str | None, int | None, bool]]:
    """(sha256, size, hashed now) per key: from the cache when the stat proves it, else hashed."""
    results: list = [None] * len(keys)
    misses = []
    for index, key in enumerate(keys):  # cache hits need a stat only: no thread hand-off
        results[index] = _from_cache(top + key, key, cache)
        if results[index] is None:
            misses.append(index)

    def work(indices: list[int]) -> None:
        for index in indices:
            results[index] = _digest(top + keys[index], keys[index], cache)

    # Batches, not one task per file: handing 100,000 tiny tasks to a pool costs more
    # than hashing them. hashlib releases the GIL, so the threads hash in parallel.
    batches = [misses[i:i + HASH_BATCH] for i in range(0, len(misses), HASH_BATCH)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = 0
        for batch, _none in zip(batches, pool.map(work, batches)):  # in order, as batches finish
            done += len(batch)
            if progress is not None:
                progress(done, len(misses))
    return results


def _from_cache(path: str, key: str, cache: HashCache | None) -> tuple[str, int, bool] | None:
    """(sha256, size, False) when the stat stamp proves the file unchanged since hashed."""
    if cache is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    cached = cache.lookup(key, st)
    return (cached, st.st_size, False) if cached is not None else None


def _digest(path: str, key: str, cache: HashCache | None) -> tuple[str | None, int | None, bool]:
    """(sha256, size, True): the file hashed now; cached for next time if it held still."""
    try:
        with open(path, "rb", buffering=0) as handle:
            before = os.fstat(handle.fileno())
            sha256, size = handle_sha256(handle)
            after = os.fstat(handle.fileno())
    except OSError:
        return None, None, True
    if cache is not None and (before.st_mtime_ns, before.st_ctime_ns, before.st_size) == \
            (after.st_mtime_ns, after.st_ctime_ns, after.st_size):
        cache.store(key, after, sha256)  # only a file that did not change while being read
    return sha256, size, True


def _customer_location(folder: Path) -> dict | None:
    try:
        location = read_yaml(folder / CUSTOMER_FILE).get("location")
    except TreeError:
        return None
    if isinstance(location, dict) and _is_number(location.get("lat")) and _is_number(location.get("lon")):
        return location
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def distance_m(a: dict, b: dict) -> float:
    """Metres between two {"lat", "lon"} records (base.geo's great-circle distance)."""
    return geo.distance_m(a["lat"], a["lon"], b["lat"], b["lon"])


def _circumstances(key: str, entry: dict, location: dict | None, options: Options, report: Report) -> None:
    gps = entry.get("gps")
    if not (isinstance(gps, dict) and _is_number(gps.get("lat")) and _is_number(gps.get("lon"))):
        if options.warn_missing_gps:
            report.add(WARNING, key, _("no GPS position in the photo's EXIF"))
    elif location and options.max_distance_m > 0:
        far = distance_m(gps, location)
        if far > options.max_distance_m:
            report.add(WARNING, key, _("taken {far:,.0f} m from the customer's recorded location (limit "
                                       "{max_distance_m:,.0f} m)").format(
                                       far=far, max_distance_m=options.max_distance_m))
    skew = time_skew(entry.get("taken_at"), entry.get("filed_at"))
    if skew is not None and abs(skew) > options.max_skew:
        hours = skew.total_seconds() / 3600
        message = (_("EXIF time {taken} is {hours:.1f} h before filing ({filed}): an old photo or a wrong camera "
                     "clock") if hours > 0 else
                   _("EXIF time {taken} is {hours:.1f} h after filing ({filed}): an old photo or a wrong camera "
                     "clock"))
        report.add(WARNING, key, message.format(taken=entry.get("taken_at"), hours=abs(hours),
                                                filed=entry.get("filed_at")))


def time_skew(taken_at: str | None, filed_at: str | None) -> timedelta | None:
    """filed_at - taken_at; an EXIF time without offset is read in the filing device's zone."""
    if not taken_at or not filed_at:
        return None
    try:
        filed = datetime.fromisoformat(filed_at)
        taken = datetime.fromisoformat(taken_at)
    except (TypeError, ValueError):  # not a time: the chain check reports the edit
        return None
    if taken.tzinfo is None and filed.tzinfo is not None:
        taken = taken.replace(tzinfo=filed.tzinfo)
    elif filed.tzinfo is None and taken.tzinfo is not None:
        filed = filed.replace(tzinfo=taken.tzinfo)
    return filed - taken



# --------------------------------------------------------------------------- trees to verify

BUNDLE_FILE = "bundle.json"  # at the top of an evidence bundle (evidence.py writes it)


def layout_of(tree_root: Path, fallback: Layout) -> Layout:
    """A bundle names the folder layout it was made with; any other tree uses `fallback`."""
    try:
        data = json.loads((Path(tree_root) / BUNDLE_FILE).read_text(encoding="utf-8"))
        names = data["layout"]
        return Layout(customer_folder=names["customer_folder"], businesses=tuple(names["businesses"]),
                      documents_folder=names["documents_folder"], visit_folder=names["visit_folder"],
                      appearance_folder=names["appearance_folder"], nameplate_folder=names["nameplate_folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return fallback


def cache_file_for(tree_root: Path, private_dir: Path) -> Path:
    """The verifier's own cache for a tree: in its private folder, never inside the tree."""
    return private_dir / "verify-cache" / f"{digest(str(Path(tree_root).resolve()))[:24]}.json"
