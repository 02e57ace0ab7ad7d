"""Names that break on another platform: Windows rules, case-insensitive and NFC/NFD clashes.

Pure functions over relative POSIX paths, so a tree made on Linux or Android is checked for the
Windows tablet or share it will be copied to. Clashes are reported, never merged or renamed:
two folders that differ only in case are two records, and only a person can say which is right.
"""

from __future__ import annotations

import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from fieldsync.base.i18n import _

# Windows refuses these in a name; '/' never reaches here (it separates components).
WINDOWS_FORBIDDEN = set('<>:"\\|?*') | {chr(c) for c in range(32)}
# CreateFile without the \\?\ prefix stops at MAX_PATH = 260 UTF-16 units, the final NUL included.
WINDOWS_MAX_PATH = 259
WINDOWS_MAX_COMPONENT = 255
# A typical tablet root, C:\Users\<inspector>\fieldsync\, when the real one is not known.
ASSUMED_WINDOWS_ROOT = "C:\\Users\\inspector.name\\fieldsync"
# Device names PureWindowsPath misses on Python 3.11 (superscript ports, console devices).
_EXTRA_DEVICES = {"COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³", "CONIN$", "CONOUT$"}


@dataclass(frozen=True)
class PlatformIssue:
    path: PurePosixPath
    problem: str
    advice: str
    kind: str = "name"  # name | nfd | length | clash: what would fix it (tree.check's commands)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; {self.advice}"


def utf16_units(text: str) -> int:
    """Length as Windows counts it (UTF-16 code units: a CJK character is 1, an emoji 2)."""
    return len(text.encode("utf-16-le")) // 2


def is_reserved_on_windows(name: str) -> bool:
    """CON, nul.txt, 'AUX .jpg', COM1...: names Windows maps to devices in any folder."""
    with warnings.catch_warnings():  # is_reserved is deprecated from 3.13 on, still right here
        warnings.simplefilter("ignore", DeprecationWarning)
        if PureWindowsPath(name).is_reserved():
            return True
    return name.partition(".")[0].rstrip(" ").upper() in _EXTRA_DEVICES


def windows_name_problems(name: str) -> list[str]:
    """Why one path component cannot exist on Windows (empty list: it can)."""
    problems = []
    bad = sorted({ch for ch in name if ch in WINDOWS_FORBIDDEN})
    if bad:
        shown = " ".join(repr(ch) if ord(ch) < 32 else ch for ch in bad)
        problems.append(_("contains characters Windows refuses ({chars})").format(chars=shown))
    if name.endswith((".", " ")):
        problems.append(_("ends with a dot or space, which Windows silently drops"))
    if is_reserved_on_windows(name):
        problems.append(_("{name} is a Windows device name").format(name=repr(name.partition(".")[0].rstrip(" "))))
    if utf16_units(name) > WINDOWS_MAX_COMPONENT:
        problems.append(_("longer than {limit} characters").format(limit=WINDOWS_MAX_COMPONENT))
    return problems


def windows_path_length(rel: PurePosixPath | str, root: str = ASSUMED_WINDOWS_ROOT) -> int:
    """The length of ROOT\\rel on Windows, in UTF-16 units."""
    return utf16_units(str(PureWindowsPath(root, *PurePosixPath(rel).parts)))


def fold_case(name: str) -> str:
    """The key case-insensitive filesystems compare: NFC, then simple per-character upper case
    (NTFS, FAT/exFAT and Android's shared storage map one character to one, so 'ß' and 'SS'
    stay different while 'Photo' and 'PHOTO' are the same name)."""
    nfc = unicodedata.normalize("NFC", name)
    return "".join(up if len(up := ch.upper()) == 1 else ch for ch in nfc)


def casefold_collisions(names: Iterable[str]) -> list[list[str]]:
    """Groups (sorted) of different sibling names that one case-insensitive folder would merge."""
    groups: dict[str, set[str]] = defaultdict(set)
    for name in names:
        groups[fold_case(name)].add(name)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def is_nfc(name: str) -> bool:
    return unicodedata.is_normalized("NFC", name)


def find_platform_issues(rel_paths: Iterable[PurePosixPath | str],
                         windows_root: str = ASSUMED_WINDOWS_ROOT) -> list[PlatformIssue]:
    """Everything in `rel_paths` (relative to ROOT) that breaks on Windows, on a case-insensitive
    filesystem, or between NFC and NFD systems; one issue per path and problem, in path order."""
    issues: list[PlatformIssue] = []
    siblings: dict[PurePosixPath, set[str]] = defaultdict(set)
    for rel in map(PurePosixPath, rel_paths):
        if not rel.parts:
            continue
        siblings[rel.parent].add(rel.name)
        for problem in windows_name_problems(rel.name):
            issues.append(PlatformIssue(rel, problem, _("rename it (fieldsync names avoid this)")))
        if not is_nfc(rel.name):
            issues.append(PlatformIssue(
                rel, _("the name is in decomposed Unicode (NFD, as macOS writes it)"),
                _("rename it to its composed form {name} so every system sees the same name").format(
                    name=repr(unicodedata.normalize("NFC", rel.name))), "nfd"))
        length = windows_path_length(rel, windows_root)
        if length > WINDOWS_MAX_PATH:
            issues.append(PlatformIssue(
                rel, _("the Windows path is {length} characters (limit {limit} with the root {root})").format(
                    length=length, limit=WINDOWS_MAX_PATH + 1, root=windows_root),
                _("shorten category or visit names, or on Windows enable long paths "
                  "(LongPathsEnabled) or use a root written as \\\\?\\C:\\..."), "length"))
    for parent, names in siblings.items():
        for group in casefold_collisions(names):
            nfc_only = len({unicodedata.normalize("NFC", n) for n in group}) == 1
            problem = (_("the same name in NFC and NFD form: {names} are one and the same name on Windows, "
                         "macOS and Android shared storage") if nfc_only else
                       _("names that differ only in case: {names} are one and the same name on Windows, "
                         "macOS and Android shared storage"))
            issues.append(PlatformIssue(
                parent / group[0], problem.format(names=", ".join(repr(n) for n in group)),
                _("rename one of them (fieldsync never merges them)"), "clash"))
    return sorted(issues, key=lambda issue: (str(issue.path), issue.problem))

