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
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from fieldsync.base.names import is_safe_component, photo_name_problem
from fieldsync.base.platform_names import find_platform_issues
from fieldsync.base.yamlfile import read_yaml
from fieldsync.config import Config
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
UNSAFE_NAME_ADVICE = "rename it without / \\ : * ? \" < > |, control characters or trailing dots/spaces"


@dataclass(frozen=True)
class Finding:
    path: PurePosixPath  # relative to ROOT
    problem: str
    advice: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.advice}"


def check_tree(cfg: Config, now: float | None = None, deep: bool = False) -> list[Finding]:
    """Every problem in the tree under cfg.root, in path order; `now` (a POSIX time) decides
    which files are still being written; `deep` decodes every photo (see the module's doc)."""
    root = require_root(cfg)
    walk = _Walk(cfg, time.time() if now is None else now, deep)
    walk.folder(root, PurePosixPath())
    walk.findings += [Finding(issue.path, issue.problem, issue.advice)
                      for issue in find_platform_issues(walk.seen, windows_root=_windows_root(cfg))]
    for folder, fields in stale_customer_records(cfg):
        account = account_of_folder(folder.name, cfg.layout)
        walk.findings.append(Finding(PurePosixPath(folder.name, CUSTOMER_FILE),
                                     f"differs from the master data in {', '.join(fields)}",
                                     f"run 'fieldsync customer open {account}' to bring it up to date "
                                     "(the location and keys you added are kept)"))
    return sorted(walk.findings, key=lambda f: (str(f.path), f.problem))


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
            self.findings.append(Finding(rel_dir, f"cannot read the folder ({exc.strerror})",
                                         "fix its permissions so sync can see what is inside"))
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
            problem = "empty (0 bytes)"
        elif not self.deep and _looks_whole(path, self.max_pixels):
            problem = None
        else:  # decode it, for the reason (or, with --deep, to find damage inside)
            problem = _decode_problem(path, st.st_size, self.max_pixels)
        if problem is None:
            return []  # complete, however young: the engine takes it as it is
        age = self.now - st.st_mtime
        if age < GROWING_SECONDS:
            return [Finding(rel, f"still being written ({problem}, changed {max(age, 0):.0f} s ago)",
                            "let the camera finish; sync takes it once it is complete, then check again")]
        if st.st_size == 0:
            return [Finding(rel, "empty photo (0 bytes)",
                            "take the photo again and delete this file; sync will not file it")]
        return [Finding(rel, f"not a readable photo ({problem})",
                        "sync will not file it and sets it aside in quarantine if it stays so; "
                        "replace it with the real photo or remove it")]


def _symlink_finding(path: Path, rel: PurePosixPath) -> Finding:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        path.stat()
        kind = "symlink"
    except OSError as exc:
        kind = "symlink loop" if exc.errno == errno.ELOOP else "broken symlink"
    return Finding(rel, f"{kind} (to {target}): sync skips it, it is not mirrored to the server",
                   "put the real file or folder here if it belongs on the server, or remove the link")


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
                    return f"a {fmt} image, not JPEG, PNG, HEIC or WebP"
                width, height = image.size
                if width * height > max_pixels:
                    return f"{width}x{height} pixels is over photos.max_pixels ({max_pixels})"
                if fmt in ("JPEG", "MPO"):
                    image.draft(image.mode if image.mode in ("L", "RGB") else "RGB", (1, 1))
                    image.load()
                elif size <= DEEP_DECODE_BYTES:
                    image.load()
    except UnidentifiedImageError:
        return "not an image"
    except Image.DecompressionBombError:
        return "too large to decode safely"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return f"corrupt or truncated: {exc}"
    return None


def _check_dir(cfg: Config, path: Path, rel: PurePosixPath) -> list[Finding]:
    found = []
    if not is_safe_component(rel.name):
        found.append(Finding(rel, "the folder name is not safe on every filesystem", UNSAFE_NAME_ADVICE))
    info = classify(rel, cfg.layout, is_dir=True)
    if info.role == "customer":
        if account_of_folder(rel.name, cfg.layout) is None:
            found.append(Finding(rel, "no account number in the customer folder name",
                                 f"name it like {cfg.layout.customer_folder!r}"))
        elif not (path / CUSTOMER_FILE).is_file():
            found.append(Finding(rel, f"no {CUSTOMER_FILE}",
                                 f"run 'fieldsync customer open {account_of_folder(rel.name, cfg.layout)}'"))
    elif info.role == "misplaced" and len(rel.parts) == 2:
        businesses = ", ".join(cfg.layout.businesses)
        found.append(Finding(rel, "unknown business folder",
                             f"use one of {businesses} or {cfg.layout.documents_folder}"))
    elif info.role == "visit":
        found += _check_visit(path, rel)
    elif info.role == "misplaced" and len(rel.parts) == 5:
        kinds = " or ".join(cfg.layout.kind_folders.values())
        found.append(Finding(rel, "unknown folder inside a visit", f"photos go in {kinds}"))
    return found


def _check_visit(path: Path, rel: PurePosixPath) -> list[Finding]:
    file = path / VISIT_FILE
    if not file.is_file():
        return [Finding(rel, f"visit without {VISIT_FILE}",
                        "nothing to do: the next 'fieldsync sync' (or the running daemon) writes it "
                        "from the folder names and config")]
    try:
        data = read_yaml(file)
    except Exception as exc:  # any unreadable visit.yaml is a finding, not a crash
        return [Finding(rel / VISIT_FILE, f"unreadable ({exc})", "restore it from the server copy")]
    if data.get("name") not in (None, path.name):
        return [Finding(rel, f"{VISIT_FILE} names the visit {data.get('name')!r}",
                        "the next sync records the folder's name in its history (a rename made in the file manager)")]
    return []


def _check_file(cfg: Config, rel: PurePosixPath) -> list[Finding]:
    found = []
    info = classify(rel, cfg.layout, is_dir=False)
    refused = photo_name_problem(rel.name)
    if refused:
        found.append(Finding(rel, "sync does not push it: " + refused.split("; ")[0], refused.split("; ")[-1]))
    elif not is_safe_component(rel.name):
        found.append(Finding(rel, "the file name is not safe on every filesystem", UNSAFE_NAME_ADVICE))
    if is_photo_name(rel.name) and info.role not in ("photo", "document", "assets"):
        kinds = "/".join(cfg.layout.kind_folders.values())
        found.append(Finding(rel, "photo outside a visit's photo folder (it will not be shrunk)",
                             f"move it into CUSTOMER/BUSINESS/CATEGORY/VISIT/{kinds}/"))
    elif info.role == "misplaced" and info.kind and len(rel.parts) == 6:
        found.append(Finding(rel, "not a photo, in a photo folder: sync leaves it here and pushes it as it is "
                                  "(not shrunk, not in the manifest)",
                             "write notes with 'fieldsync remark' (they go in visit.yaml); other files go in "
                             f"the customer's {cfg.layout.documents_folder} folder"))
    elif info.role == "misplaced" and not is_photo_name(rel.name):
        found.append(Finding(rel, "file in a folder the tree does not expect",
                             f"move it to the customer's {cfg.layout.documents_folder} folder"))
    return found


def _windows_root(cfg: Config) -> str:
    # Path-length limits depend on where the tree sits; on Linux/Android assume a typical
    # Windows location, since the server copy is often browsed from Windows too.
    return str(cfg.root) if os.name == "nt" else "C:\\Users\\inspector.name\\fieldsync"
