"""`fieldsync server index --tablets`: one site over every chrooted tablet's tree in a share.

Each tablet account writes only SHARE/tablets/ACCOUNT/fieldsync (docs/deployment.md); the index
merges the same customer folder from several tablets into one customer page, links each visit
into its own tablet's tree, and keeps its pages in SHARE/.fieldsync/, out of every tablet's reach.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from fieldsync.server import build
from fieldsync.server.site import SITE, THUMBS, customer_page, visit_page
from tests.fixtures.server_tree import TZ, customer_folder, write_customer, write_visit

C1 = ("3300001234", "杭州某某机械有限公司")
C2 = ("3300005678", "宁波港口物流有限公司")
BUSINESS, CATEGORY = "周期检查", "高压"


def tablet_tree(share: Path, account: str) -> Path:
    tree = share / "tablets" / account / "fieldsync"
    tree.mkdir(parents=True)
    return tree


def visit_at(tree: Path, record: tuple, hour: int, **kwargs) -> Path:
    customer = write_customer(tree, record)
    return write_visit(customer, BUSINESS, CATEGORY, datetime(2026, 3, 2, hour, 0, tzinfo=TZ), **kwargs)


def rel(share: Path, path: Path) -> str:
    return path.relative_to(share).as_posix()


def test_same_customer_from_two_tablets_is_one_page_linking_into_each_tree(tmp_path, invoke):
    share = tmp_path / "share"
    a, b = tablet_tree(share, "tablet-a"), tablet_tree(share, "tablet-b")
    visit_a = visit_at(a, C1, 9, inspector="li.si", device="tablet-a")
    visit_b = visit_at(b, C1, 10, inspector="wang.wu", device="tablet-b")
    only_b = visit_at(b, C2, 11, inspector="wang.wu", device="tablet-b")

    result = invoke("server", "index", "--tablets", share)
    assert result.exit_code == 0, result.output

    c1 = customer_folder(*C1)
    page = (share / customer_page(c1)).read_text("utf-8")
    for visit in (visit_a, visit_b):
        assert (share / visit_page(rel(share, visit))).is_file()
        # The customer page links to each visit's page, whose folder link goes into its own tree.
        assert os.path.basename(visit_page(rel(share, visit))) in page
        visit_html = (share / visit_page(rel(share, visit))).read_text("utf-8")
        assert rel(share, visit).split("/", 3)[2] == "fieldsync"
        assert "tablets/" + visit.relative_to(share / "tablets").parts[0] in visit_html
    assert (share / customer_page(customer_folder(*C2))).is_file()
    assert (share / visit_page(rel(share, only_b))).is_file()
    # Thumbnails of every tablet's photos, under the share's own .fieldsync.
    for visit in (visit_a, visit_b, only_b):
        assert list((share / THUMBS / rel(share, visit)).rglob("*.*"))
    root_page = (share / SITE / "index.html").read_text("utf-8")
    assert "li.si" in root_page and "wang.wu" in root_page
    assert not (share / "fieldsync.html").exists()  # the root is root's; the site index is the entry
    # Nothing is written into any tablet's tree.
    assert not list((share / "tablets").rglob("index.html")) and not list((share / "tablets").rglob(".fieldsync"))


def test_incremental_run_sees_a_new_visit_a_new_tablet_and_a_removed_one(tmp_path):
    share = tmp_path / "share"
    a, b = tablet_tree(share, "tablet-a"), tablet_tree(share, "tablet-b")
    visit_at(a, C1, 9)
    visit_at(b, C2, 10)
    first = build(share, tablets=True)
    assert first.customers == 2 and first.visits_scanned == 2

    assert build(share, tablets=True).pages == []  # nothing changed, nothing rewritten

    later = visit_at(b, C1, 12, device="tablet-b")
    again = build(share, tablets=True)
    assert visit_page(rel(share, later)) in again.pages
    assert customer_page(customer_folder(*C1)) in again.pages
    assert again.visits_changed == 1

    c = tablet_tree(share, "tablet-c")
    newcomer = visit_at(c, C1, 14, device="tablet-c")
    third = build(share, tablets=True)
    assert visit_page(rel(share, newcomer)) in third.pages

    # A tablet's account offboarded (its tree moved away): its visits leave the site.
    (share / "tablets" / "tablet-c").rename(tmp_path / "tablet-c-archived")
    fourth = build(share, tablets=True)
    assert visit_page(rel(share, newcomer)) in fourth.removed
    assert not (share / visit_page(rel(share, newcomer))).exists()
    assert (share / visit_page(rel(share, later))).is_file()


def test_a_linked_tablet_tree_or_customer_folder_is_not_followed(tmp_path):
    share = tmp_path / "share"
    outside = tmp_path / "outside"
    visit_at(outside, C2, 8)  # a tree outside the share
    a = tablet_tree(share, "tablet-a")
    visit_at(a, C1, 9)
    (share / "tablets" / "tablet-x").mkdir()
    (share / "tablets" / "tablet-x" / "fieldsync").symlink_to(outside)
    (a / customer_folder(*C2)).symlink_to(outside / customer_folder(*C2))

    result = build(share, tablets=True)
    assert result.customers == 1
    assert not (share / customer_page(customer_folder(*C2))).exists()
    assert not list((share / SITE / "tablets").glob("tablet-x*"))


def test_report_covers_every_tablet(tmp_path, invoke):
    share = tmp_path / "share"
    visit_at(tablet_tree(share, "tablet-a"), C1, 9, inspector="li.si")
    visit_at(tablet_tree(share, "tablet-b"), C1, 10, inspector="wang.wu")
    out = tmp_path / "report.csv"
    result = invoke("server", "report", "--tablets", "--from", "2026-03-01", "--to", "2026-03-31",
                    "--out", out, share)
    assert result.exit_code == 0, result.output
    assert "2 visits" in result.output
    text = out.read_text("utf-8-sig")
    assert "li.si" in text and "wang.wu" in text


def test_publish_master_puts_the_keyring_in_every_tablet_tree_too(tmp_path):
    """The back office publishes master data and its keyring into SHARE/master; root copies both,
    read-only, into each chrooted tablet's tree, so `verify --keyring published` works there."""
    from fieldsync.masterdata import publish as masterdata

    share = tmp_path / "share"
    for account in ("insp-a", "insp-b"):
        (share / "tablets" / account / "fieldsync").mkdir(parents=True)
    source = share / masterdata.SHARE_MASTER
    (source / masterdata.REMOTE_DIR).mkdir(parents=True)
    (source / masterdata.REMOTE_DATA).write_text('{"customers": {}}', encoding="utf-8")
    (source / masterdata.REMOTE_VERSION).write_text('{"sha256": "x", "bytes": 1, "count": 0}', encoding="utf-8")
    (source / masterdata.KEYRING_DIR).mkdir(parents=True)
    (source / masterdata.REMOTE_KEYRING).write_text('{"devices": []}', encoding="utf-8")
    (source / masterdata.REMOTE_KEYRING_VERSION).write_text('{"sha256": "y"}', encoding="utf-8")
    trees = ["tablets/insp-a/fieldsync", "tablets/insp-b/fieldsync"]
    masterdata.install_in_tablets(share, trees)
    for tree in trees:
        installed = share / tree / masterdata.REMOTE_KEYRING
        assert installed.read_text(encoding="utf-8") == '{"devices": []}'
        assert oct(installed.stat().st_mode & 0o777) == "0o644"
        assert (share / tree / masterdata.REMOTE_DATA).is_file()
