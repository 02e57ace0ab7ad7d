"""Postings of the search index, made from whole columns at once with numpy (import time only).

A million customers have some 50 million grams; made one customer at a time in Python that took
two minutes. Here every gram of a column becomes one 64-bit number (gram << row bits | row),
one sort groups them, and each group is one posting. Queries never import this module.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator


def _lazy_module(name: str):
    """`name` imported on first use: index_build.py imports this module at its top, and search.py
    reaches index_build through index_file, yet a query must not pay numpy's ~0.12 s import,
    which only building the index (an import, a pull) needs."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


np = _lazy_module("numpy")

NEWLINE = 10
LETTERS = 26
CHUNK_ROWS = 50_000  # customers whose initials windows are made at once


def codes(text: str) -> np.ndarray:
    """The code points of `text`."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def offsets(points: np.ndarray) -> np.ndarray:
    """Start of every row of a newline-joined column, plus one past the end (as _Column has)."""
    ends = np.flatnonzero(points == NEWLINE)
    return np.concatenate(([0], ends + 1, [len(points) + 1])).astype(np.int64)


def groups(keys: np.ndarray, rows: np.ndarray, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """(key, its distinct rows ascending) for every key, from parallel arrays of keys and rows."""
    if not len(keys):
        return
    row_bits = max(1, int(count).bit_length())
    if int(keys.max()).bit_length() + row_bits > 63:
        raise ValueError("too many distinct grams for one sort key")
    # In place, one 64-bit array at a time: at a million customers a column has tens of
    # millions of grams, and every extra copy is hundreds of MB of the import's peak.
    packed = np.asarray(keys, dtype=np.int64) << row_bits
    packed |= rows
    del keys, rows  # a caller that passed its only references frees them here
    packed.sort()
    keep = np.empty(len(packed), dtype=bool)
    keep[0] = True
    np.not_equal(packed[1:], packed[:-1], out=keep[1:])
    packed = packed[keep]  # a row once per gram
    del keep
    ids = (packed & ((1 << row_bits) - 1)).astype(np.uint32)
    packed >>= row_bits  # now the gram of each id
    gram = packed
    bounds = np.concatenate(([0], np.flatnonzero(gram[1:] != gram[:-1]) + 1, [len(gram)]))
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        yield int(gram[start]), ids[start:end]


class Postings:
    """Collects postings as id lists, or as bitmaps only when a bitmap is the smaller of the two
    (more than 1/`dense` of all customers): frequent grams are ANDed as bitmaps anyway."""

    def __init__(self, count: int, dense: int):
        self.count, self.dense_ratio = count, dense
        self.ids: dict[str, bytes] = {}
        self.bitmaps: dict[str, bytes] = {}

    def add(self, key: str, rows: np.ndarray) -> None:
        if len(rows) * self.dense_ratio > self.count:
            flags = np.zeros(self.count, dtype=bool)
            flags[rows] = True
            self.bitmaps[key] = np.packbits(flags, bitorder="little").tobytes()
        else:
            self.ids[key] = np.asarray(rows, dtype="<u4").tobytes()


class ColumnGrams:
    """One normalised column (customers joined by newlines) and the grams of its rows."""

    def __init__(self, text: str, count: int):
        self.count = count
        points = codes(text)
        self.starts = offsets(points)
        self.lengths = np.diff(self.starts) - 1
        # characters numbered 0.. by a lookup table over code points (np.unique would sort);
        # 32-bit, and neither the code points nor the row of every position are kept (rows
        # are made per chunk): at a million addresses each such array is 100 MB of the peak
        present = np.bincount(points) if len(points) else np.zeros(1, dtype=np.int64)
        self.chars = np.flatnonzero(present)
        lookup = np.zeros(len(present), dtype=np.int32)
        lookup[self.chars] = np.arange(len(self.chars))
        self.char_ids = lookup[points]
        self.newline_id = int(lookup[NEWLINE]) if len(present) > NEWLINE and present[NEWLINE] else -1
        self._initial_tables: tuple[np.ndarray, ...] | None = None

    def gram_text(self, key: int, size: int) -> str:
        base = len(self.chars)
        out = []
        for _ in range(size):
            key, char = divmod(key, base)
            out.append(chr(int(self.chars[char])))
        return "".join(reversed(out))

    def _merged(self, keys_of: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        """groups() of the (keys, rows) that `keys_of(low, high)` makes for customers low..high,
        CHUNK_ROWS customers at a time, merged per key: the arrays of a whole column's grams at
        once were the import's peak (some 600 MB of a million addresses)."""
        found: dict[int, list[np.ndarray]] = {}
        for low in range(0, self.count, CHUNK_ROWS):
            for key, ids in groups(*keys_of(low, min(low + CHUNK_ROWS, self.count)), self.count):
                found.setdefault(key, []).append(ids)
        for key in sorted(found):  # chunks are in row order: each posting stays ascending
            parts = found.pop(key)
            yield key, parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _positions(self, low: int, high: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, their rows) of customers low..high (their newlines too, counted in the
        row before them), below `last`."""
        positions = np.arange(self.starts[low], min(self.starts[high], last), dtype=np.int64)
        rows = np.repeat(np.arange(low, high, dtype=np.int32), self.lengths[low:high] + 1)
        return positions, rows[:len(positions)]

    def _rows_of(self, positions: np.ndarray) -> np.ndarray:
        return (np.searchsorted(self.starts, positions, side="right") - 1).astype(np.int32)

    def pairs(self) -> Iterator[tuple[str, np.ndarray]]:
        """Every pair of neighbouring characters inside a row."""
        ids, base = self.char_ids, len(self.chars)

        def keys_of(low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
            at, rows = self._positions(low, high, len(ids) - 1)
            inside = (ids[at] != self.newline_id) & (ids[at + 1] != self.newline_id)
            at = at[inside]
            return ids[at].astype(np.int64) * base + ids[at + 1], rows[inside]

        for key, rows in self._merged(keys_of):
            yield self.gram_text(key, 2), rows

    def frequent_chars(self, share: int) -> Iterator[tuple[str, np.ndarray]]:
        """The rows holding each character that occurs more than count/`share` times."""
        occurrences = np.bincount(self.char_ids, minlength=len(self.chars))
        wanted = occurrences * share > self.count
        if self.newline_id >= 0:
            wanted[self.newline_id] = False
        if not wanted.any():
            return

        def keys_of(low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
            at, rows = self._positions(low, high, len(self.char_ids))
            frequent = wanted[self.char_ids[at]]
            return self.char_ids[at[frequent]], rows[frequent]

        for key, rows in self._merged(keys_of):
            yield self.gram_text(key, 1), rows

    def beginnings(self) -> Iterator[tuple[str, np.ndarray]]:
        """The first character and the first two characters of every row."""
        rows = np.flatnonzero(self.lengths >= 1)
        first = self.starts[:-1][rows]
        for key, found in groups(self.char_ids[first], rows, self.count):
            yield self.gram_text(key, 1), found
        rows = np.flatnonzero(self.lengths >= 2)
        first = self.starts[:-1][rows]
        keys = self.char_ids[first].astype(np.int64) * len(self.chars) + self.char_ids[first + 1]
        for key, found in groups(keys, rows, self.count):
            yield self.gram_text(key, 2), found

    def by_length(self) -> Iterator[tuple[str, np.ndarray]]:
        for key, rows in groups(self.lengths, np.arange(self.count), self.count):
            yield str(key), rows

    def _initials(self, letters_of: Callable[[str], tuple[str, ...]]) -> tuple[np.ndarray, ...]:
        """Per position: the first initial (0-25, -1 for none), how many initials, and per
        character all of them."""
        if self._initial_tables is None:
            table = [sorted({ord(i) - 97 for i in letters_of(chr(int(c)))}) for c in self.chars]
            counts = np.array([len(t) for t in table], dtype=np.int32)
            widest = max(1, int(counts.max()) if len(counts) else 1)
            letters = np.full((len(table), widest), -1, dtype=np.int32)
            for char, options in enumerate(table):
                letters[char, :len(options)] = options
            # 0 initials for newlines and characters an initials query cannot type
            self._initial_tables = (letters[self.char_ids, 0], counts[self.char_ids].astype(np.int8), letters)
        return self._initial_tables

    def _combinations(self, windows: np.ndarray, size: int, letters: np.ndarray,
                      options: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(initials key, row) for every combination of initials of every window (its first
        position). Windows are grouped by their characters first: a few thousand distinct
        character sequences ("有限公司" in most names) are expanded, then joined back."""
        base = len(self.chars)
        if not len(windows) or base ** size >= 1 << 62:
            return self._expanded(windows, size, letters, options)
        chars = np.zeros(len(windows), dtype=np.int64)
        for step in range(size):
            chars = chars * base + self.char_ids[windows + step]
        order = np.argsort(chars)
        chars, windows = chars[order], windows[order]
        firsts = np.concatenate(([0], np.flatnonzero(chars[1:] != chars[:-1]) + 1))
        distinct = windows[firsts]  # one window of each character sequence
        key, owner = self._expanded(distinct, size, letters, options, np.arange(len(distinct)))
        # combinations of each distinct sequence, back to every window that has it
        per_sequence = np.bincount(owner, minlength=len(distinct))
        starts = np.concatenate(([0], np.cumsum(per_sequence)[:-1]))
        group_sizes = np.diff(np.concatenate((firsts, [len(windows)])))
        window_sequence = np.repeat(np.arange(len(distinct)), group_sizes)
        counts = per_sequence[window_sequence]
        rows = np.repeat(self._rows_of(windows), counts)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        return key[np.repeat(starts[window_sequence], counts) + offsets], rows

    def _expanded(self, windows: np.ndarray, size: int, letters: np.ndarray, options: np.ndarray,
                  tags: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(initials key, row or tag) for every combination of every window: each window is
        repeated once per initial of its next character, step by step."""
        tags = self._rows_of(windows) if tags is None else tags
        key = np.zeros(len(windows), dtype=np.int32)
        for step in range(size):
            count = options[windows + step]
            firsts = np.cumsum(count) - count
            windows, key, tags = np.repeat(windows, count), np.repeat(key, count), np.repeat(tags, count)
            choice = np.arange(len(windows)) - np.repeat(firsts, count)
            key = key * LETTERS + letters[self.char_ids[windows + step], choice]
        return key, tags

    def initial_grams(self, letters_of: Callable[[str], tuple[str, ...]], size: int,
                      at_start: bool) -> Iterator[tuple[str, np.ndarray]]:
        """Pinyin initials of `size` neighbouring characters (the first `size` when `at_start`).
        A polyphonic character gives every reading's initial: each window yields every
        combination (their number is the product of the characters' counts of initials).
        Windows are taken CHUNK_ROWS customers at a time (_merged)."""
        tables = self._initials(letters_of)

        def keys_of(low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
            if at_start:
                rows = low + np.flatnonzero(self.lengths[low:high] >= size)
                return self._initial_keys(self.starts[:-1][rows], rows, size, tables)
            return self._initial_keys(*self._positions(low, high, len(self.char_ids) - size + 1), size, tables)

        for key, rows in self._merged(keys_of):
            spelled = []
            for _ in range(size):
                key, letter = divmod(key, LETTERS)
                spelled.append(chr(97 + letter))
            yield "".join(reversed(spelled)), rows

    def _initial_keys(self, positions: np.ndarray, rows: np.ndarray, size: int,
                      tables: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(initials key, row) of every combination of the windows starting at `positions`."""
        first, options, letters = tables
        steps = [(first[positions + k], options[positions + k]) for k in range(size)]
        key = np.zeros(len(positions), dtype=np.int32)  # 26**4 fits: half the memory traffic
        usable = np.ones(len(positions), dtype=bool)
        polyphonic = np.zeros(len(positions), dtype=np.int8)  # polyphonic characters per window
        for letter, count in steps:
            key = key * LETTERS + letter
            usable &= count > 0
            polyphonic += count > 1
        # every window with each character's first initial (all of them, at C speed) ...
        keys_parts, rows_parts = [key[usable]], [rows[usable]]
        # ... a window with one polyphonic character once more per other initial of it ...
        single = np.flatnonzero(usable & (polyphonic == 1))
        for step, (letter, count) in enumerate(steps):
            weight = LETTERS ** (size - 1 - step)
            here = single[count[single] > 1]
            chars = self.char_ids[positions[here] + step]
            for choice in range(1, letters.shape[1]):
                here, chars = here[count[here] > choice], chars[count[here] > choice]
                if not len(here):
                    break
                keys_parts.append(key[here] + (letters[chars, choice] - letter[here]) * weight)
                rows_parts.append(rows[here])
        # ... and those with several once per combination of their initials
        several = positions[usable & (polyphonic > 1)]
        key, rows = self._combinations(several, size, letters, options)
        keys_parts.append(key)
        rows_parts.append(rows)
        return np.concatenate(keys_parts), np.concatenate(rows_parts)


def value_groups(values: list[str], count: int) -> Iterator[tuple[str, np.ndarray]]:
    """Rows per distinct value."""
    numbers: dict[str, int] = {}
    keys = np.fromiter((numbers.setdefault(v, len(numbers)) for v in values), dtype=np.int64, count=count)
    names = list(numbers)
    for key, rows in groups(keys, np.arange(count), count):
        yield names[key], rows
