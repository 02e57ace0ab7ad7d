"""Read customer master data exports (CSV in UTF-8/BOM/GBK/GB18030, or XLSX) into records.

All or nothing: every row is checked first and every bad row is reported (line, column, why);
the store is only touched when the whole file is good.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fieldsync.base.names import normalize_account
from fieldsync.errors import BadInput, BadName, ImportRejected
from fieldsync.masterdata.store import FIELD_LABELS, FIELDS, collector_paused

HEADER_SYNONYMS = {
    "account_no": ("account_no", "account", "户号", "用户编号", "用户号"),
    "name": ("name", "户名", "用户名称", "客户名称"),
    "meter_no": ("meter_no", "meter", "表计局号", "电能表资产编号", "表号"),
    "capacity_kva": ("capacity_kva", "capacity", "合同容量"),
    "address": ("address", "用电地址"),
    "line": ("line", "线路名称", "所属线路"),
    "voltage": ("voltage", "供电电压等级", "电压等级", "供电电压"),
}
REQUIRED = ("account_no", "name")
MAX_CELL_CHARS = 500
MAX_FILE_BYTES = 300 << 20
MAX_REPORTED = 10_000  # problems kept in memory; the count goes on past it
# XLSX is a zip: refuse archives that would inflate past these (a zip bomb).
XLSX_MAX_UNPACKED = 1 << 30
XLSX_MAX_RATIO = 200

_UNITS = re.compile(r"\s*(kva|千伏安|kw)\s*$", re.IGNORECASE)
_BRACKETS = re.compile(r"[(（\[【].*?[)）\]】]")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # exactly Unicode category Cc
_CELL_BREAKS = re.compile(r"\s*[\r\n\t]+\s*")
_FORMULA_CELL = re.compile(r"(?:^|\0)[=@+-]")  # a row with a cell starting so is checked cell by cell

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    why: str

    def __str__(self) -> str:
        col = f", column {self.column}" if self.column else ""
        return f"line {self.line}{col}: {self.why}"


def header_key(title: object) -> str | None:
    """Map a column title (Chinese or English, any width/case, units in brackets) to a field."""
    text = unicodedata.normalize("NFKC", str(title or "")).strip().lstrip("\ufeff")
    text = _BRACKETS.sub("", text).strip().lower().replace(" ", "_")
    for key, names in HEADER_SYNONYMS.items():
        if text in names:
            return key
    return None


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) or GB18030 (a superset of GBK), decided from the bytes.

    Streams the file in chunks so a 500 MB export does not need 500 MB of memory.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadInput(f"{path}: the file is UTF-16; save it as UTF-8 or GBK CSV and import again")
    else:
        candidates = ["utf-8", "gb18030"]
    failure = None
    for encoding in candidates:
        failure = _first_decode_error(path, encoding)
        if failure is None:
            return encoding
    line, offset, raw = failure
    raise BadInput(
        f"{path}: line {line}: bytes {raw!r} at offset {offset} are neither UTF-8 nor GBK/GB18030; "
        "re-export the file (or open it in a spreadsheet and save as CSV UTF-8) and import again")


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


def read_rows(path: Path, progress: ProgressFn | None = None) -> tuple[list[str], Iterator[tuple[int, list]]]:
    """(header cells, iterator of (line number, cells)) for a CSV or XLSX file."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        # Every record is held until the whole file is checked (all or nothing), so the
        # file size bounds the memory an import may take.
        raise BadInput(f"{path}: {size // (1 << 20)} MB is more than the {MAX_FILE_BYTES >> 20} MB an import "
                       "takes; a million customers need about 150 MB as CSV: export only the seven "
                       "columns, or split the file by region and import each part")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx_rows(path, progress)
    if path.suffix.lower() == ".xls":
        raise BadInput(f"{path}: old .xls files are not read; save it as .xlsx or CSV")
    return _csv_rows(path, progress)


def _csv_rows(path: Path, progress: ProgressFn | None):
    encoding = detect_encoding(path)
    raw = open(path, "rb")
    text = io.TextIOWrapper(_CountingReader(raw, progress), encoding=encoding, newline="")
    # Finish the sample's last line: csv.reader must never see one record split in two.
    sample = text.read(64 * 1024)
    sample += text.readline()
    reader = csv.reader(_chain(sample, text), CSV_DIALECT, delimiter=detect_delimiter(sample))
    try:
        header = next(reader)
    except StopIteration:
        raw.close()
        raise BadInput(f"{path}: the file is empty; export the customer list with its header row") from None
    except csv.Error as exc:
        raw.close()
        raise BadInput(f"{path}: line 1: broken CSV ({exc}); export it again as CSV") from None

    def rows() -> Iterator[tuple[int, list]]:
        try:
            for cells in reader:
                if "".join(cells).strip():  # not a blank row
                    yield reader.line_num, cells
        except csv.Error as exc:
            raise BadInput(f"{path}: line {reader.line_num}: broken CSV ({exc})") from None
        finally:
            raw.close()

    return header, rows()


# csv.excel is RFC 4180 as Excel and WPS write it: a quote inside a quoted field is doubled
# (`""`), a quoted field may hold the delimiter and line breaks. Only the delimiter varies.
CSV_DIALECT = csv.excel
DELIMITERS = (",", "\t", ";")  # comma first: it wins a tie


def detect_delimiter(sample: str) -> str:
    """The delimiter that splits the header record into the most known column titles.

    Decided from what the header means, not from character counts: csv.Sniffer guesses the
    quoting from whatever it sees and, on a header without quotes, turns doubled quotes off,
    so `"ACME ""Best"" Co"` came out as `ACME "Best"" Co"`. A header of unknown titles falls
    back to the delimiter giving the most columns.
    """
    def score(delimiter: str) -> tuple[int, int]:
        try:
            header = next(csv.reader(io.StringIO(sample), CSV_DIALECT, delimiter=delimiter), [])
        except csv.Error:
            return (-1, 0)
        return sum(header_key(title) is not None for title in header), len(header)

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


def _xlsx_rows(path: Path, progress: ProgressFn | None):
    _refuse_zip_bomb(path)
    import openpyxl  # imported here: it is slow to load and CSV imports do not need it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise BadInput(f"{path}: not a readable XLSX workbook ({exc}); save it again from Excel") from None
    sheet = book.worksheets[0]
    rows_iter = sheet.iter_rows(values_only=True)
    try:
        header = [_cell_text(c) for c in next(rows_iter)]
    except StopIteration:
        book.close()
        raise BadInput(f"{path}: the first sheet is empty; put the customer list with its header row there") from None
    size = path.stat().st_size
    total = max(1, sheet.max_row or 1)

    def rows() -> Iterator[tuple[int, list]]:
        try:
            for number, values in enumerate(rows_iter, start=2):
                if progress:
                    progress(size // total)
                cells = [_cell_text(v) for v in values]
                if any(c.strip() for c in cells):
                    yield number, cells
        finally:
            book.close()

    return header, rows()


def _refuse_zip_bomb(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise BadInput(f"{path}: not a valid XLSX file (not a zip archive); save it again from Excel") from None
    unpacked = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos) or 1
    if unpacked > XLSX_MAX_UNPACKED or unpacked / packed > XLSX_MAX_RATIO:
        raise BadInput(
            f"{path}: the workbook would unpack to {unpacked // (1 << 20)} MB "
            f"({unpacked / packed:.0f}x its size): refused as a possible zip bomb; export it as CSV")


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 3300001234 as 3300001234.0
    return str(value)


def parse(path: Path, progress: ProgressFn | None = None) -> list[dict]:
    """Every record in the file, or ImportRejected listing every bad row."""
    with collector_paused():
        return _parse(path, progress)


def _parse(path: Path, progress: ProgressFn | None) -> list[dict]:
    header, rows = read_rows(path, progress)
    columns, problems = _map_header(header)
    if problems:
        raise ImportRejected(f"{path}: the header row is not usable; nothing was imported", problems)
    order = [columns.get(key) for key in FIELDS]
    records: list[dict] = []
    first_line: dict[str, int] = {}
    count = 0
    for line, cells in rows:
        record, row_problems = _record(line, cells, columns, order)
        if record is not None:
            seen = first_line.get(record["account_no"])
            if seen is not None:
                row_problems.append(Problem(line, FIELD_LABELS["account_no"],
                                            f"duplicate account no. {record['account_no']} (first on line {seen})"))
            else:
                first_line[record["account_no"]] = line
        for problem in row_problems:
            count += 1
            if len(problems) < MAX_REPORTED:
                problems.append(problem)
        if not problems and record is not None:
            records.append(record)
    if problems:
        more = f" ({count - len(problems)} more not listed)" if count > len(problems) else ""
        raise ImportRejected(f"{path}: {count} problem(s) found{more}; nothing was imported", problems)
    if not records:
        raise ImportRejected(f"{path}: no customer rows under the header; nothing was imported", [])
    return records


def _map_header(header: list[str]) -> tuple[dict[str, int], list[Problem]]:
    columns: dict[str, int] = {}
    problems: list[Problem] = []
    for index, title in enumerate(header):
        key = header_key(title)
        if key is None:
            continue
        if key in columns:
            problems.append(Problem(1, str(title), f"a second column for {FIELD_LABELS[key]} ({key})"))
        columns[key] = index
    for key in REQUIRED:
        if key not in columns:
            names = "/".join(HEADER_SYNONYMS[key][:1] + HEADER_SYNONYMS[key][2:])
            problems.append(Problem(1, "", f"required column {FIELD_LABELS[key]} ({names}) is missing"))
    return columns, problems


def _record(line: int, cells: list[str], columns: dict[str, int],
            order: list[int | None]) -> tuple[dict | None, list[Problem]]:
    """(record, []) or (None, the row's problems); `order` is the column of each of FIELDS."""
    raws = [cells[i] if i is not None and i < len(cells) else "" for i in order]
    joined = "".join(raws)
    # Nearly every row is already NFC and free of control characters: checked once for the
    # whole row (a row of NFC cells joins to NFC text; a cell that is not NFC stays so when
    # joined), such a row skips the cell-by-cell checks below (a million rows count).
    if unicodedata.is_normalized("NFC", joined) and not _CONTROL.search(joined):
        record = _plain_record(raws)
        if record is not None:
            return record, []
    problems: list[Problem] = []
    record: dict = {}
    for key in FIELDS:
        label = FIELD_LABELS[key]
        index = columns.get(key)
        raw = cells[index] if index is not None and index < len(cells) else ""
        # is_normalized is a quick check; most exports are NFC already (a million rows count)
        value = (raw if unicodedata.is_normalized("NFC", raw) else unicodedata.normalize("NFC", raw))
        # A line break typed into a cell (Alt+Enter in Excel) reaches here inside a quoted
        # field: it is layout, not data, and every value is one line in folders and pages.
        value = _CELL_BREAKS.sub(" ", value).strip()
        why = _cell_problem(value)
        if why:
            problems.append(Problem(line, label, why))
            continue
        if key in REQUIRED and not value:
            problems.append(Problem(line, label, "required field is empty"))
            continue
        if key == "account_no":
            try:
                value = normalize_account(value)
            except BadName as exc:
                problems.append(Problem(line, label, str(exc)))
                continue
        elif key == "capacity_kva":
            try:
                value = parse_capacity(value)
            except ValueError as exc:
                problems.append(Problem(line, label, str(exc)))
                continue
        record[key] = value
    return (None if problems else record), problems


def _plain_record(raws: list[str]) -> dict | None:
    """The record of a row with no problem, or None to check it cell by cell."""
    values = list(map(str.strip, raws))
    # no control characters here, so "\0" cannot be in a cell
    if max(map(len, values)) > MAX_CELL_CHARS or _FORMULA_CELL.search("\0".join(values)):
        return None
    record = dict(zip(FIELDS, values))
    if not all(record[key] for key in REQUIRED):
        return None
    capacity = record["capacity_kva"]
    try:
        record["account_no"] = normalize_account(record["account_no"])
        record["capacity_kva"] = int(capacity) if capacity.isascii() and capacity.isdigit() \
            else parse_capacity(capacity)
    except (BadName, ValueError):
        return None
    return record


def _cell_problem(value: str) -> str | None:
    if len(value) > MAX_CELL_CHARS:
        return f"longer than {MAX_CELL_CHARS} characters"
    if _CONTROL.search(value):
        return "contains control characters"
    if value[:1] in ("=", "@") or (value[:1] in ("+", "-") and not _NUMBER.match(value)):
        return f"looks like a spreadsheet formula ({value[:30]!r}); export values, not formulas"
    return None


def parse_capacity(text: str) -> float | int | None:
    """'315', '３１５', '315kVA', '1,250 千伏安' -> a number; '' -> None; other text -> ValueError."""
    value = _UNITS.sub("", unicodedata.normalize("NFKC", text)).replace(",", "").strip()
    if not value:
        return None
    if not _NUMBER.match(value) or value.startswith("-"):
        raise ValueError(f"capacity {text!r} is not a non-negative number (kVA)")
    number = float(value)
    return int(number) if number.is_integer() else number
