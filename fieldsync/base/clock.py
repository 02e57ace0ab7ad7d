"""The one clock: "now" as aware local time, and times written as ISO 8601 with their offset.

Records (manifests, ledgers, bundles, pages) compare times written on different devices, so
every written time carries its UTC offset and whole seconds, the same way everywhere.
"""

from __future__ import annotations

from datetime import datetime


def now() -> datetime:
    """Aware local time (the device's zone), so differences across zones stay right."""
    return datetime.now().astimezone()


def iso(moment: datetime) -> str:
    """`moment` as ISO 8601 with offset, whole seconds (naive times are taken as local)."""
    return moment.astimezone().isoformat(timespec="seconds")


def now_iso() -> str:
    """Now as ISO 8601 with offset, e.g. 2026-11-25T14:30:05+08:00."""
    return iso(now())


def stamp_iso(seconds: float) -> str:
    """A POSIX timestamp (file mtime, time.time()) as local ISO 8601 with offset."""
    return iso(datetime.fromtimestamp(seconds))
