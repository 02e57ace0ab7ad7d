"""Lint the tablet tree: what is where it should not be, what is missing, what is unsafe.

Folders made by hand are as valid as CLI-made ones, so `check` reads the tree with the same
rules as the engine (layout.classify) and reports, never repairs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.names import is_safe_component
from fieldsync.base.platform_names import find_platform_issues
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Config
from fieldsync.media.imaging import is_photo_name
from fieldsync.tree.folders import require_root
from fieldsync.tree.layout import CUSTOMER_FILE, VISIT_FILE, account_of_folder, classify


@dataclass(frozen=True)
class Finding:
    path: PurePosixPath  # relative to ROOT
    problem: str
    advice: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.advice}"


def check_tree(cfg: Config) -> list[Finding]:
    """Every problem in the tree under cfg.root, in path order."""
    root = require_root(cfg)
    findings: list[Finding] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = PurePosixPath(here.relative_to(root).as_posix()) if here != root else PurePosixPath()
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in dirnames:
            findings += _check_dir(cfg, here / name, rel_dir / name)
        for name in sorted(filenames):
            if not name.startswith("."):
                findings += _check_file(cfg, rel_dir / name)
    findings += _platform_findings(cfg, root)
    return sorted(findings, key=lambda f: (str(f.path), f.problem))


def _check_dir(cfg: Config, path: Path, rel: PurePosixPath) -> list[Finding]:
    found = []
    if not is_safe_component(rel.name):
        found.append(Finding(rel, "the folder name is not safe on every filesystem",
                             "rename it without / \\ : * ? \" < > |, control characters or trailing dots/spaces"))
    info = classify(rel, cfg.layout, is_dir=True)
    if info.role == "customer":
        if account_of_folder(rel.name, cfg.layout) is None:
            found.append(Finding(rel, "no account number in the customer folder name",
                                 f"name it like {cfg.layout.customer_folder!r}"))
        elif not (path / CUSTOMER_FILE).is_file():
            found.append(Finding(rel, f"no {CUSTOMER_FILE}",
                                 f"run 'fieldsync customer open {account_of_folder(rel.name, cfg.layout)}'"))
    elif info.role == "misplaced" and len(rel.parts) == 2:
        businesses = ", ".join(cfg.layout.businesses)
        found.append(Finding(rel, "unknown business folder",
                             f"use one of {businesses} or {cfg.layout.documents_folder}"))
    elif info.role == "visit":
        found += _check_visit(path, rel)
    elif info.role == "misplaced" and len(rel.parts) == 5:
        kinds = " or ".join(cfg.layout.kind_folders.values())
        found.append(Finding(rel, "unknown folder inside a visit", f"photos go in {kinds}"))
    return found


def _check_visit(path: Path, rel: PurePosixPath) -> list[Finding]:
    file = path / VISIT_FILE
    if not file.is_file():
        return [Finding(rel, f"visit without {VISIT_FILE}",
                        f"run 'fieldsync visit edit {rel}' to create one, or make visits with 'fieldsync visit new'")]
    try:
        data = read_yaml(file)
    except Exception as exc:  # any unreadable visit.yaml is a finding, not a crash
        return [Finding(rel / VISIT_FILE, f"unreadable ({exc})", "restore it from the server copy")]
    if data.get("name") not in (None, path.name):
        return [Finding(rel, f"{VISIT_FILE} names the visit {data.get('name')!r}",
                        f"run 'fieldsync visit edit {rel} --name {path.name}' to record the rename")]
    return []


def _check_file(cfg: Config, rel: PurePosixPath) -> list[Finding]:
    found = []
    info = classify(rel, cfg.layout, is_dir=False)
    if not is_safe_component(rel.name):
        found.append(Finding(rel, "the file name is not safe on every filesystem",
                             "rename it without / \\ : * ? \" < > |, control characters or trailing dots/spaces"))
    if is_photo_name(rel.name) and info.role not in ("photo", "document", "assets"):
        kinds = "/".join(cfg.layout.kind_folders.values())
        found.append(Finding(rel, "photo outside a visit's photo folder (it will not be shrunk)",
                             f"move it into CUSTOMER/BUSINESS/CATEGORY/VISIT/{kinds}/"))
    elif info.role == "misplaced" and not is_photo_name(rel.name):
        found.append(Finding(rel, "file in a folder the tree does not expect",
                             f"move it to the customer's {cfg.layout.documents_folder} folder"))
    return found


def _platform_findings(cfg: Config, root: Path) -> list[Finding]:
    """Names that clash on case-insensitive or Windows filesystems (base.platform_names)."""
    rels = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath).relative_to(root)
        rels += [PurePosixPath((base / n).as_posix()) for n in dirnames + filenames if not n.startswith(".")]
    return [Finding(issue.path, issue.problem, issue.advice)
            for issue in find_platform_issues(rels, windows_root=_windows_root(cfg))]


def _windows_root(cfg: Config) -> str:
    # Path-length limits depend on where the tree sits; on Linux/Android assume a typical
    # Windows location, since the server copy is often browsed from Windows too.
    return str(cfg.root) if os.name == "nt" else "C:\\Users\\inspector.name\\fieldsync"
