"""What Pillow can open: HEIC/HEIF registered once, and which files are photos at all."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from fieldsync.errors import BadInput

# .mpo: the multi-picture JPEG some cameras (3D, dual lens) write; Pillow reads it as JPEG.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".mpo", ".png", ".heic", ".heif", ".webp"})


def is_photo_name(name: str) -> bool:
    """The one photo-name rule (engine, verify, check, bundles, server pages): a visible name
    whose suffix, once trailing spaces and dots are set aside, is a photo suffix.

    Trailing spaces and dots are accepted, not refused: Android cameras and file managers
    leave them, the engine files and seals such photos as named, so everything reading the
    tree must count them the same way; `fieldsync check` advises renaming them (Windows
    refuses such names).
    """
    if not name or name.startswith("."):
        return False  # hidden: temp files of uploads and shrinks, our own state
    return PurePosixPath(name.rstrip(" .")).suffix.lower() in PHOTO_SUFFIXES


_registered_heif = False


def register_heif() -> None:
    """Teach Pillow HEIC/HEIF (iPhone and many Android cameras) once per process."""
    global _registered_heif
    if not _registered_heif:
        register_heif_opener()
        _registered_heif = True


ACCEPTED_FORMATS = {"JPEG", "PNG", "HEIF", "WEBP", "MPO"}


def identify(path: Path) -> str:
    """The image format Pillow reads in `path`, or BadInput saying why it is not a photo."""
    register_heif()
    if not is_photo_name(path.name):
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
