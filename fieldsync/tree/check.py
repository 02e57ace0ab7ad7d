"""Lint the tablet tree: what is where it should not be, what is missing, what is unsafe, and
what the sync engine will trip on (empty, fake, truncated or still-growing photos, symlinks).

Folders made by hand are as valid as CLI-made ones, so `check` reads the tree with the same
rules as the engine (layout.classify, imaging.is_photo_name) and reports, never repairs.

Speed: by default a photo is checked the way the engine decides it is complete (media.shrink.
is_complete: a JPEG's EOI after its first scan, a PNG's IEND, read from the head and tail) plus
its header (format, pixel count): a truncated, fake or empty file shows here and not as a
quarantine later, at a few file reads per photo, so a tablet of 20,000 photos checks in
seconds. `check --deep` decodes every photo the way shrink does (JPEGs with libjpeg's 1/8 DCT
scaling, ~10 ms for a shrunk photo, ~70 ms for a 12 MP original; other formats fully up to
DEEP_DECODE_BYTES), which also finds damage in the middle of a file.

Each finding may carry a fix: a command (argv) that, run as it is, fixes it — computed from
what is on disk now (the customer is in the master data, the target name is free, the folder
it moves to exists), so `check` never suggests a command that fails. Paths in it are absolute:
it works from any folder. The CLI shell-quotes it; texts are translated (_()).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import time
import unicodedata
import warnings
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from fieldsync.base.i18n import _
from fieldsync.base.names import clean_component, is_safe_component, photo_name_problem
from fieldsync.base.platform_names import find_platform_issues
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Config
from fieldsync.errors import FieldsyncError
from fieldsync.masterdata.store import CustomerStore
from fieldsync.media.imaging import ACCEPTED_FORMATS, is_photo_name, register_heif
from fieldsync.media.shrink import is_complete
from fieldsync.tree.folders import require_root, stale_customer_records
from fieldsync.tree.layout import CUSTOMER_FILE, VISIT_FILE, account_of_folder, classify

# An incomplete photo written to in the last few seconds is probably still coming from the
# camera (half a file reads as a truncated one): reported as still being written, not as bad.
GROWING_SECONDS = 5.0
# Non-JPEG photos above this size get a header check only (a full HEIC decode of a large
# photo costs a good part of a second).
DEEP_DECODE_BYTES = 16 << 20


def unsafe_name_advice() -> str:
    return _("rename it without / \\ : * ? \" < > |, control characters or trailing dots/spaces")


@dataclass(frozen=True)
class Finding:
    path: PurePosixPath  # relative to ROOT
    problem: str
    advice: str
    fix: tuple[str, ...] = ()  # a command that fixes it, run as it is (empty: none does)

    def __str__(self) -> str:
        return _("{path}: {problem}; {advice}").format(path=self.path, problem=self.problem, advice=self.advice)


# The moves this check suggests, by source: two moves never aim at the same free name, and
# two findings about one file get one move (shown once, see _one_fix_each).
_moves: ContextVar[dict[Path, tuple[str, ...]]] = ContextVar("check_moves")


def _free(path: Path) -> Path:
    """`path`, or NAME-2.EXT, NAME-3.EXT ... when something is there already (or another fix
    of this check goes there)."""
    taken = {Path(move[-1]) for move in _moves.get({}).values()}
    stem, dot, suffix = path.name.partition(".") if not path.name.startswith(".") else (path.name, "", "")
    candidate, n = path, 1
    while os.path.lexists(candidate) or candidate in taken:
        n += 1
        candidate = path.with_name(f"{stem}-{n}{dot}{suffix}")
    return candidate


def _move(source: Path, target: Path) -> tuple[str, ...]:
    """mv SOURCE TARGET with a free TARGET (`mv` would move into an existing folder)."""
    moves = _moves.get({})
    if source not in moves:
        moves[source] = ("mv", "--", str(source), str(_free(target)))
    return moves[source]


def _rename(path: Path, name: str) -> tuple[str, ...]:
    """Rename to `name` in the same folder, when that is a real change (else no fix)."""
    if not name or name == path.name:
        return ()
    return _move(path, path.with_name(name))


def _aside(cfg: Config, rel: PurePosixPath) -> tuple[str, ...]:
    """Where a file or folder the tree does not expect goes: its customer's documents folder
    (mirrored as it is) when it sits under one, out of the tree (beside it) when it is at the
    top; no fix when neither is possible."""
    path = cfg.root / rel
    if len(rel.parts) == 1:
        return _move(path, cfg.root.parent / rel.name)
    documents = cfg.root / rel.parts[0] / cfg.layout.documents_folder
    if documents.is_dir() and rel.parent != PurePosixPath(rel.parts[0], cfg.layout.documents_folder):
        return _move(path, documents / rel.name)
    return ()


def _open_customer(cfg: Config, account: str) -> tuple[str, ...]:
    """`fieldsync customer open ACCOUNT`, when it will work: the account is in the master data."""
    store = CustomerStore(cfg.state_dir)
    try:
        known = store.exists() and store.get(account) is not None
    except FieldsyncError:
        known = False
    return ("fieldsync", "customer", "open", account) if known else ()


def check_tree(cfg: Config, now: float | None = None, deep: bool = False) -> list[Finding]:
    """Every problem in the tree under cfg.root, in path order; `now` (a POSIX time) decides
    which files are still being written; `deep` decodes every photo (see the module's doc)."""
    root = require_root(cfg)
    _moves.set({})
    walk = _Walk(cfg, time.time() if now is None else now, deep)
    walk.folder(root, PurePosixPath())
    walk.findings += [_platform_finding(cfg, issue)
                      for issue in find_platform_issues(walk.seen, windows_root=_windows_root(cfg))]
    for folder, fields in stale_customer_records(cfg):
        account = account_of_folder(folder.name, cfg.layout)
        walk.findings.append(Finding(PurePosixPath(folder.name, CUSTOMER_FILE),
                                     _("differs from the master data in {fields}").format(fields=", ".join(fields)),
                                     _("run 'fieldsync customer open {account}' to bring it up to date "
                                       "(the location and keys you added are kept)").format(account=account),
                                     _open_customer(cfg, account or "")))
    return _one_fix_each(sorted(walk.findings, key=lambda f: (str(f.path), f.problem)))


def _one_fix_each(findings: list[Finding]) -> list[Finding]:
    """Two findings about one name (unsafe here, refused on Windows there) may have the same
    fix: it is shown once, with the first; run twice, the second would fail."""
    shown: set[tuple[PurePosixPath, tuple[str, ...]]] = set()
    kept = []
    for finding in findings:
        if (finding.path, finding.fix) in shown:
            finding = dataclasses.replace(finding, fix=())
        shown.add((finding.path, finding.fix))
        kept.append(finding)
    return kept


def _platform_finding(cfg: Config, issue) -> Finding:
    """A name another filesystem refuses or mixes up: renamed to the form every system takes
    (composed Unicode, without Windows' forbidden characters), or one of a same-name pair
    renamed; a path too long for Windows has no command that fixes it."""
    path = cfg.root / issue.path
    if issue.kind == "length":
        fix: tuple[str, ...] = ()
    elif issue.kind == "clash":
        stem, dot, suffix = issue.path.name.partition(".")
        fix = _move(path, path.with_name(f"{stem}-2{dot}{suffix}"))
    else:
        fix = _rename(path, unicodedata.normalize("NFC", clean_component(issue.path.name)))
    return Finding(issue.path, issue.problem, issue.advice, fix)


class _Walk:
    """One pass over the visible tree, as the engine's scan sees it: hidden names skipped,
    symlinks reported and not followed."""

    def __init__(self, cfg: Config, now: float, deep: bool):
        self.cfg = cfg
        self.now = now
        self.deep = deep
        self.max_pixels = cfg.photos.max_pixels
        self.findings: list[Finding] = []
        self.seen: list[PurePosixPath] = []  # every visible name, for the platform checks

    def folder(self, path: Path, rel_dir: PurePosixPath) -> None:
        try:
            items = sorted(os.scandir(path), key=lambda item: item.name)
        except OSError as exc:
            self.findings.append(Finding(rel_dir, _("cannot read the folder ({reason})").format(reason=exc.strerror),
                                         _("fix its permissions so sync can see what is inside"),
                                         ("chmod", "u+rwx", "--", str(path))))
            return
        for item in items:
            if item.name.startswith("."):
                continue  # temp files and our own state, never mirrored
            rel = rel_dir / item.name
            self.seen.append(rel)
            if item.is_symlink():
                self.findings.append(_symlink_finding(Path(item.path), rel))
            elif item.is_dir(follow_symlinks=False):
                self.findings += _check_dir(self.cfg, Path(item.path), rel)
                self.folder(Path(item.path), rel)
            elif item.is_file(follow_symlinks=False):
                self.findings += self.file(Path(item.path), rel)

    def file(self, path: Path, rel: PurePosixPath) -> list[Finding]:
        found = _check_file(self.cfg, rel)
        if classify(rel, self.cfg.layout, is_dir=False).role == "photo":
            found += self.photo(path, rel)
        return found

    def photo(self, path: Path, rel: PurePosixPath) -> list[Finding]:
        try:
            st = path.stat()
        except OSError:
            return []  # gone since the listing
        if st.st_size == 0:
            problem = _("empty (0 bytes)")
        elif not self.deep and _looks_whole(path, self.max_pixels):
            problem = None
        else:  # decode it, for the reason (or, with --deep, to find damage inside)
            problem = _decode_problem(path, st.st_size, self.max_pixels)
        if problem is None:
            return []  # complete, however young: the engine takes it as it is
        age = self.now - st.st_mtime
        if age < GROWING_SECONDS:
            return [Finding(rel, _("still being written ({problem}, changed {seconds:.0f} s ago)").format(
                                problem=problem, seconds=max(age, 0)),
                            _("let the camera finish; sync takes it once it is complete, then check again"))]
        if st.st_size == 0:
            return [Finding(rel, _("empty photo (0 bytes)"),
                            _("take the photo again and delete this file; sync will not file it"),
                            ("rm", "--", str(path)))]
        # No command: only the inspector knows whether the real photo can be had again.
        return [Finding(rel, _("not a readable photo ({problem})").format(problem=problem),
                        _("sync will not file it and sets it aside in quarantine if it stays so; "
                          "replace it with the real photo or remove it"))]


def _symlink_finding(path: Path, rel: PurePosixPath) -> Finding:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        path.stat()
        problem = _("symlink (to {target}): sync skips it, it is not mirrored to the server")
    except OSError as exc:
        problem = (_("symlink loop (to {target}): sync skips it, it is not mirrored to the server")
                   if exc.errno == errno.ELOOP else
                   _("broken symlink (to {target}): sync skips it, it is not mirrored to the server"))
    # The fix removes the link only (never what it points to); putting the real file there
    # instead is the other way, which no command can guess.
    return Finding(rel, problem.format(target=target),
                   _("put the real file or folder here if it belongs on the server, or remove the link"),
                   ("rm", "--", str(path)))


def _looks_whole(path: Path, max_pixels: int) -> bool:
    """Complete the way the engine judges it, with a header Pillow accepts and a pixel count
    within photos.max_pixels (nothing is decoded for a JPEG or PNG)."""
    try:
        if not is_complete(path):
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                return image.format in ACCEPTED_FORMATS and width * height <= max_pixels
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return False


def _decode_problem(path: Path, size: int, max_pixels: int) -> str | None:
    """Why the engine's shrink would refuse this photo, or None; see the module docstring."""
    register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                fmt = image.format or "unknown"
                if fmt not in ACCEPTED_FORMATS:
                    return _("a {format} image, not JPEG, PNG, HEIC or WebP").format(format=fmt)
                width, height = image.size
                if width * height > max_pixels:
                    return _("{width}x{height} pixels is over photos.max_pixels ({max_pixels})").format(
                        width=width, height=height, max_pixels=max_pixels)
                if fmt in ("JPEG", "MPO"):
                    image.draft(image.mode if image.mode in ("L", "RGB") else "RGB", (1, 1))
                    image.load()
                elif size <= DEEP_DECODE_BYTES:
                    image.load()
    except UnidentifiedImageError:
        return _("not an image")
    except Image.DecompressionBombError:
        return _("too large to decode safely")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return _("corrupt or truncated: {error}").format(error=exc)
    return None


def _check_dir(cfg: Config, path: Path, rel: PurePosixPath) -> list[Finding]:
    found = []
    if not is_safe_component(rel.name):
        found.append(Finding(rel, _("the folder name is not safe on every filesystem"), unsafe_name_advice(),
                             _rename(path, clean_component(rel.name))))
    info = classify(rel, cfg.layout, is_dir=True)
    if info.role == "customer":
        account = account_of_folder(rel.name, cfg.layout)
        if account is None:
            found.append(Finding(rel, _("no account number in the customer folder name"),
                                 _("name it like {pattern}, or move it out of the tree").format(
                                     pattern=repr(cfg.layout.customer_folder)), _aside(cfg, rel)))
        elif not (path / CUSTOMER_FILE).is_file():
            fix = _open_customer(cfg, account)
            advice = (_("run 'fieldsync customer open {account}'").format(account=account) if fix else
                      _("customer {account} is not in the master data: import or pull master data that has it, "
                        "or move the folder out of the tree").format(account=account))
            found.append(Finding(rel, _("no {file}").format(file=CUSTOMER_FILE), advice, fix or _aside(cfg, rel)))
    elif info.role == "misplaced" and len(rel.parts) == 2:
        businesses = ", ".join(cfg.layout.businesses)
        found.append(Finding(rel, _("unknown business folder"),
                             _("use one of {businesses}, or keep it in {documents}").format(
                                 businesses=businesses, documents=cfg.layout.documents_folder), _aside(cfg, rel)))
    elif info.role == "visit":
        found += _check_visit(path, rel)
    elif info.role == "misplaced" and len(rel.parts) == 5:
        kinds = _(" or ").join(cfg.layout.kind_folders.values())
        found.append(Finding(rel, _("unknown folder inside a visit"),
                             _("photos go in {kinds}; other files in the customer's {documents} folder").format(
                                 kinds=kinds, documents=cfg.layout.documents_folder), _aside(cfg, rel)))
    return found


def _check_visit(path: Path, rel: PurePosixPath) -> list[Finding]:
    file = path / VISIT_FILE
    if not file.is_file():
        return [Finding(rel, _("visit without {file}").format(file=VISIT_FILE),
                        _("the next 'fieldsync sync' (or the running daemon) writes it "
                          "from the folder names and config"), ("fieldsync", "sync"))]
    try:
        data = read_yaml(file)
    except Exception as exc:  # any unreadable visit.yaml is a finding, not a crash
        return [Finding(rel / VISIT_FILE, _("unreadable ({error})").format(error=exc),
                        _("restore it from the server copy"))]
    if data.get("name") not in (None, path.name):
        return [Finding(rel, _("{file} names the visit {name}").format(file=VISIT_FILE, name=repr(data.get("name"))),
                        _("the next sync records the folder's name in its history (a rename made in the "
                          "file manager)"), ("fieldsync", "sync"))]
    return []


def _check_file(cfg: Config, rel: PurePosixPath) -> list[Finding]:
    found = []
    path = cfg.root / rel
    info = classify(rel, cfg.layout, is_dir=False)
    refused = photo_name_problem(rel.name)
    if refused:
        found.append(Finding(rel, _("sync does not push it: {reason}").format(reason=refused.split("; ")[0]),
                             refused.split("; ")[-1], _rename(path, clean_component(rel.name))))
    elif not is_safe_component(rel.name):
        found.append(Finding(rel, _("the file name is not safe on every filesystem"), unsafe_name_advice(),
                             _rename(path, clean_component(rel.name))))
    if is_photo_name(rel.name) and info.role not in ("photo", "document", "assets"):
        kinds = "/".join(cfg.layout.kind_folders.values())
        found.append(Finding(rel, _("photo outside a visit's photo folder (it will not be shrunk)"),
                             _("move it into CUSTOMER/BUSINESS/CATEGORY/VISIT/{kinds}/").format(kinds=kinds),
                             _photo_home(cfg, rel, info)))
    elif info.role == "misplaced" and info.kind and len(rel.parts) == 6:
        found.append(Finding(rel, _("not a photo, in a photo folder: sync leaves it here and pushes it as it is "
                                    "(not shrunk, not in the manifest)"),
                             _("write notes with 'fieldsync remark' (they go in visit.yaml); other files go in "
                               "the customer's {documents} folder").format(documents=cfg.layout.documents_folder),
                             _aside(cfg, rel)))
    elif info.role == "misplaced" and not is_photo_name(rel.name):
        found.append(Finding(rel, _("file in a folder the tree does not expect"),
                             _("move it to the customer's {documents} folder").format(
                                 documents=cfg.layout.documents_folder), _aside(cfg, rel)))
    return found


def _photo_home(cfg: Config, rel: PurePosixPath, info) -> tuple[str, ...]:
    """A photo lying in a visit folder goes into its appearance folder (the inspector can move
    it to the nameplate folder after); anywhere else, to the customer's documents."""
    if info.role == "visit-file":
        folder = cfg.root / rel.parent / cfg.layout.kind_folders["appearance"]
        if folder.is_dir():
            return _move(cfg.root / rel, folder / rel.name)
    return _aside(cfg, rel)


def _windows_root(cfg: Config) -> str:
    # Path-length limits depend on where the tree sits; on Linux/Android assume a typical
    # Windows location, since the server copy is often browsed from Windows too.
    return str(cfg.root) if os.name == "nt" else "C:\\Users\\inspector.name\\fieldsync"
