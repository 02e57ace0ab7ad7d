"""No page runs data (issue 15): every page kind is rendered with script-bearing values in
every field and opened in Debian chromium; any dialog, page error or script error fails, and
the payloads must show as text. Tablet pages (root query page, customer, visit), the server
index (root, customer, visit) and an evidence bundle's report.html are covered."""

from __future__ import annotations

import zipfile
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.config import Layout
from fieldsync.location import locate
from fieldsync.masterdata import importer
from fieldsync.masterdata.catalog import IndexedStore
from fieldsync.server import build
from fieldsync.server.site import SITE, customer_page, visit_page
from fieldsync.sync.derive import derive
from fieldsync.tree import folders as tree_mod
from fieldsync.tree.layout import CUSTOMER_FILE, VISIT_FILE
from tests.fixtures.evidence import SITE as PLACE
from tests.fixtures.evidence import file_photos, make_jpeg
from tests.fixtures.server_tree import TZ, write_customer, write_visit

pytestmark = pytest.mark.browser

# Names must stay valid file names: no "/" in these.
IMG = "<img src=x onerror=alert(1)>"
SVG = "\"'><svg onload=alert(2)>"
COMMENT = "<!--<script>alert(4)<"
# Free text may hold anything.
SCRIPT = "</script><script>alert(3)</script>"
ACCOUNT = "3300007777"


def hostile(tag: str) -> str:
    """A value for one field: every payload at once, tagged so the page shows which field."""
    return f"{tag}{IMG}{SVG}{SCRIPT}<!--"


def name_payload(tag: str) -> str:
    return f"{tag}{IMG}{SVG}{COMMENT}"


def open_clean(page, path: Path, ready: str | None = None) -> str:
    """Open a page; fail on any dialog, page error or console error. Returns the visible text."""
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
            and "Failed to load resource" not in m.text else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    if ready:
        page.wait_for_selector(ready, timeout=10_000)
    page.wait_for_timeout(300)  # onerror/onload handlers would fire by now
    assert dialogs == [], f"{path}: {dialogs}"
    assert errors == [], f"{path}: {errors}"
    return page.locator("body").inner_text()


# --------------------------------------------------------------------------- the tablet

HEADER = "户号,户名,表计局号,合同容量,用电地址,线路名称,供电电压等级\n"


def csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@pytest.fixture
def hostile_tablet(tree, tmp_path):
    cfg = tree
    row = [ACCOUNT, name_payload("户名"), name_payload("表号"), "315", hostile("地址"),
           hostile("线路"), hostile("电压")]
    csv_path = tmp_path / "hostile.csv"
    csv_path.write_text(HEADER + ",".join(csv_field(v) for v in row) + "\n", encoding="utf-8")
    IndexedStore(cfg.state_dir).merge(importer.parse(csv_path), str(csv_path))
    folder = tree_mod.open_customer(cfg, ACCOUNT)
    data = read_yaml(folder / CUSTOMER_FILE)
    data["location"] = {**PLACE, "accuracy_m": 10, "source": hostile("来源"), "at": hostile("时间"),
                        "by": hostile("定位人")}
    write_yaml(folder / CUSTOMER_FILE, data)
    business = cfg.layout.businesses[0]
    # Hand-made folders (the file manager allows what `fieldsync` would refuse).
    visit = folder / business / name_payload("分类") / name_payload("检查")
    for kind in cfg.layout.kind_folders.values():
        (visit / kind).mkdir(parents=True)
    write_yaml(visit / VISIT_FILE, {"appearance_note": hostile("外观备注"),
                                    "nameplate_note": hostile("铭牌备注")})
    derive(cfg, [PurePosixPath(visit.relative_to(cfg.root).as_posix())])  # completes the visit
    file_photos(cfg, visit, "appearance", [make_jpeg(tmp_path / "camera" / f"{name_payload('照片')}.jpg",
                                                     gps=PLACE)])
    docs = folder / cfg.layout.documents_folder
    docs.mkdir(exist_ok=True)
    (docs / f"{name_payload('合同')}.pdf").write_bytes(b"%PDF-1.4\n")
    locate.save_last_fix(cfg, locate.gps.Fix(PLACE["lat"] - 0.01, PLACE["lon"], 6.0, "gps", "2026-11-25T14:20:00+08:00"))
    result = derive(cfg, [PurePosixPath(visit.relative_to(cfg.root).as_posix()),
                          PurePosixPath(folder.name, CUSTOMER_FILE)], master_data_changed=True)
    assert (visit / "index.html").is_file() and (folder / "index.html").is_file(), result.problems
    return cfg, folder, visit


def test_tablet_pages_show_data_as_text(hostile_tablet, page):
    cfg, folder, visit = hostile_tablet
    text = open_clean(page, folder / "index.html", '#fieldsync-map[data-state]')
    assert IMG in text and SVG in text and SCRIPT in text
    # The map script ran under the page's CSP, and the tooltip shows the name as text. (The
    # name as stored: the CSV importer's quote handling is a defect of its own in issue 15.)
    name = read_yaml(folder / CUSTOMER_FILE)["name"]
    assert IMG in name and page.locator(".leaflet-tooltip").inner_text() == name
    assert page.locator(".leaflet-tooltip img, .leaflet-tooltip svg").count() == 0

    text = open_clean(page, visit / "index.html")
    assert name_payload("检查") in text and hostile("外观备注") in text

    text = open_clean(page, cfg.root / "index.html", 'body[data-ready="1"]')
    page.fill("#q", ACCOUNT)
    page.wait_for_selector("#results .hit")
    assert name in page.locator("#results").inner_text()
    page.wait_for_timeout(300)


def test_bundle_report_shows_data_as_text(hostile_tablet, tmp_path, invoke, page):
    cfg, folder, visit = hostile_tablet
    out = tmp_path / "ev.zip"
    result = invoke("evidence", ACCOUNT, "--out", out)
    assert out.is_file(), result.output
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "x")
    report = next((tmp_path / "x").glob("*/report.html"))
    text = open_clean(page, report)
    assert read_yaml(folder / CUSTOMER_FILE)["name"] in text and IMG in text and SCRIPT in text


# --------------------------------------------------------------------------- the server

@pytest.fixture
def hostile_server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    record = (ACCOUNT, name_payload("户名"), name_payload("表号"), "315", hostile("地址"),
              hostile("线路"), hostile("电压"))
    customer = write_customer(root, record, {**PLACE, "accuracy_m": 8, "source": hostile("来源"),
                                             "at": hostile("时间"), "by": hostile("定位人")})
    docs = customer / Layout().documents_folder
    docs.mkdir()
    (docs / f"{name_payload('合同')}.pdf").write_bytes(b"%PDF-1.4\n")
    at = datetime(2026, 11, 2, 9, 30, tzinfo=TZ)
    visit = write_visit(customer, "周期检查", name_payload("分类"), at, name=name_payload("检查"),
                        inspector=name_payload("检查员"), device=name_payload("设备"),
                        appearance_note=hostile("外观备注"), nameplate_note=hostile("铭牌备注"),
                        history=[{"at": hostile("at"), "by": hostile("by"), "field": hostile("field"),
                                  "old": hostile("old"), "new": hostile("new")}])
    photo = next((visit / "外观").iterdir())
    photo.rename(photo.with_name(f"{name_payload('照片')}.jpg"))
    write_visit(customer, "周期检查", name_payload("分类"), at + timedelta(days=1))
    result = build(root)
    return root, customer, visit, result


def test_server_pages_show_data_as_text(hostile_server, page):
    root, customer, visit, _ = hostile_server
    text = open_clean(page, root / SITE / "index.html")
    assert name_payload("检查员") in text
    page.fill("#search", ACCOUNT)
    page.wait_for_selector("#results tbody tr")
    assert name_payload("户名") in page.locator("#results").inner_text()
    page.wait_for_timeout(300)

    text = open_clean(page, root / customer_page(customer.name), '#fieldsync-map[data-state]')
    assert name_payload("户名") in text and hostile("线路") in text and name_payload("合同") in text
    assert page.locator(".leaflet-tooltip").inner_text() == name_payload("户名")

    rel = visit.relative_to(root).as_posix()
    text = open_clean(page, root / visit_page(rel))
    assert hostile("外观备注") in text and name_payload("照片") in text and hostile("new") in text
    open_clean(page, root / "fieldsync.html", "#search")


def test_every_page_carries_the_policy(hostile_tablet, hostile_server):
    cfg, folder, visit = hostile_tablet
    root = hostile_server[0]
    pages = [cfg.root / "index.html", folder / "index.html", visit / "index.html",
             root / "fieldsync.html", *(root / SITE).rglob("*.html")]
    for path in pages:
        html = path.read_text(encoding="utf-8")
        assert "Content-Security-Policy" in html and "script-src 'self' file:;" in html, path
        assert "<script>" not in html, path  # no inline script left to allow
