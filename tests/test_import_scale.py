"""Bad and big master data files: a clear report, nothing imported, memory bounded."""

from __future__ import annotations

import zipfile

import pytest

from bench.customers_data import write_csv
from fieldsync.masterdata import importer, search
from fieldsync.masterdata.store import CustomerStore

HEADER = "户号,户名,表计局号,合同容量,用电地址,线路名称,供电电压等级\n"


def imported(cfg) -> list[str]:
    return sorted(r["account_no"] for r in CustomerStore(cfg.state_dir).all())


BEFORE = ["3300001234", "3300005678", "3300009999"]


@pytest.mark.parametrize("body, expected", [
    ("3300000001,甲厂,,,,,\n3300000001,乙厂,,,,,\n", "line 4, column 户号: duplicate account no. 3300000001 (first on line 3)"),
    ("3300000001,,,,,,\n", "column 户名: required field is empty"),
    ("3300000001,甲厂,,三百,,,\n", "capacity '三百' is not a non-negative number"),
    ("3300000001,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",,,,,\n", "looks like a spreadsheet formula"),
    ("3300000001,甲厂,,,@SUM(A1),,\n", "looks like a spreadsheet formula"),
    ("3300000001,甲厂,,,-2+3,,\n", "looks like a spreadsheet formula"),
])
def test_bad_rows_are_reported_and_nothing_is_imported(tree, invoke, tmp_path, body, expected):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "3300000002,好厂,,315,,,10kV\n" + body, encoding="utf-8")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "nothing was imported" in result.stderr and expected in result.stderr
    assert imported(tree) == BEFORE
    assert search.find(tree.state_dir, "好厂").total == 0  # the index did not move either


def test_missing_required_columns(tree, invoke, tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("表计局号,用电地址\n123,杭州\n", encoding="utf-8")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "户号" in result.stderr and "户名" in result.stderr and "is missing" in result.stderr
    assert imported(tree) == BEFORE


def test_gbk_with_a_few_invalid_bytes(tree, invoke, tmp_path):
    path = tmp_path / "gbk.csv"
    good = (HEADER + "3300000001,杭州甲厂,,,杭州市,,\n").encode("gbk")
    path.write_bytes(good + b"3300000002,\xff\xfe\x80bad,,,,,\n")
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "line 3" in result.stderr and "neither UTF-8 nor GBK" in result.stderr
    assert imported(tree) == BEFORE


def test_xlsx_zip_bomb_is_refused_before_unpacking(tree, invoke, tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            block = b"0" * (1 << 20)
            for _ in range(300):  # 300 MB of zeros, a few hundred KB packed
                member.write(block)
    assert path.stat().st_size < 2 << 20
    result = invoke("customers", "import", path)
    assert result.exit_code == 2 and "zip bomb" in result.stderr
    assert imported(tree) == BEFORE


def test_a_500_mb_file_is_refused_without_reading_it(tree, invoke, tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as handle:
        handle.write(HEADER.encode())
        handle.truncate(500 << 20)  # sparse: no disk used, the size is what counts
    result = invoke("customers", "import", path)
    assert result.exit_code == 2
    assert "500 MB" in result.stderr and "split the file" in result.stderr
    assert imported(tree) == BEFORE


def test_rows_across_the_encoding_sample_are_read_whole(tree, invoke, tmp_path):
    # the reader samples the first 64 KB to find the delimiter; a row crossing that point
    # used to be read as two broken rows
    path = write_csv(tmp_path / "gen.csv", 3000, seed=11)
    records = importer.parse(path)
    assert len(records) == 3000
    assert all(isinstance(r["capacity_kva"], int) for r in records)


def test_progress_reports_every_byte(tmp_path):
    path = write_csv(tmp_path / "gen.csv", 2000, seed=5)
    seen = []
    importer.parse(path, progress=seen.append)
    assert sum(seen) == path.stat().st_size


@pytest.mark.slow
def test_two_hundred_thousand_rows_import_and_search(tree, invoke, tmp_path):
    path = write_csv(tmp_path / "big.csv", 200_000, seed=9)
    result = invoke("customers", "import", path)
    assert result.exit_code == 0, result.stderr
    assert "200000 added" in result.stdout
    assert len(CustomerStore(tree.state_dir).all()) == 200_003
    assert search.find(tree.state_dir, "杭州").total > 1000


def test_rows_checked_whole_read_like_rows_checked_cell_by_cell(tmp_path, monkeypatch):
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + "3300000001, 杭州甲厂 ,5100,315kVA,杭州市,文三线,10kV\n"
                    "３３００００００02,Cafe\u0301,,１２５０,,,\n"
                    "3300000003,乙厂,-12,0,+1,,\n", encoding="utf-8")
    whole = importer.parse(path)
    assert whole[1]["account_no"] == "3300000002" and whole[1]["name"] == "Café"
    monkeypatch.setattr(importer, "_plain_record", lambda raws: None)
    assert importer.parse(path) == whole
    generated = write_csv(tmp_path / "gen.csv", 500, seed=3)
    slow = importer.parse(generated)
    monkeypatch.undo()
    assert importer.parse(generated) == slow
