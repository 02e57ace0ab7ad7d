"""What follows from a change of the tree, run after every one (engine pass, CLI command, pull):
seal edited remarks, bring customer.yaml up to new master data, refresh the pages.

Domain code (tree/, location/, masterdata/) only changes the tree; this step derives the rest,
so a change made with the file manager gets the same seals and pages as one made by the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fieldsync.config import Config
from fieldsync.errors import FieldsyncError, TreeError
from fieldsync.evidence import manifest
from fieldsync.tree.folders import refresh_customer_records
from fieldsync.tree.layout import CUSTOMER_FILE, MANIFEST_FILE, VISIT_FILE, is_private, relative
from fieldsync.views.refresh import refresh


@dataclass
class DeriveResult:
    """Files this step rewrote, relative to ROOT (to push), and what it could not do, with why."""

    written: list[PurePosixPath] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def derive(cfg: Config, changed: Iterable[PurePosixPath | str | Path],
           master_data_changed: bool = False) -> DeriveResult:
    """Everything derived from the changed paths (relative to ROOT, or absolute inside it)."""
    result = DeriveResult()
    rels = [_relative(cfg, path) for path in changed]
    rels = [rel for rel in rels if rel is not None]
    for visit in _visits_with_new_remarks(cfg, rels):
        try:
            manifest.record_remarks(cfg, cfg.root / visit)
        except FieldsyncError as exc:  # verify reports an unsealed edit; the pages still follow
            result.problems.append(f"{visit}: remarks not sealed ({exc})")
            continue
        result.written.append(visit / MANIFEST_FILE)
    if master_data_changed:
        try:
            refreshed = refresh_customer_records(cfg)
        except FieldsyncError as exc:  # e.g. a broken customer.yaml: `check` shows it, pages still follow
            result.problems.append(f"customer records not refreshed: {exc}")
            refreshed = []
        for folder in refreshed:
            rel = PurePosixPath(folder.name, CUSTOMER_FILE)
            result.written.append(rel)
            rels.append(rel)
    pages = refresh(cfg, rels, master_data_changed)
    result.written += pages.written
    result.problems += pages.problems
    return result


def _relative(cfg: Config, path: PurePosixPath | str | Path) -> PurePosixPath | None:
    path = Path(path)
    if not path.is_absolute():
        return PurePosixPath(path.as_posix())
    try:
        return relative(cfg.root, path)
    except TreeError:
        return None  # outside the tree: nothing here derives from it


def _visits_with_new_remarks(cfg: Config, rels: list[PurePosixPath]) -> list[PurePosixPath]:
    """Visits whose visit.yaml changed and whose manifest does not seal its remarks yet
    (sealing again would rewrite the manifest for nothing, and the engine would push it)."""
    visits = sorted({rel.parent for rel in rels
                     if rel.name == VISIT_FILE and len(rel.parts) == 5 and not is_private(rel)
                     and rel.parts[1] in cfg.layout.businesses})
    pending = []
    for visit in visits:
        folder = cfg.root / visit
        if not (folder / VISIT_FILE).is_file() or folder.is_symlink():
            continue
        try:
            sealed = (manifest.load(folder) or {}).get("remarks")
            if sealed is not None and sealed == manifest.remarks_seal(folder):
                continue
        except FieldsyncError:
            pass  # a broken manifest or visit.yaml: record_remarks says what is wrong
        pending.append(visit)
    return pending
