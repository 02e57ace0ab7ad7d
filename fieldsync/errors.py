"""The exception tree: core code raises these, only the CLI turns them into messages and exit codes.

Like borg's helpers/errors.py, each class carries its exit code, so the CLI never guesses.
Messages are for people: say what is wrong and what to do next.
"""

from __future__ import annotations

import errno
from collections.abc import Callable


def N_(message: str) -> str:
    """Marks `message` for the catalog (pybabel's N_ keyword), translated where it is shown."""
    return message


EXIT_OK = 0
EXIT_WARNING = 1
EXIT_ERROR = 2


class FieldsyncError(Exception):
    """Base of every error fieldsync reports to a person."""

    exit_code = EXIT_ERROR


class ConfigError(FieldsyncError):
    """config.yaml is missing, unreadable, or has a bad value."""


class ImportRejected(FieldsyncError):
    """Master data import found bad rows; nothing was imported."""

    def __init__(self, message: str, problems: list):
        super().__init__(message)
        self.problems = problems


class UnknownCustomer(FieldsyncError):
    """No customer with that account number in master data."""


class TreeError(FieldsyncError):
    """The folder tree does not have what the command needs (visit, category, business)."""


class BadName(FieldsyncError):
    """A name cannot be used as a folder or file name."""


class BadInput(FieldsyncError):
    """A value given on the command line or in a file is not acceptable."""


class TransportError(FieldsyncError):
    """The server could not be reached or refused an operation; retried later by sync."""


class KeyRefused(TransportError):
    """The server refused this tablet's key (revoked?): ask the admin. Told apart from being
    offline, so `fieldsync status` says so instead of waiting for the network."""


class HostKeyError(TransportError):
    """The server's host key is unknown or changed: refuse rather than trust blindly."""


class SyncBusy(FieldsyncError):
    """Another sync (the daemon or a second `fieldsync sync`) is running on this tree."""


class ImageError(FieldsyncError):
    """A photo could not be read or shrunk (corrupt, truncated, too large)."""


class IncompleteImage(ImageError):
    """A photo does not decode to the end (yet): still being written, or truncated for good.
    Retried for sync.incomplete_retry_seconds before it is quarantined."""


class LocalFault(FieldsyncError):
    """The tablet's own storage failed (disk full, I/O error, no permission, read-only):
    retried later, never a verdict on the photo."""

    # errno -> what the inspector reads in status, saying what to do. English keys of the
    # catalog: this module sits below fieldsync.base.i18n, so the caller passes its _().
    ADVICE = {
        errno.ENOSPC: N_("tablet disk full: free space on the tablet"),
        errno.EDQUOT: N_("tablet storage quota exceeded: free space on the tablet"),
        errno.EIO: N_("tablet storage read/write error: check the storage (card), retried later"),
        errno.EROFS: N_("tablet storage is read-only: remount it writable or check the storage card"),
        errno.EACCES: N_("no permission to write on the tablet: check the folder's permissions"),
        errno.EPERM: N_("no permission to write on the tablet: check the folder's permissions"),
    }
    UNKNOWN = N_("tablet storage error, retried later")

    @classmethod
    def from_os_error(cls, exc: OSError, translate: Callable[[str], str] = str) -> LocalFault:
        """The fault of `exc`, its advice in the language `translate` (fieldsync's _) gives."""
        advice = translate(cls.ADVICE.get(exc.errno or 0, cls.UNKNOWN))
        where = f" ({exc.filename})" if exc.filename else ""
        return cls(f"{advice} [{exc.strerror or exc}{where}]")


class EvidenceBroken(FieldsyncError):
    """The photos or records do not verify, so no evidence bundle is made from them."""

    def __init__(self, message: str, problems: list):
        super().__init__(message)
        self.problems = problems


class QuarantineError(FieldsyncError):
    """A quarantined file cannot be found, set aside, put back or deleted."""
