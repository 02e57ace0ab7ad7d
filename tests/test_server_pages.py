"""The server pages in headless Debian chromium: search works, thumbnails load, no broken links.

Checked both from the share opened as file:// and from a static web server on loopback.
Screenshots go to docs/img/server-*.png for the deployment guide.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from fieldsync.server import build
from fieldsync.server.site import SITE, customer_page, visit_page

pytestmark = pytest.mark.browser

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
C1 = "3300001234_杭州某某机械有限公司"
VISIT = f"{C1}/周期检查/计量装置/2026-11-09_0930"

LOAD_IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = "eager"; });  // lazy images below the fold must load too
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return imgs.map(i => [i.getAttribute("src"), i.naturalWidth]);
}"""
LINKS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"


@pytest.fixture
def site(server_tree):
    result = build(server_tree)
    assert not result.problems
    return server_tree


def search(page, text: str) -> list[str]:
    page.fill("#search", text)
    return page.locator("#results tbody tr").all_inner_texts()


def test_search_finds_customers_by_any_field(site, page):
    page.goto((site / "fieldsync.html").as_uri())
    page.wait_for_url("**/.fieldsync/site/index.html")
    assert "共 3 户" in page.inner_text("#search-status")
    rows = search(page, "宁波")
    assert len(rows) == 1 and "宁波港口物流有限公司" in rows[0]
    assert len(search(page, "10kV 杭州")) == 1          # two fields combined
    assert "绍兴纺织厂" in search(page, "5100011112222")[0]  # meter no.
    assert len(search(page, "10kv")) == 2                 # case-insensitive
    assert search(page, "不存在的客户") == []
    assert "没有符合条件" in page.inner_text("#search-status")
    search(page, "3300001234")
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.fill("#search", "杭州")
    page.screenshot(path=str(DOCS_IMG / "server-root.png"), full_page=True)
    page.click("#results tbody a >> nth=1")
    page.wait_for_url("**/index.html")
    assert page.inner_text("h1") == "杭州某某机械有限公司"
    assert page.blocked == []


def crawl(page, start: str, check_link) -> dict[str, list]:
    """Every generated page reachable from `start`: its images' natural widths; links checked."""
    origin = start.split("/.fieldsync/")[0]
    seen, todo, images = set(), [start], {}
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        page.goto(url)
        images[url] = page.evaluate(LOAD_IMAGES)
        for link in page.evaluate(LINKS):
            if not link.startswith(origin):
                continue  # links that open map apps (geo:, AMap, Baidu, OSM) leave the site by design
            link = link.split("#")[0]
            assert check_link(link), f"broken link on {url}: {link}"
            if "/.fieldsync/site/" in link and link.endswith(".html"):
                todo.append(link)
    return images


def test_file_pages_thumbnails_load_and_links_resolve(site, page):
    def exists(link: str) -> bool:
        parts = urlsplit(link)
        return parts.scheme == "file" and Path(unquote(parts.path)).exists()

    images = crawl(page, (site / SITE / "index.html").as_uri(), exists)
    assert len(images) == 1 + 3 + 6  # root, customers, visits
    thumbs = [img for page_images in images.values() for img in page_images]
    assert len(thumbs) >= 14
    assert all(width > 0 for _, width in thumbs), [src for src, w in thumbs if not w]
    assert page.blocked == []

    page.goto((site / customer_page(C1)).as_uri())
    page.evaluate(LOAD_IMAGES)
    assert page.evaluate("typeof window.L") == "object"  # vendored Leaflet, loaded by relative path
    assert "30.274100" in page.inner_text("#location")
    page.screenshot(path=str(DOCS_IMG / "server-customer.png"), full_page=True)
    page.goto((site / visit_page(VISIT)).as_uri())
    page.evaluate(LOAD_IMAGES)
    assert "清单完整" in page.inner_text("#evidence")
    page.screenshot(path=str(DOCS_IMG / "server-visit.png"), full_page=True)


@pytest.fixture
def static_server(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_pages_work_from_a_static_web_server(static_server, page):
    page.goto(static_server + "fieldsync.html")
    page.wait_for_url("**/.fieldsync/site/index.html")
    assert len(search(page, "纺织")) == 1

    def served(link: str) -> bool:
        return link.startswith(static_server) and page.request.get(link).ok

    images = crawl(page, page.url, served)
    assert len(images) == 10
    assert all(width > 0 for page_images in images.values() for _, width in page_images)
    assert page.blocked == []
