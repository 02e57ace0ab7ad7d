"""What Pillow can open: HEIC/HEIF registered once, which files are photos at all, the one
safe way to open one (decompression bombs refused from the header, before any decoding) and
the decode budget the workers share (decoded pixels held at once)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from PIL import Image
from pillow_heif import register_heif_opener

from fieldsync.base.i18n import _
from fieldsync.config import Photos
from fieldsync.errors import BadInput, ImageError

# Pillow warns between its MAX_IMAGE_PIXELS and twice that: our own max_pixels decides, checked
# from the header in open_image. Pillow's own refusal (DecompressionBombError, over twice its
# limit) stays on as a second line for code that opens an image some other way.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _return_pixels_to_the_os() -> None:
    # glibc raises its mmap threshold after the first large free, so later 16 MB pixel blocks
    # come from per-thread heaps that are never given back: the eight big PNGs of
    # bench.memory peaked at 2.8 GB without this, 0.5 GB with it, although the budget let one
    # decode run at a time. A fixed threshold keeps pixel blocks mmapped, returned to the OS
    # when an image is closed.
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is not None:
        mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD


_return_pixels_to_the_os()

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
        raise BadInput(_("{path}: not a photo (accepted: {accepted})").format(
                         path=path, accepted=', '.join(sorted(PHOTO_SUFFIXES))))
    try:
        with open_image(path) as image:
            fmt = image.format or ""
    except FileNotFoundError:
        raise BadInput(_("{path}: no such file").format(path=path)) from None
    except ImageError as exc:
        raise BadInput(str(exc)) from None
    except Exception as exc:  # whatever a hostile header makes Pillow raise: not a photo
        raise BadInput(_("{path}: not a readable image ({name}); check the file is a JPEG, PNG, HEIC or WebP "
                         "photo").format(
                         path=path, name=exc.__class__.__name__)) from None
    if fmt not in ACCEPTED_FORMATS:
        raise BadInput(_("{path}: a {fmt} image, not a photo format fieldsync files (JPEG, PNG, HEIC, WebP)").format(
                         path=path, fmt=fmt))
    return fmt


@contextlib.contextmanager
def open_image(path: Path | str, max_pixels: int = Photos.max_pixels) -> Iterator[Image.Image]:
    """Pillow's lazy open of `path` (header read, no pixels decoded), refused with ImageError
    when the header announces more than `max_pixels` pixels: a 109 KB PNG can announce
    30000x30000 and take gigabytes to decode. Every place that opens a photo goes through here.

    Other errors (unreadable, not an image) are Pillow's own: callers say what they mean.
    """
    register_heif()
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageError(_("{path}: refused before decoding as a decompression bomb ({exc})").format(
                           path=path, exc=exc)) from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(_("{path}: {width}x{height} pixels is over photos.max_pixels ({max_pixels}); refused "
                               "before decoding as a decompression bomb").format(
                               path=path, width=width, height=height, max_pixels=max_pixels))
        if image.format == "PNG" and "exif" not in image.info:
            # Pillow's PNG getexif() decodes every pixel to reach an eXIf chunk that may follow
            # the image data: eight 9999x9999 PNGs read for EXIF took 3.5 GB outside the decode
            # budget. The chunk is found by walking the chunk headers instead.
            image.info["exif"] = _png_exif_chunk(path)
        yield image


def _png_exif_chunk(path: Path | str) -> bytes:
    """The eXIf chunk of the PNG at `path` as Pillow's info["exif"] holds it (b"" when there
    is none, or the chunk list is damaged: the pixels decide whether the photo is readable)."""
    with open(path, "rb") as handle:
        handle.seek(8)  # the signature
        while len(header := handle.read(8)) == 8:
            length, kind = struct.unpack(">I4s", header)
            if kind == b"eXIf":
                data = handle.read(length)
                return b"Exif\x00\x00" + data if len(data) == length else b""
            if kind == b"IEND":
                break
            handle.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return b""


def decoded_bytes(image: Image.Image) -> int:
    """What decoding `image` at its current size (after draft()) holds in memory: Pillow keeps
    every pixel of a multi-band or 32-bit mode in 4 bytes, single-byte modes in one."""
    width, height = image.size
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    return width * height * per_pixel


class DecodeBudget:
    """Decoded bytes the workers may hold at once (photos.decode_budget_mb, shared).

    A decode waits until the budget has room for it; one larger than the whole budget waits
    until it has the budget to itself. total_bytes 0: no limit.
    """

    def __init__(self, total_bytes: int):
        self.total = total_bytes
        self._free = total_bytes
        self._changed = threading.Condition()

    @classmethod
    def from_config(cls, photos: Photos) -> DecodeBudget:
        return cls(photos.decode_budget_mb * 1024 * 1024)

    @contextlib.contextmanager
    def admit(self, nbytes: int) -> Iterator[None]:
        if not self.total:
            yield
            return
        wanted = min(nbytes, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= wanted)
            self._free -= wanted
        try:
            yield
        finally:
            with self._changed:
                self._free += wanted
                self._changed.notify_all()
