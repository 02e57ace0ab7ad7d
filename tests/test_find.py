"""`fieldsync find` and the search index: matching rules, ranking, recall against a plain scan."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync.masterdata import index_build, index_file, matching, search
from fieldsync.masterdata.store import FIELDS, CustomerStore


def built(rows: list[dict]) -> search.SearchIndex:
    """An index of `rows`, built in memory, ready for queries."""
    return search.SearchIndex(index_build.build(rows))


def accounts(result) -> list[str]:
    return [row["account_no"] for row in json.loads(result.stdout)["results"]]


def test_text_searches_every_field(tree, invoke):
    assert accounts(invoke("find", "某某", "--json")) == ["3300001234"]      # name
    assert accounts(invoke("find", "北仑", "--json")) == ["3300005678"]      # address
    assert accounts(invoke("find", "纺都线", "--json")) == ["3300009999"]    # line
    assert accounts(invoke("find", "87654", "--json")) == ["3300005678"]     # meter, digits inside
    assert accounts(invoke("find", "0000", "--json")) == ["3300001234", "3300005678", "3300009999"]


def test_pinyin_initials_full_and_polyphonic(tree, invoke):
    assert accounts(invoke("find", "hzmm", "--json")) == ["3300001234"]
    assert accounts(invoke("find", "hangzhou", "--json")) == ["3300001234"]
    assert accounts(invoke("find", "HANGZHOU", "--json")) == ["3300001234"]
    assert accounts(invoke("find", "--name", "sxfzc", "--json")) == ["3300009999"]
    # 行 reads xing, hang and heng: every reading finds the customer
    index = built([{"account_no": "1", "name": "银行大楼"}])
    for query in ("yinhang", "yinxing", "yh", "yx", "hangda"):
        assert [h.account_no for h in index.search(query).hits] == ["1"], query
    assert index.search("yinhong").total == 0


def test_width_case_and_voltage_spellings(tree, invoke):
    assert accounts(invoke("find", "３３００００１２３４", "--json")) == ["3300001234"]
    for spelling in ("35kV", "35KV", "35 kv", "35千伏", "３５ｋＶ"):
        assert accounts(invoke("find", "--voltage", spelling, "--json")) == ["3300009999"], spelling


def test_capacity_comparisons_and_digits(tree, invoke):
    assert accounts(invoke("find", "--capacity", ">=630", "--json")) == ["3300005678", "3300009999"]
    assert accounts(invoke("find", "--capacity", "<630", "--json")) == ["3300001234"]
    assert accounts(invoke("find", "--capacity", "=1250", "--json")) == ["3300009999"]
    assert accounts(invoke("find", "--capacity", "315", "--json")) == ["3300001234"]  # N: equal
    assert accounts(invoke("find", "--capacity", "31", "--json")) == []


def test_combined_fields_are_and(tree, invoke):
    result = invoke("find", "--address", "杭州", "--voltage", "10kv", "--json")
    assert accounts(result) == ["3300001234"]
    assert accounts(invoke("find", "--address", "杭州", "--voltage", "35kv", "--json")) == []
    assert accounts(invoke("find", "hz", "--capacity", ">=100", "--line", "wsx", "--json")) == ["3300001234"]


def test_ranking_exact_prefix_substring_then_account():
    index = built([
        {"account_no": "4", "name": "机械厂"},       # substring? no: prefix
        {"account_no": "3", "name": "杭州机械"},     # substring
        {"account_no": "2", "name": "机械"},         # exact
        {"account_no": "1", "name": "大机械公司"},   # substring
    ])
    results = index.search("机械")
    assert [(h.account_no, h.rank) for h in results.hits] == [
        ("2", search.EXACT), ("4", search.PREFIX), ("1", search.SUBSTRING), ("3", search.SUBSTRING)]


def test_table_limit_and_json(tree, invoke):
    result = invoke("find", "有限公司")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["户号", "户名"]
    assert "3300001234" in result.stdout and "2 customers" in result.stdout
    limited = json.loads(invoke("find", "0000", "--limit", "1", "--json").stdout)
    assert limited["total"] == 3 and len(limited["results"]) == 1
    assert limited["results"][0]["name"] == "杭州某某机械有限公司"


def test_an_estimated_count_says_about(tree, invoke, monkeypatch):
    monkeypatch.setattr(search, "CONFIRM_DIRECTLY", 0)  # as if 有限公司 were in 833k rows
    result = invoke("find", "有限公司", "--limit", "1")
    assert result.exit_code == 0 and "about 2 customers, the first 1 shown" in result.stdout
    data = json.loads(invoke("find", "有限公司", "--limit", "1", "--json").stdout)
    assert data["total"] == 2 and data["total_exact"] is False
    assert json.loads(invoke("find", "有限公司", "--limit", "0", "--json").stdout)["total_exact"] is True


@pytest.mark.parametrize("query", ["", " ", ".*", "[", "(a|b)", "\\", "^$", "%_", "'; drop",
                                   "x" * 10_000, "杭" * 10_000, "\x00", "\n"])
def test_odd_queries_never_crash(tree, invoke, query):
    result = invoke("find", query, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    if query.strip():
        assert data["total"] == 0
    else:  # nothing asked: every customer
        assert data["total"] == 3


def test_find_without_master_data_says_what_to_do(tree, invoke):
    (tree.state_dir / "customers.json").unlink()
    result = invoke("find", "杭州")
    assert result.exit_code == 2 and "customers import" in result.stderr


def test_index_is_persisted_updated_on_import_and_rebuilt_when_stale(tree, invoke, tmp_path):
    path = index_file.index_path(tree.state_dir)
    assert path.is_file()  # written by the import in the fixture
    extra = tmp_path / "more.csv"
    extra.write_text("户号,户名\n3300007777,温州新户电器厂\n", encoding="utf-8")
    assert invoke("customers", "import", extra).exit_code == 0
    assert accounts(invoke("find", "wzxh", "--json")) == ["3300007777"]
    path.write_bytes(b"not a pickle")  # a broken index is rebuilt, never trusted
    index_file._cache.clear()
    assert accounts(invoke("find", "温州", "--json")) == ["3300007777"]
    assert index_file.read(path) is not None


# --- recall against a plain substring scan, over generated Chinese data ---

HAN = "杭州宁波绍兴温湖嘉金华台丽水衢舟山市区县镇乡村路街道号楼机械纺织电子化工物流有限公司厂行长重乐和的"
OTHER = "0123456789ABCabc-（）() 　"
chinese_text = st.text(alphabet=HAN + OTHER, min_size=0, max_size=14)


@st.composite
def customers(draw):
    count = draw(st.integers(min_value=1, max_value=25))
    numbers = draw(st.lists(st.integers(0, 10 ** 10 - 1), min_size=count, max_size=count, unique=True))
    return [{"account_no": f"{n:010d}", "name": draw(chinese_text), "address": draw(chinese_text),
             "meter_no": draw(st.text(alphabet="0123456789", max_size=13)),
             "line": draw(st.text(alphabet=HAN, max_size=4)),
             "capacity_kva": draw(st.one_of(st.none(), st.integers(0, 5000))),
             "voltage": draw(st.sampled_from(["10kV", "35kV", "0.4kV", "", "１０ＫＶ"]))}
            for n in numbers]


def word_matches(field: str, word: str, record: dict) -> bool:
    """docs/search.md read literally, one customer at a time."""
    value = record.get(field)
    if field == "capacity_kva":
        bounds = matching.capacity_bounds(word)
        return bool(bounds) and isinstance(value, (int, float)) and all(op(value, limit) for op, limit in bounds)
    if field == "voltage":
        level = matching.query_text(field, word)
        return bool(level) and level == matching.field_text(field, value)
    return matching.query_text(field, word) in matching.field_text(field, value)


def reference(rows: list[dict], field: str | None, query: str) -> set[str]:
    """Every word in some field (free text), or every condition in `field`."""
    if field is None:
        words, fields = matching.query_words(query), FIELDS
    else:
        words, fields = matching.field_conditions(field, query), (field,)
    return {r["account_no"] for r in rows
            if all(any(word_matches(f, word, r) for f in fields) for word in words)}


@st.composite
def data_and_query(draw):
    rows = draw(customers())
    field = draw(st.sampled_from([None, "name", "address", "meter_no", "account_no", "line"]))
    source = draw(st.sampled_from(rows))
    text = matching.field_text(field or "name", source.get(field or "name")) or "杭州"
    size = draw(st.sampled_from([1, 2, 3, 5]))
    start = draw(st.integers(0, max(0, len(text) - 1)))
    query = text[start:start + size] if draw(st.booleans()) else draw(chinese_text.filter(bool))
    return rows, field, query


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_and_query())
def test_recall_is_complete_against_a_plain_scan(case):
    rows, field, query = case
    if not query.strip():
        return
    index = built(rows)
    found = index.search(query if field is None else "", None if field is None else {field: query},
                         limit=None)
    found_accounts = {h.account_no for h in found.hits}
    expected = reference(rows, field, query.strip())
    assert expected <= found_accounts  # recall 100%
    # anything more is a pinyin or capacity match, never a plain miss of the same query
    for hit in found.hits:
        if hit.account_no not in expected:
            assert matching.LETTERS.match(matching.normalize(query.strip())) or field in (None,)


@st.composite
def words_and_ranges(draw):
    """Several words, each a piece of some customer's field, and maybe a capacity condition."""
    rows = draw(customers())
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(["name", "address", "meter_no", "account_no"]))
        text = matching.field_text(field, draw(st.sampled_from(rows)).get(field))
        if text:
            start = draw(st.integers(0, len(text) - 1))
            pieces.append(text[start:start + draw(st.integers(1, 4))])
    low, high = draw(st.integers(0, 5000)), draw(st.integers(0, 5000))
    capacity = draw(st.sampled_from([None, f"{low}-{high}", f">={low}", f"<{high}", str(low), f">={low} <={high}"]))
    return rows, " ".join(pieces), capacity


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words_and_ranges())
def test_multi_word_and_range_queries_equal_a_plain_scan(case):
    rows, query, capacity = case
    found = {h.account_no for h in built(rows).search(query, {"capacity_kva": capacity} if capacity else None,
                                                     limit=None).hits}
    expected = reference(rows, None, query)
    if capacity:
        expected &= reference(rows, "capacity_kva", capacity)
    assert expected <= found
    if not any(matching.LETTERS.match(word) for word in matching.query_words(query)):  # no pinyin
        assert found == expected


@st.composite
def pinyin_case(draw):
    rows = draw(customers())
    source = draw(st.sampled_from(rows))
    text = matching.field_text("name", source["name"])
    han = [i for i, ch in enumerate(text) if matching.char_readings(ch)[1] != (ch,)]
    if not han:
        return rows, source, None
    start = draw(st.sampled_from(han))
    size = draw(st.integers(1, 4))
    piece = text[start:start + size]
    kind = draw(st.sampled_from([0, 1]))  # initials or full readings, any reading of each char
    query = "".join(draw(st.sampled_from(matching.char_readings(ch)[kind])) for ch in piece)
    return rows, source, query


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pinyin_case())
def test_pinyin_recall_any_reading(case):
    rows, source, query = case
    if not query or not matching.LETTERS.match(query) or len(query) < 2:
        return
    index = built(rows)
    found = {h.account_no for h in index.search("", {"name": query}, limit=None).hits}
    assert source["account_no"] in found, query


def test_store_roundtrip_keeps_get_and_all(tree):
    store = CustomerStore(tree.state_dir)
    assert store.get("3300001234")["name"] == "杭州某某机械有限公司"
    assert len(store.all()) == 3


# --- pinyin queries against a scan that reads every customer's readings ---

def scan_ranks(rows: list[dict], field: str, query: str) -> dict[str, int]:
    """{account: best rank} of a letters-only query in `field`, reading every row: plain text,
    initials (two letters or more: also full readings), as `find` defines them."""
    out = {}
    for r in rows:
        text = matching.field_text(field, r.get(field))
        ranks = [matching.plain_rank(text, query),
                 matching.initials_rank(matching.reading_sequence(text, matching.INITIALS), query)]
        if len(query) > 1:
            ranks.append(matching.pinyin_match(matching.reading_sequence(text, matching.FULL), query))
        found = [rank for rank in ranks if rank is not None]
        if found:
            out[r["account_no"]] = min(found)
    return out


@st.composite
def letters_case(draw):
    rows = draw(customers())
    field = draw(st.sampled_from(["name", "address", "line"]))
    text = matching.field_text(field, draw(st.sampled_from(rows)).get(field))
    if text and draw(st.integers(0, 3)):
        start = draw(st.integers(0, len(text) - 1))
        piece = text[start:start + draw(st.integers(1, 7))]
        kind = draw(st.sampled_from([0, 0, 1]))  # mostly initials, any reading of each character
        query = "".join(draw(st.sampled_from(matching.char_readings(ch)[kind])) for ch in piece)
    else:
        query = draw(st.text(alphabet="hzsxjgyclnw", min_size=1, max_size=6))
    return rows, field, query


@pytest.fixture
def layouts():
    """Build variants: the usual one, every posting as an id list, every posting as a bitmap
    (and many candidates read as bytes instead of row by row)."""
    def build(rows):
        made = []
        for dense, read_rows in ((index_build.DENSE, search.READ_ROWS), (0, 0), (10 ** 9, 0)):
            saved = index_build.DENSE, search.READ_ROWS
            index_build.DENSE, search.READ_ROWS = dense, read_rows
            try:
                made.append(built(rows))
            finally:
                index_build.DENSE, search.READ_ROWS = saved
        return made
    return build


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=letters_case())
def test_pinyin_queries_rank_like_a_scan_of_every_reading(layouts, case):
    rows, field, query = case
    if not matching.LETTERS.match(query):
        return
    expected = scan_ranks(rows, field, query)
    saved = search.READ_ROWS
    for variant, index in zip(("usual", "ids", "bitmaps"), layouts(rows)):
        search.READ_ROWS = saved if variant == "usual" else 0
        try:
            found = {h.account_no: h.rank for h in index.search("", {field: query}, limit=None).hits}
        finally:
            search.READ_ROWS = saved
        assert found == expected, (variant, query)


def test_initials_of_polyphonic_neighbours_are_indexed_in_every_combination():
    # 长 reads chang/zhang, 重 zhong/chong, 行 xing/hang/heng: 2 x 2 x 3 spellings of the three
    index = built([{"account_no": "1", "name": "长重行"},
                   {"account_no": "2", "name": "长江"}])
    for query in ("czx", "zch", "cch", "zzh", "czh", "zcx", "cz", "zc"):
        assert [h.account_no for h in index.search("", {"name": query}).hits] == ["1"], query
    assert [h.rank for h in index.search("", {"name": "zzh"}).hits] == [search.EXACT]
    assert [h.account_no for h in index.search("", {"name": "zj"}).hits] == ["2"]
    assert index.search("", {"name": "zzz"}).total == 0


def test_searching_does_not_load_numpy():
    """numpy builds the index (import, pull); a query must not pay its import."""
    import subprocess
    import sys

    probe = ("import sys, fieldsync.masterdata.search, fieldsync.cli.find; "
             "print(sorted(m for m in sys.modules if m.startswith(('numpy.', 'pypinyin'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def paged_like_full(rows: list[dict], text: str, fields: dict | None, limit: int) -> None:
    """A page found by confirming only the rows shown (what a frequent phrase does at 1M) is
    the start of the full ranked answer, and its count is exact or says it is not."""
    index = built(rows)
    full = index.search(text, fields, limit=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search, "CONFIRM_DIRECTLY", 0)  # every phrase takes the frequent route
        page = index.search(text, fields, limit=limit)
    assert [(h.account_no, h.rank) for h in page.hits] == [(h.account_no, h.rank) for h in full.hits][:limit]
    if page.exact:
        assert page.total == full.total
    else:
        assert len(page.hits) == limit <= page.total


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_and_query(), st.integers(1, 5))
def test_frequent_phrase_page_equals_the_full_ranking(case, limit):
    rows, field, query = case
    if query.strip():
        paged_like_full(rows, query if field is None else "", None if field is None else {field: query}, limit)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words_and_ranges(), st.integers(1, 5))
def test_frequent_multi_word_page_equals_the_full_ranking(case, limit):
    rows, query, capacity = case
    paged_like_full(rows, query, {"capacity_kva": capacity} if capacity else None, limit)


def test_frequent_phrase_count_is_an_estimate_that_says_so():
    rows = [{"account_no": f"{n:04d}", "name": "杭州某某有限公司" if n % 2 else "有限责任公司"} for n in range(40)]
    rows.append({"account_no": "9999", "name": "有限"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search, "CONFIRM_DIRECTLY", 0)
        page = built(rows).search("有限公司", limit=5)
        whole = built(rows).search("有限公司", limit=None)
    assert not page.exact and page.total == 20 and len(page.hits) == 5
    assert whole.exact and whole.total == 20


def test_one_character_needs_no_row_read():
    index = built([{"account_no": "1", "name": "路"}, {"account_no": "2", "name": "中山路"},
                   {"account_no": "3", "name": "路桥"}, {"account_no": "4", "name": "桥"}])
    found = index.search("", {"name": "路"})
    assert [(h.account_no, h.rank) for h in found.hits] == [
        ("1", search.EXACT), ("3", search.PREFIX), ("2", search.SUBSTRING)]
    assert found.exact and found.total == 3


def test_postings_made_in_chunks_equal_one_pass(monkeypatch):
    """The build takes customers a chunk at a time (memory); the postings must not change."""
    from bench.customers_data import customers
    from fieldsync.masterdata import postings

    rows = list(customers(3_000, 7)) + [{"account_no": "9" * 10, "name": "行长", "address": "重庆"}]
    whole = index_build.build(rows)
    monkeypatch.setattr(postings, "CHUNK_ROWS", 7)  # chunk edges fall inside names and addresses
    chunked = index_build.build(rows)
    whole.load_initials()
    chunked.load_initials()
    assert chunked.postings == whole.postings and chunked.dense == whole.dense
