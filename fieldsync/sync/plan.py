"""Reconcile the scanned tree with the state cache (and a server listing) into a plan.

Pure of transport: what to make, what to push, what is already on the server, what is gone;
names that differ only by case are found here too, so every server sees them kept apart.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fieldsync.base.i18n import _
from fieldsync.config import Config
from fieldsync.errors import TreeError
from fieldsync.evidence import manifest
from fieldsync.sync.scan import Entry, scan
from fieldsync.sync.state import FileState, SyncState
from fieldsync.tree.layout import MANIFEST_FILE

log = logging.getLogger(__name__)


@dataclass
class Plan:
    folders: list[Entry] = field(default_factory=list)
    files: list[Entry] = field(default_factory=list)  # photos and other files, manifests last
    unchanged: int = 0
    gone: list[str] = field(default_factory=list)  # in the state, no longer in the tree

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.files)


def reconcile(entries: dict[str, Entry], state: SyncState, remote: dict[str, tuple[int, float]] | None,
              full: bool) -> Plan:
    """Split the scan into folders to make, files to push and files already on the server.

    `remote` (rel -> (size, mtime)) is a listing of the server, given when the state is new or
    lost: a file the server already holds with the same size, written after the local file's
    mtime, is recorded as done instead of pushed again.
    """
    plan = Plan()
    adopted = []
    for key, entry in entries.items():  # no sorted copy of a 100,000-entry scan: folders sorted below
        record = state.peek(key)
        if entry.is_dir:
            if record is not None and record.status == "done":
                continue
            if remote is not None and key in remote:
                adopted.append(FileState(key, is_dir=True, status="done"))
                continue
            plan.folders.append(entry)
            continue
        if record is not None and record.status == "done" and record.matches(entry.size, entry.mtime_ns):
            plan.unchanged += 1
            continue
        there = remote.get(key) if remote is not None else None
        if record is None and there is not None and there[0] == entry.size \
                and written_after(there[1], entry.mtime_ns) and _settled_photo(entry):
            adopted.append(FileState(key, entry.size, entry.mtime_ns, remote_size=there[0],
                                     status="done", pushed_at=there[1]))
            plan.unchanged += 1
            continue
        plan.files.append(entry)
    plan.folders.sort(key=lambda e: (e.key.count("/"), e.key))  # parents first
    plan.files.sort(key=lambda e: e.key)
    if adopted:
        state.put_many(adopted)
    if full:
        plan.gone = [r.rel for r in state.all() if r.rel not in entries and r.status != "quarantined"
                     and not r.rel.startswith(".")]
    # Manifests last: shrinking the photos before them changes them.
    plan.files.sort(key=lambda e: e.rel.name == MANIFEST_FILE)
    return plan


def outstanding(cfg: Config, state: SyncState | None) -> list[str]:
    """Files in the tree the server does not hold yet as they are now (new, changed, failed),
    quarantined ones excepted; read from the tree and the state alone, so `status` can tell
    what is waiting even while the server is unreachable. state None: the state describes
    another server, so every file waits."""
    waiting = []
    for key, entry in scan(cfg).items():
        if entry.is_dir:
            continue
        record = state.peek(key) if state is not None else None
        # A quarantined file is out of the tree; one at its path now is new (or restored).
        if record is None or record.status != "done" or not record.matches(entry.size, entry.mtime_ns):
            waiting.append(key)
    return sorted(waiting)


def case_key(name: str) -> str:
    """What a case-insensitive filesystem (NTFS, APFS, SMB shares) compares: NFC, casefolded."""
    return unicodedata.normalize("NFC", name).casefold()


class CaseClashes:
    """Names in one tablet folder that differ only by case (`IMG_1.jpg`, `img_1.jpg`).

    A case-insensitive server keeps one file under both names, so pushing both would put one
    photo's bytes under the other's name. One of them goes to the server, the others stay in
    the tablet folder, unpushed, reported for renaming. The one that goes is the one already
    pushed (the server holds it: keeping it avoids replacing evidence); when neither was, the
    older one (mtime), then the first by name, so the choice holds from one pass to the next.
    Folders clash the same way (`计量装置` and a hand-made copy differing by case): everything
    under the one left out waits with it. Each tablet folder is listed once per pass.
    """

    def __init__(self, root: Path, state: SyncState):
        self.root = root
        self.state = state
        self._winners: dict[str, dict[str, str]] = {}  # folder key -> case key -> winning name

    def problem(self, rel: PurePosixPath) -> str | None:
        """Why `rel` (or a folder on its way) is kept apart; None when its name is free."""
        folder = ""
        for name in rel.parts:
            winner = self._folder(folder).get(case_key(name), name)
            if winner != name:
                where = f"{folder}/" if folder else ""
                return (_("{where}{name} differs only by case from {winner} in the same folder: a case-insensitive "
                          "server (Windows, macOS, SMB shares) keeps one for both; {winner} goes to the server, "
                          "rename this one").format(where=where, name=name, winner=winner))
            folder = f"{folder}/{name}" if folder else name
        return None

    def _folder(self, key: str) -> dict[str, str]:
        winners = self._winners.get(key)
        if winners is not None:
            return winners
        groups: dict[str, list[tuple[bool, int, str]]] = {}
        try:
            with os.scandir(self.root / key if key else self.root) as listing:
                for item in listing:
                    if item.name.startswith("."):
                        continue  # private or hidden: never mirrored
                    pushed = self._pushed(f"{key}/{item.name}" if key else item.name)
                    mtime_ns = item.stat(follow_symlinks=False).st_mtime_ns
                    groups.setdefault(case_key(item.name), []).append((not pushed, mtime_ns, item.name))
        except OSError:
            groups = {}  # gone or unreadable: the push says which
        winners = {folded: min(names)[2] for folded, names in groups.items() if len(names) > 1}
        self._winners[key] = winners
        return winners

    def _pushed(self, key: str) -> bool:
        record = self.state.peek(key)
        return record is not None and record.status == "done"


def written_after(remote_mtime: float, local_mtime_ns: int) -> bool:
    # SFTP gives whole seconds: an upload in the same second as the local write counts.
    return int(remote_mtime) >= local_mtime_ns // 1_000_000_000


def _settled_photo(entry: Entry) -> bool:
    """A photo found on the server with no state record is only adopted when its manifest
    entry is sealed with the local file's size: an unshrunk original of the same size as an
    older server copy must still go through shrink and evidence."""
    if entry.info.role != "photo":
        return True
    visit_dir = entry.path.parent.parent
    try:
        data = manifest.load(visit_dir)
    except TreeError:
        return False
    if not data:
        return False
    rel = PurePosixPath(entry.rel.parts[-2], entry.rel.parts[-1]).as_posix()
    last = manifest.current_entries(data).get(rel)
    return bool(last and last.get("bytes") == entry.size)
