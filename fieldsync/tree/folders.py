"""Build the tablet tree: the root, customer roots (P1, P3) and categories (P4).

Nothing here renders a page: views.refresh derives them from the tree (sync.derive runs it).
"""

from __future__ import annotations

from pathlib import Path

from fieldsync.base.atomic import write_text
from fieldsync.base.i18n import _
from fieldsync.base.names import customer_folder_name, normalize_account, require_safe
from fieldsync.base.signing import KEY_FILE, ensure_key
from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.config import CONFIG_NAME, STATE_DIR, Config
from fieldsync.errors import BadInput, TreeError
from fieldsync.masterdata.store import FIELDS, CustomerStore
from fieldsync.tree.layout import CUSTOMER_FILE, account_of_folder, find_customer_dir

CUSTOMER_COMMENT = "fieldsync customer record (P1): master data fields, location (P12)"


def init_root(root: Path, config_text: str | None, config_path: Path | None = None) -> Path:
    """Create ROOT, its private state folder and the device's signing key; write config.yaml
    unless one is there."""
    root = root.expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise BadInput(_("{root} exists and is not a folder; choose another ROOT").format(root=root))
    (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
    # The device's evidence signing key: private, never mirrored (see evidence/ledger.py).
    ensure_key(root / STATE_DIR / KEY_FILE)
    config_path = config_path or root / CONFIG_NAME
    if config_text is not None and not config_path.exists():
        config_path.parent.mkdir(parents=True, exist_ok=True)
        write_text(config_path, config_text)
    return config_path


def require_root(cfg: Config) -> Path:
    if not cfg.root.is_dir():
        raise TreeError(_("the tree {root} does not exist; run 'fieldsync init {root}'").format(root=cfg.root))
    return cfg.root


def customer_dir(cfg: Config, account_no: str) -> Path:
    """The customer's root folder, which must exist already."""
    account_no = normalize_account(account_no)
    found = find_customer_dir(require_root(cfg), account_no, cfg.layout)
    if found is None:
        raise TreeError(_("customer {account} has no folder yet; run 'fieldsync customer open {account}'").format(
            account=account_no))
    return found


def open_customer(cfg: Config, account_no: str) -> Path:
    """Make or refresh the customer's root: customer.yaml, documents and business folders."""
    root = require_root(cfg)
    record = CustomerStore(cfg.state_dir).get(account_no)
    folder = find_customer_dir(root, record["account_no"], cfg.layout)
    if folder is None:
        name = customer_folder_name(cfg.layout.customer_folder, record["account_no"], record["name"])
        folder = root / name
    folder.mkdir(exist_ok=True)
    (folder / cfg.layout.documents_folder).mkdir(exist_ok=True)
    for business in cfg.layout.businesses:
        (folder / business).mkdir(exist_ok=True)
    refresh_customer_yaml(folder / CUSTOMER_FILE, record)
    return folder


def refresh_customer_yaml(path: Path, record: dict) -> bool:
    """Bring customer.yaml's master data fields up to `record`; True when the file changed."""
    # Only the master data fields are refreshed: location and anything an inspector added stay.
    current = read_yaml(path) if path.exists() else {}
    updated = {key: record.get(key) for key in FIELDS}
    merged = {**updated, **{k: v for k, v in current.items() if k not in FIELDS}}
    if merged == current:
        return False
    write_yaml(path, merged, CUSTOMER_COMMENT)
    return True


def refresh_customer_records(cfg: Config) -> list[Path]:
    """After new master data: refresh customer.yaml of every customer folder that has one and
    whose account the master data holds. Returns the customer folders whose file changed."""
    return [folder for folder, record in _customer_records(cfg)
            if refresh_customer_yaml(folder / CUSTOMER_FILE, record)]


def stale_customer_records(cfg: Config) -> list[tuple[Path, list[str]]]:
    """Customer folders whose customer.yaml differs from the master data, with the fields that
    differ (an import or pull whose refresh did not run, or a hand edit of those fields)."""
    stale = []
    for folder, record in _customer_records(cfg):
        try:
            current = read_yaml(folder / CUSTOMER_FILE)
        except TreeError:
            continue  # unreadable: check reports that on its own
        fields = [key for key in FIELDS if current.get(key) != record.get(key)]
        if fields:
            stale.append((folder, fields))
    return stale


def _customer_records(cfg: Config) -> list[tuple[Path, dict]]:
    """(customer folder, its master data record) for every folder with a customer.yaml whose
    account the master data holds; the store is read once, not once per folder."""
    store = CustomerStore(cfg.state_dir)
    if not cfg.root.is_dir() or not store.exists():
        return []
    folders = {}
    for folder in sorted(p for p in cfg.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        account = account_of_folder(folder.name, cfg.layout)
        if account is not None and (folder / CUSTOMER_FILE).is_file():
            folders[account] = folder  # hand-made folders without a record keep what they have
    if not folders:
        return []
    # An account dropped from the master data keeps its last known record.
    found = [(folders[r["account_no"]], r) for r in store.all() if r.get("account_no") in folders]
    return sorted(found, key=lambda pair: pair[0].name)


def resolve_business(cfg: Config, business: str) -> str:
    """A business type by its folder name or its number 1, 2 or 3."""
    names = cfg.layout.businesses
    text = business.strip()
    if text in ("1", "2", "3"):
        return names[int(text) - 1]
    if text in names:
        return text
    choices = ", ".join(f"{i}={name}" for i, name in enumerate(names, 1))
    raise BadInput(_("unknown business type {business}; use one of {choices}").format(
        business=repr(business), choices=choices))


def add_category(cfg: Config, account_no: str, business: str, name: str) -> Path:
    """Create a category folder (P4) under a business type; existing is fine."""
    business = resolve_business(cfg, business)
    require_safe(name, _("category name"))
    folder = customer_dir(cfg, account_no) / business
    folder.mkdir(exist_ok=True)
    target = folder / name
    if target.exists() and not target.is_dir():
        raise TreeError(_("{target} exists and is a file, not a category folder; rename it first").format(
                          target=target))
    target.mkdir(exist_ok=True)
    return target


def read_customer(folder: Path) -> dict:
    path = folder / CUSTOMER_FILE
    return read_yaml(path) if path.exists() else {}
