"""The offline query page ROOT/index.html (P2) in real headless Debian chromium via Playwright."""

from __future__ import annotations

import json

import pytest

from bench.customers_data import customers
from fieldsync.masterdata import search
from fieldsync.masterdata.store import CustomerStore
from fieldsync.views import pages

pytestmark = pytest.mark.browser


def open_page(page, cfg):
    """The page, ready to type and with its index (_query/index.js) loaded."""
    page.goto((cfg.root / "index.html").as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=120_000, state="attached")
    page.wait_for_selector("body[data-index='1']", timeout=120_000, state="attached")


# Every match of a query on the page: through the index, or scanning every row (as before
# index.js arrives); both must equal find.
BOTH_PATHS = "([q, f, scan]) => fieldsyncQuery.search(q, f, scan).map(h => h.row[0])"


def page_answers(page, query: str, fields: dict | None = None) -> list[str]:
    indexed = page.evaluate(BOTH_PATHS, [query, fields or {}, False])
    assert page.evaluate(BOTH_PATHS, [query, fields or {}, True]) == indexed, query
    return indexed


def shown_accounts(page) -> list[str]:
    return [card.get_attribute("data-account") for card in page.locator("#results .hit").all()]


def type_query(page, text: str) -> None:
    page.fill("#q", text)
    page.wait_for_function("q => document.getElementById('q').value === q && "
                           "document.getElementById('status').hasAttribute('data-ms')", arg=text)


def test_search_box_pinyin_and_links_work_offline(tree, invoke, page):
    assert invoke("customer", "open", "3300001234").exit_code == 0
    assert (tree.root / "_query" / "manifest.js").is_file()
    open_page(page, tree)
    assert "已载入 3 户" in page.text_content("#status")
    type_query(page, "hzmm")
    assert shown_accounts(page) == ["3300001234"]
    type_query(page, "北仑")
    assert shown_accounts(page) == ["3300005678"]
    type_query(page, "没有这个客户")
    assert shown_accounts(page) == [] and "没有找到" in page.text_content("#status")
    # only customers with a folder are links; the link opens the customer's page
    type_query(page, "0000")
    assert page.locator("#results a").count() == 1
    page.click("#results a")
    page.wait_for_load_state()
    assert page.url.endswith("/index.html") and "3300001234_" in page.url
    assert page.blocked == []


def test_fields_combine(tree, page):
    pages.render_root(tree)
    open_page(page, tree)
    page.click("#by-field summary")
    page.fill("[data-field=voltage]", "10 KV")
    page.wait_for_function("() => document.querySelectorAll('#results .hit').length === 2")
    assert shown_accounts(page) == ["3300001234", "3300005678"]
    page.fill("[data-field=capacity_kva]", ">=500")
    page.wait_for_function("() => document.querySelectorAll('#results .hit').length === 1")
    assert shown_accounts(page) == ["3300005678"]


QUERIES = ["杭州", "hz", "hzxh", "hangzhou", "zhou", "xing", "hang", "长", "zhang", "chang",
           "5100", "315", "10kv", "10 KV", "35千伏", "ＡＢＣ", "区", "z", "有限公司", "rong", "[", ".*"]


def test_page_and_find_give_the_same_answers(tree, page):
    rows = list(customers(400, seed=3))
    rows.append({"account_no": "9000000001", "name": "银行长乐ABC厂", "address": "重庆市长寿区", "line": "长线"})
    CustomerStore(tree.state_dir).replace(rows, "generated")
    pages.render_root(tree)
    open_page(page, tree)
    for query in QUERIES:
        expected = [h.account_no for h in search.find(tree.state_dir, query, limit=None).hits]
        assert page_answers(page, query) == expected, query
    combined = {"name": "jx", "capacity_kva": ">=315", "voltage": "10kV"}
    expected = [h.account_no for h in search.find(tree.state_dir, "", combined, limit=None).hits]
    by_index = {str(["account_no", "name", "meter_no", "capacity_kva", "address", "line", "voltage"].index(k)): v
                for k, v in combined.items()}
    assert page_answers(page, "", by_index) == expected
    assert expected


@pytest.mark.slow
def test_hundred_thousand_customers(tree, page):
    CustomerStore(tree.state_dir).replace(customers(100_000), "generated")
    pages.render_root(tree)
    chunks = sorted(p.name for p in (tree.root / "_query").glob("customers-*.js"))
    assert len(chunks) == 10
    open_page(page, tree)
    assert "100000" in page.text_content("#status")
    type_query(page, "hzxh")
    total = search.find(tree.state_dir, "hzxh").total
    assert f"共 {total} 户" in page.text_content("#status")
    assert shown_accounts(page)[:5] == [h.account_no for h in search.find(tree.state_dir, "hzxh", limit=5).hits]
    assert json.loads(page.text_content("#folders")) == {}


SLICED = ["hangzhou", "hzxh", "有限公司", "杭州 机械", "5100", "10kV", "zhou"]


def test_sliced_search_equals_find_and_drops_stale_searches(tree, page):
    """25k customers: a search crosses the page's 10k-customer slices (and, throttled, runs in
    several slices of time) and still answers as find does; a newer input drops a search under way."""
    CustomerStore(tree.state_dir).replace(customers(25_000, seed=5), "generated")
    pages.render_root(tree)
    open_page(page, tree)
    page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 6})
    for query in SLICED:
        found = search.find(tree.state_dir, query, limit=100)
        type_query(page, query)
        assert shown_accounts(page) == [h.account_no for h in found.hits], query
        assert f"共 {found.total} 户" in page.text_content("#status"), query
    assert int(page.get_attribute("#status", "data-slices")) > 1   # hangzhou ... zhou were sliced
    # through the index no column is scanned, but for what has no pair to look up
    for query, scans in (("hangzhou", 0), ("hzxh", 0), ("有限公司", 0), ("杭州 机械", 0), ("5100", 0),
                         ("杭州市 yinhang", 0), ("长", 5), ("zhou", 3)):
        type_query(page, query)
        assert page.get_attribute("#status", "data-scans") == str(scans), query
    for query in SLICED:
        expected = [h.account_no for h in search.find(tree.state_dir, query, limit=None).hits]
        assert page_answers(page, query) == expected, query
    # a search under way for "hangzhou" is dropped when "hzxh" replaces it at once
    page.evaluate("""() => { const box = document.getElementById('q');
        box.value = 'hangzhou'; box.dispatchEvent(new Event('input'));
        setTimeout(() => { box.value = 'hzxh'; box.dispatchEvent(new Event('input')); }, 0); }""")
    page.wait_for_function("() => document.getElementById('status').getAttribute('data-query') === 'hzxh' && "
                           "document.getElementById('status').hasAttribute('data-ms')")
    page.wait_for_timeout(300)
    assert page.get_attribute("#status", "data-query") == "hzxh"
    assert shown_accounts(page) == [h.account_no for h in search.find(tree.state_dir, "hzxh", limit=100).hits]
