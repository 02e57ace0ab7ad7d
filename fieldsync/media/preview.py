"""Which photos a browser can show as they are, and where the JPEG preview of the others lives.

HEIC/HEIF (iPhones, many Android cameras) is mirrored as taken, but no browser the inspectors
or the ops admins use decodes it: such a photo gets a JPEG preview at display size beside its
thumbnail, in the derived-files area (ROOT/.fieldsync/, never mirrored, never in a manifest),
and the pages link the preview for viewing and the original as a download.

The decision is read from the file's first bytes, not its name: a phone that writes HEIC
under a .jpg name still gets its preview, and a page costs one small read per photo.
"""

from __future__ import annotations

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


def needs_preview(path: str) -> bool:
    """True when the photo at `path` is in a format browsers cannot show (HEIC/HEIF ...).

    A file that cannot be read needs none: its thumbnail fails too, and the page says so."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return False
    return bool(head) and not browser_shows(head)


def format_label(name: str) -> str:
    """What the original's download link calls its format: the name's suffix (HEIC, HEIF)."""
    suffix = name.rstrip(" .").rpartition(".")[2]
    return suffix.upper() if suffix and suffix != name.rstrip(" .") else "原图"
