"""What the tree holds, as data for `category list` and `visit list`: categories and visits of
one customer or of all, read from the folders (hand-made ones included) the way layout.classify
reads them, in path order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.names import normalize_account
from fieldsync.config import Config
from fieldsync.errors import TreeError
from fieldsync.media.imaging import is_photo_name
from fieldsync.tree.folders import customer_dir, require_root
from fieldsync.tree.layout import account_of_folder, classify
from fieldsync.tree.visits import visit_record


@dataclass(frozen=True)
class Category:
    account_no: str
    business: str
    name: str
    path: PurePosixPath  # relative to ROOT
    visits: int

    def as_json(self) -> dict:
        return {"account_no": self.account_no, "business": self.business, "category": self.name,
                "path": self.path.as_posix(), "visits": self.visits}


@dataclass(frozen=True)
class Visit:
    account_no: str
    business: str
    category: str
    name: str
    path: PurePosixPath  # relative to ROOT
    created_at: str
    inspector: str
    photos: dict[str, int]  # kind -> count

    def as_json(self) -> dict:
        return {"account_no": self.account_no, "business": self.business, "category": self.category,
                "name": self.name, "path": self.path.as_posix(), "created_at": self.created_at,
                "inspector": self.inspector, "photos": self.photos}


def categories(cfg: Config, account_no: str | None = None) -> list[Category]:
    """Every category folder of ACCOUNT's customer (or of every customer), with its visit count."""
    found = []
    for folder in _customer_folders(cfg, account_no):
        account = account_of_folder(folder.name, cfg.layout) or ""
        for business in cfg.layout.businesses:
            for category in _subfolders(folder / business):
                rel = PurePosixPath(folder.name, business, category.name)
                if classify(rel, cfg.layout, is_dir=True).role != "category":
                    continue
                count = sum(1 for v in _subfolders(category)
                            if classify(rel / v.name, cfg.layout, is_dir=True).role == "visit")
                found.append(Category(account, business, category.name, rel, count))
    return found


def visits(cfg: Config, account_no: str | None = None) -> list[Visit]:
    """Every visit folder of ACCOUNT's customer (or of every customer), oldest name first within
    a category; each with its visit.yaml fields (defaults for a hand-made one) and photo counts."""
    found = []
    for category in categories(cfg, account_no):
        for folder in _subfolders(cfg.root / category.path):
            rel = category.path / folder.name
            if classify(rel, cfg.layout, is_dir=True).role != "visit":
                continue
            try:
                record = visit_record(cfg, folder)
            except TreeError:
                record = {}  # an unreadable visit.yaml is check's finding; the folder still counts
            photos = {kind: _photo_count(folder / name) for kind, name in cfg.layout.kind_folders.items()}
            found.append(Visit(category.account_no, category.business, category.name, folder.name, rel,
                               str(record.get("created_at") or ""), str(record.get("inspector") or ""), photos))
    return found


def _customer_folders(cfg: Config, account_no: str | None) -> list[Path]:
    if account_no is not None:
        return [customer_dir(cfg, normalize_account(account_no))]
    root = require_root(cfg)
    return [folder for folder in _subfolders(root)
            if classify(PurePosixPath(folder.name), cfg.layout, is_dir=True).role == "customer"
            and account_of_folder(folder.name, cfg.layout) is not None]


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted((p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                       and not p.name.startswith(".")), key=lambda p: p.name)
    except OSError:
        return []  # missing or unreadable: nothing listed (check reports unreadable folders)


def _photo_count(folder: Path) -> int:
    try:
        return sum(1 for p in folder.iterdir() if p.is_file() and is_photo_name(p.name))
    except OSError:
        return 0
