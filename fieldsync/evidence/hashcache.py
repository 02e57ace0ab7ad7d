"""Incremental verify: skip re-hashing a file only when the filesystem proves it is unchanged.

A cached digest is reused only if the file's (st_dev, st_ino, st_size, st_mtime_ns,
st_ctime_ns) are all exactly what they were when it was hashed. Any write through the
filesystem changes mtime and ctime; a program can set mtime back (os.utime) but that sets
ctime to "now", and ctime cannot be set by a user at all. So a match means: no write through
this filesystem since the last hash.

Limits (why `verify --full` exists, and is what to run before a dispute):
- root can still fool it: setting the system clock back before writing, or editing the
  block device / disk image offline, bypasses ctime;
- filesystems without real ctime or inode numbers (FAT/exFAT cards, some SMB/FUSE mounts)
  give weaker stamps; the cache is only used when st_ino != 0;
- the cache file itself is trusted: anyone who can rewrite it can claim any digest, so it
  lives in the verifier's own private folder, not in the tree being verified.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fieldsync.base.atomic import write_text

FORMAT = "fieldsync-hashcache/1"


def stamp(st: os.stat_result) -> list[int] | None:
    if not st.st_ino:
        return None  # no stable identity: never trust a cached digest here
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class HashCache:
    """path -> (stamp, sha256) for one tree, and the digests of manifests whose chains
    verified (content-addressed: a changed manifest is simply not in it), saved as JSON."""

    def __init__(self, path: Path | None, tree_root: Path, reuse: bool = True):
        """reuse=False (verify --full): start empty, but still save for the next run."""
        self.path = path
        self.tree = str(Path(tree_root).resolve())
        self.entries: dict[str, list] = {}
        self.chains: set[str] = set()  # SHA-256 of manifest bytes whose chain checked out
        # Ledger signatures that verified, by SHA-256 of (message, key, signature): an Ed25519
        # check costs ~0.1 ms, a city's ledgers hold a record per photo.
        self.signatures: set[str] = set()
        self.hits = 0
        if reuse and path and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("format") == FORMAT and data.get("tree") == self.tree:
                    self.entries = data.get("entries") or {}
                    self.chains = set(data.get("chains") or [])
                    self.signatures = set(data.get("signatures") or [])
            except (OSError, ValueError, AttributeError, TypeError):
                # a broken cache only costs a full re-hash
                self.entries, self.chains, self.signatures = {}, set(), set()

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        cached = self.entries.get(rel)
        current = stamp(st)
        if cached and current is not None and cached[:5] == current:
            self.hits += 1
            return cached[5]
        return None

    def store(self, rel: str, st: os.stat_result, sha256: str) -> None:
        current = stamp(st)
        if current is not None:
            self.entries[rel] = current + [sha256]

    def forget_missing(self, seen: set[str]) -> None:
        for rel in [r for r in self.entries if r not in seen]:
            del self.entries[rel]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps({"format": FORMAT, "tree": self.tree, "entries": self.entries,
                                          "chains": sorted(self.chains),
                                          "signatures": sorted(self.signatures)}, separators=(",", ":")))
