"""Walk the server tree cheaply: which customers and visits exist, and a stamp of each.

A stamp is made from a few `stat` calls (no file is read), so comparing stamps with the
cache tells which visits changed without opening anything. Files land by rename (the transport
uploads to a hidden temp name first), which changes the folder's mtime and the file's inode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Layout
from ..layout import CUSTOMER_FILE, MANIFEST_FILE, VISIT_FILE, is_photo_name


def stat_stamp(path: str) -> str:
    """mtime, size and inode of `path`, or "-" when it does not exist."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "-"
    return f"{st.st_mtime_ns}.{st.st_size}.{st.st_ino}"


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
                          if not e.name.startswith(".") and is_photo_name(e.name)
                          and e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass
class CustomerScan:
    folder: str
    stamp: str
    visits: dict[str, str] = field(default_factory=dict)  # visit rel -> stamp


def visit_stamp(visit_path: str, layout: Layout) -> str:
    # Four stats and no reads: this runs for every visit of the tree on each rebuild.
    base = visit_path + os.sep
    names = (VISIT_FILE, MANIFEST_FILE, *layout.kind_folders.values())
    return "|".join([stat_stamp(base + name) for name in names])


def is_customer_folder(path: str, layout: Layout) -> bool:
    """A customer root: has customer.yaml, or at least one business folder (still uploading)."""
    if os.path.exists(os.path.join(path, CUSTOMER_FILE)):
        return True
    return any(os.path.isdir(os.path.join(path, b)) for b in layout.businesses)


def scan_customer(root: Path, folder: str, layout: Layout) -> CustomerScan | None:
    """Stamps of one customer and of each of its visits; None when it is not a customer folder."""
    base = os.path.join(root, folder)
    if not os.path.isdir(base) or not is_customer_folder(base, layout):
        return None
    result = CustomerScan(folder, stat_stamp(os.path.join(base, CUSTOMER_FILE)))
    for business in layout.businesses:
        business_path = os.path.join(base, business)
        for category in visible_dirs(business_path):
            category_path = os.path.join(business_path, category)
            for visit in visible_dirs(category_path):
                rel = f"{folder}/{business}/{category}/{visit}"
                result.visits[rel] = visit_stamp(os.path.join(category_path, visit), layout)
    return result


def customer_folders(root: Path) -> list[str]:
    return visible_dirs(str(root))


def scan_tree(root: Path, layout: Layout, only: set[str] | None = None) -> dict[str, CustomerScan]:
    """Every customer (or just those named in `only`) with its visit stamps."""
    names = sorted(only) if only is not None else customer_folders(root)
    found = {}
    for folder in names:
        scanned = scan_customer(root, folder, layout)
        if scanned is not None:
            found[folder] = scanned
    return found


def as_text(value) -> str:
    """YAML may hand back dates or numbers where people typed text; pages and reports want text."""
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def read_visit_file(visit_path: Path) -> tuple[dict, str | None]:
    """visit.yaml as a mapping ({} when absent, e.g. still uploading) and a problem, if any."""
    from ..errors import FieldsyncError
    from ..yamlfile import read_yaml

    file = Path(visit_path) / VISIT_FILE
    if not file.exists():
        return {}, None
    try:
        return read_yaml(file), None
    except FieldsyncError as exc:
        return {}, str(exc)


def visit_time(data: dict, visit_path: Path) -> str:
    """created_at from visit.yaml, else the folder's mtime (a folder made by hand)."""
    import datetime as dt

    created = as_text(data.get("created_at"))
    if created:
        return created
    try:
        stamp = Path(visit_path).stat().st_mtime
    except FileNotFoundError:
        return ""
    return dt.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")
