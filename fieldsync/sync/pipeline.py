"""The photo pipeline: what happens to one photo before the engine pushes it.

The photo is decoded and shrunk into a hidden temp file first (one that does not decode to the
end leaves no trace), then the original is recorded in the visit's manifest before anything
replaces it, archived under .fieldsync/originals/ (or deleted once the upload is confirmed,
photos.originals: delete), the shrunk copy moved into place and the result sealed. A photo the
engine gives up on is quarantined under .fieldsync/quarantine/ with a note saying why, and its
pending manifest record dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path, PurePosixPath

from fieldsync.base.atomic import fsync_dir
from fieldsync.base.hashing import file_sha256
from fieldsync.base.i18n import _
from fieldsync.base.names import fit_name
from fieldsync.config import Config
from fieldsync.errors import TreeError
from fieldsync.evidence import manifest
from fieldsync.media.imaging import DecodeBudget
from fieldsync.media.shrink import ShrinkSettings, shrink
from fieldsync.sync import quarantine
from fieldsync.sync.scan import Entry
from fieldsync.sync.state import SyncState
from fieldsync.tree.layout import classify

log = logging.getLogger(__name__)

ORIGINALS_DIR = "originals"


class PhotoPipeline:
    """Prepares photos for the push: evidence, shrink, archive of originals, quarantine.

    Thread-safe as far as the engine needs: it runs one photo per worker, and two workers
    never hold the same photo.
    """

    def __init__(self, cfg: Config, state: SyncState):
        self.cfg = cfg
        self.state = state
        self.settings = ShrinkSettings.from_config(cfg.photos)
        # Shared by the engine's workers: eight big PNGs decoded at once took 6 GB.
        self.budget = DecodeBudget.from_config(cfg.photos)

    def prepare(self, entry: Entry) -> Path:
        """Evidence, then shrink in place: write the shrunk copy beside the photo, record the
        original, archive it, replace the photo atomically, seal the manifest entry.

        Raises ImageError (IncompleteImage: does not decode to the end), LocalFault (the
        tablet's storage failed), TreeError (a manifest that cannot be read).
        """
        visit_dir = entry.path.parent.parent
        photo_rel = f"{entry.rel.parts[-2]}/{entry.rel.parts[-1]}"
        path = entry.path
        if _sealed_as_is(visit_dir, photo_rel, path):
            # Shrunk and sealed before a crash lost the state: recording it again would file
            # the shrunk copy as a second "original".
            return path
        # Hidden, fixed and within the filesystem's name limit even for a 255-byte photo name.
        tmp = path.with_name(fit_name(".", path.name, f".shrink{path.suffix}"))
        try:
            # Decode (and shrink) first: a photo that does not decode to the end is still being
            # written or truncated, and must not leave a pending record of its first bytes.
            shrunk = shrink(path, tmp, self.settings, self.budget)
            if shrunk.note:
                log.warning("%s: %s", entry.key, shrunk.note)
            manifest.record_original(self.cfg, visit_dir, photo_rel, entry.info.kind or "unknown", path)
            if shrunk.changed:
                _fsync_file(tmp)
                self.archive_original(entry)
                os.replace(tmp, path)
                fsync_dir(path.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        manifest.record_result(self.cfg, visit_dir, photo_rel, path)
        return path

    def archive_original(self, entry: Entry) -> Path:
        """Keep the original under .fieldsync/originals/ before the photo is replaced; with
        photos.originals: delete it is removed there only after the upload is confirmed."""
        base = self.cfg.state_dir / ORIGINALS_DIR / Path(*entry.rel.parts)
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            target = base if n == 1 else base.with_name(fit_name("", base.stem, f"-{n}{base.suffix}"))
            if target.exists():
                if _same_file(target, entry.path):
                    return target  # archived already (a crash between archive and replace)
                continue
            try:
                os.link(entry.path, target)  # same disk: no copy, no extra space until replace
            except OSError:
                shutil.copy2(entry.path, target)
                _fsync_file(target)
            fsync_dir(target.parent)
            return target
        raise TreeError(_("too many archived originals named like {base}").format(base=base))

    def drop_original(self, entry: Entry) -> None:
        base = self.cfg.state_dir / ORIGINALS_DIR / Path(*entry.rel.parts)
        with contextlib.suppress(FileNotFoundError):
            base.unlink()

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Move a photo that cannot be read out of the tree, with a note saying why, and drop
        its pending manifest record (the server's visit page would show it pending forever)."""
        stored = quarantine.put(self.cfg, entry.path, entry.rel, reason)
        if entry.info.role == "photo":
            manifest.record_removal(self.cfg, entry.path.parent.parent,
                                    f"{entry.rel.parts[-2]}/{entry.rel.parts[-1]}", f"quarantined: {reason}")
        self.state.update(entry.key, status="quarantined", reason=reason, size=entry.size,
                          mtime_ns=entry.mtime_ns, extra={"moved_to": str(stored.stored)})
        log.warning("quarantined %s: %s", entry.key, reason)

    def record_removal(self, rel: PurePosixPath) -> None:
        # verify must then expect the photo absent instead of reporting evidence lost.
        if classify(rel, self.cfg.layout, False).role != "photo":
            return
        visit_dir = self.cfg.root.joinpath(*rel.parts[:-2])
        if visit_dir.is_dir():
            manifest.record_removal(self.cfg, visit_dir, f"{rel.parts[-2]}/{rel.parts[-1]}",
                                    _("deleted on the tablet (sync.deletes: mirror)"))


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _sealed_as_is(visit_dir: Path, photo_rel: str, path: Path) -> bool:
    """True when the visit's manifest already seals this exact file under this name."""
    try:
        data = manifest.load(visit_dir)
    except TreeError:
        return False
    last = manifest.current_entries(data or {}).get(photo_rel)
    if not last or last.get("removed") or last.get("bytes") != path.stat().st_size:
        return False
    return last.get("sha256") == file_sha256(path)[0]


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
        return a.stat().st_size == b.stat().st_size and file_sha256(a)[0] == file_sha256(b)[0]
    except OSError:
        return False

