"""The search index on disk beside the master data (ROOT/.fieldsync/search-index.pickle):
saved on import, read on the first query, rebuilt when it belongs to other master data.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

from fieldsync.base.atomic import atomic_open
from fieldsync.masterdata.index_build import build, pinyin_part
from fieldsync.masterdata.index_data import INITIALS_AT, INITIALS_IN, IndexData
from fieldsync.masterdata.store import STORE_NAME, CustomerStore

INDEX_NAME = "search-index.pickle"
INDEX_VERSION = 9  # 7: columns pickled from index_data.py; 8: whitespace-free texts, voltage levels;
# 9: bitmaps of frequent characters; the initials postings as a second pickle after the state


def save(index: IndexData, path: Path) -> None:
    """The index as two pickles in one file: the state, then the initials postings, which a
    query unpickles only when it needs them (read keeps them as bytes). Written as a stream:
    pickling the initials to bytes first was the import's peak (some 250 MB at a million)."""
    postings, dense = dict(index.postings), dict(index.dense)
    initials = index.initials_part
    moved = None
    if initials is None:  # built here, or its initials already unpickled: split them off again
        moved = tuple({k: kept.pop(k) for k in list(kept) if k[1:2] in (INITIALS_IN, INITIALS_AT)}
                      for kept in (postings, dense))
    state = {"version": INDEX_VERSION, "stamp": index.stamp, "raw": index.raw, "norm": index.norm,
             "capacities": index.capacities, "postings": postings, "values": index.values,
             "pinyin": index.pinyin_part or pinyin_part(index), "dense": dense}
    with atomic_open(path, "wb", private=True) as handle:
        pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        if moved is None:
            handle.write(initials)
        else:
            pickle.dump(moved, handle, protocol=pickle.HIGHEST_PROTOCOL)


def read(path: Path) -> IndexData | None:
    """The index saved at `path`, or None if it is missing, damaged or of another version."""
    # Our own private file under .fieldsync/, written by save(); a stale or foreign
    # version is rebuilt rather than trusted.
    try:
        with open(path, "rb") as handle:
            state = pickle.load(handle)
            initials = handle.read()  # the second pickle, unpickled on the first initials query
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("version") != INDEX_VERSION or not initials:
        return None
    return IndexData(state["raw"], state["norm"], state["capacities"], state["postings"], state["stamp"],
                     state["values"], state["pinyin"], state["dense"], initials)


def index_path(state_dir: Path) -> Path:
    return Path(state_dir) / INDEX_NAME


def store_stamp(state_dir: Path):
    """Identifies one version of customers.json; the index is valid only for that version."""
    try:
        info = (Path(state_dir) / STORE_NAME).stat()
    except FileNotFoundError:
        return None
    return (info.st_size, info.st_mtime_ns)


def rebuild_index(state_dir: Path, records: Iterable[dict]) -> IndexData:
    """Build and save the index for the master data just written (called on import)."""
    index = build(records, store_stamp(state_dir))
    save(index, index_path(state_dir))
    _cache.pop(str(Path(state_dir)), None)
    return index


_cache: dict[str, IndexData] = {}


def load_index(state_dir: Path) -> IndexData:
    """The index for the current master data: from memory, from disk, or rebuilt when stale."""
    key = str(Path(state_dir))
    stamp = store_stamp(state_dir)
    cached = _cache.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached
    index = read(index_path(state_dir))
    if index is None or index.stamp != stamp:
        index = build(CustomerStore(state_dir).all(), stamp)
        if stamp is not None:
            save(index, index_path(state_dir))
    _cache[key] = index
    return index
