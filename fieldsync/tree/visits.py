"""Dated visits (P5, P6, P8) and their remarks with an append-only edit history (P11)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from fieldsync.base.clock import iso, now
from fieldsync.base.i18n import _
from fieldsync.base.names import require_safe
from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.config import Config
from fieldsync.errors import BadInput, TreeError
from fieldsync.tree.folders import customer_dir, read_customer, resolve_business
from fieldsync.tree.layout import NOTE_FIELDS, VISIT_FILE, account_of_folder, classify, relative

VISIT_COMMENT = "fieldsync visit (P5/P6): remarks and their edit history (P11)"
MAX_NOTE_CHARS = 10_000
# How an edit was made, in its history entry: absent for the CLI, "hand" for a text editor or
# the file manager (seen by the sync engine, recorded on this device's inspector's behalf).
BY_HAND = "hand"
# A date (and time) at the start of a visit folder's name: 2026-12-02, 2026-12-02_1430, 20261202 ...
_NAME_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})(?:[ _T-]?(\d{2}):?(\d{2}))?")


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
    require_safe(category, _("category name"))
    parent = customer_dir(cfg, account_no) / business / category
    if not parent.is_dir():
        raise TreeError(_("category {quoted} does not exist under {business}; "
                          "create it with 'fieldsync category add {account} {business} {category}'").format(
            quoted=repr(category), category=category, business=business, account=account_no))
    explicit = name is not None
    base = require_safe(name, _("visit name")) if explicit else default_visit_name(cfg, at)
    notes = {key: _check_note(value, key) for key, value in
             (("appearance_note", appearance_note), ("nameplate_note", nameplate_note))}
    customer = read_customer(parent.parent.parent)
    data = {
        "name": base,
        "account_no": customer.get("account_no") or account_no,
        "customer_name": customer.get("name"),
        "business": business,
        "category": category,
        "created_at": iso(at),
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
                raise TreeError(_("a visit named {name!r} already exists in {parent}; choose another --name").format(
                                  name=name, parent=parent))
            continue
        write_yaml(staging / VISIT_FILE, {**data, "name": name}, VISIT_COMMENT)
        try:
            os.rename(staging, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if target.exists():  # a non-empty folder of that name appeared meanwhile
                continue
            raise TreeError(_("cannot create {target}: {strerror}").format(
                              target=target, strerror=exc.strerror)) from None
        return target
    raise TreeError(_("too many visits named {base} in {parent}; give one a --name").format(base=base, parent=parent))


def _check_note(value: str | None, field: str) -> str:
    value = (value or "").replace("\r\n", "\n")
    if len(value) > MAX_NOTE_CHARS:
        raise BadInput(_("the {field} is longer than {MAX_NOTE_CHARS} characters").format(
                         field=field.replace('_', ' '), MAX_NOTE_CHARS=MAX_NOTE_CHARS))
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise BadInput(_("the {field} contains control characters").format(field=field.replace('_', ' ')))
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
            raise TreeError(_("{path} is not a visit folder (it is a {role} folder); give "
                              "CUSTOMER/BUSINESS/CATEGORY/VISIT").format(path=path, role=info.role))
    raise TreeError(_("no visit folder {visit} (looked from here and from {root}); "
                      "'fieldsync visit new' prints the path of a new visit").format(visit=repr(text), root=cfg.root))


def visit_record(cfg: Config, path: Path) -> dict:
    """visit.yaml of a visit with every field `visit new` writes, the missing ones taken from
    where the folder sits (customer, business, category), its name (the date) and this device
    (inspector, device): a visit folder made by hand is as complete as a CLI-made one."""
    stored = read_visit(path)
    customer_folder = path.parent.parent.parent
    try:
        customer = read_customer(customer_folder)
    except TreeError:
        customer = {}  # a broken customer.yaml is check's finding; the folder name still tells
    defaults = {
        "name": path.name,
        "account_no": str(customer.get("account_no") or account_of_folder(customer_folder.name, cfg.layout) or ""),
        "customer_name": customer.get("name") or "",
        "business": path.parent.parent.name,
        "category": path.parent.name,
        "created_at": _created_at(cfg, path),
        "inspector": cfg.inspector,
        "device": cfg.device,
        **dict.fromkeys(NOTE_FIELDS, ""),
        "history": [],
    }
    return {**defaults, **{key: value for key, value in stored.items() if value is not None}}


def complete_visit(cfg: Config, path: Path) -> bool:
    """Write the fields a hand-made visit lacks into its visit.yaml (and make its photo
    folders); True when something was written. Existing values are never changed."""
    stored = read_visit(path) if (path / VISIT_FILE).is_file() else None
    for folder in cfg.layout.kind_folders.values():
        (path / folder).mkdir(exist_ok=True)
    record = visit_record(cfg, path)
    if stored is not None and all(stored.get(key) is not None for key in record):
        return False
    write_yaml(path / VISIT_FILE, record, VISIT_COMMENT)
    return True


def adopt_hand_edits(cfg: Config, path: Path, sealed: dict[str, str], at: datetime | None = None) -> bool:
    """Record in the history the remarks (and a folder rename) changed without the CLI, so a
    text editor or the file manager leaves the same record as `visit edit` (P11).

    The value each remark should have is the last edit's new text, or, with no edit of it yet,
    the text last sealed in the manifest (`sealed`). A difference becomes an edit from that
    value to the current one, by this device's inspector, marked as made by hand. True when
    something was recorded."""
    data = read_visit(path)
    history = data.get("history")
    if history is None:
        history = data["history"] = []
    if not isinstance(history, list):
        raise TreeError(_("{file}: 'history' is not a list; restore the file from the server").format(
                          file=path / VISIT_FILE))
    changes = []
    for field in NOTE_FIELDS:
        edits = [h for h in history if isinstance(h, dict) and h.get("field") == field]
        expected = edits[-1].get("new") if edits else sealed.get(field)
        current = data.get(field) or ""
        if expected is not None and current != (expected or ""):
            changes.append((field, expected or "", current))
    if data.get("name") not in (None, path.name):
        changes.append(("name", data["name"], path.name))  # renamed in the file manager
        data["name"] = path.name
    if not changes:
        return False
    stamp = iso(at or now())
    history += [{"at": stamp, "by": cfg.inspector, "field": field, "old": old, "new": new, "how": BY_HAND}
                for field, old, new in changes]
    write_yaml(path / VISIT_FILE, data, VISIT_COMMENT)
    return True


def _created_at(cfg: Config, path: Path) -> str:
    """When a hand-made visit happened: the date and time its name starts with (the
    conventional name is one), else when the folder was last changed."""
    found = _NAME_DATE.match(path.name)
    if found:
        year, month, day, hour, minute = (int(g) if g else 0 for g in found.groups())
        try:
            return iso(datetime(year, month, day, hour, minute))
        except ValueError:
            pass  # 2026-13-45: not a date after all
    try:
        return iso(datetime.fromtimestamp(path.stat().st_mtime))
    except OSError:
        return iso(now())


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
    data = visit_record(cfg, path)  # a hand-made visit gets its missing fields with the edit
    if not isinstance(data["history"], list):
        raise TreeError(_("{file}: 'history' is not a list; restore the file from the server").format(
                          file=path / VISIT_FILE))
    changes: list[tuple[str, object, object]] = []
    for field, value in (("appearance_note", appearance_note), ("nameplate_note", nameplate_note)):
        if value is not None:
            value = _check_note(value, field)
            if value != (data.get(field) or ""):
                changes.append((field, data.get(field) or "", value))
    target = path
    if name is not None and name != path.name:
        require_safe(name, _("visit name"))
        target = path.parent / name
        if target.exists():
            raise TreeError(_("a visit named {name!r} already exists in {parent}").format(
                              name=name, parent=path.parent))
        changes.append(("name", path.name, name))
    if not changes:
        return path
    for field, old, new in changes:
        data[field] = new
        data["history"].append({"at": iso(at), "by": cfg.inspector,
                                "field": field, "old": old, "new": new})
    # Write the remarks first, then rename: a crash between the two leaves a consistent
    # visit.yaml whose name the next edit or `check` reconciles with the folder.
    write_yaml(path / VISIT_FILE, data, VISIT_COMMENT)
    if target != path:
        os.rename(path, target)
    return target
