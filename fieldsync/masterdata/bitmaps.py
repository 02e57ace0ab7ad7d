"""Match sets as bitmaps: Python ints, bit = customer id in account order, one per rank level.

AND/OR of conditions, counting and taking the first `limit` in rank order then run at C speed
however many customers match (a 2-character query can match a sixth of a million customers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from fieldsync.masterdata.matching import EXACT, PREFIX, SUBSTRING

_BITS = [tuple(i for i in range(8) if byte >> i & 1) for byte in range(256)]
_ONE_BIT = bytes(1 << i for i in range(8))
_NONZERO = re.compile(rb"[^\x00]")
_ROW_MARK = re.compile(rb"\x01+\n")


def bitmap(ids: Iterable[int], size: int) -> int:
    """Bitmap of customer ids (size = customer count)."""
    buffer = bytearray((size + 7) // 8)
    one = _ONE_BIT
    for cid in ids:
        buffer[cid >> 3] |= one[cid & 7]
    return int.from_bytes(buffer, "little")


def bitmap_ids(bits: int, limit: int | None = None) -> list[int]:
    """Set bits in ascending order (the first `limit` only): a C-speed scan for non-zero bytes."""
    data = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    out: list[int] = []
    table = _BITS
    for match in _NONZERO.finditer(data):
        position = match.start()
        base = position * 8
        out.extend(base + i for i in table[data[position]])
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def iter_ids(bits: int) -> Iterator[int]:
    """Set bits in ascending order, made as they are asked for: a walk that stops after a page
    of results never lists out the other hundreds of thousands."""
    data = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    table = _BITS
    for match in _NONZERO.finditer(data):
        base = match.start() * 8
        for i in table[data[match.start()]]:
            yield base + i


@dataclass(frozen=True)
class Ranked:
    """Customers matching a condition: bitmaps of rank <= EXACT, <= PREFIX, <= SUBSTRING.
    AND of conditions keeps the worst rank (bitwise &), OR across fields the best (|).
    `unsure`: the bitmaps may hold more customers, or better ranks, than the truth (a frequent
    phrase, narrowed by its character pairs only); each row shown must be confirmed."""
    exact: int = 0
    prefix: int = 0
    any: int = 0
    unsure: bool = False

    def __and__(self, other: Ranked) -> Ranked:
        return Ranked(self.exact & other.exact, self.prefix & other.prefix, self.any & other.any,
                      self.unsure or other.unsure)

    def __or__(self, other: Ranked) -> Ranked:
        return Ranked(self.exact | other.exact, self.prefix | other.prefix, self.any | other.any,
                      self.unsure or other.unsure)

    @classmethod
    def of(cls, ranks: dict[int, int], size: int) -> Ranked:
        levels = [[], [], []]
        for cid, rank in ranks.items():
            levels[rank].append(cid)
        exact = bitmap(levels[EXACT], size)
        prefix = exact | bitmap(levels[PREFIX], size)
        return cls(exact, prefix, prefix | bitmap(levels[SUBSTRING], size))

    def count(self) -> int:
        return self.any.bit_count()

    def levels(self) -> tuple[tuple[int, int], ...]:
        """(rank, bitmap of the customers of exactly that rank), best first."""
        return ((EXACT, self.exact), (PREFIX, self.prefix & ~self.exact),
                (SUBSTRING, self.any & ~self.prefix))

    def ordered(self, limit: int | None) -> list[tuple[int, int]]:
        """(id, rank) by rank, then id (= account no.), the first `limit` only."""
        out: list[tuple[int, int]] = []
        for rank, bits in self.levels():
            left = None if limit is None else limit - len(out)
            if left == 0:
                break
            out.extend((cid, rank) for cid in bitmap_ids(bits, left))
        return out

    def ranks(self) -> dict[int, int]:
        return dict(self.ordered(None))


def marked_rows(data_size: int, positions: int, newlines: int) -> int:
    """Customers with a 1 byte in `positions` (a byte map over a column of `data_size` bytes
    whose rows end at the b"\\n" bytes of `newlines`), as a bitmap."""
    marked = (positions | newlines).to_bytes(data_size, "little") + b"\n"
    marks = _ROW_MARK.sub(b"1", marked.translate(None, b"\0")).replace(b"\n", b"0")
    return int(marks[::-1], 2)
