"""Local select (P9): file existing photos into a visit's appearance or nameplate folder.

Copies never overwrite: a name clash gets a suffix, and a file already in the folder with
the same content is reported instead of copied twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .config import Config
from .errors import BadInput, TreeError
from .layout import PHOTO_SUFFIXES

_registered_heif = False


def register_heif() -> None:
    """Teach Pillow HEIC/HEIF (iPhone and many Android cameras) once per process."""
    global _registered_heif
    if not _registered_heif:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _registered_heif = True


ACCEPTED_FORMATS = {"JPEG", "PNG", "HEIF", "WEBP", "MPO"}


def identify(path: Path) -> str:
    """The image format Pillow reads in `path`, or BadInput saying why it is not a photo."""
    register_heif()
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        raise BadInput(f"{path}: not a photo (accepted: {', '.join(sorted(PHOTO_SUFFIXES))})")
    try:
        with Image.open(path) as image:
            fmt = image.format or ""
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInput(f"{path}: not a readable image ({exc.__class__.__name__}); "
                       "check the file is a JPEG, PNG, HEIC or WebP photo") from None
    if fmt not in ACCEPTED_FORMATS:
        raise BadInput(f"{path}: a {fmt} image, not a photo format fieldsync files (JPEG, PNG, HEIC, WebP)")
    return fmt


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Added:
    source: Path
    target: Path
    duplicate: bool  # True: the same photo was already there, nothing copied


def kind_folder(cfg: Config, visit: Path, kind: str) -> Path:
    try:
        folder = visit / cfg.layout.kind_folders[kind]
    except KeyError:
        raise BadInput(f"unknown photo kind {kind!r}; use appearance or nameplate") from None
    if folder.exists() and not folder.is_dir():
        raise TreeError(f"{folder} is a file; it should be the {kind} photo folder")
    folder.mkdir(exist_ok=True)
    return folder


def add_photos(cfg: Config, visit: Path, kind: str, files: list[Path]) -> list[Added]:
    """Copy `files` into the visit's `kind` folder; every file is checked before any is copied."""
    folder = kind_folder(cfg, visit, kind)
    for path in files:
        identify(path)
    existing = {sha256_file(p): p for p in folder.iterdir()
                if p.is_file() and not p.name.startswith(".")}
    results = []
    for path in files:
        digest = sha256_file(path)
        if digest in existing:
            results.append(Added(path, existing[digest], duplicate=True))
            continue
        target = place_copy(path, folder)
        existing[digest] = target
        results.append(Added(path, target, duplicate=False))
    return results


def place_copy(source: Path, folder: Path, move: bool = False) -> Path:
    """Copy (or move) `source` into `folder` under its name, or name-2, name-3... if taken.

    The bytes go to a hidden temp file first; os.link then claims the final name only if it
    is free, so a clash can never overwrite a photo, even with two writers at once.
    """
    fd, tmp = tempfile.mkstemp(prefix=".add.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        shutil.copystat(source, tmp)  # keep mtime: file managers sort photos by it
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        stem, suffix = Path(source.name).stem, Path(source.name).suffix
        for n in range(1, 10_000):
            target = folder / (source.name if n == 1 else f"{stem}-{n}{suffix}")
            try:
                os.link(tmp, target)
            except FileExistsError:
                continue
            except OSError:
                # No hard links here (FAT/exFAT cards, some shares): check, then rename.
                if target.exists():
                    continue
                os.rename(tmp, target)
            if move:
                source.unlink()
            return target
        raise TreeError(f"too many files named like {source.name} in {folder}")
    finally:
        Path(tmp).unlink(missing_ok=True)
