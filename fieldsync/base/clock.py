"""The one clock: "now" as aware local time, times written as ISO 8601 with their offset, and
times shown to people in one display zone.

Records (manifests, ledgers, bundles, pages) compare times written on different devices, so
every written time carries its UTC offset and whole seconds, the same way everywhere. People
read them in one zone (ui.timezone, default the machine's own): two tablets in different
offsets then show their visits on one clock, `YYYY-MM-DD HH:MM`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AUTO = "auto"  # the machine's own zone (its rules for each instant, summer time included)
DISPLAY_FORMAT = "%Y-%m-%d %H:%M"
DAY_FORMAT = "%Y-%m-%d"

# The display zone: None is the machine's own. Chosen once per command (the CLI sets it from
# config), like the language: every page and report of that command reads times in it.
_display: tzinfo | None = None
_display_name = AUTO


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


# --------------------------------------------------------------------------- display zone

def zone(name: str) -> tzinfo | None:
    """The zone `name` means: None for auto (the machine's), else the IANA zone (Asia/Shanghai).

    Raises ValueError when there is no such zone (config turns it into a message naming the key).
    """
    if name == AUTO:
        return None
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"not a time zone name: {name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name like "../x"
        raise ValueError(f"unknown time zone {name!r}") from exc


def use_zone(name: str) -> None:
    """Show times in `name` (auto or an IANA zone) from now on; raises ValueError like zone()."""
    global _display, _display_name
    _display, _display_name = zone(name), name.strip()


@contextlib.contextmanager
def shown_in(name: str) -> Iterator[None]:
    """Show times in `name` within the block, then in the zone chosen before it.

    A tablet's pages follow its own ui.timezone whoever renders them: a sync pass run by a
    library caller (or by a process that showed another config's times) renders the same page
    as one run by `fieldsync sync`, so the same tree never yields two pages to push."""
    global _display, _display_name
    before = _display, _display_name
    use_zone(name)
    try:
        yield
    finally:
        _display, _display_name = before


def zone_key() -> str:
    """What pages rendered with the current display zone depend on: the setting, and for auto
    the machine's zone itself (a server moved to another zone must rewrite its pages)."""
    if _display is not None:
        return _display_name
    return f"{AUTO}:{'/'.join(time.tzname)}:{time.timezone}"


def parse(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 text with offset (or a datetime, as YAML reads an
    unquoted time), else None: naive times, dates alone and garbled text have no instant."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.utcoffset() is not None else None


def in_display_zone(value: Any) -> datetime | None:
    """`value`'s instant in the display zone, or None when it has no instant (see parse)."""
    moment = parse(value)
    if moment is None:
        return None
    try:
        return moment.astimezone(_display)
    except (OverflowError, ValueError):  # year 1 or 9999 shifted out of range
        return None


def _as_shown(value: Any) -> str:
    return "" if value is None else str(value)


def local_time(value: Any) -> str:
    """What people read: `value` in the display zone as YYYY-MM-DD HH:MM; a value without an
    instant (naive, garbled, not a time) is shown as it is, never an error."""
    moment = in_display_zone(value)
    return moment.strftime(DISPLAY_FORMAT) if moment is not None else _as_shown(value)


def local_day(value: Any) -> str:
    """`value`'s day in the display zone (YYYY-MM-DD); without an instant, its first 10
    characters (a naive ISO time's own day)."""
    moment = in_display_zone(value)
    return moment.strftime(DAY_FORMAT) if moment is not None else _as_shown(value)[:10]


def utc_key(value: Any) -> str:
    """A text that sorts like the instants: ISO 8601 in UTC (2026-12-02T03:44:19+00:00).

    Times written with different offsets do not sort as text: "…T11:00+08:00" happened before
    "…T04:00+00:00" but sorts after it. A naive time is taken in the display zone (as people
    read it); a value with no time at all gives "", older than any time.
    """
    moment = parse(value)
    if moment is None and isinstance(value, (str, datetime)):
        try:
            naive = value if isinstance(value, datetime) else datetime.fromisoformat(value.strip())
            moment = naive.replace(tzinfo=_display) if _display is not None else naive.astimezone()
        except (ValueError, OverflowError, OSError):
            return ""
    if moment is None:
        return ""
    try:
        return moment.astimezone(timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        return ""
