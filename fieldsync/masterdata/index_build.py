"""Building the search index from customer rows (on import and pull, or when the saved one is
stale): whole columns at once with numpy (postings.py), pinyin readings with pypinyin.

Postings hold character pairs of each field and, for the pinyin fields, the pinyin initials of
every 2, 3 (and for names 4) neighbouring characters (every combination of a polyphonic
character's readings).
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Iterable

from fieldsync.masterdata import postings as made
from fieldsync.masterdata.index_data import (
    CHAR,
    FIELD_CODES,
    INITIAL_SIZES,
    INITIALS_AT,
    INITIALS_IN,
    LENGTH,
    STARTS,
    VALUE,
    Column,
    IndexData,
)
from fieldsync.masterdata.matching import (
    FULL,
    PINYIN_FIELDS,
    PLAIN,
    capacity_text,
    char_readings,
    initial_letters,
    normalize,
    normalize_voltage,
    squeeze_column,
)
from fieldsync.masterdata.store import FIELDS, collector_paused

DENSE = 32  # a posting holding more than 1/DENSE of all customers is saved as a bitmap (smaller)
# A character in more than 1/FREQUENT_CHAR of all customers ("路", "区", "线") gets a bitmap of
# its own: a one-character query would otherwise OR hundreds of its pairs' id lists, a million
# ids in Python. Rarer characters' pairs are few enough (a few hundred at most per query).
FREQUENT_CHAR = 16
MAX_VALUES = 4096  # more distinct values than this: no VALUE postings for the field


def build(records: Iterable[dict], stamp=None) -> IndexData:
    """The index of `records`, for the master data version `stamp` (index_file.store_stamp)."""
    rows = sorted(records, key=lambda r: r["account_no"])
    with collector_paused():
        return _build(rows, stamp)


def _build(rows: list[dict], stamp) -> IndexData:
    count = len(rows)
    store = made.Postings(count, DENSE)
    raw, norm, values = {}, {}, {}
    for field in FIELDS:
        if field == "capacity_kva":
            shown = [capacity_text(r.get(field)) for r in rows]
        else:
            shown = ["" if (v := r.get(field)) is None else str(v) for r in rows]
        joined = "\n".join(shown)
        if joined.count("\n") != count - 1 and count:  # a value holds a newline: one line each
            shown = [v.replace("\n", " ") for v in shown]
            joined = "\n".join(shown)
        raw[field] = _joined_column(joined, count)
        text = _normalized_column(field, shown, joined)
        norm[field] = raw[field] if text == joined else _joined_column(text, count)
        if not count:
            continue
        _add_postings(store, field, text, count, values)
    capacities = array("d", (float(v) if isinstance(v := r.get("capacity_kva"), (int, float)) else float("nan")
                             for r in rows))
    index = IndexData(raw, norm, capacities, store.ids, stamp, values, dense=store.bitmaps)
    index.pinyin_part = pinyin_part(index)
    return index


def _add_postings(store: made.Postings, field: str, text: str, count: int, values: dict) -> None:
    """Every posting of one normalised column (and its distinct values, when few) into `store`;
    the column's arrays are freed on return, before the next column's are made."""
    code = FIELD_CODES[field]
    grams_of = made.ColumnGrams(text, count)
    for gram, ids in grams_of.pairs():
        store.add(code + PLAIN + gram, ids)
    for char, ids in grams_of.frequent_chars(FREQUENT_CHAR):
        if len(ids) * FREQUENT_CHAR > count:  # in so many rows, not only so many times
            store.add(code + CHAR + char, ids)
    for gram, ids in grams_of.beginnings():
        store.add(code + STARTS + gram, ids)
    for size, ids in grams_of.by_length():
        store.add(code + LENGTH + size, ids)
    if field in ("capacity_kva", "voltage"):
        texts = text.split("\n")
        distinct = list(dict.fromkeys(texts))
        if len(distinct) <= MAX_VALUES:
            values[field] = distinct
            for value, ids in made.value_groups(texts, count):
                store.add(code + VALUE + value, ids)
    if field in PINYIN_FIELDS:
        for size in INITIAL_SIZES[field]:
            for kind in (INITIALS_IN, INITIALS_AT):
                for letters, ids in grams_of.initial_grams(initial_letters, size, kind == INITIALS_AT):
                    store.add(code + kind + letters, ids)


def pinyin_part(index: IndexData) -> bytes:
    """The readings of every character in the pinyin fields and their full-pinyin vocabularies,
    pickled: a query unpickles them instead of calling pypinyin."""
    readings = {}
    for field in PINYIN_FIELDS:
        index.vocabulary(field, FULL)  # initials have postings of their own
        readings.update((c, char_readings(c)) for c in set(index.norm[field].text) - {"\n"})
    return pickle.dumps((readings, index.vocabularies), protocol=pickle.HIGHEST_PROTOCOL)


def _joined_column(text: str, count: int) -> Column:
    """The column of `count` values already joined by newlines (none inside a value)."""
    if not count:
        return Column("", array("I", [0]))
    return Column(text, array("I", made.offsets(made.codes(text)).astype("uint32").tobytes()))


def _normalized_column(field: str, shown: list[str], joined: str) -> str:
    """field_text of every value, joined by newlines like `joined` (the values as shown).
    NFKC and casefold work character by character and a newline never combines, so the whole
    column is normalised in one call, not a million."""
    if field == "voltage":
        spelled = {v: normalize_voltage(v) for v in set(shown)}
        return "\n".join(spelled[v] for v in shown)
    text = normalize(joined)
    if text.count("\n") != joined.count("\n"):  # some character became a newline: one by one
        text = "\n".join(normalize(v).replace("\n", " ") for v in shown)
    return squeeze_column(text)  # whitespace does not match (matching.squeeze)
