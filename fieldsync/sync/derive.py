"""What follows from a change of the tree, run after every one (engine pass, CLI command, pull):
complete visits made by hand, record remarks edited by hand, seal edited remarks, bring
customer.yaml up to new master data, refresh the pages.

Domain code (tree/, location/, masterdata/) only changes the tree; this step derives the rest,
so a change made with the file manager gets the same seals and pages as one made by the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fieldsync.base.i18n import _
from fieldsync.config import Config
from fieldsync.errors import FieldsyncError, TreeError
from fieldsync.evidence import manifest
from fieldsync.tree.folders import refresh_customer_records
from fieldsync.tree.layout import CUSTOMER_FILE, MANIFEST_FILE, VISIT_FILE, classify, is_private, relative
from fieldsync.tree.visits import adopt_hand_edits, complete_visit
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
    rels += _complete_visits(cfg, rels, result)
    for visit in _visits_with_new_remarks(cfg, rels):
        try:
            manifest.record_remarks(cfg, cfg.root / visit)
        except FieldsyncError as exc:  # verify reports an unsealed edit; the pages still follow
            result.problems.append(_("{visit}: remarks not sealed ({exc})").format(visit=visit, exc=exc))
            continue
        result.written.append(visit / MANIFEST_FILE)
    if master_data_changed:
        try:
            refreshed = refresh_customer_records(cfg)
        except FieldsyncError as exc:  # e.g. a broken customer.yaml: `check` shows it, pages still follow
            result.problems.append(_("customer records not refreshed: {exc}").format(exc=exc))
            refreshed = []
        for folder in refreshed:
            rel = PurePosixPath(folder.name, CUSTOMER_FILE)
            result.written.append(rel)
            rels.append(rel)
    pages = refresh(cfg, rels, master_data_changed)
    result.written += pages.written
    result.problems += pages.problems
    return result


def _complete_visits(cfg: Config, rels: list[PurePosixPath], result: DeriveResult) -> list[PurePosixPath]:
    """Give every visit the changes touch what the CLI would have written (a visit.yaml with
    account, inspector, created_at ...), then record remark edits made by hand; returns the
    visit.yaml files rewritten, which the caller treats as changed too."""
    visits = sorted({PurePosixPath(*rel.parts[:4]) for rel in rels if len(rel.parts) >= 4 and not is_private(rel)})
    rewritten = []
    for visit in visits:
        folder = cfg.root / visit
        if (classify(visit, cfg.layout, is_dir=True).role != "visit" or folder.is_symlink()
                or not folder.is_dir()):
            continue
        try:
            wrote = complete_visit(cfg, folder)
            wrote = adopt_hand_edits(cfg, folder, manifest.sealed_remarks(folder)) or wrote
        except (FieldsyncError, OSError) as exc:  # e.g. a broken visit.yaml: check and verify say so
            result.problems.append(f"{visit}: {VISIT_FILE} not completed ({exc})")
            continue
        if wrote:
            rewritten.append(visit / VISIT_FILE)
    result.written += rewritten
    return rewritten


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
