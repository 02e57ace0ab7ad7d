"""manifest.json: one hash-chained evidence entry per photo of a visit (spec.md fields).

The engine (and `fieldsync add`) calls record_original() before a photo is shrunk or archived
and record_result() once the final file is in place. The first keeps what only the original
can tell (its SHA-256, size, EXIF facts) as a *pending* record; the second seals the entry:
it names the previous entry's hash, so editing, removing or reordering an entry breaks the
chain, and the new chain head goes into the device's append-only ledger (ledger.py), so even
a consistently rewritten or rolled-back manifest no longer matches the ledger.

Entries are only ever appended. A photo filed again under the same path gets a new entry;
the last entry for a path is the one its file must match.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from fieldsync.base.atomic import write_text
from fieldsync.base.clock import now_iso
from fieldsync.base.hashing import GENESIS, digest, file_sha256
from fieldsync.base.i18n import _
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Config
from fieldsync.errors import TreeError
from fieldsync.evidence import ledger
from fieldsync.media.exif import photo_facts
from fieldsync.tree.layout import MANIFEST_FILE, NOTE_FIELDS, VISIT_FILE, relative

__all__ = ["record_original", "record_result", "record_removal", "record_remarks", "photo_facts", "load",
           "entry_hash", "chain_problems", "current_entries", "remarks_seal"]

FORMAT = "fieldsync-manifest/1"
# visit.yaml fields fixed at creation; remark history must keep them and only ever append.
ORIGIN_FIELDS = ("created_at", "account_no", "business", "category", "inspector", "device")


# --------------------------------------------------------------------------- reading

def load(visit_dir: Path) -> dict[str, Any] | None:
    """The visit's manifest, or None when it has none yet."""
    path = Path(visit_dir) / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TreeError(_("{path} cannot be read ({exc}); restore it from the server").format(
                          path=path, exc=exc)) from None
    return parse(raw, path)


def parse(raw: bytes, path: Path | str = MANIFEST_FILE) -> dict[str, Any]:
    """A manifest from its bytes; TreeError (naming `path`) when it is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TreeError(_("{path} cannot be read ({exc}); restore it from the server, then run 'fieldsync "
                          "verify'").format(
                          path=path, exc=exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise TreeError(_("{path} is not a fieldsync manifest; restore it from the server").format(path=path))
    return data


def _new_manifest() -> dict[str, Any]:
    # visit_id survives renames of the visit folder: the ledger refers to visits by it.
    return {"format": FORMAT, "visit_id": uuid.uuid4().hex, "head": GENESIS,
            "entries": [], "pending": {}}


def _save(visit_dir: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=False) + "\n"
    write_text(Path(visit_dir) / MANIFEST_FILE, text)


# --------------------------------------------------------------------------- chain (pure)

def entry_hash(entry: dict[str, Any]) -> str:
    """The hash an entry must carry: SHA-256 of its canonical JSON without 'hash'."""
    return digest({k: v for k, v in entry.items() if k != "hash"})


TOP_KEYS = {"format", "visit_id", "head", "entries", "pending", "remarks"}


def chain_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a manifest's form and chain (empty when intact)."""
    problems = []
    if data.get("format") != FORMAT:
        problems.append(_("format is {format!r}, expected {expected!r}").format(
            format=data.get("format"), expected=FORMAT))
    unknown = set(data) - TOP_KEYS
    if unknown:
        problems.append(_("unknown keys {keys} (manifest edited)").format(keys=", ".join(sorted(map(str, unknown)))))
    pending = data.get("pending", {})
    if not isinstance(pending, dict) or not all(isinstance(v, dict) for v in pending.values()):
        problems.append(_("'pending' is not a mapping of photo records (manifest edited)"))
    if data.get("remarks") is not None and not isinstance(data.get("remarks"), dict):
        problems.append(_("'remarks' is not a seal record (manifest edited)"))
    prev = GENESIS
    for index, entry in enumerate(data.get("entries", []), start=1):
        if not isinstance(entry, dict):
            problems.append(_("entry {index} is not a record").format(index=index))
            prev = None
            continue
        name = entry.get("path", f"#{index}")
        if entry.get("seq") != index:
            problems.append(_("entry {index} ({name}): sequence number {seq!r}, expected {index} (entries removed "
                              "or reordered)").format(index=index, name=name, seq=entry.get("seq")))
        if entry.get("hash") != entry_hash(entry):
            problems.append(_("entry {index} ({name}): content does not match its hash (entry edited)").format(
                              index=index, name=name))
        if prev is not None and entry.get("prev") != prev:
            problems.append(_("entry {index} ({name}): does not follow the entry before it (entries removed, "
                              "inserted or reordered)").format(index=index, name=name))
        prev = entry.get("hash")
    if data.get("head") != (prev if data.get("entries") else GENESIS):
        problems.append(_("manifest head is not the hash of its last entry"))
    return problems


def current_entries(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """path -> the last entry for it (the one the file must match now; "removed": absent)."""
    return {e["path"]: e for e in data.get("entries", [])
            if isinstance(e, dict) and isinstance(e.get("path"), str)}


# --------------------------------------------------------------------------- remarks

def remarks_seal(visit_dir: Path) -> dict[str, Any] | None:
    """A seal of visit.yaml's remark history: how long it is, and hashes of it and its origin.

    A later seal must extend an earlier one: the first `history_len` edits hash the same and
    the origin (creation fields and first remark texts) is unchanged. None without visit.yaml.
    """
    path = Path(visit_dir) / VISIT_FILE
    if not path.exists():
        return None
    data = read_yaml(path)
    history = data.get("history") or []
    if not isinstance(history, list):
        raise TreeError(_("{path}: 'history' is not a list; restore the file from the server").format(path=path))
    # The texts themselves too: a later hand edit of visit.yaml (a text editor, the file
    # manager) is recorded as an edit from these values, which the hashes alone cannot give.
    values = {field: str(data.get(field) or "") for field in NOTE_FIELDS}
    return {"history_len": len(history), "history_sha256": digest(history),
            "origin_sha256": digest(remarks_origin(data)), "values": values}


def sealed_remarks(visit_dir: Path) -> dict[str, str]:
    """The remark texts as last sealed in the visit's manifest ({} when none were sealed)."""
    try:
        data = load(Path(visit_dir))
    except TreeError:
        return {}
    seal = (data or {}).get("remarks")
    values = seal.get("values") if isinstance(seal, dict) else None
    return {key: str(value) for key, value in values.items()} if isinstance(values, dict) else {}


def remarks_origin(data: dict[str, Any]) -> dict[str, Any]:
    """The visit as created: fixed fields and each remark's first text (from the history)."""
    origin = {key: data.get(key) for key in ORIGIN_FIELDS}
    history = data.get("history") or []
    for field in NOTE_FIELDS:
        first = next((h for h in history if isinstance(h, dict) and h.get("field") == field), None)
        origin[field] = (first.get("old") if first else data.get(field)) or ""
    return origin


# --------------------------------------------------------------------------- recording

def record_original(cfg: Config, visit_dir: Path, photo_rel: str, kind: str, original: Path) -> None:
    """Record what the original photo proves, before it is shrunk or archived.

    photo_rel is the photo's path relative to the visit folder, POSIX form ("外观/IMG_1.jpg").
    """
    sha256, size = file_sha256(original)
    facts = photo_facts(original)
    pending = {
        "path": _rel(photo_rel), "kind": kind,
        "original_sha256": sha256, "original_bytes": size,
        "original_width": facts["width"], "original_height": facts["height"],
        "taken_at": facts["taken_at"], "gps": facts["gps"], "camera": facts["camera"],
        "inspector": cfg.inspector, "device": cfg.device, "filed_at": now_iso(),
    }
    with ledger.lock(cfg):
        data = load(visit_dir) or _new_manifest()
        # First sighting wins until the entry is sealed: after a crash between shrink and
        # record_result, the engine may offer the already shrunk file as "original" again.
        if pending["path"] not in data.setdefault("pending", {}):
            data["pending"][pending["path"]] = pending
            _save(visit_dir, data)


def record_result(cfg: Config, visit_dir: Path, photo_rel: str, final: Path) -> None:
    """Seal the photo's entry once its final (shrunk or unchanged) file is in place."""
    rel = _rel(photo_rel)
    sha256, size = file_sha256(final)
    facts = photo_facts(final)
    with ledger.lock(cfg):
        data = load(visit_dir) or _new_manifest()
        pending = data.setdefault("pending", {}).pop(rel, None)
        last = current_entries(data).get(rel)
        if pending is None:
            if last is not None and last.get("sha256") == sha256:
                return  # already sealed (a retry after a crash): nothing new to prove
            pending = _pending_from_final(cfg, rel, sha256, size, facts)
        if not (last and last.get("sha256") == sha256
                and last.get("original_sha256") == pending["original_sha256"]):
            entry = {"seq": len(data["entries"]) + 1, **pending,
                     "sha256": sha256, "bytes": size,
                     "width": facts["width"], "height": facts["height"],
                     "sealed_at": now_iso(), "prev": data.get("head") or GENESIS}
            for key in ("taken_at", "gps", "camera"):  # the original knows best; else the final
                entry[key] = entry.get(key) or facts[key]
            entry["hash"] = entry_hash(entry)
            data["entries"].append(entry)
            data["head"] = entry["hash"]
        _seal_visit(cfg, visit_dir, data)


def record_removal(cfg: Config, visit_dir: Path, photo_rel: str, reason: str = "") -> None:
    """Seal that a photo was withdrawn on purpose (sync.deletes: mirror, a wrong photo, a
    quarantined file): verify then expects it absent instead of reporting it deleted. The old
    entry stays; a pending record (recorded, never sealed) is dropped. Nothing to change,
    nothing written."""
    rel = _rel(photo_rel)
    with ledger.lock(cfg):
        data = load(visit_dir)
        if data is None:
            return
        pending = data.setdefault("pending", {}).pop(rel, None)
        last = current_entries(data).get(rel)
        sealed = last is not None and not last.get("removed")
        if pending is None and not sealed:
            return
        if sealed:
            entry = {"seq": len(data["entries"]) + 1, "path": rel, "removed": True, "reason": reason,
                     "inspector": cfg.inspector, "device": cfg.device, "removed_at": now_iso(),
                     "prev": data.get("head") or GENESIS}
            entry["hash"] = entry_hash(entry)
            data["entries"].append(entry)
            data["head"] = entry["hash"]
        _seal_visit(cfg, visit_dir, data)


def record_remarks(cfg: Config, visit_dir: Path) -> None:
    """Seal visit.yaml's current remark history into the ledger (call after each edit).

    Without this call an edit is still checked by verify (the history must extend the last
    seal), but it is only sealed with the visit's next photo.
    """
    with ledger.lock(cfg):
        data = load(visit_dir) or _new_manifest()
        _seal_visit(cfg, visit_dir, data)


def ensure_logged(cfg: Config, visit_dir: Path) -> None:
    """Log the visit's manifest head in the ledger if it is not there yet.

    _seal_visit writes the manifest, then the ledger: a crash between the two leaves a head
    that only a later record of the same visit would log. The engine calls this for every
    manifest it is about to push, so the server never gets a head its ledger does not seal.
    """
    with ledger.lock(cfg):
        data = load(visit_dir)
        if data and data.get("visit_id") and data.get("head"):
            ledger.log_visit(cfg, relative(cfg.root, Path(visit_dir)), data)


def _seal_visit(cfg: Config, visit_dir: Path, data: dict[str, Any]) -> None:
    # Manifest first, ledger second: after a crash between the two, the next record for
    # this visit logs the head again (ledger.log_visit appends only when something changed).
    try:
        data["remarks"] = remarks_seal(visit_dir)
    except TreeError:
        pass  # a broken visit.yaml must not stop photos being sealed; verify reports it
    _save(visit_dir, data)
    ledger.log_visit(cfg, relative(cfg.root, Path(visit_dir)), data)


def _pending_from_final(cfg: Config, rel: str, sha256: str, size: int, facts: dict) -> dict:
    # No record_original (a photo filed by an older version, or already small enough and
    # handed over directly): the final file is its own original.
    kinds = {folder: kind for kind, folder in cfg.layout.kind_folders.items()}
    return {"path": rel, "kind": kinds.get(PurePosixPath(rel).parts[0], "unknown"),
            "original_sha256": sha256, "original_bytes": size,
            "original_width": facts["width"], "original_height": facts["height"],
            "taken_at": facts["taken_at"], "gps": facts["gps"], "camera": facts["camera"],
            "inspector": cfg.inspector, "device": cfg.device, "filed_at": now_iso()}


def _rel(photo_rel: str) -> str:
    # Taken literally: "/" separates the photo folder from the name, nothing else does. A
    # backslash is refused up front by the engine (base.names.photo_name_problem); rewriting
    # it to "/" here would seal a path that does not exist, and verify would report it.
    rel = PurePosixPath(str(photo_rel))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise TreeError(_("{photo_rel!r} is not a path inside the visit folder").format(photo_rel=photo_rel))
    return rel.as_posix()
