"""Dated visits (P5, P6, P8) and their remarks with an append-only edit history (P11)."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from fieldsync.base.names import require_safe
from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.config import Config
from fieldsync.errors import BadInput, TreeError
from fieldsync.tree.folders import customer_dir, read_customer, resolve_business
from fieldsync.tree.layout import VISIT_FILE, classify, relative

VISIT_COMMENT = "fieldsync visit (P5/P6): remarks and their edit history (P11)"
NOTE_FIELDS = ("appearance_note", "nameplate_note")
MAX_NOTE_CHARS = 10_000


def now() -> datetime:
    return datetime.now().astimezone()


def default_visit_name(cfg: Config, at: datetime | None = None) -> str:
    """The conventional name from layout.visit_folder, e.g. 2026-11-25_1430."""
    return cfg.layout.visit_folder.format(now=at or now())


def new_visit(cfg: Config, account_no: str, business: str, category: str, *,
              name: str | None = None, appearance_note: str = "", nameplate_note: str = "",
              at: datetime | None = None) -> Path:
    """Create a visit folder with visit.yaml and both photo folders, all at once.

    The folder is built under a hidden temp name and renamed into place, so a failure
    leaves nothing behind and the daemon never sees a visit without its visit.yaml.
    """
    at = at or now()
    business = resolve_business(cfg, business)
    require_safe(category, "category name")
    parent = customer_dir(cfg, account_no) / business / category
    if not parent.is_dir():
        raise TreeError(f"category {category!r} does not exist under {business}; "
                        f"create it with 'fieldsync category add {account_no} {business} {category}'")
    explicit = name is not None
    base = require_safe(name, "visit name") if explicit else default_visit_name(cfg, at)
    notes = {key: _check_note(value, key) for key, value in
             (("appearance_note", appearance_note), ("nameplate_note", nameplate_note))}
    customer = read_customer(parent.parent.parent)
    data = {
        "name": base,
        "account_no": customer.get("account_no") or account_no,
        "customer_name": customer.get("name"),
        "business": business,
        "category": category,
        "created_at": at.isoformat(timespec="seconds"),
        "inspector": cfg.inspector,
        "device": cfg.device,
        **notes,
        "history": [],
    }
    staging = Path(tempfile.mkdtemp(prefix=".visit.", dir=parent))
    try:
        for folder in cfg.layout.kind_folders.values():
            (staging / folder).mkdir()
        final = _place(staging, parent, base, data, unique=not explicit)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _place(staging: Path, parent: Path, base: str, data: dict, unique: bool) -> Path:
    # Two visits in the same minute: 2026-11-25_1430, then 2026-11-25_1430-2, -3, ...
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        target = parent / name
        if target.exists():
            if not unique:
                raise TreeError(f"a visit named {name!r} already exists in {parent}; choose another --name")
            continue
        write_yaml(staging / VISIT_FILE, {**data, "name": name}, VISIT_COMMENT)
        try:
            os.rename(staging, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if target.exists():  # a non-empty folder of that name appeared meanwhile
                continue
            raise TreeError(f"cannot create {target}: {exc.strerror}") from None
        return target
    raise TreeError(f"too many visits named {base} in {parent}; give one a --name")


def _check_note(value: str | None, field: str) -> str:
    value = (value or "").replace("\r\n", "\n")
    if len(value) > MAX_NOTE_CHARS:
        raise BadInput(f"the {field.replace('_', ' ')} is longer than {MAX_NOTE_CHARS} characters")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise BadInput(f"the {field.replace('_', ' ')} contains control characters")
    return value


def resolve_visit(cfg: Config, text: str | os.PathLike) -> Path:
    """A visit folder given as a path (absolute, from here, or from ROOT)."""
    candidates = [Path(text).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(cfg.root / Path(text))
    for path in candidates:
        if path.is_dir():
            info = classify(relative(cfg.root, path), cfg.layout, is_dir=True)
            if info.role == "visit":
                return path.resolve()
            if info.role == "photo-folder":
                return path.resolve().parent
            raise TreeError(f"{path} is not a visit folder (it is a {info.role} folder); "
                            "give CUSTOMER/BUSINESS/CATEGORY/VISIT")
    raise TreeError(f"no visit folder {text!r} (looked from here and from {cfg.root}); "
                    "'fieldsync visit new' prints the path of a new visit")


def read_visit(path: Path) -> dict:
    """visit.yaml of a visit; a folder made by hand without one gets defaults from its path."""
    file = path / VISIT_FILE
    if file.exists():
        return read_yaml(file)
    return {"name": path.name, "appearance_note": "", "nameplate_note": "", "history": []}


def edit_visit(cfg: Config, path: Path, *, name: str | None = None,
               appearance_note: str | None = None, nameplate_note: str | None = None,
               at: datetime | None = None) -> Path:
    """Change a visit's name or remarks; each change is appended to its history (P11)."""
    at = at or now()
    data = read_visit(path)
    data.setdefault("history", [])
    if not isinstance(data["history"], list):
        raise TreeError(f"{path / VISIT_FILE}: 'history' is not a list; restore the file from the server")
    changes: list[tuple[str, object, object]] = []
    for field, value in (("appearance_note", appearance_note), ("nameplate_note", nameplate_note)):
        if value is not None:
            value = _check_note(value, field)
            if value != (data.get(field) or ""):
                changes.append((field, data.get(field) or "", value))
    target = path
    if name is not None and name != path.name:
        require_safe(name, "visit name")
        target = path.parent / name
        if target.exists():
            raise TreeError(f"a visit named {name!r} already exists in {path.parent}")
        changes.append(("name", path.name, name))
    if not changes:
        return path
    for field, old, new in changes:
        data[field] = new
        data["history"].append({"at": at.isoformat(timespec="seconds"), "by": cfg.inspector,
                                "field": field, "old": old, "new": new})
    # Write the remarks first, then rename: a crash between the two leaves a consistent
    # visit.yaml whose name the next edit or `check` reconciles with the folder.
    write_yaml(path / VISIT_FILE, data, VISIT_COMMENT)
    if target != path:
        os.rename(path, target)
    return target
