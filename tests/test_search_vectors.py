"""docs/search.md's rules as one set of vectors (tests/data/search_vectors.json), run against
`fieldsync find` (the Python search and the CLI) and, in real headless Debian chromium, against
the tablet's query page and the server's page: the same query gives the same customers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fieldsync.demo import sample_csv_path
from fieldsync.errors import BadInput
from fieldsync.masterdata import importer, search
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.masterdata.publish import REMOTE_DIR
from fieldsync.masterdata.store import CustomerStore
from fieldsync.server import site
from fieldsync.views import pages

VECTORS = json.loads((Path(__file__).parent / "data" / "search_vectors.json").read_text(encoding="utf-8"))
OPTIONS = {"account_no": "--account", "name": "--name", "meter_no": "--meter", "capacity_kva": "--capacity",
           "address": "--address", "line": "--line", "voltage": "--voltage"}
ERROR_HINTS = {"capacity": ">=N", "voltage": "10kV"}  # the accepted forms, named in the error
# On a page: sorted accounts of the matches, or "error" when the query is refused.
PAGE_PROBE = """([api, v, scan]) => { try { return window[api].search(v.query, v.fields || {}, scan).map(h => h.row[%d]).sort(); }
                               catch (e) { return "error"; } }"""


def expected(vector: dict):
    return "error" if "error" in vector else vector["expect"]


@pytest.fixture
def vector_tree(tree):
    IndexedStore(tree.state_dir).replace(VECTORS["customers"], "search_vectors.json")
    return tree


def test_vectors_in_python(vector_tree):
    for vector in VECTORS["vectors"]:
        try:
            hits = search.find(vector_tree.state_dir, vector["query"], vector.get("fields"), limit=None).hits
            got = sorted(h.account_no for h in hits)
        except BadInput:
            got = "error"
        assert got == expected(vector), vector


def test_vectors_on_the_command_line(vector_tree, invoke):
    """TEXT unquoted (`find 杭州 机械`), a field given twice is repeated (--capacity A --capacity B)."""
    for vector in VECTORS["vectors"]:
        args = ["find", *vector["query"].split(), "--limit", "0", "--json"]
        for field, values in (vector.get("fields") or {}).items():
            for value in [values] if isinstance(values, str) else values:
                args += [OPTIONS[field], value]
        result = invoke(*args)
        if "error" in vector:
            assert result.exit_code == 2, vector
            assert result.stderr.startswith("Error: ") and ERROR_HINTS[vector["error"]] in result.stderr, vector
            assert result.stdout == ""
        else:
            assert result.exit_code == 0, (vector, result.stderr)
            got = sorted(row["account_no"] for row in json.loads(result.stdout)["results"])
            assert got == vector["expect"], vector


def test_long_values_are_cut_in_the_table_not_in_json(vector_tree, invoke):
    long_name = "杭州" + "很长的名字" * 57 + "尾"
    rows = VECTORS["customers"] + [{"account_no": "3300008888", "name": long_name, "voltage": "10kV"}]
    IndexedStore(vector_tree.state_dir).replace(rows, "long")
    table = invoke("find", "杭州", "--limit", "0")
    assert table.exit_code == 0
    widest = max(len(line) for line in table.stdout.splitlines())
    assert widest < 200 and "…" in table.stdout and long_name not in table.stdout
    short = invoke("find", "杭州长乐").stdout.splitlines()
    assert max(len(line) for line in short) < 200
    data = json.loads(invoke("find", "杭州", "--limit", "0", "--json").stdout)
    assert long_name in [row["name"] for row in data["results"]]


@pytest.mark.browser
def test_vectors_on_the_tablets_query_page(vector_tree, page):
    pages.render_root(vector_tree)
    page.goto((vector_tree.root / "index.html").as_uri())
    page.wait_for_selector("body[data-index='1']", timeout=60_000, state="attached")
    for vector in VECTORS["vectors"]:
        # through the index (_query/index.js), and scanning every row as before it arrives
        for scan in (False, True):
            assert page.evaluate(PAGE_PROBE % 0, ["fieldsyncQuery", vector, scan]) == expected(vector), vector
    # what a person sees: a malformed value says so in the status line
    page.click("#by-field summary")
    page.fill("[data-field=capacity_kva]", "abc")
    page.wait_for_function("document.getElementById('status').textContent.includes('输入有误')")
    assert page.locator("#results .hit").count() == 0
    assert page.blocked == []


@pytest.mark.browser
def test_vectors_on_the_servers_page(tmp_path, page):
    """The server searches every customer of the published master data, folders or not."""
    server = tmp_path / "server"
    CustomerStore(server / REMOTE_DIR).replace(VECTORS["customers"], "published")
    site.build(server)
    page.goto((server / site.SITE / "index.html").as_uri())
    page.wait_for_function("window.fieldsyncServerSearch !== undefined")
    assert "共 7 户" in page.inner_text("#search-status")
    for vector in VECTORS["vectors"]:
        assert page.evaluate(PAGE_PROBE % 1, ["fieldsyncServerSearch", vector]) == expected(vector), vector
    page.fill("#search", "hangzhou")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 2")
    page.fill("#search", ">=abc 10kV")  # no capacity word: matches as text, finds nothing
    page.wait_for_function("document.getElementById('search-status').textContent.includes('没有符合')")
    assert page.blocked == []


def test_readme_example_on_the_demo_data(tmp_path):
    """README: `fieldsync find hz jx` finds the demo's 杭州某某机械; initials are a contiguous run."""
    IndexedStore(tmp_path).merge(importer.parse(sample_csv_path()), "demo")
    for query in ("hz jx", "hzmmjx", "杭州 机械"):
        assert [h.account_no for h in search.find(tmp_path, query).hits] == ["3300001234"], query
    assert search.find(tmp_path, "hzjx").total == 0


def test_server_search_data_follows_the_published_master_data(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    site.build(server)
    data = server / site.SITE / site.CUSTOMERS_SCRIPT
    assert "杭州长乐银行" not in data.read_text("utf-8")
    CustomerStore(server / REMOTE_DIR).replace(VECTORS["customers"], "published")
    site.build(server)  # no folder changed: the new master data alone rewrites the search data
    assert "杭州长乐银行" in data.read_text("utf-8") and '"yin' in data.read_text("utf-8")
    (server / REMOTE_DIR / "customers.json").write_text("{not json", encoding="utf-8")
    result = site.build(server)
    assert any("unreadable master data" in p for p in result.problems)
    assert "杭州长乐银行" not in data.read_text("utf-8")
