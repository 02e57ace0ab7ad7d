"""What one engine pass did (SyncResult) and the callbacks a driver uses to show it (Progress)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fieldsync.base.i18n import N_, _

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    """What one pass did. exit_code follows spec.md: 0 all on the server, 1 warnings, 2 error."""

    uploaded: int = 0
    unchanged: int = 0
    folders: int = 0
    bytes: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # still being written
    refused: list[tuple[str, str]] = field(default_factory=list)  # names the engine does not take: advice
    next_look: float | None = None  # when a waiting photo in backoff is due again (epoch seconds)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # done, but the server had lost them: pushed again
    rechecked: bool = False  # this pass compared the server's listing with the done records
    error: str | None = None  # why the pass stopped early (server unreachable, ...)
    refused_key: bool = False  # the error is the server refusing this tablet's key (revoked?)
    # Files this pass rewrote in the tree (shrunk photos, manifests): rel -> (size, mtime_ns)
    # as written, so the daemon can tell the watcher's echo of its own writes from new work.
    wrote: dict[str, tuple[int, int]] = field(default_factory=dict)

    def look_at(self, when: float) -> None:
        self.next_look = when if self.next_look is None else min(self.next_look, when)

    @property
    def complete(self) -> bool:
        return not (self.failed or self.waiting or self.error)

    @property
    def exit_code(self) -> int:
        if self.error or self.failed:
            return 2
        return 1 if (self.quarantined or self.waiting or self.conflicts or self.refused) else 0

    def __str__(self) -> str:
        parts = [_("{count} uploaded").format(count=self.uploaded),
                 _("{count} unchanged").format(count=self.unchanged)]
        if self.rechecked:
            parts.append(_("server rechecked: {count} lost").format(count=len(self.lost)) if self.lost
                         else _("server rechecked"))
        if self.folders:
            parts.append(_("{count} folders made").format(count=self.folders))
        for label, items in ((N_("{count} quarantined"), self.quarantined), (N_("{count} failed"), self.failed),
                             (N_("{count} still being written"), self.waiting),
                             (N_("{count} conflicts kept"), self.conflicts),
                             (N_("{count} refused (rename them)"), self.refused)):
            if items:
                parts.append(_(label).format(count=len(items)))
        text = _(", ").join(parts)
        return _("{summary}; stopped: {error}").format(summary=text, error=self.error) if self.error else text


class Progress:
    """Callbacks a driver overrides to show a pass (CLI progress bar, daemon status.json).
    Called from worker threads."""

    def planned(self, files: int, total_bytes: int) -> None: ...

    def started(self, rel: str, size: int) -> None: ...

    def advanced(self, rel: str, done: int, total: int) -> None: ...

    def finished(self, rel: str, outcome: str, reason: str = "") -> None: ...
