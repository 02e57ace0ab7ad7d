"""Customer search: an n-gram index over the master data that answers find and the query page.

The index lives beside the master data (ROOT/.fieldsync/search-index.pickle), is rebuilt when
customers are imported and loaded lazily on the first query. Postings hold character pairs of
each field and, for the pinyin fields, the pinyin initials of every 2, 3 (and for names 4) neighbouring
characters (every combination of a polyphonic character's readings). Full pinyin queries are
turned into the character pairs whose readings fit (PinyinVocabulary). The index only narrows
the candidates: a hit it cannot prove is confirmed against the field text, so recall and
precision equal a plain scan.

The rules a match must satisfy are in matching.py, match sets are bitmaps (bitmaps.py), and
initials of a whole column are scanned by initials.py.
"""

from __future__ import annotations

import bisect
import itertools
import pickle
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fieldsync.base.atomic import atomic_open
from fieldsync.masterdata import postings as made
from fieldsync.masterdata.bitmaps import Ranked, bitmap, bitmap_ids
from fieldsync.masterdata.initials import FieldInitials
from fieldsync.masterdata.matching import (
    EXACT,
    FULL,
    INITIALS,
    LETTERS,
    PINYIN_FIELDS,
    PLAIN,
    PREFIX,
    SUBSTRING,
    PinyinVocabulary,
    capacity_comparison,
    capacity_text,
    char_readings,
    initial_letters,
    initials_rank,
    learn_readings,
    normalize,
    normalize_voltage,
    pinyin_match,
    plain_rank,
    query_text,
    reading_sequence,
)
from fieldsync.masterdata.store import FIELDS, STORE_NAME, CustomerStore, collector_paused

INDEX_NAME = "search-index.pickle"
INDEX_VERSION = 6  # 6: PinyinVocabulary pickled from matching.py
FIELD_CODES = {"account_no": "a", "name": "n", "meter_no": "m", "capacity_kva": "c",
               "address": "d", "line": "l", "voltage": "v"}
STARTS = "~"  # key kind of "the field starts with this gram"
LENGTH = "#"  # key kind of "the field has this many characters" (finds exact matches)
VALUE = "@"  # key kind of "the field is exactly this" (fields with few distinct values)
MAX_VALUES = 4096  # more distinct values than this: no VALUE postings for the field
INITIALS_IN = "i"  # key kind of "the initials of these neighbouring characters read this"
INITIALS_AT = "^"  # ... of the field's first characters
# Initials grams indexed per field; a longer query ANDs its windows of the largest size. Not 4
# for addresses: their 4-letter grams would take a fifth of the memory of the whole index.
INITIAL_SIZES = {"name": (2, 3, 4), "address": (2, 3), "line": (2, 3, 4)}
BITMAP_CACHE = 256  # posting bitmaps made from id lists, kept per index
DENSE = 32  # a posting holding more than 1/DENSE of all customers is saved as a bitmap (smaller)
READ_ROWS = 2_000  # fewer initials candidates than this: check them row by row, else by bytes
CONFIRM_DIRECTLY = 5_000  # fewer candidates than this: check a further condition row by row
MAX_QUERY_CHARS = 200  # longer text cannot be in a 500-character cell pair; cut, never crash


def query_grams(text: str) -> list[str]:
    """The distinct character pairs of a query, in order: the postings it must be in."""
    return list(dict.fromkeys(text[i:i + 2] for i in range(len(text) - 1)))


# --- the index ---

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
    return text


@dataclass(frozen=True)
class Hit:
    account_no: str
    rank: int
    record: dict


@dataclass
class Results:
    hits: list[Hit]
    total: int


class _Column:
    """One field of every customer as one string joined by newlines: far less memory than a
    million small str objects, and slicing out one value is cheap."""

    def __init__(self, text: str, offsets: array):
        self.text, self.offsets = text, offsets

    @classmethod
    def joined(cls, text: str, count: int) -> _Column:
        """The column of `count` values already joined by newlines (none inside a value)."""
        if not count:
            return cls("", array("I", [0]))
        return cls(text, array("I", made.offsets(made.codes(text)).astype("uint32").tobytes()))

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


class SearchIndex:
    """n-gram postings (gram -> customer ids in account order) over the seven fields."""

    def __init__(self, raw: dict, norm: dict, capacities: array, postings: dict, stamp,
                 values: dict[str, list[str]] | None = None, pinyin: bytes | None = None,
                 dense: dict[str, bytes] | None = None, initials: bytes | None = None):
        self.raw, self.norm, self.capacities = raw, norm, capacities
        # Bitmaps of the most common grams ("有限", "公司", "10kV"), made once at import: made
        # from the ids at query time they cost more than the rest of the query.
        self.dense = dense if dense is not None else {}
        self.values = values or {}  # field -> its distinct values, when few (VALUE postings)
        self.postings, self.stamp = postings, stamp
        self.count = len(capacities)
        self._vocabularies: dict[tuple[str, str], PinyinVocabulary] = {}
        self._pinyin = pinyin  # pickled (readings, vocabularies), unpickled on the first pinyin query
        # pickled (id lists, bitmaps) of the initials postings, unpickled on the first initials
        # query: they are over half the index, and most queries are Chinese or digits
        self._initials_postings = initials
        self._initials: dict[str, FieldInitials] = {}
        self._bitmaps: dict[str, int] = {}

    # building and persisting

    @classmethod
    def build(cls, records: Iterable[dict], stamp=None) -> SearchIndex:
        rows = sorted(records, key=lambda r: r["account_no"])
        with collector_paused():
            return cls._build(rows, stamp)

    @classmethod
    def _build(cls, rows: list[dict], stamp) -> SearchIndex:
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
            raw[field] = _Column.joined(joined, count)
            text = _normalized_column(field, shown, joined)
            norm[field] = raw[field] if text == joined else _Column.joined(text, count)
            if not count:
                continue
            code = FIELD_CODES[field]
            grams_of = made.ColumnGrams(text, count)
            for gram, ids in grams_of.pairs():
                store.add(code + PLAIN + gram, ids)
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
        capacities = array("d", (float(v) if isinstance(v := r.get("capacity_kva"), (int, float)) else float("nan")
                                 for r in rows))
        index = cls(raw, norm, capacities, store.ids, stamp, values, dense=store.bitmaps)
        index._pinyin = index._make_pinyin()
        return index

    def _load_initials(self) -> None:
        if self._initials_postings is not None:
            ids, bitmaps = pickle.loads(self._initials_postings)
            self.postings.update(ids)
            self.dense.update(bitmaps)
            self._initials_postings = None

    def _load_pinyin(self) -> None:
        if self._pinyin is not None:
            readings, vocabularies = pickle.loads(self._pinyin)
            learn_readings(readings)
            for key, vocabulary in vocabularies.items():
                self._vocabularies.setdefault(key, vocabulary)
            self._pinyin = None

    def _make_pinyin(self) -> bytes:
        readings = {}
        for field in PINYIN_FIELDS:
            self._vocabulary(field, FULL)  # initials have postings of their own
            readings.update((c, char_readings(c)) for c in set(self.norm[field].text) - {"\n"})
        return pickle.dumps((readings, self._vocabularies), protocol=pickle.HIGHEST_PROTOCOL)

    def save(self, path: Path) -> None:
        postings, dense = dict(self.postings), dict(self.dense)
        initials = self._initials_postings
        if initials is None:
            moved = [{k: kept.pop(k) for k in list(kept) if k[1:2] in (INITIALS_IN, INITIALS_AT)}
                     for kept in (postings, dense)]
            initials = pickle.dumps(tuple(moved), protocol=pickle.HIGHEST_PROTOCOL)
        state = {"version": INDEX_VERSION, "stamp": self.stamp, "raw": self.raw, "norm": self.norm,
                 "capacities": self.capacities, "postings": postings, "values": self.values,
                 "pinyin": self._pinyin or self._make_pinyin(), "dense": dense, "initials": initials}
        with atomic_open(path, "wb", private=True) as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def read(cls, path: Path) -> SearchIndex | None:
        # Our own private file under .fieldsync/, written by save(); a stale or foreign
        # version is rebuilt rather than trusted.
        try:
            with open(path, "rb") as handle:
                state = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("version") != INDEX_VERSION:
            return None
        return cls(state["raw"], state["norm"], state["capacities"], state["postings"], state["stamp"],
                   state["values"], state["pinyin"], state["dense"], state["initials"])

    # looking up

    def _posting(self, key: str):
        """Customer ids of one posting, ascending (a bitmap-only posting is listed out)."""
        data = self.postings.get(key)
        if data:
            return memoryview(data).cast("I")
        bits = self.dense.get(key)
        return bitmap_ids(int.from_bytes(bits, "little")) if bits else ()

    def _has(self, key: str) -> bool:
        return key in self.postings or key in self.dense

    def _bitmap(self, key: str) -> int:
        """One posting list as a bitmap; the big ones (frequent grams, common values) are kept,
        since turning them into bitmaps is the costly part."""
        bits = self._bitmaps.get(key)
        if bits is None and key in self.dense:
            return int.from_bytes(self.dense[key], "little")  # microseconds: not worth a cache slot
        if bits is None:
            posting = self._posting(key)
            bits = bitmap(posting, self.count)
            if len(posting) * 64 > self.count:
                if len(self._bitmaps) >= BITMAP_CACHE:
                    del self._bitmaps[next(iter(self._bitmaps))]
                self._bitmaps[key] = bits
        return bits

    def _length(self, field: str, size: int) -> int:
        return self._bitmap(FIELD_CODES[field] + LENGTH + str(size))

    def record(self, cid: int) -> dict:
        out = {}
        for field in FIELDS:
            value = self.raw[field][cid]
            if field == "capacity_kva":
                number = self.capacities[cid]
                value = None if number != number else (int(number) if number.is_integer() else number)
            out[field] = value if value != "" else None
        return out

    def _sequence(self, field: str, kind: str, cid: int) -> list:
        self._load_pinyin()
        return reading_sequence(self.norm[field][cid], kind)

    def _ranks(self, field: str, kind: str, query: str, ids: Iterable[int],
               starts: set[int], confirmed: bool) -> dict[int, int]:
        """Rank `ids`; when `confirmed` they are known to match, so only the ones that may
        start with the query are looked at closely."""
        ranks: dict[int, int] = {}
        for cid in ids:
            if confirmed:
                if cid not in starts:
                    ranks[cid] = SUBSTRING
                    continue
                # every character gives at least one letter: only a short field can be exact
                if len(self.norm[field][cid]) > len(query):
                    ranks[cid] = PREFIX
                    continue
            if kind == PLAIN:
                rank = plain_rank(self.norm[field][cid], query)
            else:
                rank = pinyin_match(self._sequence(field, kind, cid), query, kind)
            if rank is not None:
                ranks[cid] = rank
        return ranks

    def _match_plain(self, field: str, query: str) -> dict[int, int]:
        """{customer id: rank} for `query` (already normalised) as plain text in `field`."""
        code = FIELD_CODES[field]
        if len(query) == 1:
            return self._ranks(field, PLAIN, query, self.norm[field].containing(query),
                               set(self._posting(code + STARTS + query)), confirmed=True)
        keys = [code + PLAIN + g for g in query_grams(query)]
        if not all(self._has(k) for k in keys):
            return {}
        if len(query) == 2:  # the bigram's postings are exactly the matches
            return self._ranks(field, PLAIN, query, self._posting(keys[0]),
                               set(self._posting(code + STARTS + query)), confirmed=True)
        return self._ranks(field, PLAIN, query, self._candidates(keys), set(), confirmed=False)

    def _candidates(self, keys: list[str]) -> Iterable[int]:
        """Customers in every posting of `keys` (or a few more: confirming a few hundred rows
        costs less than a further intersection)."""
        lists = sorted((k for k in keys if k in self.postings), key=lambda k: len(self.postings[k]))
        bitmaps = [self.dense[k] for k in keys if k not in self.postings]
        if not lists:  # every gram is frequent (digits of meter numbers): AND the bitmaps
            bits = -1
            for data in bitmaps:
                bits &= int.from_bytes(data, "little")
            return bitmap_ids(bits)
        candidates = set(self._posting(lists[0]))
        for key in lists[1:]:
            if len(candidates) < 256:
                return candidates
            candidates.intersection_update(self._posting(key))
        for data in bitmaps:
            if len(candidates) < 256:
                break
            candidates = {c for c in candidates if data[c >> 3] >> (c & 7) & 1}
        return candidates

    def _vocabulary(self, field: str, kind: str) -> PinyinVocabulary:
        key = (field, kind)
        self._load_pinyin()
        if key not in self._vocabularies:
            code = FIELD_CODES[field]
            keys = list(itertools.chain(self.postings, self.dense))
            pairs = {k[2:] for k in keys if k.startswith(code + PLAIN)}
            chars = {c for k in keys if k.startswith(code + STARTS) for c in k[2:]}
            chars.update(c for pair in pairs for c in pair)
            self._vocabularies[key] = PinyinVocabulary(pairs | chars, kind)
        return self._vocabularies[key]

    def _union(self, field: str, found_grams: Iterable[str]) -> set[int]:
        """Customers whose `field` holds any of these characters or character pairs."""
        found: set[int] = set()
        code = FIELD_CODES[field] + PLAIN
        for gram in found_grams:
            found.update(self._posting(code + gram) if len(gram) == 2 else self.norm[field].containing(gram))
        return found

    def _full_pinyin(self, field: str, query: str) -> Ranked:
        """Full pinyin `query` in `field`. Customers with a character pair whose spelling holds
        the whole query match for sure, and are ranked by bitmaps alone; the rest (the query
        goes on past a pair, or lies inside one character) are read row by row."""
        code = FIELD_CODES[field]
        vocabulary = self._vocabulary(field, FULL)
        whole, partial, at_start = vocabulary.grams_for(query)
        found = prefix = exact = 0
        spelled = vocabulary.spelled(query)
        for gram in at_start:  # the field starts with the gram, the query with its first letter
            starts = self._bitmap(code + STARTS + gram)
            prefix |= starts
            if gram in spelled:
                exact |= starts & self._length(field, len(gram))
        found |= prefix
        inside: set[int] = set()
        for gram in whole:
            if len(gram) == 2:
                found |= self._bitmap(code + PLAIN + gram)
            else:
                inside.update(self.norm[field].containing(gram))
        if inside:
            found |= bitmap(inside, self.count)
        # a row already known to start with the query can rank no better through another route
        maybe = bitmap(self._union(field, partial), self.count) & ~prefix if partial else 0
        ranks = self._ranks(field, FULL, query, bitmap_ids(maybe), set(), confirmed=False)
        return Ranked(exact, prefix, found) | Ranked.of(ranks, self.count)

    def _plain_pair(self, field: str, query: str) -> Ranked:
        """A two-character query: its postings are exactly the matches, no row is read."""
        code = FIELD_CODES[field]
        found = self._bitmap(code + PLAIN + query)
        if not found:
            return Ranked()
        starts = self._bitmap(code + STARTS + query)
        return Ranked(starts & self._length(field, 2), starts, found)

    def _match_values(self, field: str, text: str) -> Ranked:
        """A field with few distinct values: rank each value once, not each customer."""
        exact = prefix = found = 0
        code = FIELD_CODES[field] + VALUE
        for value in self.values[field]:
            rank = plain_rank(value, text)
            if rank is None:
                continue
            bits = self._bitmap(code + value)
            found |= bits
            if rank <= PREFIX:
                prefix |= bits
            if rank == EXACT:
                exact |= bits
        return Ranked(exact, prefix, found)

    def _initials_ranked(self, field: str, query: str) -> Ranked:
        """Pinyin initials of two or more letters (one letter per character). Up to the largest
        indexed size the postings are exactly the matches; a longer query ANDs its windows of
        that size and confirms what is left."""
        self._load_initials()
        code = FIELD_CODES[field]
        size = INITIAL_SIZES[field][-1]
        if len(query) <= size:
            found = self._bitmap(code + INITIALS_IN + query)
            if not found:
                return Ranked()
            starts = self._bitmap(code + INITIALS_AT + query)
            return Ranked(starts & self._length(field, len(query)), starts, found)
        candidates = -1
        for offset in range(len(query) - size + 1):
            candidates &= self._bitmap(code + INITIALS_IN + query[offset:offset + size])
            if not candidates:
                return Ranked()
        if candidates.bit_count() > READ_ROWS and self._field_initials(field).scannable:
            prefix, found = self._field_initials(field).scan(query)
            return Ranked(prefix & self._length(field, len(query)), prefix, found)
        ranks = {}
        for cid in bitmap_ids(candidates):
            rank = initials_rank(self._sequence(field, INITIALS, cid), query)
            if rank is not None:
                ranks[cid] = rank
        return Ranked.of(ranks, self.count)

    def _field_initials(self, field: str) -> FieldInitials:
        if field not in self._initials:
            column = self.norm[field]
            self._initials[field] = FieldInitials(column.text, column.offsets, self.count)
        return self._initials[field]

    def _match_field(self, field: str, query: str) -> Ranked:
        if field == "capacity_kva":
            compared = self._compare_capacity(query)
            if compared is not None:
                return Ranked.of(compared, self.count)
        text = query_text(field, query)
        if field in self.values:
            return self._match_values(field, text)
        found = (self._plain_pair(field, text) if len(text) == 2
                 else Ranked.of(self._match_plain(field, text), self.count))
        # A single letter only means an initial; full pinyin needs two letters to say anything.
        if field in PINYIN_FIELDS and LETTERS.match(text):
            if len(text) > 1:
                found |= self._initials_ranked(field, text)
                found |= self._full_pinyin(field, text)
            else:
                found |= Ranked.of(self._field_initials(field).match(text), self.count)
        return found

    def _cheap(self, field: str, query: str) -> bool:
        """A condition answered by bitmaps alone (two characters, or a field with few distinct
        values): ANDing it costs less than confirming even a few hundred rows one by one."""
        if field == "capacity_kva" and capacity_comparison(query) is not None:
            return False
        return field in self.values or len(query_text(field, query)) == 2

    def _confirm(self, candidates: dict[int, int], field: str, query: str) -> dict[int, int]:
        """`candidates` that also match `query` in `field`, checked one by one (few left)."""
        out: dict[int, int] = {}
        text = query_text(field, query)
        compare = capacity_comparison(query) if field == "capacity_kva" else None
        letters = field in PINYIN_FIELDS and LETTERS.match(text)
        for cid, before in candidates.items():
            if compare:
                (op, limit), value = compare, self.capacities[cid]
                rank = (EXACT if value == limit else SUBSTRING) if value == value and op(value, limit) else None
            else:
                rank = plain_rank(self.norm[field][cid], text)
                if letters and rank != EXACT:
                    kinds = (INITIALS, FULL) if len(text) > 1 else (INITIALS,)
                    for kind in kinds:
                        other = pinyin_match(self._sequence(field, kind, cid), text, kind)
                        if other is not None and (rank is None or other < rank):
                            rank = other
            if rank is not None:
                out[cid] = max(before, rank)
        return out

    def _compare_capacity(self, query: str) -> dict[int, int] | None:
        compare = capacity_comparison(query)
        if compare is None:
            return None
        op, limit = compare
        return {cid: EXACT if value == limit else SUBSTRING
                for cid, value in enumerate(self.capacities) if value == value and op(value, limit)}

    def search(self, text: str = "", fields: dict[str, str] | None = None,
               limit: int | None = 20) -> Results:
        """Customers matching `text` in any field AND every `fields[name]` in its field."""
        conditions = [(f, q[:MAX_QUERY_CHARS]) for f, q in (fields or {}).items() if q and q.strip()]
        text = (text or "")[:MAX_QUERY_CHARS]
        combined: Ranked | None = None
        if text.strip():
            combined = Ranked()
            for field in FIELDS:
                combined |= self._match_field(field, text.strip())
        # Voltage and capacity match many customers: take them last; the longest text first.
        for field, query in sorted(conditions, key=lambda c: (c[0] in ("voltage", "capacity_kva"), -len(c[1]))):
            if combined is not None and not self._cheap(field, query.strip()) \
                    and combined.count() <= CONFIRM_DIRECTLY:
                combined = Ranked.of(self._confirm(combined.ranks(), field, query.strip()), self.count)
            else:
                found = self._match_field(field, query.strip())
                combined = found if combined is None else combined & found
            if not combined.any:
                break
        if combined is None:  # nothing asked: everyone, in account order
            ids = range(self.count) if limit is None else range(min(limit, self.count))
            return Results([Hit(self.raw["account_no"][c], SUBSTRING, self.record(c)) for c in ids], self.count)
        hits = [Hit(self.raw["account_no"][cid], rank, self.record(cid)) for cid, rank in combined.ordered(limit)]
        return Results(hits, combined.count())


# --- beside the master data ---

def index_path(state_dir: Path) -> Path:
    return Path(state_dir) / INDEX_NAME


def store_stamp(state_dir: Path):
    """Identifies one version of customers.json; the index is valid only for that version."""
    try:
        info = (Path(state_dir) / STORE_NAME).stat()
    except FileNotFoundError:
        return None
    return (info.st_size, info.st_mtime_ns)


def rebuild_index(state_dir: Path, records: Iterable[dict]) -> SearchIndex:
    """Build and save the index for the master data just written (called on import)."""
    index = SearchIndex.build(records, store_stamp(state_dir))
    index.save(index_path(state_dir))
    _cache.pop(str(Path(state_dir)), None)
    return index


_cache: dict[str, SearchIndex] = {}


def load_index(state_dir: Path) -> SearchIndex:
    """The index for the current master data: from memory, from disk, or rebuilt when stale."""
    key = str(Path(state_dir))
    stamp = store_stamp(state_dir)
    cached = _cache.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached
    index = SearchIndex.read(index_path(state_dir))
    if index is None or index.stamp != stamp:
        records = CustomerStore(state_dir).all()
        index = SearchIndex.build(records, stamp)
        if stamp is not None:
            index.save(index_path(state_dir))
    _cache[key] = index
    return index


def find(state_dir: Path, text: str = "", fields: dict[str, str] | None = None,
         limit: int | None = 20) -> Results:
    return load_index(state_dir).search(text, fields, limit)
