"""The customer page's map in headless Debian chromium: tiles from a local tile server, the
offline no-tile fallback, and links for native map apps in the right datum."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from fieldsync.base import geo
from fieldsync.location import gps, locate
from fieldsync.views import mapview
from tests.conftest import screenshot_dir
from tests.fixtures.gps import free_port
from tests.fixtures.tiles import TILE_PATH
from tests.test_locate import ACCOUNT, customer_yaml, set_config

pytestmark = pytest.mark.browser

SITE = (30.2799, 120.1290)
LAST_FIX = (30.2750, 120.1230)  # about 790 m south-west of the site
DOCS_IMG = screenshot_dir()


def located_page(cfg, invoke, tile_url: str | None) -> Path:
    cfg = set_config(cfg, "maps", tile_url=tile_url, attribution="测试瓦片 · 127.0.0.1")
    assert invoke("customer", "open", ACCOUNT).exit_code == 0
    locate.save_last_fix(cfg, gps.Fix(*LAST_FIX, 6.0, "gps:gpsd", "2026-11-25T14:20:00+08:00"))
    result = invoke("locate", ACCOUNT, "--lat", str(SITE[0]), "--lon", str(SITE[1]), "--accuracy", "30")
    assert result.exit_code == 0, result.output
    return customer_yaml(cfg).parent / "index.html"


def test_online_tiles(tree, invoke, page, tile_server):
    url, requests = tile_server
    index = located_page(tree, invoke, url)
    html = index.read_text(encoding="utf-8")
    assert "../_assets/leaflet/leaflet.js" in html and "unpkg" not in html and "cdn" not in html.lower()
    page.goto(index.as_uri())
    page.wait_for_selector('#fieldsync-map[data-state="tiles"]')
    page.wait_for_function("document.querySelectorAll('.leaflet-tile-loaded').length >= 4")
    assert requests and all(TILE_PATH.match(r) for r in requests)
    assert page.locator(".leaflet-marker-icon").count() == 1
    assert page.locator("#fieldsync-map-offline").is_hidden()
    assert page.locator(".leaflet-control-attribution").inner_text().find("测试瓦片") >= 0
    distance = page.locator("#map-distance").inner_text()
    expected = mapview.format_distance(geo.distance_m(*LAST_FIX, *SITE))
    assert expected in distance and "东北" in distance
    assert page.blocked == []
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.locator("#location").screenshot(path=str(DOCS_IMG / "customer-map.png"))
    assert (DOCS_IMG / "customer-map.png").stat().st_size > 10_000


def test_offline_fallback_when_tiles_fail(tree, invoke, page):
    dead = f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"  # nothing listens
    index = located_page(tree, invoke, dead)
    page.goto(index.as_uri())
    page.wait_for_selector('#fieldsync-map[data-state="offline"]')
    assert page.locator("#fieldsync-map-offline").is_visible()
    assert page.locator("#fieldsync-map.no-tiles").count() == 1
    # The sketch still shows the customer, the accuracy circle and the way from the last fix.
    assert page.locator(".leaflet-marker-icon").count() == 1
    assert page.locator("path.leaflet-interactive").count() == 3
    assert page.locator("#map-coords").inner_text() == "30.279900, 120.129000"
    assert page.locator("#map-accuracy").inner_text() == "±30 m"
    assert "东北" in page.locator("#map-distance").inner_text()
    page.locator("#location").screenshot(path=str(DOCS_IMG / "customer-map-offline.png"))
    assert page.blocked == []


def test_no_tile_url_and_app_links(tree, invoke, page):
    index = located_page(tree, invoke, None)
    page.goto(index.as_uri())
    page.wait_for_selector('#fieldsync-map[data-state="offline"]')
    assert page.locator("#fieldsync-map-offline").get_attribute("data-reason") == "no-tile-url"

    geo_link = page.locator("#link-geo").get_attribute("href")
    assert geo_link.startswith("geo:30.279900,120.129000?q=30.279900,120.129000(")
    gcj = geo.wgs84_to_gcj02(*SITE)
    amap = parse_qs(urlsplit(page.locator("#link-amap").get_attribute("href")).query)
    assert amap["position"] == [f"{gcj.lon:.6f},{gcj.lat:.6f}"] and amap["coordinate"] == ["gaode"]
    assert amap["name"] == ["杭州某某机械有限公司"]
    bd = geo.wgs84_to_bd09(*SITE)
    baidu = parse_qs(urlsplit(page.locator("#link-baidu").get_attribute("href")).query)
    assert baidu["location"] == [f"{bd.lat:.6f},{bd.lon:.6f}"] and baidu["coord_type"] == ["bd09ll"]
    # Converted back, each app's point is the customer's WGS-84 position within 1 m.
    assert geo.distance_m(*geo.gcj02_to_wgs84(*map(float, reversed(amap["position"][0].split(",")))), *SITE) < 1
    assert geo.distance_m(*geo.bd09_to_wgs84(*map(float, baidu["location"][0].split(","))), *SITE) < 1
    osm = page.locator("#link-osm").get_attribute("href")
    assert "mlat=30.279900&mlon=120.129000" in osm
    assert page.blocked == []


def test_panel_works_without_leaflet_files(tree, invoke, page):
    index = located_page(tree, invoke, None)
    shutil.rmtree(tree.root / mapview.ASSETS_DIR)  # e.g. a partial copy of the tree
    page.goto(index.as_uri())
    assert page.locator("#map-coords").inner_text() == "30.279900, 120.129000"
    assert page.locator("#link-amap").is_visible()
    assert page.locator("#fieldsync-map").is_hidden()


def test_customer_without_location(tree, invoke, page):
    assert invoke("customer", "open", ACCOUNT).exit_code == 0
    index = customer_yaml(tree).parent / "index.html"
    page.goto(index.as_uri())
    assert f"fieldsync locate {ACCOUNT} --gps" in page.locator("#location").inner_text()
    assert not (tree.root / mapview.ASSETS_DIR).exists()


def test_bare_location_include_for_server_pages():
    # The server pages include _map.html.j2 with customer.yaml's location as it is.
    from fieldsync.views.pages import render_page as render_template

    bare = {"lat": 30.2799, "lon": 120.129, "accuracy_m": 8.5, "source": "gps:termux",
            "at": "2026-11-25T14:30:00+08:00", "by": "zhang.san"}
    html = render_template("_map.html.j2", map=bare)
    assert "30.279900, 120.129000" in html and "GPS (termux)" in html and "±8.5 m" in html
    assert 'id="link-amap"' in html and "leaflet.js" not in html  # no assets: panel only
    html = render_template("_map.html.j2", map={**bare, "assets": "../../_assets",
                                                 "maps": {"tile_url": "http://tiles.lan/{z}/{x}/{y}.png"}})
    assert 'src="../../_assets/leaflet/leaflet.js"' in html and "tiles.lan" in html
    # Text from data cannot end the settings <script> early.
    html = render_template("_map.html.j2", map={**bare, "assets": "a", "maps": {"attribution": "</script><b>"}})
    assert "</script><b>" not in html
    assert render_template("_map.html.j2", map={"lat": 0, "lon": 0}).count("尚未定位") == 1
