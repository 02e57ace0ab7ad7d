"""Customer search: queries over the n-gram index (index_data.py), answering find and the query page.

The index is built on import (index_build.py) and saved beside the master data (index_file.py);
`find` loads it lazily on the first query. Full pinyin queries are turned into the character
pairs whose readings fit (PinyinVocabulary). The index only narrows the candidates: a hit it
cannot prove is confirmed against the field text, so recall and precision equal a plain scan.

The rules a match must satisfy are in matching.py, match sets are bitmaps (bitmaps.py), and
initials of a whole column are scanned by initials.py.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fieldsync.masterdata.bitmaps import Ranked, bitmap, bitmap_ids, iter_ids
from fieldsync.masterdata.index_data import (
    CHAR,
    FIELD_CODES,
    INITIAL_SIZES,
    INITIALS_AT,
    INITIALS_IN,
    STARTS,
    VALUE,
    IndexData,
)
from fieldsync.masterdata.index_file import load_index
from fieldsync.masterdata.matching import (
    EXACT,
    FULL,
    INITIALS,
    LETTERS,
    PINYIN_FIELDS,
    PLAIN,
    PREFIX,
    SUBSTRING,
    WHOLE_VALUE_FIELDS,
    capacity_bounds,
    field_conditions,
    initials_rank,
    pinyin_match,
    plain_rank,
    query_text,
    query_words,
)
from fieldsync.masterdata.store import FIELDS

READ_ROWS = 2_000  # fewer initials candidates than this: check them row by row, else by bytes
CONFIRM_DIRECTLY = 5_000  # fewer candidates than this: check a further condition row by row
MAX_QUERY_CHARS = 200  # longer text cannot be in a 500-character cell pair; cut, never crash


def capacity_rank(bounds: list, value: float) -> int | None:
    """EXACT when `value` satisfies every bound and equals one, SUBSTRING when it satisfies
    them, None when not (or there is no capacity: NaN)."""
    if value != value or not all(op(value, limit) for op, limit in bounds):
        return None
    return EXACT if any(value == limit for _, limit in bounds) else SUBSTRING


def query_grams(text: str) -> list[str]:
    """The distinct character pairs of a query, in order: the postings it must be in."""
    return list(dict.fromkeys(text[i:i + 2] for i in range(len(text) - 1)))


@dataclass(frozen=True)
class Hit:
    account_no: str
    rank: int
    record: dict


@dataclass
class Results:
    """The page of hits asked for, and how many customers match in all. `exact` is False when
    the count is an estimate: a frequent phrase is narrowed by its character pairs and only the
    rows shown are read, so `total` is the index's count scaled by the share of the rows read
    that matched (the pairs of a frequent phrase nearly always stand together)."""
    hits: list[Hit]
    total: int
    exact: bool = True


class SearchIndex:
    """Queries over one index: each field's condition ranked, the conditions ANDed."""

    def __init__(self, data: IndexData):
        self.data, self.count = data, data.count

    def _ranks(self, field: str, kind: str, query: str, ids: Iterable[int]) -> dict[int, int]:
        """{id: rank} of those `ids` whose `field` matches `query`, read row by row."""
        ranks: dict[int, int] = {}
        column = self.data.norm[field]
        for cid in ids:
            if kind == PLAIN:
                rank = plain_rank(column[cid], query)
            else:
                rank = pinyin_match(self.data.sequence(field, kind, cid), query, kind)
            if rank is not None:
                ranks[cid] = rank
        return ranks

    def _match_plain(self, field: str, query: str) -> Ranked:
        """Customers whose `field` holds `query` (already normalised, not two characters) as
        plain text, ranked."""
        code = FIELD_CODES[field]
        if len(query) == 1:
            return self._plain_char(field, query)
        keys = [code + PLAIN + g for g in query_grams(query)]
        if not all(self.data.has(k) for k in keys):
            return Ranked()
        if min(self._posting_size(k) for k in keys) > CONFIRM_DIRECTLY:
            # A frequent phrase ("有限公司": 833k of 1M): its pairs' bitmaps say who may match
            # and who may start with it; the rows shown are confirmed (search._confirmed_page).
            found = -1
            for key in keys:
                found &= self.data.bitmap(key)
            starts = found & self.data.bitmap(code + STARTS + query[:2])
            return Ranked(starts & self.data.length(field, len(query)), starts, found, unsure=True)
        ranks = self._ranks(field, PLAIN, query, self._candidates(keys))
        return Ranked.of(ranks, self.count)

    def _posting_size(self, key: str) -> int:
        data = self.data.postings.get(key)
        return len(data) // 4 if data else self.data.bitmap(key).bit_count()

    def _plain_char(self, field: str, char: str) -> Ranked:
        """One character: its own bitmap when it is frequent, else the customers of every
        character pair holding it and those whose whole value is that character; bitmaps
        alone, no row is read."""
        code = FIELD_CODES[field]
        starts = self.data.bitmap(code + STARTS + char)
        exact = starts & self.data.length(field, 1)
        if code + CHAR + char in self.data.dense:  # a frequent character has a bitmap of its own
            return Ranked(exact, starts, self.data.bitmap(code + CHAR + char))
        found = exact
        for key in self.data.pairs_with(field, char):
            found |= self.data.bitmap(key)
        return Ranked(exact, starts, found)

    def _candidates(self, keys: list[str]) -> Iterable[int]:
        """Customers in every posting of `keys` (or a few more: confirming a few hundred rows
        costs less than a further intersection)."""
        index = self.data
        lists = sorted((k for k in keys if k in index.postings), key=lambda k: len(index.postings[k]))
        bitmaps = [index.dense[k] for k in keys if k not in index.postings]
        if not lists:  # every gram is frequent (digits of meter numbers): AND the bitmaps
            bits = -1
            for bits_of in bitmaps:
                bits &= int.from_bytes(bits_of, "little")
            return bitmap_ids(bits)
        candidates = set(index.posting(lists[0]))
        for key in lists[1:]:
            if len(candidates) < 256:
                return candidates
            candidates.intersection_update(index.posting(key))
        for bits_of in bitmaps:
            if len(candidates) < 256:
                break
            candidates = {c for c in candidates if bits_of[c >> 3] >> (c & 7) & 1}
        return candidates

    def _union(self, field: str, found_grams: Iterable[str]) -> set[int]:
        """Customers whose `field` holds any of these characters or character pairs."""
        found: set[int] = set()
        code = FIELD_CODES[field] + PLAIN
        for gram in found_grams:
            found.update(self.data.posting(code + gram) if len(gram) == 2
                         else self.data.norm[field].containing(gram))
        return found

    def _full_pinyin(self, field: str, query: str) -> Ranked:
        """Full pinyin `query` in `field`. Customers with a character pair whose spelling holds
        the whole query match for sure, and are ranked by bitmaps alone; the rest (the query
        goes on past a pair, or lies inside one character) are read row by row."""
        code = FIELD_CODES[field]
        vocabulary = self.data.vocabulary(field, FULL)
        whole, partial, at_start = vocabulary.grams_for(query)
        found = prefix = exact = 0
        spelled = vocabulary.spelled(query)
        for gram in at_start:  # the field starts with the gram, the query with its first letter
            starts = self.data.bitmap(code + STARTS + gram)
            prefix |= starts
            if gram in spelled:
                exact |= starts & self.data.length(field, len(gram))
        found |= prefix
        inside: set[int] = set()
        for gram in whole:
            if len(gram) == 2:
                found |= self.data.bitmap(code + PLAIN + gram)
            else:
                inside.update(self.data.norm[field].containing(gram))
        if inside:
            found |= bitmap(inside, self.count)
        # a row already known to start with the query can rank no better through another route
        maybe = bitmap(self._union(field, partial), self.count) & ~prefix if partial else 0
        ranks = self._ranks(field, FULL, query, bitmap_ids(maybe))
        return Ranked(exact, prefix, found) | Ranked.of(ranks, self.count)

    def _plain_pair(self, field: str, query: str) -> Ranked:
        """A two-character query: its postings are exactly the matches, no row is read."""
        code = FIELD_CODES[field]
        found = self.data.bitmap(code + PLAIN + query)
        if not found:
            return Ranked()
        starts = self.data.bitmap(code + STARTS + query)
        return Ranked(starts & self.data.length(field, 2), starts, found)

    def _match_values(self, field: str, text: str) -> Ranked:
        """A field with few distinct values: rank each value once, not each customer."""
        exact = prefix = found = 0
        code = FIELD_CODES[field] + VALUE
        for value in self.data.values[field]:
            rank = plain_rank(value, text)
            if rank is None:
                continue
            bits = self.data.bitmap(code + value)
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
        self.data.load_initials()
        code = FIELD_CODES[field]
        size = INITIAL_SIZES[field][-1]
        if len(query) <= size:
            found = self.data.bitmap(code + INITIALS_IN + query)
            if not found:
                return Ranked()
            starts = self.data.bitmap(code + INITIALS_AT + query)
            return Ranked(starts & self.data.length(field, len(query)), starts, found)
        candidates = -1
        for offset in range(len(query) - size + 1):
            candidates &= self.data.bitmap(code + INITIALS_IN + query[offset:offset + size])
            if not candidates:
                return Ranked()
        if candidates.bit_count() > READ_ROWS and self.data.field_initials(field).scannable:
            prefix, found = self.data.field_initials(field).scan(query)
            return Ranked(prefix & self.data.length(field, len(query)), prefix, found)
        ranks = {}
        for cid in bitmap_ids(candidates):
            rank = initials_rank(self.data.sequence(field, INITIALS, cid), query)
            if rank is not None:
                ranks[cid] = rank
        return Ranked.of(ranks, self.count)

    def _match_field(self, field: str, query: str) -> Ranked:
        """Customers whose `field` matches the query word `query`, ranked."""
        if field == "capacity_kva":
            bounds = capacity_bounds(query)
            return self._capacity(bounds) if bounds else Ranked()
        text = query_text(field, query)
        if not text:  # a word that is no voltage level never matches a voltage
            return Ranked()
        if field == "voltage":
            return self._voltage(text)
        if field in self.data.values:
            return self._match_values(field, text)
        found = self._plain_pair(field, text) if len(text) == 2 else self._match_plain(field, text)
        # A single letter only means an initial; full pinyin needs two letters to say anything.
        if field in PINYIN_FIELDS and LETTERS.match(text):
            if len(text) > 1:
                found |= self._initials_ranked(field, text)
                found |= self._full_pinyin(field, text)
            else:
                found |= Ranked.of(self.data.field_initials(field).match(text), self.count)
        return found

    def _match_any(self, word: str) -> Ranked:
        """A word of the free text: it may match in any field; the best rank counts."""
        found = Ranked()
        for field in FIELDS:
            found |= self._match_field(field, word)
        return found

    def _voltage(self, level: str) -> Ranked:
        """A voltage level matches the customers of exactly that level (10kV never 110kV)."""
        if "voltage" in self.data.values:
            if level not in self.data.values["voltage"]:
                return Ranked()
            bits = self.data.bitmap(FIELD_CODES["voltage"] + VALUE + level)
        else:  # thousands of distinct spellings: read the column
            column = self.data.norm["voltage"]
            bits = bitmap((cid for cid in range(self.count) if column[cid] == level), self.count)
        return Ranked(bits, bits, bits)

    def _capacity(self, bounds: list) -> Ranked:
        """Customers whose capacity satisfies every bound, compared as numbers; equal to a
        bound's value ranks as exact. Capacities have few distinct values (standard sizes):
        each value is compared once, not each customer."""
        if "capacity_kva" not in self.data.values:
            ranks = {cid: r for cid, value in enumerate(self.data.capacities)
                     if (r := capacity_rank(bounds, value)) is not None}
            return Ranked.of(ranks, self.count)
        exact = found = 0
        code = FIELD_CODES["capacity_kva"] + VALUE
        for text in self.data.values["capacity_kva"]:
            try:
                value_rank = capacity_rank(bounds, float(text))
            except ValueError:  # no capacity
                continue
            if value_rank is not None:
                bits = self.data.bitmap(code + text)
                found |= bits
                if value_rank == EXACT:
                    exact |= bits
        return Ranked(exact, exact, found)

    def _cheap(self, field: str | None, query: str) -> bool:
        """A condition answered by bitmaps alone (two characters that are not pinyin, or a field
        with few distinct values): ANDing it costs less than confirming even a few hundred rows
        one by one (a free-text word is confirmed in all seven fields)."""
        if field is None:
            text = query_text("name", query)
            return len(text) == 2 and not LETTERS.match(text)
        if field == "capacity_kva":
            return False
        return field in self.data.values or len(query_text(field, query)) == 2

    def _confirm(self, candidates: dict[int, int], field: str | None, query: str) -> dict[int, int]:
        """`candidates` that also match `query` in `field` (in any field when None), checked
        one by one (few left)."""
        out: dict[int, int] = {}
        for cid, before in candidates.items():
            ranks = [r for f in ((field,) if field else FIELDS)
                     if (r := self._rank_one(cid, f, query)) is not None]
            if ranks:
                out[cid] = max(before, min(ranks))
        return out

    def _rank_one(self, cid: int, field: str, query: str) -> int | None:
        """The rank of one customer's `field` for the query word, or None."""
        if field == "capacity_kva":
            bounds = capacity_bounds(query)
            return capacity_rank(bounds, self.data.capacities[cid]) if bounds else None
        text = query_text(field, query)
        if not text:
            return None
        if field == "voltage":
            return EXACT if self.data.norm[field][cid] == text else None
        rank = plain_rank(self.data.norm[field][cid], text)
        if field in PINYIN_FIELDS and LETTERS.match(text) and rank != EXACT:
            kinds = (INITIALS, FULL) if len(text) > 1 else (INITIALS,)
            for kind in kinds:
                other = pinyin_match(self.data.sequence(field, kind, cid), text, kind)
                if other is not None and (rank is None or other < rank):
                    rank = other
        return rank

    def search(self, text: str = "", fields: dict[str, str | list[str]] | None = None,
               limit: int | None = 20) -> Results:
        """Customers matching every word of `text` (each in any field) AND every condition of
        `fields[name]` (a value, or a list of values that all apply) in its field.
        Raises BadInput for a malformed capacity or voltage."""
        conditions: list[tuple[str | None, str]] = [(None, w) for w in query_words((text or "")[:MAX_QUERY_CHARS])]
        for field, given in (fields or {}).items():
            for value in ([given] if isinstance(given, str) else given or []):
                if value and value.strip():
                    conditions += [(field, w) for w in field_conditions(field, value[:MAX_QUERY_CHARS])]
        combined: Ranked | None = None
        pending: list[tuple[str | None, str]] = []  # conditions the bitmaps only narrowed
        # Voltage and capacity match many customers: take them last; the longest text first.
        for field, query in sorted(conditions, key=lambda c: (c[0] in WHOLE_VALUE_FIELDS, -len(c[1]))):
            # a free-text word is read in seven fields: a seventh as many rows cost the same
            confirm_at = CONFIRM_DIRECTLY if field else CONFIRM_DIRECTLY // len(FIELDS)
            if combined is not None and not self._cheap(field, query) and combined.count() <= confirm_at:
                combined = Ranked.of(self._confirm(combined.ranks(), field, query), self.count)
            else:
                found = self._match_any(query) if field is None else self._match_field(field, query)
                combined = found if combined is None else combined & found
                if found.unsure:
                    pending.append((field, query))
            if not combined.any:
                break
        if combined is None:  # nothing asked: everyone, in account order
            ids = range(self.count) if limit is None else range(min(limit, self.count))
            return Results([self._hit(c, SUBSTRING) for c in ids], self.count)
        reads = sum(1 if field else len(FIELDS) for field, _ in pending)  # fields read per row
        if pending and (limit is None or combined.count() * reads <= CONFIRM_DIRECTLY):
            ranks = combined.ranks()
            for field, query in pending:
                ranks = self._confirm(ranks, field, query)
            combined, pending = Ranked.of(ranks, self.count), []
        if pending:
            page, total, exact = self._confirmed_page(combined, pending, limit)
            return Results([self._hit(cid, rank) for cid, rank in page], total, exact)
        hits = [self._hit(cid, rank) for cid, rank in combined.ordered(limit)]
        return Results(hits, combined.count())

    def _confirmed_page(self, combined: Ranked, pending: list[tuple[str | None, str]],
                        limit: int) -> tuple[list[tuple[int, int]], int, bool]:
        """(the first `limit` (id, rank) in rank order, the count, whether it is exact) when the
        bitmaps of `combined` only narrowed the `pending` conditions: rows are confirmed in the
        order they would be shown until the page is full, so a phrase in 833k rows reads a few
        dozen. A row whose true rank is worse than its bitmaps said waits for that rank's turn."""
        page: list[tuple[int, int]] = []
        demoted: dict[int, list[tuple[int, int]]] = {PREFIX: [], SUBSTRING: []}
        checked = matched = 0
        for level, bits in combined.levels():
            fresh = ((cid, -1) for cid in iter_ids(bits))
            for cid, known in heapq.merge(fresh, demoted.get(level, [])):
                if known < 0:
                    checked += 1
                    ranks = {cid: level}
                    for field, query in pending:
                        ranks = self._confirm(ranks, field, query)
                    if not ranks:
                        continue
                    matched += 1
                    if ranks[cid] > level:
                        demoted[ranks[cid]].append((cid, ranks[cid]))
                        continue
                page.append((cid, level))
                if len(page) == limit:
                    estimate = round(combined.count() * matched / checked)
                    return page, max(estimate, len(page)), False
        return page, len(page), True  # every candidate was read

    def _hit(self, cid: int, rank: int) -> Hit:
        return Hit(self.data.raw["account_no"][cid], rank, self.data.record(cid))


def find(state_dir: Path, text: str = "", fields: dict[str, str | list[str]] | None = None,
         limit: int | None = 20) -> Results:
    """Customers of the master data in `state_dir` matching `text` and every `fields[name]`
    (docs/search.md). Raises BadInput for a malformed capacity or voltage."""
    return SearchIndex(load_index(state_dir)).search(text, fields, limit)
