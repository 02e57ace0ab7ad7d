"""`fieldsync server report`: counts per inspector/business/category/day, gaps, safe cells."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import load_workbook

from fieldsync.server.report import collect, csv_text, safe_cell
from tests.fixtures.server_tree import sections

NOV = (dt.date(2026, 11, 1), dt.date(2026, 11, 30))


@pytest.fixture(autouse=True)
def no_tablet_config(monkeypatch):
    monkeypatch.delenv("FIELDSYNC_CONFIG", raising=False)


def test_counts_for_a_month(server_tree):
    report = collect(server_tree, *NOV)
    assert len(report.visits) == 5  # the December visit is outside the range
    tables = {t.title: t.rows for t in report.tables()}
    assert tables["按检查员"] == [("li.si", 2, 3, 2), ("zhang.san", 3, 9, 2)]
    assert tables["按业务类型"] == [("专项检查", 1, 3), ("周期检查", 3, 8), ("违约用电检查", 1, 1)]
    assert ("周期检查", "计量装置", 2, 8) in tables["按分类"]
    assert tables["按日期"][0] == ("2026-11-02", 1, 3) and len(tables["按日期"]) == 5
    gaps = tables["缺照片或备注"]
    assert len(gaps) == 1 and gaps[0][2] == "3300005678" and gaps[0][7] == "无照片、无备注"
    photos_per_visit = {row[8]: row[11] for row in tables["检查明细"]}
    assert photos_per_visit == {"2026-11-02_0930": 3, "2026-11-05_0930": 0, "2026-11-09_0930": 5,
                                "2026-11-10_0930": 3, "2026-11-14_0930": 1}


def test_single_day_range_includes_both_ends(server_tree):
    report = collect(server_tree, dt.date(2026, 11, 9), dt.date(2026, 11, 10))
    assert [v.visit for v in report.visits] == ["2026-11-09_0930", "2026-11-10_0930"]


@pytest.mark.parametrize("text", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx",
                                  '=HYPERLINK("http://evil","点击")'])
def test_formula_starts_are_neutralised(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["外观正常", "a=b", "", 0, -5, 3.5, None])
def test_other_cells_are_untouched(value):
    assert safe_cell(value) == value


def test_csv_is_excel_friendly_and_safe(server_tree, invoke, tmp_path):
    out = tmp_path / "nov.csv"
    result = invoke("server", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--out", out, server_tree)
    assert result.exit_code == 0, result.output
    assert "5 visits, 12 photos" in result.output and "1 without photos" in result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    text = raw.decode("utf-8-sig")
    assert text == csv_text(collect(server_tree, *NOV))
    found = sections(text)
    detail = found["检查明细"]
    header, rows = detail[0], detail[1:]
    notes = {r[header.index("检查记录")]: (r[header.index("外观备注")], r[header.index("铭牌备注")]) for r in rows}
    assert notes["2026-11-10_0930"] == ("'=HYPERLINK(\"http://x\")", "'@SUM(1)")
    for table in found.values():
        for row in table:
            assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row


def test_xlsx_has_a_sheet_per_table_and_no_formulas(server_tree, invoke, tmp_path):
    out = tmp_path / "nov.xlsx"
    result = invoke("server", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "xlsx",
                    "--out", out, server_tree)
    assert result.exit_code == 0, result.output
    book = load_workbook(out)
    assert book.sheetnames == ["按检查员", "按业务类型", "按分类", "按日期", "检查明细", "缺照片或备注"]
    assert [c.value for c in book["按检查员"][2]] == ["li.si", 2, 3, 2]
    cells = [cell for sheet in book for row in sheet.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    values = {c.value for c in cells}
    assert "'=HYPERLINK(\"http://x\")" in values and "'@SUM(1)" in values
    assert isinstance(book["检查明细"]["L2"].value, int)  # counts stay numbers


def test_bad_range_is_an_error(server_tree, invoke):
    result = invoke("server", "report", "--from", "2026-11-30", "--to", "2026-11-01", server_tree)
    assert result.exit_code == 2 and "Error:" in result.stderr and "before" in result.stderr


def test_format_follows_out_suffix(server_tree, invoke, tmp_path):
    out = tmp_path / "r.xlsx"
    result = invoke("server", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--out", out, server_tree)
    assert result.exit_code == 0 and load_workbook(out).sheetnames[0] == "按检查员"


def test_a_visit_without_attribution_in_visit_yaml_is_attributed_from_its_manifest(server_tree):
    """A visit made by hand in the file manager: visit.yaml lacks inspector, device and the
    customer's name, but its sealed photos name both; pages and report say who, not (未知)."""
    from fieldsync.base.yamlfile import read_yaml, write_yaml
    from fieldsync.server.site import build

    visit = next(v for v in server_tree.rglob("visit.yaml") if "2026-11-09" in str(v)).parent
    data = read_yaml(visit / "visit.yaml")
    expected = data["inspector"], data["device"]
    for key in ("inspector", "device", "customer_name"):
        data.pop(key)
    write_yaml(visit / "visit.yaml", data)
    report = collect(server_tree, dt.date(2026, 11, 9), dt.date(2026, 11, 9))
    row = report.visits[0]
    assert (row.inspector, row.device) == expected
    customer = read_yaml(visit.parents[2] / "customer.yaml")["name"]
    assert row.customer == customer
    build(server_tree)
    rel = visit.relative_to(server_tree).as_posix()
    page = (server_tree / ".fieldsync" / "site" / f"{rel}.html").read_text(encoding="utf-8")
    assert "(未知)" not in page and expected[0] in page and expected[1] in page and customer in page


def test_a_bundle_attributes_a_visit_without_visit_yaml_fields_from_its_evidence(tmp_path):
    """evidence bundles name the inspector and device of a hand-made visit from its manifest."""
    from fieldsync.evidence.bundle import _attribution

    sealed = {"entries": [{"inspector": "zhang.san", "device": "tablet-07"}, {"path": "x"}]}
    assert _attribution({}, sealed, []) == {"inspector": "zhang.san", "device": "tablet-07"}
    assert _attribution({"inspector": "li.si"}, {"entries": []}, [{"device": "tablet-09"}]) == \
        {"inspector": "li.si", "device": "tablet-09"}
