"""`fieldsync customers import|show`: encodings, headers, XLSX, all-or-nothing, re-import."""

from __future__ import annotations

import zipfile

import openpyxl
import pytest

from fieldsync.masterdata.store import CustomerStore
from tests.conftest import SAMPLE_CSV

ENGLISH = ("account_no,name,meter_no,capacity_kva,address,line,voltage\n"
           "3300007777,Hangzhou Test Works,51000,100,Road 1,L1,10kV\n")


def store(cfg):
    return CustomerStore(cfg.state_dir)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_encodings_are_detected(tree, invoke, tmp_path, encoding):
    text = SAMPLE_CSV + "3300008888,㐀䶵的表店（GB18030 扩展）,1,1,地址,线,0.4kV\n" if encoding == "gb18030" else SAMPLE_CSV
    path = tmp_path / f"{encoding}.csv"
    path.write_bytes(text.encode(encoding))
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.output
    assert store(tree).get("3300001234")["name"] == "杭州某某机械有限公司"
    assert store(tree).get("3300009999")["address"] == "绍兴市柯桥区纺都路1号"
    if encoding == "gb18030":
        assert store(tree).get("3300008888")["name"].startswith("㐀䶵")


def test_english_headers_and_summary(tree, invoke, tmp_path):
    path = tmp_path / "en.csv"
    path.write_text(ENGLISH, encoding="utf-8")
    result = invoke("customers", "import", path)
    assert result.exit_code == 0
    assert "1 added, 0 changed, 0 unchanged (4 in total)" in result.output
    assert store(tree).get("3300007777")["capacity_kva"] == 100


def test_reimport_counts_added_changed_unchanged(tree, invoke, tmp_path):
    changed = SAMPLE_CSV.replace("315,", "400,") + "3300000001,新客户,9,50,某地,某线,0.4kV\n"
    path = tmp_path / "again.csv"
    path.write_text(changed, encoding="utf-8")
    result = invoke("customers", "import", path)
    assert "1 added, 1 changed, 2 unchanged (4 in total)" in result.output
    assert store(tree).get("3300001234")["capacity_kva"] == 400


def test_header_synonyms_and_units(tree, invoke, tmp_path):
    text = ("用户编号,用户名称,电能表资产编号,合同容量(kVA),用电地址,所属线路,电压等级\n"
            "３３００００４４４４,全角户号公司,77,\"1,250千伏安\",地址,线,10千伏\n")
    path = tmp_path / "syn.csv"
    path.write_text(text, encoding="utf-8")
    assert invoke("customers", "import", path).exit_code == 0
    record = store(tree).get("3300004444")
    assert record["capacity_kva"] == 1250 and record["meter_no"] == "77"


def test_bad_rows_import_nothing_and_are_all_listed(tree, invoke, tmp_path):
    before = store(tree).all()
    text = SAMPLE_CSV + (
        "3300001234,重复户号,1,1,a,b,c\n"           # line 5: duplicate
        ",没有户号,1,1,a,b,c\n"                      # line 6: missing account
        "3300000002,,1,1,a,b,c\n"                   # line 7: empty name
        "3300000003,容量错,1,很大,a,b,c\n"            # line 8: capacity
        "3300000004,\"=HYPERLINK(\"\"http://x\"\")\",1,1,a,b,c\n"  # line 9: formula
    )
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "nothing was imported" in result.stderr
    for expected in ("line 5, column 户号: duplicate account no. 3300001234 (first on line 2)",
                     "line 6, column 户号: required field is empty",
                     "line 7, column 户名: required field is empty",
                     "line 8, column 合同容量", "line 9, column 户名: looks like a spreadsheet formula"):
        assert expected in result.stderr
    assert store(tree).all() == before


def test_missing_required_column(tree, invoke, tmp_path):
    path = tmp_path / "nocol.csv"
    path.write_text("户名,表号\n某公司,1\n", encoding="utf-8")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2 and "required column 户号" in result.stderr


def test_gbk_with_invalid_bytes_is_refused_with_position(tree, invoke, tmp_path):
    raw = SAMPLE_CSV.encode("gbk") + b"3300000005,\xff\xfe\xfd,1,1,a,b,c\n"
    path = tmp_path / "broken.csv"
    path.write_bytes(raw)
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "line 5" in result.stderr and "neither UTF-8 nor GBK" in result.stderr


def test_utf16_is_refused_with_advice(tree, invoke, tmp_path):
    path = tmp_path / "u16.csv"
    path.write_bytes(SAMPLE_CSV.encode("utf-16"))
    result = invoke("customers", "import", path)
    assert result.exit_code == 2 and "UTF-16" in result.stderr


def test_xlsx(tree, invoke, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    for line in SAMPLE_CSV.splitlines():
        sheet.append(line.split(","))
    sheet.append([3300006666, "数字户号公司", 123, 315.0, "地址", "线", "10kV"])
    path = tmp_path / "export.xlsx"
    book.save(path)
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.output
    assert store(tree).get("3300006666")["name"] == "数字户号公司"
    assert store(tree).get("3300006666")["capacity_kva"] == 315


def test_xlsx_zip_bomb_is_refused(tree, invoke, tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<a>" + b" " * (300 << 20) + b"</a>")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2 and "zip bomb" in result.stderr.lower()


def test_missing_file_and_show(tree, invoke, tmp_path):
    result = invoke("customers", "import", tmp_path / "nope.csv")
    assert result.exit_code == 2 and "no such file" in result.stderr
    shown = invoke("customers", "show", "3300005678")
    assert "宁波港口物流有限公司" in shown.output and "港城线" in shown.output
    unknown = invoke("customers", "show", "1")
    assert unknown.exit_code == 2 and "not in master data" in unknown.stderr
