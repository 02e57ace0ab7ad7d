"""Which photos a browser can show as they are, and where the JPEG preview of the others lives.

HEIC/HEIF (iPhones, many Android cameras) is mirrored as taken, but no browser the inspectors
or the ops admins use decodes it: such a photo gets a JPEG preview at display size beside its
thumbnail, in the derived-files area (ROOT/.fieldsync/, never mirrored, never in a manifest),
and the pages link the preview for viewing and the original as a download.

The decision is read from the file's first bytes, not its name: a phone that writes HEIC
under a .jpg name still gets its preview, and a page costs one small read per photo.
"""

from __future__ import annotations

import os

PREVIEW_EDGE = 2048  # long edge of a preview: a tablet or desktop screen, not the evidence
PREVIEW_QUALITY = 85
PREVIEWS_DIR = "previews"  # under the state dir (.fieldsync/), beside thumbs/
THUMBS_DIR = "thumbs"

# File signatures of what every browser decodes: JPEG (MPO too), PNG, GIF, WebP.
_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_GIF = (b"GIF87a", b"GIF89a")
_HEAD_BYTES = 12


def browser_shows(head: bytes) -> bool:
    """True when `head` (a file's first bytes) starts a JPEG, PNG, GIF or WebP image."""
    return (head.startswith((_JPEG, _PNG) + _GIF)
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


# ISO base media brands (the ftyp box at byte 4) and what the download link calls them.
_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC", b"heim": "HEIC",
           b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF"}


def foreign_format(path: str) -> str:
    """What the photo at `path` is when browsers cannot show it ("HEIC", "HEIF", ... as its
    download link names it); "" when they can, or when the file cannot be read (its thumbnail
    fails too, and the page says so)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return ""
    if not head or browser_shows(head):
        return ""
    if head[4:8] == b"ftyp" and head[8:12] in _BRANDS:
        return _BRANDS[head[8:12]]
    return os.path.splitext(path.rstrip(" ."))[1].lstrip(".").upper() or "?"


def needs_preview(path: str) -> bool:
    """True when the photo at `path` is in a format browsers cannot show (HEIC/HEIF ...)."""
    return bool(foreign_format(path))
