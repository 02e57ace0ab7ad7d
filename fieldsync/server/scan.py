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

A share of chrooted tablets (docs/deployment.md) holds one tree per tablet account,
SHARE/tablets/ACCOUNT/fieldsync; `tablet_sources` lists them and every function here takes the
trees to read as `sources`: paths from the root the pages are built in ("" is the root itself).
A customer is its folder name: the same folder in several tablets' trees is one customer, its
visits keyed by their path from that root (so they stay apart and link into their own tree).

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
from fieldsync.base.i18n import _
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
SINGLE = ("",)  # the sources of a plain server tree: the root itself
TABLETS_DIR = "tablets"  # SHARE/tablets/ACCOUNT is the chroot of ACCOUNT
TABLET_TREE = "fieldsync"  # ... and SHARE/tablets/ACCOUNT/fieldsync the tree it writes


def tablet_sources(share: Path) -> tuple[str, ...]:
    """The tablet trees of a share, as paths from SHARE: tablets/ACCOUNT/fieldsync for every
    account whose chroot and tree are real folders (a link there is not followed)."""
    found = []
    for account in visible_dirs(os.path.join(str(share), TABLETS_DIR)):
        rel = f"{TABLETS_DIR}/{account}/{TABLET_TREE}"
        try:
            if os.path.isdir(os.path.join(str(share), rel)) and not os.path.islink(os.path.join(str(share), rel)):
                found.append(rel)
        except OSError:
            continue
    return tuple(found)


def joined(prefix: str, rel: str) -> str:
    """`rel` inside the source at `prefix`, as a path from the root ("" joins to nothing)."""
    return f"{prefix}/{rel}" if prefix and rel else prefix or rel


def customer_of(rel: str) -> str:
    """The customer folder of a visit's path from the root (its fourth part from the end)."""
    return rel.split("/")[-4]


def visible_dirs(path: str) -> list[str]:
    """Names of the non-hidden sub-folders of `path` (hidden ones are temp uploads or state).
    A folder this account may not list and enter (a tablet made it 0700) is left out like a
    hidden one: it must not stop the pages of every other visit and tablet."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                          and os.access(e.path, os.R_OK | os.X_OK))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def photo_names(path: str) -> list[str]:
    """Photo files in a level-4 folder, sorted; temp uploads (hidden names) are left out."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries
                          if is_photo_name(e.name)
                          and e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError, PermissionError):  # made 0700 by its tablet
        return []


@dataclass
class CustomerScan:
    folder: str
    stamp: str
    visits: dict[str, str] = field(default_factory=dict)  # visit rel -> stamp
    dirs: list[DirRow] = field(default_factory=list)  # its folders down to visits, itself first
    photo_dirs: list[DirRow] = field(default_factory=list)  # its photo folders (deep check only)


def _stat(path: str) -> os.stat_result | None:
    # lstat: a link a tablet planted is stamped as the link, never through it (its target may be
    # a file the index account cannot even stat). A folder the tablet made 0700 hides what is in
    # it from the index account: as good as absent, rather than stopping every tablet's pages.
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
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
        try:  # O_NOFOLLOW: visit.yaml -> /etc/shadow is never read, by root nor by the index account
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
                digest.update(handle.read())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            digest.update(b"-")
        except OSError:  # a planted link (ELOOP) or a file the index may not read: its lstat stamps it
            digest.update(b"!")
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
    if (Path(customer_path) / CUSTOMER_FILE).is_symlink():
        return ""
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


def _split_stamp(composite: str | None) -> dict[str, str]:
    """A customer's stamp over several sources is "prefix=stamp" lines; one source's is plain."""
    if composite is None:
        return {}
    if "\n" not in composite and "=" not in composite.split("|", 1)[0]:
        return {"": composite}
    return dict(line.split("=", 1) for line in composite.split("\n") if "=" in line)


def scan_customer(root: Path, folder: str, layout: Layout, *, cutoff: int | None = None,
                  known: dict[str, str] | None = None, sources: tuple[str, ...] = SINGLE) -> CustomerScan | None:
    """Stamps of one customer, of each of its visits and of its folders in every source; None
    when it is a customer folder in none. `cutoff` (ns) marks racy stamps; `known` are the
    stamps stored last time."""
    root_s = str(root)
    known = known or {}
    known_customer = _split_stamp(known.get(folder))
    stamps = {}
    result = CustomerScan(folder, "")

    def remember(rel: str, rows: list[DirRow] = result.dirs) -> None:
        row = dir_row(root_s, rel, cutoff)
        if row is not None:
            rows.append(row)

    for prefix in sources:
        base = os.path.join(root_s, prefix, folder)
        if os.path.islink(base) or not os.path.isdir(base) or not is_customer_folder(base, layout):
            continue
        stamps[prefix] = customer_stamp(base, layout, cutoff, known_customer.get(prefix))
        top = joined(prefix, folder)
        remember(top)
        remember(f"{top}/{layout.documents_folder}")  # its files are listed on the customer page
        for business in layout.businesses:
            business_path = os.path.join(base, business)
            remember(f"{top}/{business}")
            for category in visible_dirs(business_path):
                category_path = os.path.join(business_path, category)
                remember(f"{top}/{business}/{category}")
                for visit in visible_dirs(category_path):
                    rel = f"{top}/{business}/{category}/{visit}"
                    remember(rel)
                    for kind_folder in layout.kind_folders.values():
                        remember(f"{rel}/{kind_folder}", result.photo_dirs)
                    result.visits[rel] = visit_stamp(os.path.join(category_path, visit), layout,
                                                     cutoff, known.get(rel))
    if not stamps:
        return None
    result.stamp = stamps[""] if sources == SINGLE else "\n".join(f"{p}={v}" for p, v in stamps.items())
    return result


def customer_folders(root: Path, sources: tuple[str, ...] = SINGLE) -> list[str]:
    """The top-level folders of every source, each name once."""
    return sorted({name for prefix in sources for name in visible_dirs(os.path.join(str(root), prefix))})


def scan_tree(root: Path, layout: Layout, only: set[str] | None = None, *,
              cutoff: int | None = None, known: dict[str, str] | None = None,
              sources: tuple[str, ...] = SINGLE) -> dict[str, CustomerScan]:
    """Every customer (or just those named in `only`) with its visit stamps."""
    names = sorted(only) if only is not None else customer_folders(root, sources)
    found = {}
    for folder in names:
        scanned = scan_customer(root, folder, layout, cutoff=cutoff, known=known, sources=sources)
        if scanned is not None:
            found[folder] = scanned
    return found


def changed_customers(root: Path, groups, stored_roots: list[DirRow] | None, roots_now: list[DirRow | None],
                      sources: tuple[str, ...] = SINGLE) -> set[str]:
    """Top-level folders (customers) with a folder whose stamp moved since `groups` were stored.

    `groups` are (top-level folder, paths from ROOT, mtimes, inodes) as state.folder_groups
    returns them; `stored_roots` / `roots_now` are the sources' root rows then and now. One stat per
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
    if stored_roots is None or None in roots_now or any(row[1] == RACY for row in stored_roots) \
            or [row[1:] for row in roots_now] != [row[1:] for row in stored_roots]:
        # A customer folder came or went (or was renamed): the roots' listings tell which.
        touched |= set(customer_folders(root, sources)) ^ {group[0] for group in groups}
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
    if file.is_symlink():  # visit.yaml -> /etc/shadow: never read through a planted link
        return {}, _("{file} is a symbolic link fieldsync did not make; it was not read").format(file=file)
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
