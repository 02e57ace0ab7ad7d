"""Master data travels: the server publishes customers.json, tablets pull it when it changed.

Layout on the server (hidden, so never mirrored back by sync):
    REMOTE_ROOT/.fieldsync/master/customers.json   the TinyDB file, byte for byte
    REMOTE_ROOT/.fieldsync/master/version.json     {sha256, bytes, count, published_at, source}
version.json is written last, so a tablet that sees a new version finds its data complete; the
tablet checks the sha256 before it swaps its own copy in one step (os.replace).

On a share of chrooted tablets (docs/deployment.md) no tablet can reach another's remote root, so
the back office publishes into its own remote root, SHARE/master, and root copies that into every
tablet's tree with `install_in_tablets` (`fieldsync server publish-master`): a root-owned, read-only
.fieldsync/master folder there, which the tablet reads and can neither write nor forge for others.

The back office's keyring of tablet signing keys travels the same way (publish_keyring,
pull_keyring): REMOTE_ROOT/.fieldsync/keyring/keyring.json, then its version.json. The file is
passed through as bytes; what a keyring means is evidence/keys.py's business, a layer above.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fieldsync.base.atomic import write_text
from fieldsync.base.clock import now_iso
from fieldsync.base.hashing import file_sha256
from fieldsync.base.i18n import _
from fieldsync.config import STATE_DIR
from fieldsync.errors import BadInput, TransportError, UnknownCustomer
from fieldsync.masterdata import index_file
from fieldsync.masterdata.store import CUSTOMERS_TABLE, STORE_NAME, CustomerStore
from fieldsync.transport import open_transport

REMOTE_DIR = PurePosixPath(".fieldsync/master")
REMOTE_DATA = REMOTE_DIR / STORE_NAME
REMOTE_VERSION = REMOTE_DIR / "version.json"
PULLED_FILE = "master-pulled.json"  # in the tablet's .fieldsync/: the version it holds
SHARE_MASTER = "master"  # on a share of chrooted tablets: the back office's remote root
# Opening a folder a tablet could have replaced: never through a link, only a real folder.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


KEYRING_DIR = PurePosixPath(".fieldsync/keyring")
REMOTE_KEYRING = KEYRING_DIR / "keyring.json"
REMOTE_KEYRING_VERSION = KEYRING_DIR / "version.json"
PULLED_KEYRING = "keyring.json"  # in the tablet's .fieldsync/: the published keyring it holds


@dataclass(frozen=True)
class Published:
    sha256: str
    bytes: int
    count: int


def publish(state_dir: Path, transport) -> Published:
    """Put this machine's master data into the remote root for tablets to pull."""
    store = CustomerStore(state_dir)
    if not store.exists():
        raise UnknownCustomer(_("no master data to publish; run 'fieldsync customers import FILE' first"))
    meta = store.meta()
    version = {"sha256": file_sha256(store.path)[0], "bytes": store.path.stat().st_size,
               "count": meta.get("count"), "source": meta.get("source"),
               "published_at": now_iso()}
    _upload_with_version(transport, state_dir, store.path, REMOTE_DATA, REMOTE_VERSION, version)
    return Published(version["sha256"], version["bytes"], version["count"] or 0)


def publish_keyring(keyring: Path, state_dir: Path, transport) -> dict:
    """Put the back office's keyring into the remote root; version.json (sha256) goes last."""
    version = {"sha256": file_sha256(keyring)[0], "bytes": Path(keyring).stat().st_size,
               "published_at": now_iso()}
    _upload_with_version(transport, state_dir, Path(keyring), REMOTE_KEYRING, REMOTE_KEYRING_VERSION, version)
    return version


def _upload_with_version(transport, state_dir: Path, source: Path, data_rel: PurePosixPath,
                         version_rel: PurePosixPath, version: dict) -> None:
    """The data first, its version.json last: a tablet that sees a new version finds its data
    complete (each upload is itself atomic: temp name, size check, rename)."""
    transport.makedirs(data_rel.parent)
    transport.upload(source, data_rel)
    note = Path(state_dir) / f".publish-{data_rel.parent.name}-version.json"
    note.parent.mkdir(parents=True, exist_ok=True)
    write_text(note, json.dumps(version, ensure_ascii=False, indent=1), private=True)
    try:
        transport.upload(note, version_rel)
    finally:
        note.unlink(missing_ok=True)


def _remote_version(transport, state_dir: Path, version_rel: PurePosixPath, what: str, advice: str) -> dict | None:
    """The published version.json ({sha256, ...}), None when nothing is published; BadInput
    when the file there is not one."""
    if transport.stat(version_rel) is None:
        return None
    version_tmp = Path(state_dir) / f".pull-{version_rel.parent.name}-version.json"
    transport.download(version_rel, version_tmp)
    remote = _read_json(version_tmp)
    version_tmp.unlink(missing_ok=True)
    if not remote or not isinstance(remote.get("sha256"), str):
        raise BadInput(_("{url}: {version_rel} is not a {what}; {advice}").format(
                         url=transport.url, version_rel=version_rel, what=what, advice=advice))
    return remote


def pull_keyring(cfg, transport=None) -> dict | None:
    """Fetch the published keyring into .fieldsync/keyring.json when it changed; return its
    version ({sha256, published_at, ...}), or None when nothing is published."""
    state_dir = Path(cfg.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    own = transport is None
    transport = transport or open_transport(cfg)
    target = state_dir / PULLED_KEYRING
    try:
        remote = _remote_version(transport, state_dir, REMOTE_KEYRING_VERSION, _("keyring version"),
                                 _("the back office runs 'fieldsync keyring publish' again"))
        if remote is None:
            return None
        if target.exists() and file_sha256(target)[0] == remote["sha256"]:
            return remote
        data_tmp = state_dir / ".pull-keyring.json"
        try:
            _download_checked(transport, REMOTE_KEYRING, data_tmp, remote["sha256"], _("the published keyring"))
            os.replace(data_tmp, target)
        finally:
            data_tmp.unlink(missing_ok=True)
    finally:
        if own:
            transport.close()
    return remote


def _download_checked(transport, rel: PurePosixPath, local: Path, sha256: str, what: str) -> None:
    """Download `rel` to `local` and check it against the sha256 its version.json announced."""
    transport.download(rel, local)
    if file_sha256(local)[0] != sha256:
        raise TransportError(_("{what} changed while it was fetched (or was damaged); pull again").format(what=what))


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pull_if_changed(cfg, transport=None) -> bool:
    """Fetch the published master data when it differs from ours; True when it was replaced.

    The daemon calls this on a schedule. Nothing published yet is not an error (False).
    The caller derives what follows (customer.yaml, pages): sync.derive with master_data_changed.
    """
    state_dir = Path(cfg.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    own = transport is None
    transport = transport or open_transport(cfg)
    try:
        remote = _remote_version(transport, state_dir, REMOTE_VERSION, _("fieldsync master data version"),
                                 _("run 'fieldsync customers publish' on the server again"))
        if remote is None:
            return False
        pulled = _read_json(state_dir / PULLED_FILE) or {}
        store = CustomerStore(state_dir)
        if (pulled.get("sha256") == remote["sha256"] and store.exists()
                and file_sha256(store.path)[0] == remote["sha256"]):
            return False
        data_tmp = state_dir / ".pull-customers.json"
        try:
            _download_checked(transport, REMOTE_DATA, data_tmp, remote["sha256"],
                              _("the master data on the server"))
            records = _customer_rows(data_tmp)
            os.replace(data_tmp, store.path)
        finally:
            data_tmp.unlink(missing_ok=True)
    finally:
        if own:
            transport.close()
    index_file.rebuild_index(state_dir, records)
    write_text(state_dir / PULLED_FILE, json.dumps(remote, ensure_ascii=False, indent=1), private=True)
    return True


def _customer_rows(path: Path) -> list[dict]:
    """The customers in a fetched TinyDB file; refuses anything else before it replaces ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = list(data[CUSTOMERS_TABLE].values())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadInput(_("the published master data is not a fieldsync customers file; "
                       "run 'fieldsync customers publish' on the server again")) from None
    if not all(isinstance(r, dict) and r.get("account_no") for r in rows):
        raise BadInput(_("the published master data has rows without an account no.; publish it again"))
    return rows


def install_in_tablets(share: Path, trees: list[str]) -> Published:
    """Copy the master data published into SHARE/master to each tablet tree (paths from SHARE).

    Run as root: each tree's .fieldsync/master becomes a folder of ours, mode 0755, holding files
    0644, so the tablet reads it and cannot change it. Everything inside a tablet's tree is opened
    by folder handle, never through a link, since the tablet owns the folders on the way.
    """
    source = Path(share) / SHARE_MASTER / REMOTE_DIR
    try:
        files = {name: (source / name).read_bytes() for name in (REMOTE_DATA.name, REMOTE_VERSION.name)}
        version = json.loads(files[REMOTE_VERSION.name])
    except (OSError, ValueError):
        raise UnknownCustomer(_("no master data published in {source}; run 'fieldsync customers publish' as the "
                                "back-office account first (docs/deployment.md)").format(source=source)) from None
    # The keyring of tablet signing keys, when the back office published one there too
    # ('fieldsync keyring publish --keyring FILE SHARE/master'), so `verify --keyring published`
    # works inside every chroot.
    keyring_source = Path(share) / SHARE_MASTER / KEYRING_DIR
    names = (REMOTE_KEYRING.name, REMOTE_KEYRING_VERSION.name)
    keyring = {name: (keyring_source / name).read_bytes() for name in names
               if (keyring_source / name).is_file() and not (keyring_source / name).is_symlink()}
    for tree in trees:
        _install(Path(share) / tree, files, REMOTE_DIR.name)
        if len(keyring) == len(names):
            _install(Path(share) / tree, keyring, KEYRING_DIR.name)
    return Published(version.get("sha256", ""), version.get("bytes") or 0, version.get("count") or 0)


def _install(tree: Path, files: dict[str, bytes], folder: str) -> None:
    tree_fd = os.open(tree, _DIR_FLAGS)
    try:
        owner = os.fstat(tree_fd)
        try:  # the tablet's state folder, made as the tablet would make it: its own
            os.mkdir(STATE_DIR, 0o755, dir_fd=tree_fd)
            os.chown(STATE_DIR, owner.st_uid, owner.st_gid, dir_fd=tree_fd, follow_symlinks=False)
        except FileExistsError:
            pass
        state_fd = os.open(STATE_DIR, _DIR_FLAGS, dir_fd=tree_fd)
    finally:
        os.close(tree_fd)
    try:
        fresh, old = f".{folder}-{secrets.token_hex(4)}", f".{folder}-old-{secrets.token_hex(4)}"
        os.mkdir(fresh, 0o700, dir_fd=state_fd)
        fresh_fd = os.open(fresh, _DIR_FLAGS, dir_fd=state_fd)
        try:
            for name, data in files.items():  # version.json last, as the tablet expects
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fresh_fd)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            os.fchmod(fresh_fd, 0o755)
        finally:
            os.close(fresh_fd)
        try:
            os.rename(folder, old, src_dir_fd=state_fd, dst_dir_fd=state_fd)
        except FileNotFoundError:
            old = None
        os.rename(fresh, folder, src_dir_fd=state_fd, dst_dir_fd=state_fd)
        if old is None:
            pass
        elif stat.S_ISLNK(os.lstat(old, dir_fd=state_fd).st_mode):  # a tablet put a link there
            os.unlink(old, dir_fd=state_fd)
        else:  # rmtree by folder handle does not follow links planted inside
            shutil.rmtree(old, dir_fd=state_fd)
    finally:
        os.close(state_fd)
