"""The tree's rules: which folder is a customer, business, category, visit or photo folder.

Pure functions over relative paths, so the engine, `check` and the page generator agree on
what a path means, whether the CLI made the folder or a person did in the file manager.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.i18n import _
from fieldsync.config import STATE_DIR, Layout
from fieldsync.errors import TreeError
from fieldsync.media.imaging import is_photo_name

CUSTOMER_FILE = "customer.yaml"
VISIT_FILE = "visit.yaml"
MANIFEST_FILE = "manifest.json"
PAGE_FILE = "index.html"
ASSETS_DIR = "_assets"  # ROOT/_assets/: files the pages use (Leaflet), mirrored like the pages
QUERY_DIR = "_query"    # ROOT/_query/: the query page's data chunks, mirrored like the pages
# Root folders fieldsync generates for its pages: never customers, mirrored as they are.
GENERATED_DIRS = frozenset({ASSETS_DIR, QUERY_DIR})
# The kinds of photo a visit holds (their folder names come from config's layout section),
# and the visit.yaml remark that goes with each kind.
PHOTO_KINDS = ("appearance", "nameplate")
NOTE_FIELDS = tuple(f"{kind}_note" for kind in PHOTO_KINDS)


def is_private(rel: PurePosixPath) -> bool:
    """Hidden names (temp files, .fieldsync/) are never mirrored nor linted."""
    return any(part.startswith(".") for part in rel.parts)


@dataclass(frozen=True)
class PathInfo:
    """What a path inside the tree is, with the hierarchy names it sits under."""

    role: str  # root-file | assets | customer | customer-file | documents | document | business |
    #            category | visit | visit-file | photo-folder | photo | misplaced | private
    customer: str | None = None
    business: str | None = None
    category: str | None = None
    visit: str | None = None
    kind: str | None = None  # appearance | nameplate

    @property
    def visit_rel(self) -> PurePosixPath | None:
        if self.visit is None:
            return None
        return PurePosixPath(self.customer, self.business, self.category, self.visit)


def classify(rel: PurePosixPath | str, layout: Layout, is_dir: bool) -> PathInfo:
    """Say what `rel` (relative to ROOT, POSIX form) is in the hierarchy."""
    rel = PurePosixPath(rel)
    parts = rel.parts
    if not parts or is_private(rel):
        return PathInfo("private")
    if parts[0] in GENERATED_DIRS:
        return PathInfo("assets")
    depth = len(parts)
    customer = parts[0]
    if depth == 1:
        return PathInfo("customer", customer) if is_dir else PathInfo("root-file")
    second = parts[1]
    if second == layout.documents_folder:
        if depth == 2:
            return PathInfo("documents" if is_dir else "misplaced", customer)
        return PathInfo("documents" if is_dir else "document", customer)
    if depth == 2:
        if not is_dir:
            return PathInfo("customer-file", customer)
        role = "business" if second in layout.businesses else "misplaced"
        return PathInfo(role, customer, second if role == "business" else None)
    if second not in layout.businesses:
        return PathInfo("misplaced", customer)
    names = dict(customer=customer, business=second)
    if depth == 3:
        return PathInfo("category" if is_dir else "misplaced", category=parts[2], **names)
    names["category"] = parts[2]
    if depth == 4:
        return PathInfo("visit" if is_dir else "misplaced", visit=parts[3], **names)
    names["visit"] = parts[3]
    if depth == 5:
        if not is_dir:
            return PathInfo("visit-file", **names)
        kind = _kind_of(parts[4], layout)
        return PathInfo("photo-folder" if kind else "misplaced", kind=kind, **names)
    kind = _kind_of(parts[4], layout)
    if depth == 6 and kind and not is_dir and is_photo_name(parts[5]):
        return PathInfo("photo", kind=kind, **names)
    return PathInfo("misplaced", kind=kind, **names)


def _kind_of(folder: str, layout: Layout) -> str | None:
    for kind, name in layout.kind_folders.items():
        if folder == name:
            return kind
    return None


def account_pattern(layout: Layout) -> re.Pattern:
    """A regex that reads the account number back out of a customer folder name."""
    before, after = layout.customer_folder.split("{account_no}", 1)
    prefix = re.escape(before.replace("{name}", "\0")).replace("\\\0", ".*").replace("\0", ".*")
    sep = re.escape(after[:1]) if after else "$"
    return re.compile(rf"^{prefix}(?P<account_no>[0-9A-Za-z][0-9A-Za-z-]*){sep}")


def account_of_folder(folder: str, layout: Layout) -> str | None:
    match = account_pattern(layout).match(folder)
    return match.group("account_no").upper() if match else None


def find_customer_dir(root: Path, account_no: str, layout: Layout) -> Path | None:
    """The existing customer folder for `account_no`, made by the CLI or by hand."""
    pattern = account_pattern(layout)
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.is_dir() and not entry.name.startswith("."):
            match = pattern.match(entry.name)
            if match and match.group("account_no").upper() == account_no:
                return entry
    return None


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def relative(root: Path, path: Path) -> PurePosixPath:
    """`path` relative to ROOT as a POSIX path; refuses anything outside ROOT."""
    resolved = path.resolve()
    try:
        rel = resolved.relative_to(root.resolve())
    except ValueError:
        raise TreeError(_("{path} is outside the fieldsync tree {root}").format(path=path, root=root)) from None
    return PurePosixPath(rel.as_posix())
