"""Customer search's matching rules, as pure functions: words, normalisation, voltage levels,
capacity bounds, pinyin.

docs/search.md in code: case, width and whitespace do not matter; every word must match; voltage
matches the level; capacity takes bounds; Chinese fields match pinyin initials (a contiguous run)
and full pinyin, any reading of a polyphonic character. templates/matching.js applies the same
rules on the tablet's and the server's pages; search.py's index only narrows the candidates these
rules decide on.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable

from fieldsync.base.i18n import N_, _
from fieldsync.errors import BadInput

PINYIN_FIELDS = ("name", "address", "line")  # the Chinese fields: they also match pinyin
PLAIN, INITIALS, FULL = "=", "i", "p"  # how a query is read: as typed, pinyin initials, full pinyin
EXACT, PREFIX, SUBSTRING = 0, 1, 2  # ranks, best first
LETTERS = re.compile(r"^[a-z]+$")  # a query that may be pinyin
WHOLE_VALUE_FIELDS = ("capacity_kva", "voltage")  # a value for these is one condition, not words
_SPACES = re.compile(r"\s+")
_INLINE_SPACES = re.compile(r"[^\S\n]+")  # whitespace inside a value (newlines part values)
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_KVA = r"(?:kva|千伏安)?"
_BOUND = re.compile(rf"^(>=|<=|==|=|>|<|≥|≤)?{_NUMBER}{_KVA}$")
_RANGE = re.compile(rf"^{_NUMBER}{_KVA}[-~]{_NUMBER}{_KVA}$")
_LEVEL = re.compile(rf"^(?:交流|ac)?{_NUMBER}(kv|v)$")
_BARE_NUMBER = re.compile(rf"^{_NUMBER}$")
# Spaces a person types inside one value: "10 kV", ">= 300", "300 - 400" are one word each.
_JOINS = (re.compile(r"(>=|<=|==|=|>|<|≥|≤)\s+(?=[0-9])"),
          re.compile(r"(?<=[0-9])\s+(?=(?:kva|kv|v|千伏安|千伏|伏)(?![a-z]))"),
          re.compile(r"(?<=[0-9a-z])\s*([-~])\s*(?=[0-9])"))
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "=": operator.eq, "==": operator.eq, "≥": operator.ge, "≤": operator.le}
CAPACITY_FORMS = N_("N, >=N, <=N, >N, <N or A-B (kVA), e.g. 315, '>=300', '300-400'")
VOLTAGE_FORMS = N_("a level such as 10kV, 10 KV, 10千伏, 0.4kV, 380V")


def normalize(text: object) -> str:
    """Case, width and compatibility forms do not matter: NFKC, then casefold."""
    if text is None:
        return ""
    return unicodedata.normalize("NFKC", str(text)).casefold()


def squeeze(text: object) -> str:
    """normalize, and whitespace does not matter either: '宁波  港口　物流' reads '宁波港口物流'."""
    return _SPACES.sub("", normalize(text))


def squeeze_column(text: str) -> str:
    """squeeze for many normalised values joined by newlines: the newlines stay."""
    return _INLINE_SPACES.sub("", text)


def voltage_level(text: object, bare_number: str = "") -> str | None:
    """The level a voltage names, as '10kv' ('10kV', '10 KV', '10千伏', '交流10kV' alike;
    '380V' is '0.38kv'), or None when it names none. `bare_number` is the unit of a plain
    number ('kv' in the --voltage option), or '' when a plain number is no level."""
    value = squeeze(text).replace("千伏", "kv").replace("伏", "v")
    if bare_number and _BARE_NUMBER.match(value):
        value += bare_number
    match = _LEVEL.match(value)
    if not match:
        return None
    kilovolts = float(match.group(1)) / (1000 if match.group(2) == "v" else 1)
    return f"{kilovolts:g}kv"


def normalize_voltage(text: object) -> str:
    """A voltage value as stored for matching: its level, or its squeezed text if it names none."""
    return voltage_level(text) or squeeze(text)


def capacity_text(value: object) -> str:
    """A capacity as shown and matched: 630.0 reads as 630."""
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def field_text(field: str, value: object) -> str:
    """The normalised text a field is matched on."""
    if field == "voltage":
        return normalize_voltage(value)
    if field == "capacity_kva":
        return squeeze(capacity_text(value))
    return squeeze(value)


def query_text(field: str, query: str) -> str:
    """The normalised text a query word on `field` is matched as (voltage: its level or '')."""
    return (voltage_level(query) or "") if field == "voltage" else squeeze(query)


def query_words(text: object) -> list[str]:
    """The words of a query, normalised; every one must match. '10 kV', '>= 300' and
    '300 - 400' stay one word."""
    value = normalize(text)
    for join in _JOINS:
        value = join.sub(lambda m: m.group(1) if m.groups() else "", value)
    return value.split()


def capacity_bounds(query: str) -> list[tuple[Callable[[float, float], bool], float]] | None:
    """The (comparison, limit) pairs a capacity word asks for ('315', '>=300', '300-400'),
    or None when the word is no capacity query."""
    value = squeeze(query)
    match = _BOUND.match(value)
    if match:
        return [(_OPS[match.group(1) or "="], float(match.group(2)))]
    match = _RANGE.match(value)
    if match:
        low, high = sorted((float(match.group(1)), float(match.group(2))))
        return [(operator.ge, low), (operator.le, high)]
    return None


def field_conditions(field: str, value: str) -> list[str]:
    """The conditions a field option's value makes: its words (each must match in the field);
    a capacity's bounds, a voltage's level. Raises BadInput for a malformed capacity or voltage."""
    if field == "voltage":
        level = voltage_level(value, bare_number="kv")
        if level is None:
            raise BadInput(_("voltage {value!r} is not a voltage level; use {VOLTAGE_FORMS}").format(
                             value=value, VOLTAGE_FORMS=_(VOLTAGE_FORMS)))
        return [level]
    words = query_words(value)
    if field == "capacity_kva":
        for word in words:
            if capacity_bounds(word) is None:
                raise BadInput(_("capacity {value!r} is not understood; use {CAPACITY_FORMS}").format(
                                 value=value, CAPACITY_FORMS=_(CAPACITY_FORMS)))
    return words


# Readings of the characters of the master data, saved with the index: a query then never
# imports pypinyin (over half a second of `fieldsync find` at start-up).
_KNOWN_READINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def learn_readings(readings: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
    """Take the readings saved with an index (char -> (initials, full)) as known."""
    _KNOWN_READINGS.update(readings)


def char_readings(char: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(initials, full readings) of one character; every reading of a polyphonic character.
    A character without pinyin (digit, Latin letter, punctuation) reads as itself."""
    known = _KNOWN_READINGS.get(char)
    return known if known is not None else _pinyin_readings(char)


@functools.cache
def _pinyin_readings(char: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # pypinyin loads lazily: its import and dictionaries take ~0.2 s (more on a tablet), and a
    # query reads the readings saved with the index instead (learn_readings).
    from pypinyin import Style, pinyin

    full = pinyin(char, style=Style.NORMAL, heteronym=True, errors="default")[0]
    full = tuple(dict.fromkeys(normalize(r) for r in full if r)) or (char,)
    if full == (char,):
        return (char,), (char,)
    return tuple(dict.fromkeys(r[0] for r in full)), full


def initial_letters(char: str) -> tuple[str, ...]:
    """The letters a-z an initials query may type for `char` (a Latin letter is itself)."""
    return tuple(i for i in char_readings(char)[0] if len(i) == 1 and "a" <= i <= "z")


def reading_sequence(text: str, kind: str) -> list[tuple[str, ...]]:
    """Per character, the alternatives it can be typed as in pinyin `kind` (INITIALS or FULL)."""
    position = 0 if kind == INITIALS else 1
    return [char_readings(ch)[position] for ch in text]


def plain_rank(text: str, query: str) -> int | None:
    """EXACT, PREFIX or SUBSTRING when `query` is in `text`, else None."""
    if query not in text:
        return None
    return EXACT if text == query else PREFIX if text.startswith(query) else SUBSTRING


def pinyin_rank(sequence: list[tuple[str, ...]], query: str) -> int | None:
    """Best rank of `query` inside any concatenation of one reading per character.

    A small automaton: `active` holds (letters of the query matched so far, started at the
    first character?) at each character boundary, so polyphony never multiplies the work.
    """
    best = None
    active: set[tuple[int, bool]] = set()
    last = len(sequence) - 1
    for index, readings in enumerate(sequence):
        following: set[tuple[int, bool]] = set()
        for reading in readings:
            starts = [(0, index == 0 and offset == 0, reading[offset:]) for offset in range(len(reading))]
            states = [(done, at_start, reading) for done, at_start in active] + starts
            for done, at_start, piece in states:
                rest = query[done:]
                if piece.startswith(rest):
                    whole = at_start and piece == rest and index == last
                    rank = EXACT if whole else PREFIX if at_start else SUBSTRING
                    best = rank if best is None else min(best, rank)
                elif rest.startswith(piece):
                    following.add((done + len(piece), at_start))
        active = following
        if best == EXACT:
            break
    return best


def variants(sequence: list[tuple[str, ...]], cap: int = 16) -> list[str] | None:
    """Every pinyin spelling of a text, or None when polyphony makes more than `cap`."""
    count = 1
    for readings in sequence:
        count *= len(readings)
        if count > cap:
            return None
    return ["".join(p) for p in itertools.product(*sequence)]


def initials_rank(sequence: list[tuple[str, ...]], query: str) -> int | None:
    """pinyin_rank for initials, where every character reads as exactly one letter."""
    size, last = len(query), len(sequence) - len(query)
    for start in range(last + 1):
        if all(query[j] in sequence[start + j] for j in range(size)):
            return EXACT if last == 0 else PREFIX if start == 0 else SUBSTRING
    return None


def pinyin_match(sequence: list[tuple[str, ...]], query: str, kind: str = FULL) -> int | None:
    """Best rank of a pinyin `query` (INITIALS or FULL) in a text's reading sequence."""
    if kind == INITIALS:
        return initials_rank(sequence, query)
    spellings = variants(sequence)
    if spellings is None:
        return pinyin_rank(sequence, query)
    best = None
    for spelling in spellings:
        rank = plain_rank(spelling, query)
        if rank is not None and (best is None or rank < best):
            best = rank
    return best


class PinyinVocabulary:
    """Pinyin of the distinct characters and character pairs of one field, keyed by where a
    query could start: turns a pinyin query into the plain grams (and so postings) it can hit."""

    def __init__(self, plain_grams: Iterable[str], kind: str):
        self.by_start: dict[str, list[tuple[str, int, str]]] = {}
        for gram in plain_grams:
            sequence = reading_sequence(gram, kind)
            first = sequence[0]
            spellings = variants(sequence, cap=64) or []
            for spelling in spellings:
                # offset inside the first character's reading where a match may begin
                for reading in first:
                    if not spelling.startswith(reading):
                        continue
                    for offset in range(len(reading)):
                        piece = spelling[offset:]
                        for size in (1, 2):
                            if len(piece) >= size:
                                self.by_start.setdefault(piece[:size], []).append((gram, offset, piece))

    def grams_for(self, query: str) -> tuple[set[str], set[str], set[str]]:
        """(grams that contain the whole query, grams where it may go on past them,
        grams where it starts at the first letter of the first character)."""
        whole: set[str] = set()
        partial: set[str] = set()
        at_start: set[str] = set()
        for gram, offset, piece in self.by_start.get(query[:2], ()):
            if piece.startswith(query):
                whole.add(gram)
                if offset == 0:
                    at_start.add(gram)
            elif len(gram) == 2 and query.startswith(piece):
                partial.add(gram)
        return whole, partial - whole, at_start

    def spelled(self, query: str) -> set[str]:
        """Grams one of whose spellings is exactly `query`."""
        return {gram for gram, offset, piece in self.by_start.get(query[:2], ()) if offset == 0 and piece == query}


# Stored forms, so that every page and table shows one spelling (the import writes these).
_VOLTAGE_LEVEL = re.compile(r"^(交流|直流|ac|dc)?\s*([0-9]+(?:\.[0-9]+)?)\s*(kv|千伏|v|伏)$", re.IGNORECASE)


def meter_text(text: object) -> str:
    """A meter number as stored and shown: full-width digits and letters as ASCII, trimmed
    (as account numbers are), so '５１００' and '5100' are one meter."""
    return unicodedata.normalize("NFKC", "" if text is None else str(text)).strip()


@functools.lru_cache(maxsize=256)  # an export has a handful of distinct voltage levels
def voltage_text(text: str) -> str:
    """A voltage level as stored and shown: '10kV', '10 KV', '10千伏' -> '10kV'; '0.4 kV' ->
    '0.4kV'; '交流10千伏' -> '交流10kV'. Text that is not a level is kept as it is."""
    match = _VOLTAGE_LEVEL.match(unicodedata.normalize("NFKC", text).strip())
    if not match:
        return text
    current, number, unit = match.groups()
    unit = "V" if unit.casefold() in ("v", "伏") else "kV"
    return f"{(current or '').upper()}{number}{unit}"
