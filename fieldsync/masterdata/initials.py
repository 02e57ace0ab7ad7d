"""Pinyin initials of one field of every customer at once: the text and byte forms of a column
that let a regex or byte maps scan a million customers at C speed (search.py asks; the answers
are ranks and bitmaps).

Both forms are made on first use: most queries are Chinese or digits and need neither.
"""

from __future__ import annotations

import bisect
import functools
import re
from array import array

from fieldsync.masterdata.bitmaps import marked_rows
from fieldsync.masterdata.matching import EXACT, PREFIX, SUBSTRING, char_readings


class FieldInitials:
    """The initials of one column (`text`: every customer's normalised value, joined by newlines;
    `offsets`: where each customer's value starts)."""

    def __init__(self, text: str, offsets: array, count: int):
        self.text, self.offsets, self.count = text, offsets, count

    @functools.cached_property
    def _stand_ins(self) -> tuple[str, dict[str, str]]:
        """The column with every character replaced by one stand-in for its set of initials (a
        letter, or a private-use character for a polyphonic set), and letter -> the stand-ins
        that can read as it: str.translate makes it at C speed, and a regex then scans every
        customer at once."""
        table: dict[int, str] = {}
        codes: dict[tuple[str, ...], str] = {}
        for char in set(self.text) - {"\n"}:
            initials, full = char_readings(char)
            if full == (char,):
                continue  # reads as itself
            if len(initials) == 1:
                table[ord(char)] = initials[0]
            else:
                table[ord(char)] = codes.setdefault(initials, chr(0xE000 + len(codes)))
        letters: dict[str, str] = {}
        for initials, code in codes.items():
            for letter in initials:
                letters[letter] = letters.get(letter, "") + code
        return self.text.translate(table), letters

    def match(self, query: str) -> dict[int, int]:
        """{customer id: rank} of an initials `query`, by one regex over the whole column."""
        text, letters = self._stand_ins
        pattern = re.compile("".join(f"[{re.escape(letter + letters.get(letter, ''))}]" for letter in query))
        offsets = self.offsets
        ranks: dict[int, int] = {}
        match = pattern.search(text)
        while match:
            row = bisect.bisect_right(offsets, match.start()) - 1
            start, end = offsets[row], offsets[row + 1] - 1
            at_start = match.start() == start  # search finds the leftmost match in the row
            ranks[row] = (EXACT if at_start and len(query) == end - start else
                          PREFIX if at_start else SUBSTRING)
            match = pattern.search(text, offsets[row + 1])
        return ranks

    @functools.cached_property
    def _bytes(self) -> tuple[bytes, dict[tuple[str, ...], int], int, int] | None:
        """The column's initials as bytes, one per character: its letter, 0x80 + k for the k-th
        set of initials of polyphonic characters, b"\\n" between customers, 0 for the rest.
        With (b"\\n" at the newlines, 1 at the first character of every customer) as byte maps.
        None when there are too many polyphonic sets for one byte."""
        table: dict[int, str] = {ord("\n"): "\n"}
        codes: dict[tuple[str, ...], int] = {}
        for char in set(self.text) - {"\n"}:
            usable = tuple(sorted({i for i in char_readings(char)[0] if len(i) == 1 and "a" <= i <= "z"}))
            if len(usable) > 1:
                table[ord(char)] = chr(0x80 + codes.setdefault(usable, len(codes)))
            else:
                table[ord(char)] = usable[0] if usable else "\0"
        if len(codes) > 127:
            return None
        data = self.text.translate(table).encode("latin-1")
        newlines = data.translate(bytes(10 if b == 10 else 0 for b in range(256)))
        starts = data.translate(bytes(int(b == 10) for b in range(256)))
        return data, codes, int.from_bytes(newlines, "little"), (int.from_bytes(starts, "little") << 8) | 1

    @property
    def scannable(self) -> bool:
        """True when scan() can run (few enough polyphonic sets of initials for one byte)."""
        return self._bytes is not None

    def scan(self, query: str) -> tuple[int, int]:
        """(bitmap of customers starting with `query`, bitmap of customers containing it), all
        customers at once at C speed: one byte map per query letter (1 where a character can
        read it), shifted one character per letter and ANDed, leaves 1 where the query starts;
        the newlines then tell whose rows those are. Only when `scannable`."""
        data, codes, newlines, row_starts = self._bytes
        found = -1
        for offset, letter in enumerate(query):
            table = bytearray(256)
            table[ord(letter)] = 1
            for initials, code in codes.items():
                if letter in initials:
                    table[0x80 + code] = 1
            found &= int.from_bytes(data.translate(table), "little") >> (8 * offset)
            if not found:
                return 0, 0
        return self._rows(data, found & row_starts, newlines), self._rows(data, found, newlines)

    def _rows(self, data: bytes, positions: int, newlines: int) -> int:
        if not self.count:
            return 0
        return marked_rows(len(data), positions, newlines)
