"""Read customer master data exports (CSV in UTF-8/BOM/GBK/GB18030, or XLSX) into records.

All or nothing: every row is checked first and every bad row is reported (line, column, why);
the store is only touched when the whole file is good.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fieldsync.base.i18n import N_, _
from fieldsync.base.names import normalize_account
from fieldsync.errors import BadInput, BadName, ImportRejected
from fieldsync.masterdata.matching import meter_text, voltage_text
from fieldsync.masterdata.store import FIELD_LABELS, FIELDS, collector_paused

HEADER_SYNONYMS = {
    "account_no": ("account_no", "account", "户号", "用户编号", "用户号", "客户编号"),
    "name": ("name", "户名", "用户名称", "客户名称", "用户名"),
    "meter_no": ("meter_no", "meter", "表计局号", "电能表资产编号", "表号", "电能表资产号", "电表号",
                 "电能表编号"),
    "capacity_kva": ("capacity_kva", "capacity", "合同容量"),
    "address": ("address", "用电地址"),
    "line": ("line", "线路名称", "所属线路", "线路"),
    "voltage": ("voltage", "供电电压等级", "电压等级", "供电电压"),
}
IGNORE = "ignore"  # --map COLUMN=ignore: the column is read past, and the report says so
REQUIRED = ("account_no", "name")
HEADER_SEARCH_ROWS = 20  # title rows above the header: the header is looked for this far down
MAX_CELL_CHARS = 500
MAX_FILE_BYTES = 300 << 20
MAX_REPORTED = 10_000  # problems kept in memory; the count goes on past it
# XLSX is a zip: refuse archives that would inflate past these (a zip bomb).
XLSX_MAX_UNPACKED = 1 << 30
XLSX_MAX_RATIO = 200

_UNITS = re.compile(r"\s*(kva|千伏安|kw)\s*$", re.IGNORECASE)
_HEADER_UNITS = re.compile(r"(kva|千伏安|kv|千伏|kw)$")
_HEADER_PUNCTUATION = re.compile(r"[\s_\-./:*#]+")
_BRACKETS = re.compile(r"[(（\[【].*?[)）\]】]")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d*)?e[+-]?\d+$", re.IGNORECASE)
# Control characters that are not layout: a cell holding one is damaged, not merely untidy.
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_FORMULA_CELL = re.compile(r"(?:^|\0)[=@+-]")  # a row with a cell starting so is checked cell by cell

# What real exports carry inside cells, by kind (the summary counts the cells of each kind):
# spaces become one plain space, invisible characters go. None of it is data. The kinds are
# English keys (--json reports them as they are); the CLI shows them translated.
SPACE_KINDS = {
    N_("tabs"): "\t",
    N_("line breaks"): "\n\r\x0b\x0c\x85\u2028\u2029",
    N_("non-breaking spaces"): "\u00a0\u2007\u202f",
    N_("ideographic spaces"): "\u3000",
    N_("other Unicode spaces"): "\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a\u205f",
    N_("zero-width or invisible characters"): "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b"
                                              "\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064"
                                              "\u2066\u2067\u2068\u2069\ufeff",
}
REPEATED_SPACES, FULL_WIDTH_DIGITS = N_("repeated spaces"), N_("full-width digits")
_TO_SPACE = str.maketrans({ch: ("" if kind.startswith("zero") else " ")
                           for kind, chars in SPACE_KINDS.items() for ch in chars})
_SPACE_KIND_PATTERNS = [(kind, re.compile(f"[{re.escape(chars)}]")) for kind, chars in SPACE_KINDS.items()]
# Anything the careful path below handles: rows without it (nearly all) take the quick path.
_UNTIDY = re.compile("[\x00-\x1f\x7f-\x9f" + re.escape("".join(SPACE_KINDS.values()))
                     + "\uff10-\uff19]|  ")
_FULL_WIDTH_DIGIT = re.compile("[\uff10-\uff19]")
_DIGIT_FIELDS = ("account_no", "meter_no", "capacity_kva")  # full-width digits become ASCII here
_SCIENTIFIC_HINT = N_("{value!r} is a number in scientific notation: Excel shortened the digits, so it is not "
                      "the real number; format the column as text in Excel and export again")

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    why: str

    def __str__(self) -> str:
        # Shown to people (the CLI lists them under the error): in the chosen language.
        if self.column:
            return _("line {line}, column {column}: {why}").format(line=self.line, column=self.column, why=self.why)
        return _("line {line}: {why}").format(line=self.line, why=self.why)


@dataclass(frozen=True)
class Column:
    """One column of the file: its title and the field it fills (None: ignored)."""
    index: int
    title: str
    field: str | None
    by_map: bool  # named by --map rather than recognised from its title


@dataclass
class Parsed:
    """An import file read and checked: what the import would write, and how it was read."""
    path: Path
    encoding: str
    header_line: int
    skipped: list[tuple[int, str]]  # (line, text) of title rows above the header
    columns: list[Column]
    records: list[dict] = field(default_factory=list)
    cleaned: dict[str, int] = field(default_factory=dict)  # kind -> cells tidied

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields this file fills (in FIELDS order); the others it says nothing about."""
        filled = {c.field for c in self.columns}
        return tuple(key for key in FIELDS if key in filled)


def _canonical_title(title: object) -> str:
    """A column title with width, case, brackets, units, spaces and punctuation taken out:
    '合同容量（kVA）', '合同容量 kVA', '合同 容量' and 'Contract容量' are compared this way."""
    text = unicodedata.normalize("NFKC", str(title or "").translate(_TO_SPACE))
    text = _BRACKETS.sub("", text).casefold()
    text = _HEADER_PUNCTUATION.sub("", text)
    return _HEADER_UNITS.sub("", text) or text


_SYNONYM_FIELDS = {_canonical_title(name): key for key, names in HEADER_SYNONYMS.items() for name in names}
_SYNONYM_FIELDS.update({_canonical_title(label): key for key, label in FIELD_LABELS.items()})


def header_key(title: object) -> str | None:
    """Map a column title (Chinese or English, any width/case, units in brackets) to a field."""
    return _SYNONYM_FIELDS.get(_canonical_title(title))


def column_map(pairs: Iterable[str]) -> dict[str, str | None]:
    """`--map COLUMN=FIELD` options as {canonical column title: field or None (ignore)}.
    FIELD is a field name, its Chinese label or a synonym, or 'ignore'."""
    mapping: dict[str, str | None] = {}
    for pair in pairs:
        title, sep, target = pair.rpartition("=")
        if not sep or not title.strip() or not target.strip():
            raise BadInput(_("--map {pair!r}: write it as COLUMN=FIELD, e.g. --map "
                             "电能表条码=meter_no").format(pair=pair))
        key = None if target.strip().casefold() == IGNORE else header_key(target)
        if key is None and target.strip().casefold() != IGNORE:
            fields = ", ".join(f"{k} ({FIELD_LABELS[k]})" for k in FIELDS)
            raise BadInput(_("--map {pair!r}: {target!r} is not a field; use one of {fields}, or {IGNORE}").format(
                             pair=pair, target=target, fields=fields, IGNORE=IGNORE))
        mapping[_canonical_title(title)] = key
    return mapping


def _field_of(title: object, mapping: dict[str, str | None]) -> tuple[str | None, bool]:
    canonical = _canonical_title(title)
    if canonical in mapping:
        return mapping[canonical], True
    return _SYNONYM_FIELDS.get(canonical), False


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030 (a superset of GBK), decided from the bytes.

    Streams the file in chunks so a 500 MB export does not need 500 MB of memory.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadInput(_("{path}: the file is UTF-16; save it as UTF-8 or GBK CSV and import again").format(path=path))
    else:
        candidates = ["utf-8", "gb18030"]
    failure = None
    for encoding in candidates:
        failure = _first_decode_error(path, encoding)
        if failure is None:
            return encoding
    line, offset, raw = failure
    raise BadInput(
        _("{path}: line {line}: bytes {raw!r} at offset {offset} are neither UTF-8 nor GBK/GB18030; re-export the "
          "file (or open it in a spreadsheet and save as CSV UTF-8) and import again").format(
          path=path, line=line, raw=raw, offset=offset))


def _first_decode_error(path: Path, encoding: str) -> tuple[int, int, bytes] | None:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    line = 1
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                # Incremental decoders report positions inside the chunk (plus carried bytes).
                start = max(0, exc.start - (len(exc.object) - len(chunk)))
                return line + chunk[:start].count(b"\n"), offset + start, chunk[start:start + 4]
            line += chunk.count(b"\n")
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, offset, b""
    return None


def _rows(path: Path, progress: ProgressFn | None) -> tuple[str, Iterator[tuple[int, list]]]:
    """(encoding, iterator of every non-blank row as (line number, cells))."""
    if not path.is_file():
        raise BadInput(_("{path}: no such file").format(path=path))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        # Every record is held until the whole file is checked (all or nothing), so the
        # file size bounds the memory an import may take.
        raise BadInput(_("{path}: {size_mb} MB is more than the {limit_mb} MB an import takes; a million customers "
                         "need about 150 MB as CSV: export only the seven columns, or split the file by region and "
                         "import each part").format(
                             path=path, size_mb=size // (1 << 20), limit_mb=MAX_FILE_BYTES >> 20))
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return "XLSX", _xlsx_rows(path, progress)
    if path.suffix.lower() == ".xls":
        raise BadInput(_("{path}: old .xls files are not read; save it as .xlsx or CSV").format(path=path))
    encoding = detect_encoding(path)
    return encoding, _csv_rows(path, encoding, progress)


def _csv_rows(path: Path, encoding: str, progress: ProgressFn | None) -> Iterator[tuple[int, list]]:
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(_CountingReader(raw, progress), encoding=encoding, newline="")
        # Finish the sample's last line: csv.reader must never see one record split in two.
        sample = text.read(64 * 1024)
        sample += text.readline()
        reader = csv.reader(_chain(sample, text), CSV_DIALECT, delimiter=detect_delimiter(sample))
        try:
            for cells in reader:
                if "".join(cells).strip():  # not a blank row
                    yield reader.line_num, cells
        except csv.Error as exc:
            raise BadInput(_("{path}: line {line_num}: broken CSV ({exc}); export it again as CSV").format(
                             path=path, line_num=reader.line_num, exc=exc)) from None


# csv.excel is RFC 4180 as Excel and WPS write it: a quote inside a quoted field is doubled
# (`""`), a quoted field may hold the delimiter and line breaks. Only the delimiter varies.
CSV_DIALECT = csv.excel
DELIMITERS = (",", "\t", ";")  # comma first: it wins a tie


def detect_delimiter(sample: str) -> str:
    """The delimiter that splits a record among the first few (the header, below any title
    rows) into the most known column titles.

    Decided from what the header means, not from character counts: csv.Sniffer guesses the
    quoting from whatever it sees and, on a header without quotes, turns doubled quotes off,
    so `"ACME ""Best"" Co"` came out as `ACME "Best"" Co"`. A header of unknown titles falls
    back to the delimiter giving the most columns.
    """
    def score(delimiter: str) -> tuple[int, int]:
        try:
            records = list(itertools.islice(csv.reader(io.StringIO(sample), CSV_DIALECT, delimiter=delimiter),
                                            HEADER_SEARCH_ROWS))
        except csv.Error:
            return (-1, 0)
        known = max((sum(header_key(title) is not None for title in r) for r in records), default=0)
        return known, max(map(len, records), default=0)

    return max(DELIMITERS, key=score)  # max keeps the first of equal scores


def _chain(first: str, rest: io.TextIOBase) -> Iterator[str]:
    # csv.reader wants lines; feed the sniffed sample back in front of the remaining stream.
    # newline="": lines end at \r, \n or \r\n, as in the stream (old Mac exports end at \r).
    buffer = io.StringIO(first, newline="")
    yield from buffer
    yield from rest


class _CountingReader(io.RawIOBase):
    """Passes reads through and reports bytes read, for a progress bar over file size."""

    def __init__(self, raw, progress: ProgressFn | None):
        self.raw, self.progress = raw, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n and self.progress:
            self.progress(n)
        return n


def _xlsx_rows(path: Path, progress: ProgressFn | None) -> Iterator[tuple[int, list]]:
    _refuse_zip_bomb(path)
    import openpyxl  # imported here: it is slow to load and CSV imports do not need it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise BadInput(_("{path}: not a readable XLSX workbook ({exc}); save it again from Excel").format(
                         path=path, exc=exc)) from None
    sheet = book.worksheets[0]
    size = path.stat().st_size
    total = max(1, sheet.max_row or 1)

    def rows() -> Iterator[tuple[int, list]]:
        try:
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                if progress:
                    progress(size // total)
                cells = [_cell_text(v) for v in values]
                if any(c.strip() for c in cells):
                    yield number, cells
        finally:
            book.close()

    return rows()


def _refuse_zip_bomb(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise BadInput(_("{path}: not a valid XLSX file (not a zip archive); save it again from Excel").format(
                         path=path)) from None
    unpacked = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    if unpacked > XLSX_MAX_UNPACKED or unpacked / packed > XLSX_MAX_RATIO:
        raise BadInput(
            _("{path}: the workbook would unpack to {unpacked_mb} MB ({ratio:.0f}x its size): refused as a possible "
              "zip bomb; export it as CSV").format(
                path=path, unpacked_mb=unpacked // (1 << 20), ratio=unpacked / packed))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 3300001234 as 3300001234.0
    return str(value)


class _Progress:
    """A progress callback that can be given after the file is opened (the header is read
    before the progress bar starts, so the column mapping can be shown first)."""

    def __init__(self) -> None:
        self.callback: ProgressFn | None = None
        self.early = 0  # read before a callback was given: reported when it is

    def start(self, callback: ProgressFn | None) -> None:
        self.callback = callback
        if callback and self.early:
            callback(self.early)
        self.early = 0

    def __call__(self, amount: int) -> None:
        if self.callback:
            self.callback(amount)
        else:
            self.early += amount


class Reading:
    """An export opened and its header found, its rows not read yet: `parsed` already says
    what each column fills (the mapping report, shown before anything is read or written)."""

    def __init__(self, path: Path, mapping: dict[str, str | None] | None = None):
        path = Path(path)
        self._progress = _Progress()
        encoding, self._rows = _rows(path, self._progress)
        try:
            line, columns, skipped = _find_header(path, self._rows, mapping or {})
        except BaseException:
            self._rows.close()
            raise
        self.parsed = Parsed(path, encoding, line, skipped, columns)

    def read(self, progress: ProgressFn | None = None) -> Parsed:
        """Every record, or ImportRejected listing every bad row."""
        self._progress.start(progress)
        with collector_paused():
            try:
                self._read()
            finally:
                self._rows.close()
        return self.parsed

    def _read(self) -> None:
        parsed = self.parsed
        columns = {c.field: c.index for c in parsed.columns if c.field}
        order = [columns.get(key) for key in FIELDS]
        records, problems = parsed.records, []
        first_line: dict[str, int] = {}
        shared: dict = {}
        count = 0
        for line, cells in self._rows:
            record, row_problems = _record(line, cells, order, parsed.cleaned)
            if record is not None:
                seen = first_line.get(record["account_no"])
                if seen is not None:
                    row_problems.append(Problem(line, FIELD_LABELS["account_no"], _(
                        "duplicate account no. {account} (first on line {first})").format(
                            account=record["account_no"], first=seen)))
                else:
                    first_line[record["account_no"]] = line
            for problem in row_problems:
                count += 1
                if len(problems) < MAX_REPORTED:
                    problems.append(problem)
            if not problems and record is not None:
                for key in _FEW_VALUES:  # one object per distinct value, not one per row
                    record[key] = shared.setdefault(record.get(key), record.get(key))
                records.append(record)
        path = parsed.path
        if problems:
            more = _(" ({count} more not listed)").format(count=count - len(problems)) \
                if count > len(problems) else ""
            raise ImportRejected(_("{path}: {count} problem(s) found{more}; nothing was imported").format(
                path=path, count=count, more=more), problems)
        if not records:
            raise ImportRejected(_("{path}: no customer rows under the header; nothing was imported").format(
                path=path), [])


def parse(path: Path, progress: ProgressFn | None = None) -> list[dict]:
    """Every record in the file, or ImportRejected listing every bad row."""
    return Reading(path).read(progress).records


def _find_header(path: Path, rows: Iterator[tuple[int, list]],
                 mapping: dict[str, str | None]) -> tuple[int, list[Column], list[tuple[int, str]]]:
    """(line, columns, title rows skipped): the header is the first row naming the required
    columns, so title rows above it ("2026年11月客户档案") are read past and reported."""
    skipped: list[tuple[int, str]] = []
    first: tuple[int, list[Column]] | None = None
    for line, cells in itertools.islice(rows, HEADER_SEARCH_ROWS):
        columns = [Column(index, str(title).strip(), *_field_of(title, mapping)) for index, title in enumerate(cells)]
        first = first or (line, columns)
        if all(any(c.field == key for c in columns) for key in REQUIRED):
            _check_columns(path, line, columns, mapping)
            return line, columns, skipped
        skipped.append((line, " ".join(c for c in map(str.strip, cells) if c)[:60]))
    if first is None:
        raise BadInput(_("{path}: the file is empty; export the customer list with its header row").format(path=path))
    line, columns = first
    problems = []
    for key in REQUIRED:
        if not any(c.field == key for c in columns):
            names = "/".join(HEADER_SYNONYMS[key][:1] + HEADER_SYNONYMS[key][2:])
            problems.append(Problem(line, "", _("required column {label} ({names}) is missing").format(
                label=FIELD_LABELS[key], names=names)))
    raise ImportRejected(_(
        "{path}: no header row found (none of the first {rows} rows names the columns "
        "{columns}); rename the columns in the file, or "
        "name them with --map COLUMN=FIELD; nothing was imported").format(
            path=path, rows=HEADER_SEARCH_ROWS, columns=_(" and ").join(FIELD_LABELS[k] for k in REQUIRED)), problems)


def _check_columns(path: Path, line: int, columns: list[Column], mapping: dict[str, str | None]) -> None:
    titles = {_canonical_title(c.title) for c in columns}
    unknown = [title for title in mapping if title not in titles]
    if unknown:
        raise BadInput(_("{path}: --map names {unknown}, but the header (line {line}) has no such column; its columns "
                         "are: {columns}").format(
                         path=path, unknown=', '.join(map(repr, unknown)), line=line,
                         columns=', '.join(c.title for c in columns)))
    problems = []
    taken: dict[str, Column] = {}
    for column in columns:
        if column.field is None:
            continue
        if column.field in taken:
            problems.append(Problem(line, column.title, _(
                "a second column for {label} ({field}) beside {other!r}; keep one with --map '{title}={ignore}'"
            ).format(label=FIELD_LABELS[column.field], field=column.field, other=taken[column.field].title,
                     title=column.title, ignore=IGNORE)))
        taken[column.field] = column
    if problems:
        raise ImportRejected(_("{path}: the header row is not usable; nothing was imported").format(path=path),
                             problems)


def tidy(text: str) -> tuple[str, list[str]]:
    """(text with tabs, line breaks and odd spaces as one plain space and invisible
    characters removed, trimmed; the kinds of character that were found)."""
    kinds = [kind for kind, pattern in _SPACE_KIND_PATTERNS if pattern.search(text)]
    if "  " in text.strip(" "):
        kinds.append(REPEATED_SPACES)
    value = text.translate(_TO_SPACE) if kinds else text
    if "  " in value:
        value = re.sub(" {2,}", " ", value)
    return value.strip(), kinds


# Fields with a few hundred distinct values (lines, levels, standard sizes) in a million rows:
# a million records hold one copy of each, some 150 MB less at the import's peak.
_FEW_VALUES = ("capacity_kva", "line", "voltage")


def _record(line: int, cells: list[str], order: list[int | None],
            cleaned: dict[str, int]) -> tuple[dict | None, list[Problem]]:
    """(record, []) or (None, the row's problems); `order` is the column of each of FIELDS.
    `cleaned` counts the cells tidied, by kind."""
    raws = [cells[i] if i is not None and i < len(cells) else "" for i in order]
    joined = "".join(raws)
    # Nearly every row is already NFC and tidy: checked once for the whole row (a row of NFC
    # cells joins to NFC text; a cell that is not NFC stays so when joined), such a row skips
    # the cell-by-cell checks below (a million rows count).
    if unicodedata.is_normalized("NFC", joined) and not _UNTIDY.search(joined):
        record = _plain_record(raws)
        if record is not None:
            return record, []
    problems: list[Problem] = []
    record: dict = {}
    for key, raw in zip(FIELDS, raws):
        label = FIELD_LABELS[key]
        # is_normalized is a quick check; most exports are NFC already (a million rows count)
        value = (raw if unicodedata.is_normalized("NFC", raw) else unicodedata.normalize("NFC", raw))
        damaged = _NOT_TEXT.search(value)
        if damaged:
            problems.append(Problem(line, label, _(
                "contains the control character U+{code:04X}, which is not text: the file is damaged; "
                "export it again").format(code=ord(damaged.group()))))
            continue
        # Tabs, line breaks (Alt+Enter in Excel) and odd spaces are layout, not data: every
        # value is one line in folders and pages.
        value, kinds = tidy(value)
        if key in _DIGIT_FIELDS and _FULL_WIDTH_DIGIT.search(value):
            kinds.append(FULL_WIDTH_DIGITS)
        for kind in kinds:
            cleaned[kind] = cleaned.get(kind, 0) + 1
        why = _cell_problem(value)
        if why:
            problems.append(Problem(line, label, why))
            continue
        if key in REQUIRED and not value:
            problems.append(Problem(line, label, _("required field is empty")))
            continue
        try:
            record[key] = _field_value(key, value)
        except (BadName, ValueError) as exc:
            problems.append(Problem(line, label, str(exc)))
    return (None if problems else record), problems


def _field_value(key: str, value: str) -> object:
    """The stored form of a tidy cell; BadName or ValueError says why it cannot be."""
    if key in ("account_no", "meter_no") and _SCIENTIFIC.match(unicodedata.normalize("NFKC", value)):
        raise ValueError(_(_SCIENTIFIC_HINT).format(value=value))
    if key == "account_no":
        return normalize_account(value)
    if key == "meter_no":
        return meter_text(value)
    if key == "capacity_kva":
        return parse_capacity(value)
    if key == "voltage":
        return voltage_text(value)
    return value


def _plain_record(raws: list[str]) -> dict | None:
    """The record of a tidy row with no problem, or None to check it cell by cell."""
    values = list(map(str.strip, raws))
    # no control characters here, so "\0" cannot be in a cell
    if max(map(len, values)) > MAX_CELL_CHARS or _FORMULA_CELL.search("\0".join(values)):
        return None
    record = dict(zip(FIELDS, values))
    if not all(record[key] for key in REQUIRED):
        return None
    capacity, meter = record["capacity_kva"], record["meter_no"]
    if not meter.isascii() or "e" in meter or "E" in meter:
        return None  # full-width or scientific notation: the careful path says which
    try:
        record["account_no"] = normalize_account(record["account_no"])
        record["capacity_kva"] = int(capacity) if capacity.isascii() and capacity.isdigit() \
            else parse_capacity(capacity)
    except (BadName, ValueError):
        return None
    record["voltage"] = voltage_text(record["voltage"])
    return record


def _cell_problem(value: str) -> str | None:
    if len(value) > MAX_CELL_CHARS:
        return _("longer than {limit} characters").format(limit=MAX_CELL_CHARS)
    if value[:1] in ("=", "@") or (value[:1] in ("+", "-") and not _NUMBER.match(value)):
        return _("looks like a spreadsheet formula ({start!r}); export values, not formulas").format(start=value[:30])
    return None


def parse_capacity(text: str) -> float | int | None:
    """'315', '３１５', '315kVA', '1,250 千伏安' -> a number; '' -> None; other text -> ValueError."""
    value = _UNITS.sub("", unicodedata.normalize("NFKC", text)).replace(",", "").strip()
    if not value:
        return None
    if not _NUMBER.match(value) or value.startswith("-"):
        raise ValueError(_("capacity {text!r} is not a non-negative number (kVA)").format(text=text))
    number = float(value)
    return int(number) if number.is_integer() else number
