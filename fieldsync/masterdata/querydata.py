"""Data for the offline query page (ROOT/index.html, P2): customers and pinyin as <script> chunks.

Browsers refuse fetch() on file://, but <script src> works, so the data is JavaScript that
calls `fieldsyncQuery.columns(...)`: each field of a chunk's customers as one string. It lives
in the visible folder ROOT/_query/ so the server's mirror (which skips hidden names) can search too.
Normalised texts and the pinyin of every character are computed here,
with the same code as `fieldsync find`, so both agree.
"""

from __future__ import annotations

import json
from pathlib import Path

from fieldsync.base.atomic import write_bytes, write_text
from fieldsync.masterdata.index_file import load_index, store_stamp
from fieldsync.masterdata.matching import PINYIN_FIELDS, capacity_text, char_readings, field_text
from fieldsync.masterdata.store import FIELDS

DATA_DIR = "_query"
SCRIPT = "query.js"
MATCHING_SCRIPT = "matching.js"  # the matching rules, shared with the server's page; beside SCRIPT
CHUNK_ROWS = 10_000
FORMAT = 2  # of the chunks: 2 = one string per field (columns); a change rewrites them
STAMP_FILE = "query-page.json"  # in .fieldsync/: which master data the chunks were made from


def _js_call(function: str, *values) -> str:
    return f"fieldsyncQuery.{function}(" + ",".join(
        json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in values) + ");\n"


def write_data(root: Path, state_dir: Path, script_source: Path) -> bool:
    """(Re)write ROOT/_query/ when the master data changed since last time; True if written."""
    folder = Path(root) / DATA_DIR
    folder.mkdir(exist_ok=True)
    _copy_if_changed(script_source, folder / SCRIPT)
    _copy_if_changed(Path(script_source).parent / MATCHING_SCRIPT, folder / MATCHING_SCRIPT)
    stamp = store_stamp(state_dir)
    stamp_path = Path(state_dir) / STAMP_FILE
    try:
        done = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        done = None
    if done == [list(stamp) if stamp else None, CHUNK_ROWS, FORMAT] and (folder / "manifest.js").is_file():
        return False
    index = load_index(state_dir) if stamp else None
    count = index.count if index else 0
    chars: set[str] = set()
    chunks = 0
    for start in range(0, count, CHUNK_ROWS):
        ids = range(start, min(count, start + CHUNK_ROWS))
        raw, norm = [], []
        for field in FIELDS:
            shown = "".join(index.raw[field][cid] + "\n" for cid in ids)
            normal = "".join(index.norm[field][cid] + "\n" for cid in ids)
            if field in PINYIN_FIELDS:
                chars.update(normal)
            raw.append(shown)
            # one string per field: the page parses 14 strings, not 10,000 arrays
            norm.append(0 if normal == shown else normal)
        write_text(folder / f"customers-{chunks:03d}.js", _js_call("columns", chunks, raw, norm))
        chunks += 1
    chars.discard("\n")
    write_text(folder / "pinyin.js", _js_call("readings", readings_table(chars)))
    for stale in folder.glob("customers-*.js"):
        if int(stale.stem.split("-")[1]) >= chunks:
            stale.unlink()
    write_text(folder / "manifest.js", _js_call("manifest", {"chunks": chunks, "count": count}))
    write_text(stamp_path, json.dumps([list(stamp) if stamp else None, CHUNK_ROWS, FORMAT]), private=True)
    return True


def readings_table(chars: set[str]) -> dict[str, list[str]]:
    """char -> [initials, full readings], space-separated, for matching.js (learnReadings)."""
    table = {}
    for char in sorted(chars):
        initials, full = char_readings(char)
        if full != (char,):
            table[char] = [" ".join(initials), " ".join(full)]
    return table


def page_rows(records: list[dict]) -> tuple[list[list], dict[str, list[str]]]:
    """Rows for a page that searches with matching.js, in account order: the seven values as
    shown, then their normalised texts where they differ (else 0); and the readings table."""
    rows, chars = [], set()
    for record in sorted(records, key=lambda r: str(r.get("account_no") or "")):
        raw = [capacity_text(record.get(f)) if f == "capacity_kva" else
               ("" if record.get(f) is None else str(record.get(f)).replace("\n", " ")) for f in FIELDS]
        norm = [field_text(f, record.get(f)) for f in FIELDS]
        for field in PINYIN_FIELDS:
            chars.update(norm[FIELDS.index(field)])
        rows.append(raw + [[n if n != r else 0 for n, r in zip(norm, raw)] if norm != raw else 0])
    return rows, readings_table(chars)


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if not target.is_file() or target.read_bytes() != data:
        write_bytes(target, data)
