"""CSV dialect of master data imports: doubled quotes, quoted delimiters and line breaks, the
delimiter told from the header's meaning; a round trip through Python's csv writer in every
supported encoding (hypothesis)."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync.masterdata import importer

HEADER = "户号,户名,表计局号,合同容量,用电地址,线路名称,供电电压等级\n"


def parse_text(tmp_path, text: str, encoding: str = "utf-8") -> list[dict]:
    path = tmp_path / "customers.csv"
    path.write_bytes(text.encode(encoding))
    return importer.parse(path)


def test_doubled_quotes_are_one_quote(tmp_path):
    records = parse_text(tmp_path, HEADER + '3300000001,"ACME ""Best"" Co",1,100,地址,线,10kV\n')
    assert records[0]["name"] == 'ACME "Best" Co'


def test_doubled_quotes_with_a_comma_inside(tmp_path):
    records = parse_text(tmp_path, HEADER + '3300000001,"ACME ""X"", Ltd",1,100,地址,线,10kV\n')
    assert records[0]["name"] == 'ACME "X", Ltd'
    assert records[0]["capacity_kva"] == 100


def test_quoted_comma_and_line_break(tmp_path):
    records = parse_text(tmp_path, HEADER + '3300000001,"杭州, 某某",1,"1,250","文三路\n100号",线,10kV\n'
                                            "3300000002,宁波,2,630,港口路,线,10kV\n")
    assert records[0]["name"] == "杭州, 某某"
    assert records[0]["capacity_kva"] == 1250
    assert records[0]["address"] == "文三路 100号"  # a line break in a cell is one space
    assert records[1]["account_no"] == "3300000002"


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
def test_delimiter_from_a_header_without_quotes(tmp_path, delimiter):
    # The data rows hold the other candidates, quoted: counting characters would be fooled.
    row = ["3300000001", 'A;B,C\t"D"', "1", "100", "x;y;z;w", "l,1", "10kV"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(HEADER.strip().split(","))
    writer.writerow(row)
    records = parse_text(tmp_path, buffer.getvalue())
    assert records[0]["name"] == 'A;B,C "D"'  # a tab in a cell is one space, as a line break
    assert records[0]["address"] == "x;y;z;w" and records[0]["line"] == "l,1"


def test_delimiter_of_unknown_titles_is_the_one_giving_most_columns():
    assert importer.detect_delimiter("a;b;c\n1;2;3\n") == ";"
    assert importer.detect_delimiter("only\n1\n") == ","


# Characters that break naive CSV handling, and Chinese that GBK can encode (GB18030 gets more).
HOSTILE = '",;\t\n\r\'  AZaz09'
GBK_CHINESE = "杭州某某机械有限公司宁波港口物流绍兴纺织厂文三路号线"
GB18030_ONLY = "㐀䶵𠀀"
ENCODINGS = ("utf-8", "utf-8-sig", "gbk", "gb18030")


def values(alphabet: str):
    return st.lists(st.text(alphabet=alphabet, max_size=12), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(values(HOSTILE + GBK_CHINESE), min_size=1, max_size=5),
       extra=values(HOSTILE + GBK_CHINESE + GB18030_ONLY),
       encoding=st.sampled_from(ENCODINGS), delimiter=st.sampled_from(importer.DELIMITERS))
def test_csv_writer_round_trip(tmp_path, rows, extra, encoding, delimiter):
    if encoding in ("utf-8", "utf-8-sig", "gb18030"):
        rows = [*rows, extra]
    # Each row keeps an account number: reading skips blank rows, as an import must.
    written = [["3300000001", *row] for row in rows]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["户号", "户名", "用电地址", "线路名称"])
    writer.writerows(written)
    path = tmp_path / "round.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))

    _, read = importer._rows(path, None)  # the raw rows, before header detection and tidying
    _, header = next(read)
    assert header == ["户号", "户名", "用电地址", "线路名称"]
    assert [cells for _, cells in read] == written
