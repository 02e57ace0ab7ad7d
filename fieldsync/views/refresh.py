"""The one refresh step for the tablet's pages: from the paths that changed, re-render only the
visit pages, customer pages and the root query page (with its data in ROOT/_query/) they affect.

Pages are derived from the tree, never pushed by the command that changed it, so the file
manager, a text editor and the CLI give the same result (style.md, "Derived, not pushed").
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fieldsync.base import clock
from fieldsync.config import Config
from fieldsync.tree.layout import (
    ASSETS_DIR,
    CUSTOMER_FILE,
    GENERATED_DIRS,
    PAGE_FILE,
    QUERY_DIR,
    account_of_folder,
    is_private,
)
from fieldsync.views import pages


@dataclass
class RefreshResult:
    """What one refresh rewrote (relative to ROOT) and the pages it could not render, with why."""

    written: list[PurePosixPath] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Targets:
    """The pages a set of changes affects: visits and customers relative to ROOT, and the root."""

    visits: set[PurePosixPath] = field(default_factory=set)
    customers: set[str] = field(default_factory=set)
    root: bool = False


def targets(cfg: Config, changed: Iterable[PurePosixPath | str], master_data_changed: bool = False) -> Targets:
    """Which pages depend on the changed paths: a change inside a visit -> that visit and its
    customer; anything else in a customer's folder -> the customer; a customer folder (or its
    customer.yaml) appearing or going, or new master data -> the root query page."""
    found = Targets(root=master_data_changed)
    for rel in map(PurePosixPath, changed):
        parts = rel.parts
        if not parts or rel.as_posix() == "." or is_private(rel) or parts[0] in GENERATED_DIRS:
            continue
        if rel.name == PAGE_FILE:
            continue  # our own output: pages follow the tree, not other pages
        if len(parts) == 1:
            if not (cfg.root / parts[0]).is_file():  # a customer folder made or removed
                found.root = True
                found.customers.add(parts[0])
            continue
        found.customers.add(parts[0])
        if len(parts) == 2 and parts[1] == CUSTOMER_FILE:
            found.root = True  # the root page links the customers that have a record
        if len(parts) >= 4 and parts[1] in cfg.layout.businesses:
            found.visits.add(PurePosixPath(*parts[:4]))
    return found


def refresh(cfg: Config, changed: Iterable[PurePosixPath | str], master_data_changed: bool = False) -> RefreshResult:
    """Re-render the pages the changed paths (relative to ROOT) affect, with times in the
    config's ui.timezone; each is written only when its text changed. A page that cannot be
    rendered is reported, never fatal."""
    if not cfg.root.is_dir():
        return RefreshResult()
    with clock.shown_in(cfg.ui.timezone):
        return _refresh(cfg, targets(cfg, changed, master_data_changed))


def _refresh(cfg: Config, wanted: Targets) -> RefreshResult:
    result = RefreshResult()
    generated = _stats(cfg.root)
    for visit in sorted(wanted.visits):
        path = cfg.root / visit
        if _real_folder(cfg.root, visit):
            _render(result, visit / PAGE_FILE, pages.render_visit, cfg, path)
    for name in sorted(wanted.customers):
        folder = cfg.root / name
        if _real_folder(cfg.root, PurePosixPath(name)) and _is_customer_folder(cfg, folder):
            _render(result, PurePosixPath(name, PAGE_FILE), pages.render_customer, cfg, folder)
    if wanted.root:
        # render_root also (re)writes ROOT/_query/: what changed is read off the files below.
        _render(result, None, pages.render_root, cfg)
    after = _stats(cfg.root)
    result.written += sorted(rel for rel, seen in after.items() if generated.get(rel) != seen)
    return result


def _render(result: RefreshResult, page: PurePosixPath | None, render, *args) -> None:
    try:
        if render(*args) and page is not None:
            result.written.append(page)
    except Exception as exc:  # pages are only a view: one bad record must not stop the others
        result.problems.append(f"{page or PAGE_FILE}: not rendered ({type(exc).__name__}: {exc})")


def _real_folder(root: Path, rel: PurePosixPath) -> bool:
    # No page is written through a symlink: it could lead out of the tree.
    path = root
    for part in rel.parts:
        path = path / part
        if path.is_symlink() or not path.is_dir():
            return False
    return True


def _is_customer_folder(cfg: Config, folder: Path) -> bool:
    # A customer folder made by hand may lack customer.yaml: its name or its business folders
    # still say what it is. Any other folder at the top gets no page.
    return ((folder / CUSTOMER_FILE).is_file() or account_of_folder(folder.name, cfg.layout) is not None
            or any((folder / business).is_dir() for business in cfg.layout.businesses))


def _stats(root: Path) -> dict[PurePosixPath, tuple[int, int]]:
    """(size, mtime_ns) of ROOT/index.html and the generated files beside it (_query, _assets)."""
    seen = {}
    files = [root / PAGE_FILE] + [p for d in (QUERY_DIR, ASSETS_DIR) for p in (root / d).rglob("*")]
    for path in files:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and not path.name.startswith("."):
            seen[PurePosixPath(path.relative_to(root).as_posix())] = (st.st_size, st.st_mtime_ns)
    return seen
