"""The query page (ROOT/index.html) on a tablet, in real headless Debian chromium: portrait
800×1280 and landscape 1280×800 without horizontal scrolling, inputs a finger can hit, one card
per customer (name on its own line), a link to the customer's page and a visit command that
works as shown. Screenshots are saved under the test's tmp dir."""

from __future__ import annotations

import shlex

import pytest

from fieldsync.masterdata.store import CustomerStore
from fieldsync.views import pages

pytestmark = pytest.mark.browser

LONG_NAME = "杭州" + "超长名称测试" * 48 + "有限公司"  # 294 characters, no space to break at
CUSTOMERS = [
    {"account_no": "3300001234", "name": "杭州某某机械有限公司", "meter_no": "5100012345678", "capacity_kva": 315,
     "address": "杭州市西湖区文三路100号", "line": "文三线", "voltage": "10kV"},
    {"account_no": "3300005678", "name": "宁波港口物流有限公司", "meter_no": "5100087654321", "capacity_kva": 630,
     "address": "宁波市北仑区港口路8号", "line": "港城线", "voltage": "10kV"},
    {"account_no": "3300007777", "name": LONG_NAME, "meter_no": "51000123456789012345678901234567890",
     "capacity_kva": 50, "address": "温州市" + "很长的地址" * 30, "line": "长线", "voltage": "0.4kV"},
]
# What the page measures: horizontal overflow, the inputs, and each card's parts.
MEASURE = """() => {
  const box = e => e.getBoundingClientRect();
  const inputs = [...document.querySelectorAll('#q, [data-field]')].map(i => ({
    height: box(i).height, font: parseFloat(getComputedStyle(i).fontSize), right: box(i).right}));
  const cards = [...document.querySelectorAll('#results .card')].map(c => {
    const name = c.querySelector('.name'), dl = c.querySelector('dl');
    const meter = [...c.querySelectorAll('dt')].find(dt => dt.textContent === '表计局号').nextElementSibling;
    const text = document.createRange(); text.selectNodeContents(meter);
    const link = c.querySelector('a');
    return {account: c.getAttribute('data-account'), left: box(c).left, right: box(c).right, width: box(c).width,
            nameBottom: box(name).bottom, dlTop: box(dl).top, nameLeft: box(name).left, dlLeft: box(dl).left,
            meterWidth: text.getBoundingClientRect().width, link: link ? link.getAttribute('href') : null,
            command: c.querySelector('code').textContent};
  });
  return {scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth, inputs, cards};
}"""


@pytest.fixture
def layout_tree(tree, invoke):
    CustomerStore(tree.state_dir).replace(CUSTOMERS, "layout test")
    assert invoke("customer", "open", "3300001234").exit_code == 0  # only this one has a folder
    pages.render_root(tree)
    return tree


@pytest.mark.parametrize("width,height", [(800, 1280), (1280, 800)], ids=["portrait", "landscape"])
def test_tablet_layout(layout_tree, browser, tmp_path, width, height):
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto((layout_tree.root / "index.html").as_uri())
    page.wait_for_selector("body[data-index='1']", state="attached", timeout=60_000)
    page.click("#by-field summary")
    page.fill("#q", "有限公司")
    page.wait_for_function("document.querySelectorAll('#results .card').length === 3")
    page.screenshot(path=str(tmp_path / f"query-page-{width}x{height}.png"), full_page=True)
    found = page.evaluate(MEASURE)

    assert found["scrollWidth"] <= found["width"], "the page scrolls sideways"
    assert len(found["inputs"]) == 8
    for box in found["inputs"]:
        assert box["height"] >= 48 and box["font"] >= 16 and box["right"] <= width, box
    cards = {card["account"]: card for card in found["cards"]}
    for card in found["cards"]:
        assert 0 <= card["left"] and card["right"] <= width, card
        assert card["nameBottom"] <= card["dlTop"], "the name shares a line with the fields"
    for account in ("3300001234", "3300005678"):  # a 13-digit meter no. leaves the card's room to the rest
        assert cards[account]["meterWidth"] <= cards[account]["width"] * 0.5, cards[account]
    # the customer with a folder links to its page; the others have no link
    assert cards["3300001234"]["link"].startswith("3300001234_") and cards["3300001234"]["link"].endswith("/index.html")
    assert cards["3300005678"]["link"] is None and cards["3300007777"]["link"] is None
    page.click("[data-account='3300001234'] a")
    page.wait_for_load_state()
    assert page.url.endswith("/index.html") and "3300001234_" in page.url and "杭州某某机械" in page.content()
    context.close()


def test_visit_command_works_as_shown(layout_tree, page, invoke):
    page.goto((layout_tree.root / "index.html").as_uri())
    page.wait_for_selector("body[data-index='1']", state="attached", timeout=60_000)
    page.fill("#q", "有限公司")
    page.wait_for_function("document.querySelectorAll('#results .card').length === 3")
    commands = {account: page.text_content(f"[data-account='{account}'] code")
                for account in ("3300001234", "3300005678")}
    assert commands["3300005678"].startswith("fieldsync customer open 3300005678 && ")
    assert "customer open" not in commands["3300001234"]  # it has a folder already
    for account, command in commands.items():
        for step in command.split(" && "):
            words = shlex.split(step)
            assert words[0] == "fieldsync"
            result = invoke(*words[1:])
            assert result.exit_code == 0, (step, result.output)
        visit = layout_tree.root.glob(f"{account}_*/周期检查/计量装置/*/visit.yaml")
        assert len(list(visit)) == 1, account
    # copying: to the clipboard, or (no clipboard on this page) the command is selected
    page.click("[data-account='3300005678'] button")
    page.wait_for_function("""() => document.querySelector("[data-account='3300005678'] button").textContent === '已复制'
                              || window.getSelection().toString().startsWith('fieldsync customer open')""")
    assert page.blocked == []
