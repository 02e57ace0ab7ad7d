"""Local select (P9): file existing photos into a visit's appearance or nameplate folder.

Copies never overwrite: a name clash gets a suffix, and a file already in the folder with
the same content is reported instead of copied twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fieldsync.base.hashing import file_sha256
from fieldsync.base.i18n import _
from fieldsync.config import Config
from fieldsync.errors import BadInput, TreeError
from fieldsync.media.imaging import identify
from fieldsync.tree.layout import PHOTO_KINDS


@dataclass(frozen=True)
class Added:
    source: Path
    target: Path
    duplicate: bool  # True: the same photo was already there, nothing copied


def kind_folder(cfg: Config, visit: Path, kind: str) -> Path:
    try:
        folder = visit / cfg.layout.kind_folders[kind]
    except KeyError:
        raise BadInput(_("unknown photo kind {kind!r}; use {kinds}").format(
                         kind=kind, kinds=' or '.join(PHOTO_KINDS))) from None
    if folder.exists() and not folder.is_dir():
        raise TreeError(_("{folder} is a file; it should be the {kind} photo folder").format(folder=folder, kind=kind))
    folder.mkdir(exist_ok=True)
    return folder


def add_photos(cfg: Config, visit: Path, kind: str, files: list[Path]) -> list[Added]:
    """Copy `files` into the visit's `kind` folder; every file is checked before any is copied."""
    folder = kind_folder(cfg, visit, kind)
    for path in files:
        identify(path)
    existing = {file_sha256(p)[0]: p for p in folder.iterdir()
                if p.is_file() and not p.name.startswith(".")}
    results = []
    for path in files:
        digest = file_sha256(path)[0]
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
        raise TreeError(_("too many files named like {source_name} in {folder}").format(
                          source_name=source.name, folder=folder))
    finally:
        Path(tmp).unlink(missing_ok=True)
