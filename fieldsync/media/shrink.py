"""Shrink a photo with Pillow (P10): long edge <= photos.max_edge, orientation baked in, EXIF kept.

Pure apart from reading `src` and writing `dst`: the engine decides where the result goes and
when it replaces the photo. JPEGs are decoded with an explicit draft() so libjpeg scales the
DCT (1/2, 1/4, 1/8) while decoding; Image.thumbnail() alone asks for twice the target size
and so skips that step at 1600 px from 12 MP.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from fieldsync.base.i18n import _
from fieldsync.errors import ImageError, IncompleteImage, LocalFault
from fieldsync.media.imaging import DecodeBudget, decoded_bytes, open_image

log = logging.getLogger(__name__)

# What Pillow raises on a damaged EXIF block (12 of 400 random mutations raised TypeError
# from Exif.tobytes()); the photo is kept without it.
EXIF_ERRORS = (ValueError, TypeError, KeyError, IndexError, struct.error, SyntaxError, OverflowError,
               AttributeError)

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC
TAG_ORIENTATION = 0x0112
IFD_EXIF = 0x8769
TAG_PIXEL_X, TAG_PIXEL_Y = 0xA002, 0xA003
TAG_THUMBNAIL_OFFSET, TAG_THUMBNAIL_LENGTH = 0x0201, 0x0202

# Source pixels resized at a time once an image is larger than this decoded: Pillow resizes
# RGBA by premultiplying a full-size copy first (a 9999x9999 PNG: 400 MB more than its
# decoded pixels) and keeps a full-height intermediate between its two passes.
STRIP_BYTES = 16 * 1024 * 1024

# EXIF orientation -> the transpose that makes the pixels upright (as ImageOps.exif_transpose)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}

# Pillow format -> (save format, keyword arguments besides quality/exif)
_SAVE = {
    "JPEG": ("JPEG", {}),
    "MPO": ("JPEG", {}),  # multi-picture JPEG (some phones): the first picture is the photo
    "PNG": ("PNG", {"compress_level": 6}),
    "WEBP": ("WEBP", {"method": 4}),
    "HEIF": ("HEIF", {}),
}


@dataclass(frozen=True)
class ShrinkSettings:
    max_edge: int = 1600
    jpeg_quality: int = 85
    max_pixels: int = 100_000_000

    @classmethod
    def from_config(cls, photos) -> ShrinkSettings:
        return cls(photos.max_edge, photos.jpeg_quality, photos.max_pixels)


@dataclass(frozen=True)
class Shrunk:
    """What shrink() did: `changed` False means the photo was left as it is (no dst written)."""

    changed: bool
    format: str
    width: int
    height: int
    note: str = ""  # what was dropped on the way (a damaged EXIF block), for the log


def target_size(size: tuple[int, int], max_edge: int) -> tuple[int, int] | None:
    """The size to scale `size` down to so its long edge is max_edge; None when it fits."""
    width, height = size
    long_edge = max(width, height)
    if long_edge <= max_edge:
        return None
    scale = max_edge / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(src: Path, dst: Path, settings: ShrinkSettings, budget: DecodeBudget | None = None) -> Shrunk:
    """Write a shrunk copy of `src` to `dst` (same format), or leave both alone when `src`
    already fits max_edge. A bomb-sized or unreadable image raises ImageError, one that does
    not decode to the end IncompleteImage (a subclass); a failing tablet (disk full writing
    `dst`, an I/O error reading `src`) raises LocalFault, never ImageError. A damaged EXIF
    block is dropped (Shrunk.note says so), never a reason to fail.

    budget: shared by the workers; the decode waits until it has room (bounded memory)."""
    try:
        with open_image(src, settings.max_pixels) as image:
            return _shrink_open(image, src, dst, settings, budget or DecodeBudget(0))
    except ImageError:
        raise
    except FileNotFoundError:
        raise
    except UnidentifiedImageError:
        raise ImageError(_("{src}: not an image Pillow can read (JPEG, PNG, HEIC, WebP)").format(src=src)) from None
    except OSError as exc:
        if exc.errno is not None:
            # Reading or writing the tablet failed (ENOSPC writing dst, EIO reading src):
            # the tablet's fault, not the photo's. Pillow's decode errors carry no errno.
            raise LocalFault.from_os_error(exc, _) from exc
        raise IncompleteImage(_("{src}: corrupt or truncated image ({exc})").format(src=src, exc=exc)) from None
    except (ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise IncompleteImage(_("{src}: corrupt or truncated image ({name}: {exc})").format(
                                src=src, name=type(exc).__name__, exc=exc)) from None


def is_complete(path: Path) -> bool:
    """True when the photo at `path` is whole: a JPEG ends with EOI after its first scan, a PNG
    with IEND (both read from the file's head and tail only); anything else, or a JPEG/PNG
    whose tail says otherwise (padding after EOI, a trailer), must decode to the end.

    Raises OSError when the file cannot be read (gone, I/O error): the caller decides.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        handle.seek(max(0, size - len(PNG_END)))
        tail = handle.read()
        if head.startswith(b"\xff\xd8") and tail.endswith(b"\xff\xd9") and _jpeg_scan_starts(handle, size):
            return True
        if head.startswith(b"\x89PNG") and tail == PNG_END:
            return True
    return _decodes(path)


def _jpeg_scan_starts(handle, size: int) -> bool:
    # Walk the marker segments from SOI to the first SOS (start of scan). The EOI of an EXIF
    # thumbnail inside APP1 is skipped this way: a file cut right after it is not whole.
    pos = 2
    while pos + 4 <= size:
        handle.seek(pos)
        marker = handle.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return False
        code = marker[1]
        if code == 0xFF:  # fill byte before a marker
            pos += 1
        elif code == 0xDA:
            return True
        elif 0xD0 <= code <= 0xD7 or code == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(marker[2:4], "big")
    return False


def _decodes(path: Path) -> bool:
    try:
        with open_image(path) as image:
            if image.format in ("JPEG", "MPO"):
                # 1/8 DCT scale: every byte of the scan is still decoded, 64x less to keep.
                image.draft(image.mode if image.mode in ("L", "RGB") else "RGB",
                            (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
        return True
    except ImageError:
        return True  # whole or not, too large to decode: shrink refuses it with the reason
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise
        return False
    except (ValueError, SyntaxError, EOFError, struct.error):
        return False


def _shrink_open(image: Image.Image, src: Path, dst: Path, settings: ShrinkSettings,
                 budget: DecodeBudget) -> Shrunk:
    fmt = image.format or ""
    if fmt not in _SAVE:
        raise ImageError(_("{src}: {fmt} is not a photo format fieldsync shrinks (JPEG, PNG, HEIC, WebP)").format(
                           src=src, fmt=fmt or 'unknown'))
    width, height = image.size
    exif, note = _readable_exif(image)
    orientation = exif.get(TAG_ORIENTATION, 1) if exif is not None else 1
    turned = orientation in (5, 6, 7, 8)
    shown = (height, width) if turned else (width, height)
    wanted = target_size((width, height), settings.max_edge)
    if wanted is None:
        # Already small enough: re-encoding would only lose quality (and a shrunk photo
        # offered again after a crash must come out byte-identical). Still decode it fully
        # so a truncated file is caught here rather than on the server.
        with budget.admit(decoded_bytes(image)):
            image.load()
            image.close()  # the pixels go now, inside the budget, not when the caller closes
        return Shrunk(False, fmt, *shown, note=note)

    if fmt in ("JPEG", "MPO"):
        # DCT scaling: decode straight at the smallest 1/n scale still >= the target.
        image.draft("RGB" if image.mode not in ("L", "RGB") else image.mode, wanted)
    with budget.admit(_working_bytes(image)):  # after draft(): the size libjpeg will decode
        try:
            return _scale_and_save(image, dst, settings, wanted, orientation, exif, fmt, note)
        finally:
            image.close()


def _working_bytes(image: Image.Image) -> int:
    """What shrinking `image` holds at once: its decoded pixels, plus the resize's copies
    (of the whole image while it is small, of one strip once it is larger; see _resize)."""
    decoded = decoded_bytes(image)
    return decoded + min(2 * decoded, 3 * STRIP_BYTES)


def _resize(image: Image.Image, wanted: tuple[int, int]) -> Image.Image:
    """image.resize(wanted) with BILINEAR, done in horizontal strips once the image is larger
    than STRIP_BYTES decoded, so the extra memory is a strip's, never a second image's.

    Each strip carries enough rows above and below for the filter's reach, and the box tells
    Pillow where the output rows come from: the result is within one level of a whole-image
    resize (Pillow's fixed-point weights round differently for a shorter image), more only
    in the colour of nearly transparent pixels.
    """
    if decoded_bytes(image) <= STRIP_BYTES:
        return image.resize(wanted, Image.Resampling.BILINEAR, reducing_gap=None)
    width, height = image.size
    out_w, out_h = wanted
    scale = height / out_h
    margin = math.ceil(scale) + 2  # BILINEAR reaches one source pixel, widened by the scale
    rows = max(1, int(STRIP_BYTES / (4 * width) / scale))  # output rows per strip
    result = Image.new(image.mode, wanted)
    for top in range(0, out_h, rows):
        bottom = min(top + rows, out_h)
        first, last = top * scale, bottom * scale
        crop_top = max(0, math.floor(first) - margin)
        crop_bottom = min(height, math.ceil(last) + margin)
        with image.crop((0, crop_top, width, crop_bottom)) as strip:
            part = strip.resize((out_w, bottom - top), Image.Resampling.BILINEAR,
                                box=(0, first - crop_top, width, last - crop_top), reducing_gap=None)
        result.paste(part, (0, top))
    return result


def _readable_exif(image: Image.Image) -> tuple[Image.Exif | None, str]:
    """The photo's EXIF, checked to serialise again; (None, why) when the block is damaged."""
    try:
        exif = image.getexif()
        exif.get_ifd(IFD_EXIF)
        exif.tobytes()
        return exif, ""
    except EXIF_ERRORS as exc:
        log.debug("damaged EXIF block", exc_info=True)
        return None, _("damaged EXIF block dropped ({name}: {exc})").format(name=type(exc).__name__, exc=exc)


def _scale_and_save(image: Image.Image, dst: Path, settings: ShrinkSettings, wanted: tuple[int, int],
                    orientation: int, exif: Image.Exif | None, fmt: str, note: str) -> Shrunk:
    image.load()
    icc = image.info.get("icc_profile")
    # Resize in stored orientation, then turn the pixels upright. After the DCT step the
    # remaining scale is mild (1/2 .. 1): there Pillow's BILINEAR (a triangle filter widened
    # by the scale, so still antialiased) costs a third less than BICUBIC, and after the
    # quality-85 encode the two differ by under 0.2 dB PSNR (bench.shrink prints it).
    scaled = _resize(image, wanted)
    if orientation in _TRANSPOSE:
        scaled = scaled.transpose(_TRANSPOSE[orientation])
    out_w, out_h = scaled.size
    exif_bytes = b""
    if exif is not None:
        exif[TAG_ORIENTATION] = 1
        for tag in (TAG_THUMBNAIL_OFFSET, TAG_THUMBNAIL_LENGTH):
            exif.pop(tag, None)
        exif_ifd = exif.get_ifd(IFD_EXIF)
        if TAG_PIXEL_X in exif_ifd or TAG_PIXEL_Y in exif_ifd:
            exif_ifd[TAG_PIXEL_X], exif_ifd[TAG_PIXEL_Y] = out_w, out_h
        try:
            exif_bytes = exif.tobytes()
        except EXIF_ERRORS as exc:  # the edited block no longer serialises: keep the photo
            note = note or _("damaged EXIF block dropped ({name}: {exc})").format(name=type(exc).__name__, exc=exc)

    save_format, options = _SAVE[fmt]
    options = dict(options)
    if save_format in ("JPEG", "WEBP", "HEIF"):
        options["quality"] = settings.jpeg_quality
    if save_format == "JPEG" and scaled.mode not in ("L", "RGB"):
        scaled = scaled.convert("RGB")  # CMYK/YCCK/alpha: JPEG readers expect RGB
    if icc:
        options["icc_profile"] = icc
    scaled.save(dst, save_format, exif=exif_bytes, **options)
    return Shrunk(True, fmt, out_w, out_h, note=note)


