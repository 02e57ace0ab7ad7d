"""What Pillow can open: HEIC/HEIF registered once, and which files are photos at all."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from fieldsync.errors import BadInput

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp"})


def is_photo_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in PHOTO_SUFFIXES


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
