"""Safe folder and file names: one path component, valid on every filesystem, stable, bounded.

Pure functions only. Data-derived names (customer names from master data) are cleaned;
names a person types (category, visit) are checked and, when unsafe, refused with the
cleaned form as a suggestion, so nobody is surprised by a folder they did not ask for.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from fieldsync.base.i18n import _
from fieldsync.errors import BadName

# 255 bytes is the common filesystem limit per component; staying well under it leaves room
# for the server root and temp-name prefixes, and keeps Windows paths under MAX_PATH.
MAX_COMPONENT_BYTES = 150

# The per-component limit of every filesystem fieldsync writes to (ext4, f2fs, exFAT, NTFS in
# characters): a temp or archive name derived from a photo's name must fit it too.
NAME_MAX_BYTES = 255
_DIGEST_CHARS = 16  # of a SHA-256 hex digest: unique among the names of one folder

# Characters no filesystem (or no Windows one) accepts, mapped to their full-width look-alikes
# so that a Chinese name keeps its meaning: 杭州/萧山 becomes 杭州／萧山, not 杭州_萧山.
_FORBIDDEN = {
    "/": "／", "\\": "＼", ":": "：", "*": "＊", "?": "？",
    '"': "＂", "<": "＜", ">": "＞", "|": "｜",
}
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{base}{n}" for base in ("COM", "LPT") for n in list("123456789") + ["¹", "²", "³"]
}
_SPACES = re.compile(r"\s+")
ACCOUNT_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{0,31}$")


def _drop_invisible(text: str) -> str:
    # Control (Cc) and format (Cf: zero-width, bidi overrides) characters hide what a name says.
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 form fits in `max_bytes`, cut on a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _strip_edges(text: str) -> str:
    # Windows drops trailing dots and spaces silently; leading dots make hidden files,
    # which fieldsync reserves for its own temp and state files.
    return text.strip(" ").rstrip(".").rstrip(" ").lstrip(".").lstrip(" ")


def clean_component(text: str, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """Turn any text into one safe path component (possibly empty if nothing usable is left)."""
    text = unicodedata.normalize("NFC", str(text))
    text = _SPACES.sub(" ", _drop_invisible(text))  # drop first: \x85 is both Cc and a space
    text = "".join(_FORBIDDEN.get(ch, ch) for ch in text)
    text = _strip_edges(text)
    text = _strip_edges(truncate_utf8(text, max_bytes))
    stem = text.split(".", 1)[0].upper().rstrip(" ")
    if stem in _WINDOWS_DEVICES:
        text = "_" + text
    return text


def is_safe_component(text: str) -> bool:
    """True when `text` is already a clean, non-empty component."""
    return bool(text) and clean_component(text) == text


def require_safe(text: str, what: str) -> str:
    """Return `text` if it is a safe folder name, else raise BadName with a suggestion."""
    if not text or not text.strip():
        raise BadName(_("the {what} is empty; give a name with at least one visible character").format(what=what))
    cleaned = clean_component(text)
    if cleaned != text:
        hint = _("; use {cleaned!r} instead").format(cleaned=cleaned) if cleaned else ""
        raise BadName(
            _('the {what} {text!r} cannot be a folder name on every system (no / \\ : * ? " < > |, control '
              'characters, leading dots, trailing dots or spaces, device names like CON, at most '
              '{MAX_COMPONENT_BYTES} UTF-8 bytes){hint}').format(
              what=what, text=text, MAX_COMPONENT_BYTES=MAX_COMPONENT_BYTES, hint=hint)
        )
    return text


def normalize_account(account: str) -> str:
    """Account numbers: NFKC (full-width digits), trimmed, upper case; letters, digits and '-'."""
    value = unicodedata.normalize("NFKC", str(account)).strip().upper()
    if not ACCOUNT_PATTERN.match(value):
        raise BadName(
            _("account number {account!r} is not valid: use 1 to 32 letters, digits or '-'").format(account=account)
        )
    return value


def customer_folder_name(template: str, account_no: str, name: str, **fields: str) -> str:
    """The customer root's folder name from layout.customer_folder.

    The account number is kept whole (it is what makes two customers' folders different);
    only the name part is shortened when the result would be too long.
    """
    account_no = normalize_account(account_no)
    values = {key: clean_component(str(value or "")) for key, value in fields.items()}
    clean_name = clean_component(name)
    budget = MAX_COMPONENT_BYTES
    while True:
        folder = clean_component(template.format(account_no=account_no, name=clean_name, **values),
                                 max_bytes=10 * MAX_COMPONENT_BYTES)
        excess = len(folder.encode("utf-8")) - MAX_COMPONENT_BYTES
        if excess <= 0 or not clean_name:
            break
        budget = max(0, len(clean_name.encode("utf-8")) - excess)
        clean_name = _strip_edges(truncate_utf8(clean_name, budget))
    folder = folder.rstrip("_ ") if not clean_name else folder
    return folder or account_no


def photo_name_problem(name: str) -> str | None:
    """Why the engine refuses a photo's file name, or None when it takes the name literally.

    The one rule for names (engine, manifest, verify, evidence, server, `check`): a backslash
    is a folder separator on Windows and in zip files, and control characters hide what a
    name says, so such names are refused up front (left in place, reported with "rename it").
    Every other name, trailing spaces, NFD and names up to the filesystem's limit included,
    is taken byte for byte as it is.
    """
    if "\\" in name:
        return (_("the file name {name!r} contains a backslash, which Windows and zip files read as a folder "
                  "separator; rename it without '\\'").format(name=name))
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return (_("the file name {name!r} contains control characters (tabs, line breaks, ...), which hide what it "
                  "says; rename it with visible characters only").format(name=name))
    return None


def fit_name(prefix: str, name: str, suffix: str = "", max_bytes: int = NAME_MAX_BYTES) -> str:
    """`prefix + name + suffix`, or when that is over `max_bytes` UTF-8 bytes, the same with
    `name` cut short and a digest of the whole name added: still fixed for a given name (an
    interrupted upload finds its temp file again) and unique within a folder."""
    whole = f"{prefix}{name}{suffix}"
    if len(whole.encode("utf-8", "surrogateescape")) <= max_bytes:
        return whole
    encoded = name.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(encoded).hexdigest()[:_DIGEST_CHARS]
    room = max_bytes - len(f"{prefix}~{digest}{suffix}".encode("utf-8", "surrogateescape"))
    if room < 0:
        raise BadName(_("a name cannot fit in {max_bytes} bytes with {prefix!r} and {suffix!r} around it").format(
                        max_bytes=max_bytes, prefix=prefix, suffix=suffix))
    # Cut on a character (invalid bytes of a surrogate-escaped name are simply dropped).
    short = encoded[:room].decode("utf-8", errors="ignore")
    return f"{prefix}{short}~{digest}{suffix}"
