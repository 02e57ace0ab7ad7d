"""Back-office reports over the server tree: visits per inspector, business, category and day.

`collect` walks the tree and reads each visit.yaml; `write_csv` (UTF-8 with BOM, so Excel reads
Chinese correctly) and `write_xlsx` (openpyxl) write the same tables. Every text cell is made
safe against spreadsheet formula injection: remarks are typed by people and a remark such as
`=HYPERLINK(...)` must stay text when the back office opens the file.

Days and times are those of the display zone (clock.use_zone: --timezone or ui.timezone), so
visits from tablets in different offsets are counted on one calendar, listed in the order they
happened.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fieldsync.base import clock
from fieldsync.base.atomic import atomic_open
from fieldsync.base.i18n import _
from fieldsync.config import Layout
from fieldsync.errors import BadInput, TreeError
from fieldsync.server import scan
from fieldsync.tree.layout import account_of_folder

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A text cell a spreadsheet will not run: a leading = + - @ tab or CR gets a ' in front."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass(frozen=True)
class VisitRow:
    day: str  # in the display zone
    created_at: str  # as stored: ISO 8601 with the tablet's offset
    inspector: str
    device: str
    account_no: str
    customer: str
    business: str
    category: str
    visit: str
    appearance_photos: int
    nameplate_photos: int
    appearance_note: str
    nameplate_note: str
    path: str

    @property
    def shown_time(self) -> str:
        """created_at as people read it: YYYY-MM-DD HH:MM in the display zone."""
        return clock.local_time(self.created_at)

    @property
    def photos(self) -> int:
        return self.appearance_photos + self.nameplate_photos

    @property
    def without_remarks(self) -> bool:
        return not self.appearance_note.strip() and not self.nameplate_note.strip()


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple]


@dataclass
class Report:
    start: dt.date
    end: dt.date
    visits: list[VisitRow]
    problems: list[str]

    def tables(self) -> list[Table]:
        visits = self.visits
        return [
            Table("按检查员", ("检查员", "检查次数", "照片数", "客户数"), _group(
                visits, lambda v: (v.inspector,), extra=lambda vs: (len({v.account_no for v in vs}),))),
            Table("按业务类型", ("业务类型", "检查次数", "照片数"), _group(visits, lambda v: (v.business,))),
            Table("按分类", ("业务类型", "分类", "检查次数", "照片数"),
                  _group(visits, lambda v: (v.business, v.category))),
            Table("按日期", ("日期", "检查次数", "照片数"), _group(visits, lambda v: (v.day,))),
            Table("检查明细", VISIT_HEADERS, [_visit_cells(v) for v in visits]),
            Table("缺照片或备注", ("日期", "检查员", "户号", "户名", "业务类型", "分类", "检查记录", "问题", "路径"),
                  [(v.day, v.inspector, v.account_no, v.customer, v.business, v.category, v.visit,
                    "、".join(_gaps(v)), v.path) for v in visits if _gaps(v)]),
        ]


VISIT_HEADERS = ("日期", "时间", "检查员", "设备", "户号", "户名", "业务类型", "分类", "检查记录",
                 "外观照片", "铭牌照片", "照片合计", "外观备注", "铭牌备注", "路径")


def _visit_cells(v: VisitRow) -> tuple:
    return (v.day, v.shown_time, v.inspector, v.device, v.account_no, v.customer, v.business,
            v.category, v.visit, v.appearance_photos, v.nameplate_photos, v.photos,
            v.appearance_note, v.nameplate_note, v.path)


def in_time_order(v: VisitRow) -> tuple[str, str]:
    """Sort key: the instant (UTC), not the text; "…T11:00+08:00" happened before "…T04:00+00:00"."""
    return clock.utc_key(v.created_at), v.path


def _gaps(v: VisitRow) -> list[str]:
    gaps = []
    if v.photos == 0:
        gaps.append("无照片")
    if v.without_remarks:
        gaps.append("无备注")
    return gaps


def _group(visits: list[VisitRow], key, extra=None) -> list[tuple]:
    groups: dict[tuple, list[VisitRow]] = defaultdict(list)
    for visit in visits:
        groups[key(visit)].append(visit)
    rows = []
    for group_key in sorted(groups):
        members = groups[group_key]
        row = group_key + (len(members), sum(v.photos for v in members))
        rows.append(row + (extra(members) if extra else ()))
    return rows


def collect(root: Path, start: dt.date, end: dt.date, layout: Layout | None = None) -> Report:
    """Every visit whose day (created_at in the display zone) is in [start, end]."""
    root = Path(root)
    layout = layout or Layout()
    if not root.is_dir():
        raise TreeError(_("{root} is not a folder; give the server tree's root").format(root=root))
    if end < start:
        raise BadInput(_("--to {end} is before --from {start}; give the earlier date first").format(
                         end=end, start=start))
    first, last = start.isoformat(), end.isoformat()
    rows: list[VisitRow] = []
    problems: list[str] = []
    kinds = layout.kind_folders
    for folder, customer in scan.scan_tree(root, layout).items():
        name = scan.customer_name(root / folder) or folder
        for rel in customer.visits:
            path = root / rel
            data, problem = scan.read_visit_file(path)
            if problem:
                problems.append(problem)
            created = scan.visit_time(data, path)
            day = clock.local_day(created)
            if not first <= day <= last:
                continue
            _customer, business, category, visit = rel.split("/")
            inspector, device = scan.visit_attribution(data, path)
            counts = Counter({kind: len(scan.photo_names(str(path / name))) for kind, name in kinds.items()})
            rows.append(VisitRow(
                day=day, created_at=created, inspector=inspector, device=device,
                account_no=scan.as_text(data.get("account_no")) or account_of_folder(folder, layout) or "",
                customer=scan.as_text(data.get("customer_name")) or name, business=business,
                category=category, visit=visit, appearance_photos=counts["appearance"],
                nameplate_photos=counts["nameplate"],
                appearance_note=scan.as_text(data.get("appearance_note")),
                nameplate_note=scan.as_text(data.get("nameplate_note")), path=rel))
    rows.sort(key=in_time_order)
    return Report(start, end, rows, problems)


def _safe_rows(table: Table) -> Iterable[list]:
    yield [safe_cell(h) for h in table.headers]
    for row in table.rows:
        yield [safe_cell(cell) for cell in row]


def csv_text(report: Report) -> str:
    """All tables in one CSV: each starts with its title row and ends with an empty row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"fieldsync 检查报表 {report.start} 至 {report.end}"])
    writer.writerow([])
    for table in report.tables():
        writer.writerow([table.title])
        writer.writerows(_safe_rows(table))
        writer.writerow([])
    return out.getvalue()


def write_csv(report: Report, path: Path) -> None:
    # utf-8-sig: the BOM is what makes Excel open a UTF-8 CSV with Chinese intact.
    with atomic_open(path, "w", encoding="utf-8-sig") as handle:
        handle.write(csv_text(report))


def write_xlsx(report: Report, path: Path) -> None:
    """One sheet per table, header row bold and frozen, columns sized to their content."""
    # openpyxl is only needed for --xlsx: importing it costs every other command time
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for table in report.tables():
        sheet = book.create_sheet(table.title[:31])
        for row in _safe_rows(table):
            sheet.append(row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        for index, header in enumerate(table.headers, start=1):
            width = max([len(str(header)) * 2] + [len(str(r[index - 1])) for r in table.rows[:500]])
            sheet.column_dimensions[get_column_letter(index)].width = min(60, max(8, width + 2))
    with atomic_open(path, "wb") as handle:
        book.save(handle)
