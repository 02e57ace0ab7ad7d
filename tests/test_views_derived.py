"""Pages derived from the tree: whatever changed it (file manager, CLI, import, pull, the
running daemon), the visit, customer and root pages follow (style.md, "Derived, not pushed")."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from fieldsync.base.yamlfile import read_yaml, write_yaml
from fieldsync.masterdata import importer
from fieldsync.masterdata.publish import publish
from fieldsync.masterdata.store import CustomerStore
from fieldsync.sync.daemon import Daemon
from fieldsync.sync.derive import derive
from fieldsync.transport.local import LocalTransport
from fieldsync.tree import folders, visits
from fieldsync.views.refresh import refresh
from tests.fixtures.syncing import camera_photo, server_root

WAIT = 60  # seconds allowed for a condition to come true (never asserted as a speed)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def page(folder: Path) -> str:
    return (folder / "index.html").read_text(encoding="utf-8")


def shows(folder: Path, text: str) -> bool:
    try:
        return text in page(folder)
    except FileNotFoundError:
        return False


@pytest.fixture
def opened(tree, invoke):
    """(cfg, customer folder, visit) made through the CLI, so every page exists."""
    customer = Path(invoke("customer", "open", "3300001234").stdout.strip())
    invoke("category", "add", "3300001234", "1", "计量装置")
    visit = Path(invoke("visit", "new", "3300001234", "1", "计量装置", "--name", "2026-11-25_0930").stdout.strip())
    return tree, customer, visit


def test_photo_copied_by_hand_shows_after_sync(opened, invoke, tmp_path):
    cfg, customer, visit = opened
    assert "0 张照片" in page(customer)
    shutil.copyfile(camera_photo(tmp_path / "DCIM" / "IMG_7.jpg", seed=7), visit / "外观" / "IMG_7.jpg")
    assert invoke("sync").exit_code == 0
    assert "IMG_7.jpg" in page(visit) and "IMG_7.jpg" in page(customer)
    assert "1 张照片" in page(customer)
    # the rewritten pages went up in the same pass
    there = server_root(cfg) / visit.relative_to(cfg.root)
    assert page(there) == page(visit)
    assert page(server_root(cfg) / customer.name) == page(customer)


def test_document_dropped_in_shows_on_the_customer_page(opened, invoke):
    cfg, customer, _ = opened
    (customer / "用电资料" / "供电合同.pdf").write_bytes(b"%PDF-1.4 contract")
    assert "供电合同.pdf" not in page(customer)
    assert invoke("sync").exit_code == 0
    assert "供电合同.pdf" in page(customer)


def test_import_writes_the_root_page_and_updates_open_customers(tree, invoke, tmp_path):
    customer = folders.open_customer(tree, "3300001234")  # domain call: no page, no root page
    data = read_yaml(customer / "customer.yaml")
    write_yaml(customer / "customer.yaml", {**data, "location": {"lat": 30.27, "lon": 120.12}, "note": "后门进"})
    assert not (tree.root / "index.html").exists()
    export = tmp_path / "export.csv"
    export.write_text("户号,户名,表计局号\n3300001234,杭州新名字机械有限公司,5100099999999\n"
                      "3300004444,湖州新能源科技有限公司,5100044444444\n", encoding="utf-8")
    result = invoke("customers", "import", export)
    assert result.exit_code == 0 and "imported 2 customers" in result.stdout
    assert customer.name in page(tree.root)  # the query page links the open customer
    assert (tree.root / "_query" / "manifest.js").is_file()
    record = read_yaml(customer / "customer.yaml")
    assert record["name"] == "杭州新名字机械有限公司" and record["meter_no"] == "5100099999999"
    assert record["location"] == {"lat": 30.27, "lon": 120.12} and record["note"] == "后门进"  # kept
    assert "杭州新名字机械有限公司" in page(customer) and "5100099999999" in page(customer)


def publish_renamed(cfg, tmp_path: Path) -> None:
    """The server's master data changes: an import published from another state folder (the office's)."""
    export = tmp_path / "export.csv"
    export.write_text("户号,户名,表计局号\n3300005678,宁波港新物流有限公司,5100087654321\n", encoding="utf-8")
    other = tmp_path / "other-state"
    other.mkdir()
    store = CustomerStore(other)
    store.replace(CustomerStore(cfg.state_dir).all(), "copy")
    store.merge(importer.parse(export), str(export))
    with LocalTransport(server_root(cfg)) as transport:
        publish(other, transport)


def test_pulled_master_data_updates_open_customers(tree, invoke, tmp_path):
    customer = Path(invoke("customer", "open", "3300005678").stdout.strip())
    publish_renamed(tree, tmp_path)
    result = invoke("customers", "pull")
    assert result.exit_code == 0 and "pulled new master data" in result.stdout
    assert read_yaml(customer / "customer.yaml")["name"] == "宁波港新物流有限公司"
    assert "宁波港新物流有限公司" in page(customer)
    assert (tree.root / "index.html").is_file()


def test_hand_made_visit_and_customer_get_pages(tree):
    visit = tree.root / "3300007777_手工客户" / "周期检查" / "计量装置" / "2026-12-01_0800"
    (visit / "外观").mkdir(parents=True)  # mkdir only: no customer.yaml, no visit.yaml
    camera_photo(visit / "外观" / "P1.jpg", upright=(600, 800))
    rel = visit.relative_to(tree.root)
    written = derive(tree, [rel / "外观" / "P1.jpg"]).written
    assert rel / "index.html" in written and rel.parts[0] + "/index.html" in {p.as_posix() for p in written}
    assert "P1.jpg" in page(visit) and "2026-12-01_0800" in page(visit.parents[2])
    # nothing changed: nothing written again
    assert refresh(tree, [rel / "外观" / "P1.jpg"]).written == []


def test_refresh_is_incremental(opened):
    cfg, customer, visit = opened
    other = visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-26_1000")
    before = page(visit)
    result = refresh(cfg, [other.relative_to(cfg.root) / "visit.yaml"])
    written = {p.as_posix() for p in result.written}
    assert written == {f"{other.relative_to(cfg.root).as_posix()}/index.html", f"{customer.name}/index.html"}
    assert page(visit) == before


@pytest.fixture
def running(tree, invoke):
    """(cfg, customer, visit, daemon): the real daemon (watchdog) in a thread; stopped afterwards."""
    customer = Path(invoke("customer", "open", "3300001234").stdout.strip())
    invoke("category", "add", "3300001234", "1", "计量装置")
    visit = Path(invoke("visit", "new", "3300001234", "1", "计量装置", "--name", "2026-11-25_0930").stdout.strip())
    daemon = Daemon(tree)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()
    wait_for(lambda: daemon.passes >= 1 and daemon.idle.is_set(), "the first pass")
    yield tree, customer, visit, daemon
    daemon.stop()
    thread.join(timeout=WAIT)
    assert not thread.is_alive()


def test_daemon_keeps_pages_current_after_file_manager_changes(running, tmp_path):
    cfg, customer, visit, daemon = running
    server = server_root(cfg)
    shutil.copyfile(camera_photo(tmp_path / "DCIM" / "IMG_9.jpg", seed=9), visit / "外观" / "IMG_9.jpg")
    (customer / "用电资料" / "接线图.pdf").write_bytes(b"%PDF-1.4 wiring")
    fresh = visit.parent / "2026-11-26_1400"
    fresh.mkdir()  # a visit made by hand, empty

    wait_for(lambda: shows(visit, "IMG_9.jpg"), "the visit page to show the copied photo")
    wait_for(lambda: shows(customer, "IMG_9.jpg") and shows(customer, "接线图.pdf")
             and shows(customer, "2026-11-26_1400"), "the customer page to follow")
    wait_for(lambda: shows(fresh, "2026-11-26_1400"), "a page in the hand-made visit")
    for folder in (visit, customer, fresh):  # and the server gets the pages as they are now
        there = server / folder.relative_to(cfg.root)
        wait_for(lambda there=there, folder=folder: shows(there, "") and page(there) == page(folder),
                 f"{folder.name}/index.html on the server")
    # the daemon settles: its own page writes do not start pass after pass
    wait_for(lambda: daemon.idle.is_set(), "the daemon to go idle")
    passes = daemon.passes
    time.sleep(3 * cfg.sync.settle_seconds + 1)
    assert daemon.passes - passes <= 1


def test_daemon_pull_updates_customer_record_and_page(tree, invoke, tmp_path):
    customer = Path(invoke("customer", "open", "3300005678").stdout.strip())
    publish_renamed(tree, tmp_path)
    daemon = Daemon(tree)  # pulls master data after its first (full) pass
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()
    try:
        there = server_root(tree) / customer.name
        wait_for(lambda: shows(customer, "宁波港新物流有限公司"), "the customer page to follow the pull")
        assert read_yaml(customer / "customer.yaml")["name"] == "宁波港新物流有限公司"
        wait_for(lambda: shows(there, "宁波港新物流有限公司") and page(there) == page(customer)
                 and (there / "customer.yaml").read_bytes() == (customer / "customer.yaml").read_bytes(),
                 "the server to get the new record and page")
    finally:
        daemon.stop()
        thread.join(timeout=WAIT)
    assert not thread.is_alive()
