"""Walk the server tree cheaply: which customers and visits exist, and a stamp of each.

A stamp is made from a few `stat` calls (no file is read), so comparing stamps with the
cache tells which visits changed without opening anything. Files land by rename (the transport
uploads to a hidden temp name first), which changes the folder's mtime and the file's inode.

Incremental runs go one step cheaper: every folder of the tree (root, customer, business,
category, visit, photo folder) is remembered as (mtime_ns, inode), and a run stats those folders
instead of walking the tree; only customers under a folder whose mtime moved are scanned again
(`changed_customers`). Adding, removing or renaming an entry changes exactly its parent folder's
mtime, so a stat per folder sees every change.

Photo folders (外观/铭牌: 40% of all folders) are left out of a plain run's stats: a tablet never
changes one without also replacing its visit's manifest.json (temp name + rename in the visit
folder), so the visit folder's mtime moves too and the visit is rescanned with its photo folders.
Only a photo put on the server by other means (copied by hand) moves a photo folder alone; the
"deep" check, which stats the photo folders as well, finds those (see site.DEEP_CHECK_SECONDS).

"Racy" stamps (as git calls them): a file system stores mtimes at a coarse tick, so a change in
the same tick as our stat would leave the mtime unchanged. Anything whose mtime is within
RACY_NS of the run's start is therefore not trusted: a folder is stored with mtime -1 (checked
again next run) and a visit's stamp gets a digest of its listings and small files appended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from fieldsync.base.clock import stamp_iso
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Layout
from fieldsync.errors import FieldsyncError
from fieldsync.evidence import manifest
from fieldsync.media.imaging import is_photo_name
from fieldsync.tree.layout import CUSTOMER_FILE, MANIFEST_FILE, VISIT_FILE

# Far above any file system's timestamp tick (FAT's is 2 s) and the skew of a file server's clock.
RACY_NS = 3_000_000_000
RACY = -1  # the mtime stored for a folder changed too recently to trust
DirRow = tuple[str, int, int]  # (path relative to ROOT, "/"-separated; mtime_ns or RACY; inode)


def visible_dirs(path: str) -> list[str]:
    """Names of the non-hidden sub-folders of `path` (hidden ones are temp uploads or state)."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def photo_names(path: str) -> list[str]:
    """Photo files in a level-4 folder, sorted; temp uploads (hidden names) are left out."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries
                          if is_photo_name(e.name)
                          and e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass
class CustomerScan:
    folder: str
    stamp: str
    visits: dict[str, str] = field(default_factory=dict)  # visit rel -> stamp
    dirs: list[DirRow] = field(default_factory=list)  # its folders down to visits, itself first
    photo_dirs: list[DirRow] = field(default_factory=list)  # its photo folders (deep check only)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def dir_row(root: str, rel: str, cutoff: int | None) -> DirRow | None:
    """The folder ROOT/rel as remembered between runs; None when it is gone."""
    st = _stat(os.path.join(root, rel) if rel else root)
    if st is None:
        return None
    racy = cutoff is not None and st.st_mtime_ns >= cutoff
    return (rel, RACY if racy else st.st_mtime_ns, st.st_ino)


def _digest(paths: list[str], folders: list[str]) -> str:
    """What a racy stamp adds: the folders' listings and the small files' bytes."""
    digest = hashlib.sha1()
    for folder in folders:
        try:
            names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            names = ["-"]
        digest.update("\0".join(names).encode() + b"\1")
    for path in paths:
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            digest.update(b"-")
        digest.update(b"\1")
    return digest.hexdigest()[:16]


def _stamp(stats: list[os.stat_result | None], cutoff: int | None, known: str | None,
           digest) -> str:
    plain = "|".join(f"{st.st_mtime_ns}.{st.st_size}.{st.st_ino}" if st else "-" for st in stats)
    racy = cutoff is not None and any(st is not None and st.st_mtime_ns >= cutoff for st in stats)
    # A stamp stored while racy keeps its digest, so it compares equal while nothing changed.
    if racy or (known is not None and known.startswith(plain + "#")):
        return f"{plain}#{digest()}"
    return plain


def visit_stamp(visit_path: str, layout: Layout, cutoff: int | None = None,
                known: str | None = None) -> str:
    # Four stats and no reads: this runs for every visit of a scanned customer.
    base = visit_path + os.sep
    files = [base + VISIT_FILE, base + MANIFEST_FILE]
    folders = [base + name for name in layout.kind_folders.values()]
    return _stamp([_stat(path) for path in files + folders], cutoff, known,
                  lambda: _digest(files, folders))


def customer_stamp(customer_path: str, layout: Layout, cutoff: int | None = None,
                   known: str | None = None) -> str:
    """customer.yaml and the documents folder (its files are listed on the customer page)."""
    file = os.path.join(customer_path, CUSTOMER_FILE)
    documents = os.path.join(customer_path, layout.documents_folder)
    return _stamp([_stat(file), _stat(documents)], cutoff, known, lambda: _digest([file], [documents]))


def customer_name(customer_path: Path) -> str:
    """The name in a customer's customer.yaml, or "" when it has none (yet) or is unreadable."""
    try:
        data = read_yaml(Path(customer_path) / CUSTOMER_FILE)
    except (FieldsyncError, OSError):
        return ""
    return as_text(data.get("name")) if isinstance(data, dict) else ""


def is_customer_folder(path: str, layout: Layout) -> bool:
    """A customer root: has customer.yaml, or at least one business folder (still uploading)."""
    if os.path.exists(os.path.join(path, CUSTOMER_FILE)):
        return True
    return any(os.path.isdir(os.path.join(path, b)) for b in layout.businesses)


def scan_customer(root: Path, folder: str, layout: Layout, *, cutoff: int | None = None,
                  known: dict[str, str] | None = None) -> CustomerScan | None:
    """Stamps of one customer, of each of its visits and of its folders; None when it is not
    a customer folder. `cutoff` (ns) marks racy stamps; `known` are the stamps stored last time."""
    root_s = str(root)
    base = os.path.join(root_s, folder)
    if not os.path.isdir(base) or not is_customer_folder(base, layout):
        return None
    known = known or {}
    result = CustomerScan(folder, customer_stamp(base, layout, cutoff, known.get(folder)))

    def remember(rel: str, rows: list[DirRow] = result.dirs) -> None:
        row = dir_row(root_s, rel, cutoff)
        if row is not None:
            rows.append(row)

    remember(folder)
    remember(f"{folder}/{layout.documents_folder}")  # its files are listed on the customer page
    for business in layout.businesses:
        business_path = os.path.join(base, business)
        remember(f"{folder}/{business}")
        for category in visible_dirs(business_path):
            category_path = os.path.join(business_path, category)
            remember(f"{folder}/{business}/{category}")
            for visit in visible_dirs(category_path):
                rel = f"{folder}/{business}/{category}/{visit}"
                remember(rel)
                for kind_folder in layout.kind_folders.values():
                    remember(f"{rel}/{kind_folder}", result.photo_dirs)
                result.visits[rel] = visit_stamp(os.path.join(category_path, visit), layout,
                                                 cutoff, known.get(rel))
    return result


def customer_folders(root: Path) -> list[str]:
    return visible_dirs(str(root))


def scan_tree(root: Path, layout: Layout, only: set[str] | None = None, *,
              cutoff: int | None = None, known: dict[str, str] | None = None) -> dict[str, CustomerScan]:
    """Every customer (or just those named in `only`) with its visit stamps."""
    names = sorted(only) if only is not None else customer_folders(root)
    found = {}
    for folder in names:
        scanned = scan_customer(root, folder, layout, cutoff=cutoff, known=known)
        if scanned is not None:
            found[folder] = scanned
    return found


def changed_customers(root: Path, groups, stored_root: DirRow | None, root_now: DirRow | None) -> set[str]:
    """Top-level folders (customers) with a folder whose stamp moved since `groups` were stored.

    `groups` are (top-level folder, paths from ROOT, mtimes, inodes) as state.folder_groups
    returns them; `stored_root` / `root_now` are the root's row then and now. One stat per
    folder and nothing else: at a million photos, 150,000 stats (240,000 with photo folders).
    """
    base = str(root) + os.sep
    stat = os.stat
    touched: set[str] = set()
    for top, paths, mtimes, inodes in groups:
        for path, mtime, ino in zip(paths, mtimes, inodes):
            try:
                st = stat(base + path)
            except (FileNotFoundError, NotADirectoryError):
                touched.add(top)
                break
            if mtime == RACY or st.st_mtime_ns != mtime or st.st_ino != ino:
                touched.add(top)
                break
    if stored_root is None or root_now is None or stored_root[1] == RACY or root_now[1:] != stored_root[1:]:
        # A customer folder came or went (or was renamed): the root's listing tells which.
        touched |= set(customer_folders(root)) ^ {group[0] for group in groups}
    return touched


def as_text(value) -> str:
    """YAML may hand back dates or numbers where people typed text; pages and reports want text."""
    if value is None:
        return ""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def read_visit_file(visit_path: Path) -> tuple[dict, str | None]:
    """visit.yaml as a mapping ({} when absent, e.g. still uploading) and a problem, if any."""
    file = Path(visit_path) / VISIT_FILE
    if not file.exists():
        return {}, None
    try:
        return read_yaml(file), None
    except FieldsyncError as exc:
        return {}, str(exc)


def visit_attribution(data: dict, visit_path: Path) -> tuple[str, str]:
    """(inspector, device) of a visit: from visit.yaml, else from its manifest's entries.

    A visit made by hand in the file manager may have no visit.yaml on the server yet, or
    one without these fields, while every photo sealed in its manifest names both.
    """
    inspector, device = as_text(data.get("inspector")), as_text(data.get("device"))
    if inspector and device:
        return inspector, device
    try:
        sealed = manifest.load(visit_path) or {}
    except FieldsyncError:
        sealed = {}
    for entry in reversed(sealed.get("entries") or []):
        if isinstance(entry, dict):
            inspector = inspector or as_text(entry.get("inspector"))
            device = device or as_text(entry.get("device"))
        if inspector and device:
            break
    return inspector, device


def visit_time(data: dict, visit_path: Path) -> str:
    """created_at from visit.yaml, else the folder's mtime (a folder made by hand)."""
    created = as_text(data.get("created_at"))
    if created:
        return created
    try:
        stamp = Path(visit_path).stat().st_mtime
    except FileNotFoundError:
        return ""
    return stamp_iso(stamp)
