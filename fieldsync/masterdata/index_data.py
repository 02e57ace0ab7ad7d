"""The search index's parts and access to them: the columns, the postings (id lists or bitmaps)
and the pinyin and initials parts, unpickled on the first query that needs them.

index_build.py makes an IndexData from rows, index_file.py saves and reads it, search.py asks it.
Nothing here imports numpy or pypinyin: a query must not pay for them.
"""

from __future__ import annotations

import bisect
import itertools
import pickle
from array import array

from fieldsync.masterdata.bitmaps import bitmap, bitmap_ids
from fieldsync.masterdata.initials import FieldInitials
from fieldsync.masterdata.matching import PLAIN, PinyinVocabulary, learn_readings, reading_sequence
from fieldsync.masterdata.store import FIELDS

FIELD_CODES = {"account_no": "a", "name": "n", "meter_no": "m", "capacity_kva": "c",
               "address": "d", "line": "l", "voltage": "v"}
STARTS = "~"  # key kind of "the field starts with this gram"
CHAR = "*"  # key kind of "the field holds this character" (frequent characters only, as bitmaps)
LENGTH = "#"  # key kind of "the field has this many characters" (finds exact matches)
VALUE = "@"  # key kind of "the field is exactly this" (fields with few distinct values)
INITIALS_IN = "i"  # key kind of "the initials of these neighbouring characters read this"
INITIALS_AT = "^"  # ... of the field's first characters
# Initials grams indexed per field; a longer query ANDs its windows of the largest size. Not 4
# for addresses: their 4-letter grams would take a fifth of the memory of the whole index.
INITIAL_SIZES = {"name": (2, 3, 4), "address": (2, 3), "line": (2, 3, 4)}
BITMAP_CACHE = 256  # posting bitmaps made from id lists, kept per index


class Column:
    """One field of every customer as one string joined by newlines: far less memory than a
    million small str objects, and slicing out one value is cheap."""

    def __init__(self, text: str, offsets: array):
        self.text, self.offsets = text, offsets

    def __getitem__(self, index: int) -> str:
        return self.text[self.offsets[index]:self.offsets[index + 1] - 1]

    def containing(self, char: str) -> set[int]:
        """Rows whose value contains `char`, by a C-speed scan of the joined text."""
        rows: set[int] = set()
        offsets, find = self.offsets, self.text.find
        position = find(char)
        while position >= 0:
            row = bisect.bisect_right(offsets, position) - 1
            rows.add(row)
            position = find(char, offsets[row + 1])  # next row: one hit per row is enough
        return rows


class IndexData:
    """n-gram postings (gram -> customer ids in account order) over the seven fields, with the
    columns they were made from."""

    def __init__(self, raw: dict[str, Column], norm: dict[str, Column], capacities: array,
                 postings: dict, stamp, values: dict[str, list[str]] | None = None,
                 pinyin_part: bytes | None = None, dense: dict[str, bytes] | None = None,
                 initials_part: bytes | None = None):
        self.raw, self.norm, self.capacities = raw, norm, capacities
        # Bitmaps of the most common grams ("有限", "公司", "10kV"), made once at import: made
        # from the ids at query time they cost more than the rest of the query.
        self.dense = dense if dense is not None else {}
        self.values = values or {}  # field -> its distinct values, when few (VALUE postings)
        self.postings, self.stamp = postings, stamp
        self.count = len(capacities)
        self.vocabularies: dict[tuple[str, str], PinyinVocabulary] = {}
        # pickled (readings, vocabularies), unpickled on the first pinyin query; None after
        self.pinyin_part = pinyin_part
        # pickled (id lists, bitmaps) of the initials postings, unpickled on the first initials
        # query: they are over half the index, and most queries are Chinese or digits
        self.initials_part = initials_part
        self._initials: dict[str, FieldInitials] = {}
        self._bitmaps: dict[str, int] = {}
        self._pairs_with: dict[str, dict[str, list[str]]] = {}

    def load_initials(self) -> None:
        if self.initials_part is not None:
            ids, bitmaps = pickle.loads(self.initials_part)
            self.postings.update(ids)
            self.dense.update(bitmaps)
            self.initials_part = None

    def _load_pinyin(self) -> None:
        if self.pinyin_part is not None:
            readings, vocabularies = pickle.loads(self.pinyin_part)
            learn_readings(readings)
            for key, vocabulary in vocabularies.items():
                self.vocabularies.setdefault(key, vocabulary)
            self.pinyin_part = None

    def posting(self, key: str):
        """Customer ids of one posting, ascending (a bitmap-only posting is listed out)."""
        data = self.postings.get(key)
        if data:
            return memoryview(data).cast("I")
        bits = self.dense.get(key)
        return bitmap_ids(int.from_bytes(bits, "little")) if bits else ()

    def has(self, key: str) -> bool:
        return key in self.postings or key in self.dense

    def bitmap(self, key: str) -> int:
        """One posting list as a bitmap; the big ones (frequent grams, common values) are kept,
        since turning them into bitmaps is the costly part."""
        bits = self._bitmaps.get(key)
        if bits is None and key in self.dense:
            return int.from_bytes(self.dense[key], "little")  # microseconds: not worth a cache slot
        if bits is None:
            posting = self.posting(key)
            bits = bitmap(posting, self.count)
            if len(posting) * 64 > self.count:
                if len(self._bitmaps) >= BITMAP_CACHE:
                    del self._bitmaps[next(iter(self._bitmaps))]
                self._bitmaps[key] = bits
        return bits

    def length(self, field: str, size: int) -> int:
        """Customers whose `field` has `size` characters, as a bitmap."""
        return self.bitmap(FIELD_CODES[field] + LENGTH + str(size))

    def record(self, cid: int) -> dict:
        out = {}
        for field in FIELDS:
            value = self.raw[field][cid]
            if field == "capacity_kva":
                number = self.capacities[cid]
                value = None if number != number else (int(number) if number.is_integer() else number)
            out[field] = value if value != "" else None
        return out

    def sequence(self, field: str, kind: str, cid: int) -> list:
        """The pinyin readings (initials or full) of one customer's `field`."""
        self._load_pinyin()
        return reading_sequence(self.norm[field][cid], kind)

    def vocabulary(self, field: str, kind: str) -> PinyinVocabulary:
        """The spellings of the characters and character pairs that occur in `field`."""
        key = (field, kind)
        self._load_pinyin()
        if key not in self.vocabularies:
            code = FIELD_CODES[field]
            keys = list(itertools.chain(self.postings, self.dense))
            pairs = {k[2:] for k in keys if k.startswith(code + PLAIN)}
            chars = {c for k in keys if k.startswith(code + STARTS) for c in k[2:]}
            chars.update(c for pair in pairs for c in pair)
            self.vocabularies[key] = PinyinVocabulary(pairs | chars, kind)
        return self.vocabularies[key]

    def pairs_with(self, field: str, char: str) -> list[str]:
        """Keys of the character pairs of `field` that hold `char` (listed once per field, on
        the first one-character query)."""
        if field not in self._pairs_with:
            prefix = FIELD_CODES[field] + PLAIN
            by_char: dict[str, list[str]] = {}
            for key in itertools.chain(self.postings, self.dense):
                if key.startswith(prefix):
                    by_char.setdefault(key[2], []).append(key)
                    if key[3] != key[2]:
                        by_char.setdefault(key[3], []).append(key)
            self._pairs_with[field] = by_char
        return self._pairs_with[field].get(char, [])

    def field_initials(self, field: str) -> FieldInitials:
        """The initials scanner over a whole column, made on first use."""
        if field not in self._initials:
            column = self.norm[field]
            self._initials[field] = FieldInitials(column.text, column.offsets, self.count)
        return self._initials[field]
