"""Data for the offline query page (ROOT/index.html, P2): customers and pinyin as <script> chunks.

Browsers refuse fetch() on file://, but <script src> works, so the data is JavaScript that
calls `fieldsyncQuery.columns(...)`: each field of a chunk's customers as one string. It lives
in the visible folder ROOT/_query/ so the server's mirror (which skips hidden names) can search too.
Normalised texts and the pinyin of every character are computed here,
with the same code as `fieldsync find`, so both agree.

`index-NNN.js` ship postings of `find`'s own index (its n-grams: character pairs of the text fields,
pinyin-initials pairs of the pinyin fields) so the page looks customers up instead of scanning
every row. A posting is a list of customer numbers, ascending, written as gaps in base64 digits
of 5 bits (the 6th bit says "more digits follow"): no atob, no typed-array copy, and the page
decodes only the postings a query asks for. The page loads them one by one after it is ready
to type (searching by scan until then).
"""

from __future__ import annotations

import bisect
import json
import re
from pathlib import Path

from fieldsync.base.atomic import write_bytes, write_text
from fieldsync.masterdata.bitmaps import bitmap_ids
from fieldsync.masterdata.index_data import FIELD_CODES, INITIALS_IN, IndexData
from fieldsync.masterdata.index_file import load_index, store_stamp
from fieldsync.masterdata.matching import PINYIN_FIELDS, PLAIN, capacity_text, char_readings, field_text
from fieldsync.masterdata.postings import np
from fieldsync.masterdata.store import FIELDS

DATA_DIR = "_query"
SCRIPT = "query.js"
MATCHING_SCRIPT = "matching.js"  # the matching rules, shared with the server's page; beside SCRIPT
CHUNK_ROWS = 10_000
FORMAT = 3  # of the chunks: 2 = one string per field (columns); 3 = and the index (index-NNN.js)
STAMP_FILE = "query-page.json"  # in .fieldsync/: which master data the chunks were made from
INDEX_PIECE = 400_000  # characters of index data per file (index-000.js, ...)
# Fields whose character pairs the page looks up (capacity is compared as numbers, voltage has a
# handful of levels: both stay scans of a small column)
PAIR_FIELDS = ("account_no", "name", "meter_no", "address", "line")
DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
LATIN = re.compile("[a-z]")
MORE = 32  # the 6th bit of a digit: another digit of the same gap follows


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
    index_files = write_index(folder, index_payload(index) if index else {})
    for stale in folder.glob("*-*.js"):
        kind, number = stale.stem.split("-", 1)
        if number.isdigit() and int(number) >= {"customers": chunks, "index": index_files}.get(kind, 1 << 30):
            stale.unlink()
    write_text(folder / "manifest.js", _js_call("manifest", {"chunks": chunks, "count": count, "index": index_files}))
    write_text(stamp_path, json.dumps([list(stamp) if stamp else None, CHUNK_ROWS, FORMAT]), private=True)
    return True


def write_index(folder: Path, payload: dict) -> int:
    """index_payload() as files index-000.js, ... of about INDEX_PIECE characters each, calling
    fieldsyncQuery.index(field, kind, grams, ends, digits) with a family's digits cut in pieces
    (grams and ends with the first piece only). The page loads them one after the other, so each
    holds the page's only thread for a short while: one 10 MB script held it for a second at 6×
    throttling. Returns how many files were written."""
    calls = []
    for field, kinds in payload.items():
        for kind, data in kinds.items():
            grams, ends, digits = data if kind != "latin" else (None, None, data)
            for at in range(0, max(len(digits), 1), INDEX_PIECE):
                calls.append(_js_call("index", field, kind, grams if at == 0 else None,
                                      ends if at == 0 else None, digits[at:at + INDEX_PIECE]))
    files, current = 0, []
    for call in calls + [None]:
        if current and (call is None or sum(map(len, current)) + len(call) > INDEX_PIECE):
            write_text(folder / f"index-{files:03d}.js", "".join(current))
            files, current = files + 1, []
        if call is not None:
            current.append(call)
    return files


def index_payload(index: IndexData) -> dict:
    """Per field: {"pairs": family, "initials": family, "latin": posting}; a family is
    [grams, ends, digits] (posting i is digits[ends[i-1]:ends[i]]). "latin": the customers whose
    value holds a Latin letter, which reads as itself in pinyin (the page checks them always)."""
    index.load_initials()
    families: dict[str, dict[str, list[tuple[str, object]]]] = {f: {"pairs": [], "initials": []} for f in PAIR_FIELDS}
    kinds = {PLAIN: "pairs", INITIALS_IN: "initials"}
    fields = {code: field for field, code in FIELD_CODES.items() if field in PAIR_FIELDS}
    for source in (index.postings, index.dense):
        for key in source:
            field, kind, gram = fields.get(key[0]), kinds.get(key[1]), key[2:]
            if field and kind and len(gram) == 2:  # initials of 2 neighbouring characters only
                families[field][kind].append((gram, key))
    out = {}
    for field, by_kind in families.items():
        out[field] = {}
        for kind, grams in by_kind.items():
            grams.sort()
            ids = [_posting(index, key) for _, key in grams]
            ends, digits = encode_postings(ids)
            out[field][kind] = [[g for g, _ in grams], ends, digits]
        if field in PINYIN_FIELDS:
            out[field]["latin"] = encode_postings([_rows_matching(index.norm[field], LATIN)])[1]
    return out


def _rows_matching(column, pattern: re.Pattern) -> np.ndarray:
    """Rows of a newline-joined column with a match of `pattern`, ascending (one search per row
    that has one, then on from the next row)."""
    rows, offsets, text = [], column.offsets, column.text
    found = pattern.search(text)
    while found:
        row = bisect.bisect_right(offsets, found.start()) - 1
        rows.append(row)
        found = pattern.search(text, offsets[row + 1])
    return np.asarray(rows, dtype=np.int64)


def _posting(index: IndexData, key: str):
    data = index.postings.get(key)
    if data:
        return np.frombuffer(data, dtype="<u4").astype(np.int64)
    return np.asarray(bitmap_ids(int.from_bytes(index.dense[key], "little")), dtype=np.int64)


def encode_postings(postings: list) -> tuple[list[int], str]:
    """(ends, digits) of ascending id lists: each id as its gap to the one before (the first as
    id + 1), each gap in 5-bit digits, least significant first, MORE set on all but the last."""
    lengths = np.array([len(p) for p in postings], dtype=np.int64)
    if not lengths.sum():
        return [0] * len(postings), ""
    ids = np.concatenate([np.asarray(p, dtype=np.int64) for p in postings])
    gaps = np.diff(ids, prepend=-1)
    firsts = (np.cumsum(lengths) - lengths)[lengths > 0]
    gaps[firsts] = ids[firsts] + 1
    sizes = np.ones(len(gaps), dtype=np.int64)
    for shift in range(5, 35, 5):
        sizes += gaps >= (1 << shift)
    places = np.arange(7)
    values = (gaps[:, None] >> (5 * places)) & 31
    values |= np.where(places < sizes[:, None] - 1, MORE, 0)
    table = np.frombuffer(DIGITS, dtype=np.uint8)
    text = table[values[places < sizes[:, None]]].tobytes().decode("ascii")
    before = np.concatenate(([0], np.cumsum(sizes)))  # digits before each id
    return before[np.cumsum(lengths)].tolist(), text


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
