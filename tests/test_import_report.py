"""Imports that never lose a value silently (issue 18): the column mapping report, re-imports
that keep what the file does not say, --dry-run, tolerant reading of real exports (invisible
characters, title rows), scientific notation refused, meter and voltage stored one way."""

from __future__ import annotations

import json

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync.masterdata import importer, search
from fieldsync.masterdata.matching import normalize_voltage, voltage_text
from fieldsync.masterdata.store import CustomerStore

HEADER = "户号,户名,表计局号,合同容量,用电地址,线路名称,供电电压等级\n"


def store(cfg):
    return CustomerStore(cfg.state_dir)


def write(tmp_path, text: str, name: str = "export.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("title", ["电能表资产号", "电表号", "电能表编号"])
def test_a_meter_column_under_another_real_name_is_read_not_blanked(tree, invoke, tmp_path, title):
    path = write(tmp_path, f"户号,户名,{title}\n3300001234,杭州某某机械有限公司,5100099990000\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.output
    assert f"{title}" in result.output and "-> 表计局号 (meter_no)" in result.output
    assert store(tree).get("3300001234")["meter_no"] == "5100099990000"
    assert store(tree).get("3300005678")["meter_no"] == "5100087654321"  # not in the file: kept


def test_a_file_with_only_account_and_name_keeps_every_other_field(tree, invoke, tmp_path):
    before = store(tree).get("3300005678")
    path = write(tmp_path, "户号,户名\n3300005678,宁波港口物流集团有限公司\n3300009999,绍兴纺织厂\n")
    result = invoke("customers", "import", path)
    assert "0 added, 1 changed, 1 unchanged (3 in total)" in result.output
    assert "户名 宁波港口物流有限公司 -> 宁波港口物流集团有限公司" in result.output
    assert "not in the file, kept as they are: 表计局号" in result.output
    after = store(tree).get("3300005678")
    assert after == {**before, "name": "宁波港口物流集团有限公司"}


def test_replace_blanks_missing_columns_and_removes_missing_accounts(tree, invoke, tmp_path):
    path = write(tmp_path, "户号,户名\n3300005678,宁波港口物流有限公司\n")
    result = invoke("customers", "import", path, "--replace")
    assert result.exit_code == 0, result.output
    assert "removed (--replace)" in result.output
    assert [r["account_no"] for r in store(tree).all()] == ["3300005678"]
    assert store(tree).get("3300005678")["meter_no"] == ""


def test_first_import_with_line_and_meter_synonyms_loses_nothing(tree, invoke, tmp_path):
    path = write(tmp_path, "户号,户名,电能表资产号,线路,电压等级(kV),合同容量（kVA）,用 电 地 址,备注\n"
                           "3300000001,新厂,5100000000001,新线,10,315,某路1号,月底停产\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.output
    record = store(tree).get("3300000001")
    assert (record["meter_no"], record["line"], record["capacity_kva"], record["address"]) == \
        ("5100000000001", "新线", 315, "某路1号")
    assert "备注" in result.output and "-> ignored" in result.output  # reported, not silently dropped


def test_map_option_names_a_column(tree, invoke, tmp_path):
    path = write(tmp_path, "户号,户名,资产条码\n3300001234,杭州某某机械有限公司,A-77\n")
    result = invoke("customers", "import", path, "--map", "资产条码=meter_no")
    assert result.exit_code == 0, result.output
    assert "资产条码 -> 表计局号 (meter_no) (--map)" in result.output
    assert store(tree).get("3300001234")["meter_no"] == "A-77"
    bad = invoke("customers", "import", path, "--map", "资产条码=colour")
    assert bad.exit_code == 2 and "not a field" in bad.stderr
    absent = invoke("customers", "import", path, "--map", "没有这列=meter_no")
    assert absent.exit_code == 2 and "no such column" in absent.stderr


def test_dry_run_reports_everything_and_writes_nothing(tree, invoke, tmp_path):
    before = store(tree).all()
    path = write(tmp_path, HEADER + "3300001234,杭州某某机械有限公司,5100012345678,400,杭州市西湖区文三路100号,文三线,10kV\n"
                                    "3300000001,新客户,9,50,某地,某线,0.4 kV\n")
    result = invoke("customers", "import", path, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "encoding UTF-8" in out and "dry run, nothing written" in out
    assert "1 added, 1 changed, 0 unchanged (4 in total)" in out
    assert "changed 3300001234: 合同容量 315 -> 400" in out
    assert "2 customers in the master data are not in the file, kept" in out and "3300009999" in out
    assert store(tree).all() == before
    data = json.loads(invoke("customers", "import", path, "--dry-run", "--json").output)
    assert data["missing"] == ["3300005678", "3300009999"] and data["dry_run"] is True
    assert data["changes"][0]["fields"]["capacity_kva"] == {"old": 315, "new": 400}
    assert {c["title"]: c["field"] for c in data["columns"]}["表计局号"] == "meter_no"


def test_a_real_import_prints_the_same_summary(tree, invoke, tmp_path):
    path = write(tmp_path, "户号,户名\n3300001234,杭州某某机械厂\n")
    result = invoke("customers", "import", path)
    assert "imported 1 customers" in result.output and "2 customers in the master data are not in the file" in result.output
    assert "changed 3300001234: 户名 杭州某某机械有限公司 -> 杭州某某机械厂" in result.output


def test_tabs_and_invisible_characters_are_tidied_and_counted(tree, invoke, tmp_path):
    path = write(tmp_path, HEADER + '3300000001,"tab\there",1,1,"a\u00a0b",线,10kV\n'
                                    "3300000002,宁波\u200b港口\u3000物流,2,2,地址,线,10kV\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.stderr
    assert store(tree).get("3300000001")["name"] == "tab here"
    assert store(tree).get("3300000001")["address"] == "a b"
    assert store(tree).get("3300000002")["name"] == "宁波港口 物流"
    for kind in ("1 with tabs", "1 with non-breaking spaces", "1 with zero-width", "1 with ideographic spaces"):
        assert kind in result.output


def test_nul_still_refuses_the_row_with_line_and_column(tree, invoke, tmp_path):
    path = write(tmp_path, HEADER + "3300000001,好厂,1,1,地址,线,10kV\n3300000002,坏\x00厂,1,1,地址,线,10kV\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "line 3, column 户名: contains the control character U+0000" in result.stderr


@pytest.mark.parametrize("column, value", [("表计局号", "5.10001E+12"), ("户号", "3.3E+09")])
def test_scientific_notation_is_refused_with_a_hint(tree, invoke, tmp_path, column, value):
    row = {"户号": "3300000001", "表计局号": "1"} | {column: value}
    path = write(tmp_path, HEADER + f"{row['户号']},某厂,{row['表计局号']},1,地址,线,10kV\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert f"column {column}: '{value}' is a number in scientific notation" in result.stderr
    assert "format the column as text in Excel" in result.stderr


def test_xlsx_with_a_title_row(tree, invoke, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["2026年11月客户档案"])
    sheet.append([])
    for line in HEADER.splitlines():
        sheet.append(line.split(","))
    sheet.append([3300006666, "数字户号公司", "５１００６６", 315.0, "地址", "线", "10千伏"])
    path = tmp_path / "titled.xlsx"
    book.save(path)
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.output + result.stderr
    assert "line 1 skipped (above the header): 2026年11月客户档案" in result.output
    record = store(tree).get("3300006666")
    assert (record["meter_no"], record["voltage"]) == ("510066", "10kV")


def test_csv_with_title_rows_and_no_header_at_all(tree, invoke, tmp_path):
    path = write(tmp_path, "客户档案,,\n导出日期 2026-11-25,,\n" + HEADER + "3300000001,某厂,1,1,地址,线,10kV\n")
    assert invoke("customers", "import", path).exit_code == 0
    nothing = write(tmp_path, "甲,乙\n1,2\n", "none.csv")
    result = invoke("customers", "import", nothing)
    assert result.exit_code == 2 and "no header row found" in result.stderr and "--map" in result.stderr


def test_meter_and_voltage_are_stored_one_way_and_still_found(tree, invoke, tmp_path):
    path = write(tmp_path, HEADER + "3300000001,甲厂,５１０００１,1,地址,线,10 KV\n"
                                    "3300000002,乙厂,510002,1,地址,线,0.4 kV\n"
                                    "3300000003,丙厂,510003,1,地址,线,10千伏\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 0 and "1 with full-width digits" in result.output
    got = {r["account_no"]: (r["meter_no"], r["voltage"]) for r in store(tree).all()}
    assert got["3300000001"] == ("510001", "10kV")
    assert got["3300000002"] == ("510002", "0.4kV")
    assert got["3300000003"] == ("510003", "10kV")
    assert "3300000001" in {h.account_no for h in search.find(tree.state_dir, "510001").hits}


@pytest.mark.parametrize("text", ["10kV", "10 KV", "10千伏", "0.4 kV", "交流10千伏", "35ｋＶ", "其他"])
def test_voltage_text_keeps_the_level_search_matches(text):
    assert normalize_voltage(voltage_text(text)) == normalize_voltage(text)


INVISIBLE = "\t\n\u00a0\u3000\u200b\u2009\ufeff "


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.text(alphabet="杭州某厂AZaz09", min_size=1, max_size=6), min_size=1, max_size=4),
       gaps=st.lists(st.text(alphabet=INVISIBLE, min_size=1, max_size=3), min_size=5, max_size=5))
def test_invisible_characters_normalise_and_round_trip(tmp_path, words, gaps):
    # Words separated by any run of spaces/invisibles: one plain space where there was a
    # space of any kind, nothing where there were only invisible characters.
    cell = gaps[0] + "".join(w + g for w, g in zip(words, gaps[1:] + gaps[:1]))
    path = tmp_path / "inv.csv"
    path.write_text('户号,户名\n3300000001,"' + cell.replace('"', '""') + '"\n', encoding="utf-8")
    name = importer.parse(path)[0]["name"]
    assert name == name.strip() and "  " not in name
    assert not any(ch in name for ch in INVISIBLE.replace(" ", ""))
    assert name.replace(" ", "") == "".join(words)
    path.write_text(f"户号,户名\n3300000001,{name}\n", encoding="utf-8")
    assert importer.parse(path)[0]["name"] == name  # tidy text reads back as itself
