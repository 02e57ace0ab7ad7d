"""The quarantine: files set aside under ROOT/.fieldsync/quarantine/, listed, restored or cleared.

A set-aside file keeps its tree path (quarantine/CUSTOMER/.../外观/x.jpg), so the folder reads
well in a file manager. Beside it, a hidden record `.x.jpg.quarantine.json` says where it came
from, when, why, its size and SHA-256. The file moves first and the record follows, so a
crash in between leaves a file without a record, which is still listed (origin from its path);
never a record that hides a lost file. Nothing is ever overwritten: names that are taken get
a `-2`, `-3` ... suffix, on the way in and on the way back.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.atomic import fsync_dir, write_text
from fieldsync.base.clock import now_iso, stamp_iso
from fieldsync.base.hashing import file_sha256
from fieldsync.base.i18n import _
from fieldsync.base.names import NAME_MAX_BYTES, fit_name
from fieldsync.config import Config
from fieldsync.errors import QuarantineError
from fieldsync.tree.layout import is_private

QUARANTINE_DIR = "quarantine"
RECORD_SUFFIX = ".quarantine.json"
# Written by fieldsync before the quarantine had records of its own: "origin\nreason\n".
LEGACY_REASON_SUFFIX = ".reason.txt"
MAX_SUFFIX = 10_000  # -2 .. -9999: past that, something is writing in a loop; refuse


@dataclass(frozen=True)
class Entry:
    """One quarantined file."""

    id: str                      # short, stable while the file stays where it is
    stored: Path                 # where the file is now, under .fieldsync/quarantine/
    origin: PurePosixPath        # where it came from, relative to ROOT
    at: str                      # when it was set aside (ISO 8601 with offset)
    reason: str | None           # why; None when the record was never written (a crash)
    size: int                    # bytes now
    sha256: str | None = None    # as recorded when it was set aside
    recorded_size: int | None = None

    @property
    def grew(self) -> bool:
        """The file changed size after it was set aside: a writer was still at it."""
        return self.recorded_size is not None and self.recorded_size != self.size

    def as_json(self) -> dict:
        return {"id": self.id, "origin": self.origin.as_posix(), "stored": str(self.stored), "at": self.at,
                "reason": self.reason, "size": self.size, "sha256": self.sha256,
                "recorded_size": self.recorded_size}


def quarantine_dir(cfg: Config) -> Path:
    return cfg.state_dir / QUARANTINE_DIR


# --------------------------------------------------------------------------- in

def put(cfg: Config, path: Path, rel: PurePosixPath, reason: str) -> Entry:
    """Move `path` (the tree file at `rel`) into the quarantine and record why.

    Raises QuarantineError when the file cannot be moved (it then stays where it was).
    """
    rel = PurePosixPath(rel)
    _check_origin(rel)
    folder = quarantine_dir(cfg).joinpath(*rel.parts[:-1])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha256, size = file_sha256(path)
        stored = _move_no_overwrite(path, folder, rel.name)
    except OSError as exc:
        raise QuarantineError(_("{rel}: cannot set it aside in {folder} ({reason}); it stays in the tree and is "
                                "retried on the next sync").format(
                                rel=rel, folder=folder, reason=exc.strerror or exc)) from None
    record = {"origin": rel.as_posix(), "at": now_iso(), "reason": reason, "size": size, "sha256": sha256}
    # The file is safe in the quarantine now; a record that cannot be written only costs the
    # "why", which entries() reports as unknown.
    with contextlib.suppress(OSError):
        write_text(_record_path(stored), json.dumps(record, ensure_ascii=False, indent=1) + "\n", private=True)
    return _entry(cfg, stored)


# --------------------------------------------------------------------------- listing

def entries(cfg: Config) -> list[Entry]:
    """Every quarantined file, oldest first, with or without its record."""
    found = [_entry(cfg, path) for path in _stored_files(quarantine_dir(cfg))]
    return sorted(found, key=lambda e: (e.at, e.origin.as_posix(), e.id))


def select(cfg: Config, keys: Iterable[str]) -> list[Entry]:
    """The entries named by `keys`: an id from `entries`, the path a file came from (relative
    to ROOT or absolute), or its path in the quarantine. A path picks every entry that came
    from it (an interrupted writer may have left several). Raises QuarantineError for a key
    that matches nothing."""
    everything = entries(cfg)
    chosen: dict[str, Entry] = {}
    for key in keys:
        matches = [e for e in everything if _matches(cfg, e, key)]
        if not matches:
            raise QuarantineError(_("nothing in the quarantine matches {key!r}; 'fieldsync quarantine list' shows "
                                    "the ids and paths").format(key=key))
        chosen.update((e.id, e) for e in matches)
    return sorted(chosen.values(), key=everything.index)


def _matches(cfg: Config, entry: Entry, key: str) -> bool:
    if key == entry.id:
        return True
    text = key.replace("\\", "/").strip("/")
    if text == entry.origin.as_posix():
        return True
    candidate = Path(key).expanduser()
    if not candidate.is_absolute():
        candidate = Path.cwd() / candidate
    return candidate.absolute() in (entry.stored.absolute(), cfg.root.joinpath(*entry.origin.parts).absolute())


# --------------------------------------------------------------------------- out

def restore(cfg: Config, entry: Entry | str) -> Path:
    """Put a quarantined file back where it came from, under a `-N` name when that place is
    taken now, and drop its record. The engine sees a new file there and tries it again.

    Raises QuarantineError when the entry is gone or the file cannot be moved back.
    """
    entry = _resolve(cfg, entry)
    folder = cfg.root.joinpath(*entry.origin.parts[:-1])
    if not folder.resolve().is_relative_to(cfg.root.resolve()):
        # A folder on the way back was replaced by a symlink: never write outside ROOT.
        raise QuarantineError(_("{folder} leads outside the tree {root}; replace the symlink with a real folder, "
                                "then restore again").format(folder=folder, root=cfg.root))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = _move_no_overwrite(entry.stored, folder, entry.origin.name)
    except FileNotFoundError:
        raise QuarantineError(_("{stored} is no longer in the quarantine; 'fieldsync quarantine list' shows "
                                "what is").format(stored=entry.stored)) from None
    except OSError as exc:
        raise QuarantineError(_("cannot put {stored} back into {folder} ({reason}); free space or fix the folder's "
                                "permissions, then try again").format(
                                stored=entry.stored, folder=folder, reason=exc.strerror or exc)) from None
    _drop_records(entry.stored)
    _prune(entry.stored.parent, quarantine_dir(cfg))
    return target


def clear(cfg: Config, chosen: Iterable[Entry | str]) -> int:
    """Delete quarantined files for good, with their records; returns how many were deleted.

    Raises QuarantineError when one cannot be deleted (those before it are gone).
    """
    count = 0
    for item in chosen:
        entry = _resolve(cfg, item)
        try:
            entry.stored.unlink()
        except FileNotFoundError:
            pass  # deleted by hand meanwhile: the wish is granted
        except OSError as exc:
            raise QuarantineError(_("cannot delete {stored} ({reason})").format(
                                    stored=entry.stored, reason=exc.strerror or exc)) from None
        else:
            count += 1
        _drop_records(entry.stored)
        _prune(entry.stored.parent, quarantine_dir(cfg))
    return count


# --------------------------------------------------------------------------- inside

def _check_origin(rel: PurePosixPath) -> None:
    if rel.is_absolute() or not rel.parts or ".." in rel.parts or is_private(rel):
        raise QuarantineError(_("{rel}: not a path inside the tree; nothing was set aside").format(rel=rel))


def _resolve(cfg: Config, entry: Entry | str) -> Entry:
    if isinstance(entry, Entry):
        return entry
    matches = [e for e in entries(cfg) if e.id == entry]
    if not matches:
        raise QuarantineError(_("no quarantined file has the id {entry!r}; 'fieldsync quarantine list' shows "
                                "the ids").format(entry=entry))
    return matches[0]


def _move_no_overwrite(source: Path, folder: Path, name: str) -> Path:
    """Move `source` into `folder` as `name`, or `stem-N.suffix` when taken; never replaces.

    A hard link fails when the target exists, which makes "is it free?" and "take it" one
    step even with a second writer (the daemon's push threads) racing for the same name.
    """
    stem, suffix = _split(name)
    room = NAME_MAX_BYTES - len(f".{RECORD_SUFFIX}")  # the record beside it must fit too
    for n in range(1, MAX_SUFFIX):
        target = folder / fit_name("", stem, f"{suffix}" if n == 1 else f"-{n}{suffix}", room)
        if target.is_symlink() or target.exists() or _record_path(target).exists():
            continue
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links here (FAT, some Android FUSE mounts): checked above, then rename.
            os.rename(source, target)
        else:
            os.unlink(source)
        fsync_dir(folder)
        if source.parent != folder:
            fsync_dir(source.parent)
        return target
    raise OSError(errno.EEXIST, f"{MAX_SUFFIX} files named like {name} already there")


def _split(name: str) -> tuple[str, str]:
    # "x.jpg " keeps its trailing space on the suffix, so the name still reads as a photo.
    path = PurePosixPath(name)
    return (path.stem, path.suffix) if path.stem else (name, "")


def _record_path(stored: Path) -> Path:
    return stored.with_name(f".{stored.name}{RECORD_SUFFIX}")


def _legacy_path(stored: Path) -> Path:
    return stored.with_name(f"{stored.name}{LEGACY_REASON_SUFFIX}")


def _stored_files(folder: Path) -> Iterator[Path]:
    """Quarantined files: visible regular files that are not legacy reason notes."""
    try:
        items = sorted(os.scandir(folder), key=lambda item: item.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    names = {item.name for item in items}
    for item in items:
        if item.name.startswith("."):
            continue  # records and the temp files of their atomic writes
        if item.is_dir(follow_symlinks=False):
            yield from _stored_files(Path(item.path))
        elif item.is_file(follow_symlinks=False) and not _is_legacy_note(item.name, names):
            yield Path(item.path)


def _is_legacy_note(name: str, names: set[str]) -> bool:
    return name.endswith(LEGACY_REASON_SUFFIX) and name[: -len(LEGACY_REASON_SUFFIX)] in names


def _entry(cfg: Config, stored: Path) -> Entry:
    base = quarantine_dir(cfg)
    stored_rel = PurePosixPath(stored.relative_to(base).as_posix())
    st = stored.stat()
    record = _read_record(stored)
    origin = stored_rel
    with contextlib.suppress(QuarantineError, TypeError, ValueError):
        candidate = PurePosixPath(record.get("origin") or "")
        _check_origin(candidate)
        origin = candidate  # a hand-edited record must not lead outside the tree
    size = record.get("size")
    return Entry(
        id=hashlib.sha256(stored_rel.as_posix().encode("utf-8", "surrogateescape")).hexdigest()[:8],
        stored=stored, origin=origin,
        # Without a record, the inode's change time is when the move happened (a rename
        # keeps the mtime, which is the camera's).
        at=str(record.get("at") or stamp_iso(st.st_ctime)),
        reason=record.get("reason"), size=st.st_size, sha256=record.get("sha256"),
        recorded_size=size if isinstance(size, int) else None)


def _read_record(stored: Path) -> dict:
    try:
        data = json.loads(_record_path(stored).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return {"reason": f"(its record {_record_path(stored).name} is unreadable)"}
    try:
        origin, _, reason = _legacy_path(stored).read_text(encoding="utf-8").partition("\n")
    except (OSError, ValueError):
        return {}
    return {"origin": origin.strip(), "reason": reason.strip() or None}


def _drop_records(stored: Path) -> None:
    for record in (_record_path(stored), _legacy_path(stored)):
        with contextlib.suppress(FileNotFoundError):
            record.unlink()


def _prune(folder: Path, top: Path) -> None:
    """Remove folders the last entry left empty, up to the quarantine itself."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or not ours to remove
        folder = folder.parent
