"""Take photo (P9) with the tablet's own camera: file complete photos from camera.inbox into
the active target (one visit, one kind) that `fieldsync visit use` set.

The active target lives in ROOT/.fieldsync/active.json and expires after camera.idle_minutes
without use, so tomorrow's photos never land in today's visit. A photo is filed only when it
is complete: its size and mtime did not change over sync.settle_seconds and it decodes to the
end (a camera app still writing it leaves a truncated JPEG). Photos that cannot be filed stay
in the inbox and are reported; nothing here ever overwrites or deletes a photo that was not
first placed safely in the tree.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from filelock import FileLock, Timeout

from fieldsync.base.atomic import write_text
from fieldsync.base.clock import iso, now
from fieldsync.base.debounce import TEMP_SUFFIXES
from fieldsync.base.i18n import N_, _
from fieldsync.config import Config
from fieldsync.errors import BadInput, FieldsyncError, TreeError
from fieldsync.media.imaging import is_photo_name, open_image, register_heif
from fieldsync.tree import photos
from fieldsync.tree.layout import PHOTO_KINDS, classify, relative

log = logging.getLogger(__name__)

ACTIVE_FILE = "active.json"
FILED_FILE = "inbox-filed.json"
LOCK_FILE = "inbox.lock"
LOCK_TIMEOUT_SECONDS = 60.0
IDLE_POLL_SECONDS = 5.0

# Names camera apps and Android's MediaStore use while a file is not finished, or after it
# was deleted: hidden names (.pending-1700000000-IMG_1.jpg, .trashed-..., our own .add.*.tmp)
# and these endings.

# FAT/exFAT cards store mtime in 2-second steps: a photo taken right after `visit use` must
# not look older than the target.
MTIME_SLACK_SECONDS = 2.0
# A photo whose size has not changed for this long and still does not decode is broken, not
# being written: report it instead of trying it again on every pass.
UNREADABLE_AFTER_SECONDS = 120.0

# Why photos were left in the inbox (InboxResult.reason); the CLI shows REASON_TEXT.
NO_INBOX = "no-inbox"
INBOX_MISSING = "inbox-missing"
INBOX_DENIED = "inbox-denied"
NO_TARGET = "no-target"
EXPIRED = "expired"
VISIT_MISSING = "visit-missing"

REASON_TEXT = {
    NO_INBOX: N_("camera.inbox is not set in config.yaml (set it to the folder your camera app writes to)"),
    INBOX_MISSING: N_("the camera inbox folder does not exist; check camera.inbox in config.yaml"),
    INBOX_DENIED: N_("no permission to read the camera inbox (Android: run 'termux-setup-storage' "
                     "and allow access to photos; see docs/platforms/android.md)"),
    NO_TARGET: N_("no active visit: run 'fieldsync visit use VISIT --kind appearance|nameplate'"),
    EXPIRED: N_("the active visit expired (camera.idle_minutes without use): run 'fieldsync visit use' again"),
    VISIT_MISSING: N_("the active visit folder no longer exists (renamed or removed): run 'fieldsync visit use' again"),
}


# --------------------------------------------------------------------------- the active target

@dataclass(frozen=True)
class ActiveTarget:
    """Where camera photos go: a visit (relative to ROOT) and a kind, with its idle clock."""

    visit: PurePosixPath
    kind: str
    set_at: datetime
    last_used: datetime

    def expires_at(self, cfg: Config) -> datetime:
        return self.last_used + timedelta(minutes=cfg.camera.idle_minutes)

    def is_expired(self, cfg: Config, at: datetime | None = None) -> bool:
        return (at or now()) >= self.expires_at(cfg)

    def visit_path(self, cfg: Config) -> Path:
        return cfg.root / Path(*self.visit.parts)

    def folder_name(self, cfg: Config) -> str:
        return cfg.layout.kind_folders[self.kind]

    def to_json(self) -> dict:
        return {"visit": self.visit.as_posix(), "kind": self.kind,
                "set_at": iso(self.set_at),
                "last_used": iso(self.last_used)}


@dataclass(frozen=True)
class TargetStatus:
    """The active target as `status` and `visit use` show it."""

    state: str  # active | none | expired | visit-missing
    target: ActiveTarget | None
    expires_at: datetime | None = None

    @property
    def live(self) -> ActiveTarget | None:
        return self.target if self.state == "active" else None


def _lock(cfg: Config) -> FileLock:
    # One lock for active.json and the inbox: a `visit use` never interleaves with a filing
    # pass of the daemon, so a photo cannot land in a target that was just replaced.
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(cfg.state_dir / LOCK_FILE, timeout=LOCK_TIMEOUT_SECONDS)


class _Locked:
    def __init__(self, cfg: Config):
        self.lock = _lock(cfg)

    def __enter__(self):
        try:
            self.lock.acquire()
        except Timeout:
            raise TreeError(_("another fieldsync is filing camera photos (lock {lock_file}); try again in a "
                              "minute").format(lock_file=self.lock.lock_file)) from None
        return self

    def __exit__(self, *exc):
        self.lock.release()


def load_active(cfg: Config) -> ActiveTarget | None:
    """The stored target, expired or not; None when none is set."""
    path = cfg.state_dir / ACTIVE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        target = ActiveTarget(visit=PurePosixPath(data["visit"]), kind=data["kind"],
                              set_at=datetime.fromisoformat(data["set_at"]),
                              last_used=datetime.fromisoformat(data["last_used"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TreeError(_("{path} cannot be read ({name}); run 'fieldsync visit use --clear' and set the visit "
                          "again").format(path=path, name=exc.__class__.__name__)) from None
    if target.kind not in PHOTO_KINDS or target.visit.is_absolute() or ".." in target.visit.parts:
        raise TreeError(_("{path} does not name a visit in the tree; run 'fieldsync visit use --clear'").format(
                          path=path))
    return target


def _save_active(cfg: Config, target: ActiveTarget) -> None:
    write_text(cfg.state_dir / ACTIVE_FILE, json.dumps(target.to_json(), ensure_ascii=False, indent=1) + "\n",
               private=True)


def target_status(cfg: Config, at: datetime | None = None) -> TargetStatus:
    """Is there a target photos would go to right now, and if not, why not."""
    target = load_active(cfg)
    if target is None:
        return TargetStatus("none", None)
    if target.is_expired(cfg, at):
        return TargetStatus(EXPIRED, target, target.expires_at(cfg))
    if not target.visit_path(cfg).is_dir():
        return TargetStatus(VISIT_MISSING, target, target.expires_at(cfg))
    return TargetStatus("active", target, target.expires_at(cfg))


def _check_kind(kind: str) -> str:
    if kind not in PHOTO_KINDS:
        raise BadInput(_("unknown photo kind {kind!r}; use appearance or nameplate").format(kind=kind))
    return kind


def use_visit(cfg: Config, visit: Path, kind: str, at: datetime | None = None) -> ActiveTarget:
    """Make `visit` (a visit folder, already resolved) the target for camera photos of `kind`."""
    _check_kind(kind)
    rel = relative(cfg.root, visit)
    if classify(rel, cfg.layout, is_dir=True).role != "visit" or not visit.is_dir():
        raise TreeError(_("{visit} is not a visit folder; give CUSTOMER/BUSINESS/CATEGORY/VISIT").format(visit=visit))
    at = at or now()
    target = ActiveTarget(rel, kind, at, at)
    with _Locked(cfg):
        _save_active(cfg, target)
        _FiledMemory(cfg, at).save()  # starts the copy-mode baseline on first use
    return target


def switch_kind(cfg: Config, kind: str, at: datetime | None = None) -> ActiveTarget:
    """Keep the active visit, change appearance <-> nameplate (restarts the idle clock)."""
    _check_kind(kind)
    at = at or now()
    with _Locked(cfg):
        target = require_live(cfg, at)
        # set_at moves too: photos taken before the switch belong to the old kind.
        changed = ActiveTarget(target.visit, kind, at if kind != target.kind else target.set_at, at)
        _save_active(cfg, changed)
    return changed


def clear_active(cfg: Config) -> ActiveTarget | None:
    """Forget the target; camera photos stay in the inbox until a new one is set."""
    with _Locked(cfg):
        try:
            target = load_active(cfg)
        except TreeError:  # a broken file: clearing it is exactly the way out
            target = None
        (cfg.state_dir / ACTIVE_FILE).unlink(missing_ok=True)
    return target


def require_live(cfg: Config, at: datetime | None = None) -> ActiveTarget:
    """The live target, or TreeError saying why there is none and what to run."""
    status = target_status(cfg, at)
    if status.live is None:
        raise TreeError(_(REASON_TEXT[NO_TARGET if status.state == "none" else status.state]))
    return status.live


def touch(cfg: Config, target: ActiveTarget, at: datetime | None = None) -> None:
    """Restart the idle clock of `target`, unless it was replaced meanwhile."""
    with _Locked(cfg):
        _touch_locked(cfg, target, at or now())


def _touch_locked(cfg: Config, target: ActiveTarget, at: datetime) -> None:
    current = load_active(cfg)
    if current and (current.visit, current.kind, current.set_at) == (target.visit, target.kind, target.set_at):
        _save_active(cfg, ActiveTarget(current.visit, current.kind, current.set_at, at))


# --------------------------------------------------------------------------- the inbox

def is_candidate(name: str) -> bool:
    """A finished photo by its name: not hidden, not a temp/pending name, a photo suffix."""
    lower = name.lower()
    return not name.startswith(".") and not lower.endswith(TEMP_SUFFIXES) and is_photo_name(name)


def decodes_to_the_end(path: Path) -> bool:
    """True when the image decodes completely: a truncated (still being written) file does not.

    JPEGs decode in draft mode (1/8 scale): libjpeg still reads every byte of the entropy
    data, so truncation is caught, for less than a full decode (bench/inbox.py: about 0.7x on
    noisy 12 MP photos, 0.25x on smooth ones).
    """
    register_heif()
    try:
        with open_image(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
        return True
    except Exception:  # any decoder complaint means: not a complete photo (yet)
        return False


@dataclass(frozen=True)
class Filed:
    source: Path  # where it was in the inbox
    target: Path  # where it is now in the tree
    kind: str


@dataclass
class InboxResult:
    """What one filing pass did, and what it left in the inbox and why."""

    inbox: Path | None
    target: ActiveTarget | None = None       # the live target photos went to, if any
    reason: str | None = None                # why `waiting` was not filed (REASON_TEXT key)
    filed: list[Filed] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)   # complete, left: no live target
    older: list[Path] = field(default_factory=list)     # complete, taken before the target was set
    settling: list[Path] = field(default_factory=list)  # still being written (or unreadable so far)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    next_check_seconds: float | None = None  # call again after this long to file `settling`

    @property
    def reason_text(self) -> str | None:
        return REASON_TEXT.get(self.reason) if self.reason else None


# name -> (size, mtime_ns, monotonic time first seen with that size and mtime)
Observations = dict[str, tuple[int, int, float]]


def _list_inbox(inbox: Path) -> dict[str, os.stat_result]:
    found = {}
    with os.scandir(inbox) as entries:
        for entry in entries:
            if is_candidate(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    found[entry.name] = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed between listing and stat
                    continue
    return found


def _stable(listing: dict[str, os.stat_result], seen: Observations, settle: float,
            clock: Callable[[], float]) -> tuple[list[str], list[str]]:
    """Split names into (stable, settling), updating `seen` with this observation."""
    now = clock()
    stable, settling = [], []
    for name, st in listing.items():
        key = (st.st_size, st.st_mtime_ns)
        before = seen.get(name)
        unchanged = before is not None and before[:2] == key
        if not unchanged:
            seen[name] = (*key, now)
        # Stable: seen before with the same size and mtime, at least `settle` seconds ago.
        (stable if unchanged and st.st_size > 0 and now - before[2] >= settle
         else settling).append(name)
    for name in list(seen):
        if name not in listing:
            del seen[name]
    return stable, settling


def file_inbox(cfg: Config, *, seen: Observations | None = None, include_older: bool = False,
               at: datetime | None = None, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> InboxResult:
    """File every complete photo in camera.inbox into the live active target.

    `seen` is the caller's memory between passes (the daemon keeps one InboxFiler): a photo
    is complete once its size and mtime were the same for sync.settle_seconds. Without it
    (a one-shot `fieldsync shoot`) this pass looks twice, settle_seconds apart.
    `include_older` also files photos taken before the target was set (`shoot --all`).
    """
    inbox = cfg.camera.inbox
    result = InboxResult(inbox)
    if inbox is None:
        result.reason = NO_INBOX
        return result
    settle = cfg.sync.settle_seconds
    with _Locked(cfg):
        try:
            listing = _list_inbox(inbox)
            one_shot = seen is None
            seen = {} if seen is None else seen
            stable, settling = _stable(listing, seen, settle, clock)
            if one_shot and settling:
                sleep(settle)
                listing = _list_inbox(inbox)
                stable, settling = _stable(listing, seen, settle, clock)
        except FileNotFoundError:
            result.reason = INBOX_MISSING
            return result
        except PermissionError:
            result.reason = INBOX_DENIED
            return result
        except NotADirectoryError:
            result.reason = INBOX_MISSING
            return result
        _file_stable(cfg, result, inbox, listing, sorted(stable, key=lambda n: (listing[n].st_mtime_ns, n)),
                     include_older, at or now(), seen, clock)
        result.settling = [inbox / name for name in sorted(settling)] + result.settling
        if result.settling:
            result.next_check_seconds = max(settle, 0.1)
    return result


def _file_stable(cfg: Config, result: InboxResult, inbox: Path, listing: dict[str, os.stat_result],
                 names: list[str], include_older: bool, at: datetime, seen: Observations,
                 clock: Callable[[], float]) -> None:
    memory = _FiledMemory(cfg, at)
    memory.forget_except({_key(name, listing[name]) for name in listing})
    status = target_status(cfg, at)
    target = status.live
    result.target = target
    if target is None:
        result.reason = NO_TARGET if status.state == "none" else status.state
    folder = photos.kind_folder(cfg, target.visit_path(cfg), target.kind) if target else None
    earliest = target.set_at.timestamp() - MTIME_SLACK_SECONDS if target else 0.0
    move = cfg.camera.mode == "move"
    for name in names:
        source, st = inbox / name, listing[name]
        key = _key(name, st)
        if memory.done(key):
            if move:  # filed before a crash between placing and removing: only the removal is left
                source.unlink(missing_ok=True)
            continue
        if not move and st.st_mtime < memory.baseline:
            continue  # copy mode: the camera roll from before fieldsync watched it is not ours
        if target is None:
            result.waiting.append(source)
            continue
        if st.st_mtime < earliest and not include_older:
            result.older.append(source)
            continue
        if not decodes_to_the_end(source):
            age = clock() - seen.get(name, (0, 0, clock()))[2]
            if age >= UNREADABLE_AFTER_SECONDS:
                result.failed.append((source, _("not a readable photo; file it by hand or delete it")))
            else:
                result.settling.append(source)
            continue
        try:
            placed = photos.place_copy(source, folder)
            # Remember before removing: a crash between the two never files the photo twice.
            memory.remember(key, relative(cfg.root, placed), at)
            if move:
                source.unlink()
        except OSError as exc:
            result.failed.append((source, exc.strerror or str(exc)))
            continue
        # No manifest record here: the engine records every photo it finds in a photo folder
        # (manifest.record_original) before shrinking it, and the filed file is the camera's
        # original byte for byte.
        result.filed.append(Filed(source, placed, target.kind))
    memory.save()
    if result.filed:
        _touch_locked(cfg, target, at)


def _key(name: str, st: os.stat_result) -> str:
    return f"{name}\t{st.st_size}\t{st.st_mtime_ns}"


class _FiledMemory:
    """ROOT/.fieldsync/inbox-filed.json: inbox files already filed, by name, size and mtime.

    Copy mode leaves the photo in the inbox; without this memory every pass would file it
    again. Entries are forgotten once the file has left the inbox. `baseline` is when
    fieldsync first looked at the inbox: in copy mode the camera roll from before is ignored.
    """

    def __init__(self, cfg: Config, at: datetime | None = None):
        self.path = cfg.state_dir / FILED_FILE
        self.changed = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.entries: dict[str, dict] = dict(data["files"])
            self.baseline = float(data["baseline"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            self.entries = {}
            self.baseline = (at or now()).timestamp() - MTIME_SLACK_SECONDS
            self.changed = True

    def done(self, key: str) -> bool:
        return key in self.entries

    def remember(self, key: str, placed: PurePosixPath, at: datetime) -> None:
        self.entries[key] = {"to": placed.as_posix(), "at": iso(at)}
        self.changed = True
        self.save()

    def forget_except(self, keys: set[str]) -> None:
        for key in set(self.entries) - keys:
            del self.entries[key]
            self.changed = True

    def save(self) -> None:
        if self.changed:
            text = json.dumps({"baseline": self.baseline, "files": self.entries}, ensure_ascii=False, indent=1)
            write_text(self.path, text + "\n", private=True)
            self.changed = False


def waiting_photos(cfg: Config) -> list[Path]:
    """Photos in the inbox not yet filed (for `status`): a listing, no decoding, no lock."""
    inbox = cfg.camera.inbox
    if inbox is None:
        return []
    try:
        listing = _list_inbox(inbox)
    except OSError:
        return []
    memory = _FiledMemory(cfg)
    copy = cfg.camera.mode == "copy"
    return [inbox / name for name, st in sorted(listing.items())
            if not memory.done(_key(name, st)) and not (copy and st.st_mtime < memory.baseline)]


def summary(cfg: Config, at: datetime | None = None) -> dict:
    """The camera part of `fieldsync status --json`: target, its state and expiry, waiting photos."""
    try:
        status = target_status(cfg, at)
    except TreeError as exc:
        return {"inbox": str(cfg.camera.inbox) if cfg.camera.inbox else None, "state": "broken",
                "error": str(exc), "target": None, "expires_at": None, "waiting": len(waiting_photos(cfg))}
    target = status.target
    return {
        "inbox": str(cfg.camera.inbox) if cfg.camera.inbox else None,
        "mode": cfg.camera.mode,
        "state": status.state,  # active | none | expired | visit-missing
        "target": ({"visit": target.visit.as_posix(), "kind": target.kind,
                    "folder": target.folder_name(cfg)} if target else None),
        "expires_at": iso(status.expires_at) if status.expires_at else None,
        "waiting": len(waiting_photos(cfg)),
    }


class InboxFiler:
    """The daemon's handle: call cycle() on every loop; it remembers what it saw last time,
    so stability is judged across cycles and the loop never sleeps for it."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.seen: Observations = {}
        self._last_reported: tuple[str | None, int] = (None, 0)  # log a waiting pile once, not every cycle

    @property
    def enabled(self) -> bool:
        return self.cfg.camera.inbox is not None

    def cycle(self) -> InboxResult:
        """One filing pass (cheap when the inbox is empty: one folder listing)."""
        return file_inbox(self.cfg, seen=self.seen)

    def run(self, stop: threading.Event, on_filed: Callable[[PurePosixPath], None] = lambda rel: None) -> None:
        """Cycle until `stop` is set (the daemon runs this on its own thread); `on_filed` gets
        each filed photo's path relative to ROOT, e.g. to wake the sync loop for it at once."""
        while not stop.is_set():
            try:
                result = self.cycle()
            except FieldsyncError as exc:  # e.g. the lock held by a long `shoot`: next cycle
                log.warning("camera inbox: %s", exc)
                stop.wait(IDLE_POLL_SECONDS)
                continue
            except Exception:  # a bug must not stop the photos from flowing next time
                log.exception("camera inbox: unexpected error")
                stop.wait(IDLE_POLL_SECONDS)
                continue
            for filed in result.filed:
                log.info("camera photo %s -> %s", filed.source.name, relative(self.cfg.root, filed.target))
                on_filed(relative(self.cfg.root, filed.target))
            for source, why in result.failed:
                log.warning("camera photo %s not filed: %s", source, why)
            if result.reason and (result.reason, len(result.waiting)) != self._last_reported:
                if result.waiting or result.reason in (INBOX_MISSING, INBOX_DENIED):
                    log.warning("camera inbox: %d photo(s) waiting: %s", len(result.waiting), result.reason_text)
            self._last_reported = (result.reason, len(result.waiting))
            stop.wait(self.wait_seconds(result))

    @staticmethod
    def wait_seconds(result: InboxResult) -> float:
        """How long the daemon may sleep before the next cycle: soon while photos are being
        written, else IDLE_POLL_SECONDS (camera apps on Android do not always cause file events)."""
        return min(result.next_check_seconds or IDLE_POLL_SECONDS, IDLE_POLL_SECONDS)
