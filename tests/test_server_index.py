"""`fieldsync server index`: pages, thumbnails, incremental rebuilds and --watch on a server tree."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from fieldsync.server import build
from fieldsync.server.site import SITE, THUMBS, customer_page, visit_page
from fieldsync.server.watch import IndexWatcher, customer_of
from tests.fixtures.server_tree import TZ, jpeg_bytes, write_visit

C1 = "3300001234_杭州某某机械有限公司"
C2 = "3300005678_宁波港口物流有限公司"
C3 = "3300009999_绍兴纺织厂"


def all_pages(root: Path) -> dict[str, int]:
    pages = {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
             for p in (root / SITE).rglob("*") if p.is_file()}
    pages["fieldsync.html"] = (root / "fieldsync.html").stat().st_mtime_ns
    return pages


def visit_rels(root: Path) -> list[str]:
    return sorted(p.parent.relative_to(root).as_posix() for p in root.glob("*/*/*/*/visit.yaml"))


@pytest.fixture(autouse=True)
def no_tablet_config(monkeypatch):
    # The server side needs no config.yaml: make sure none is found by accident.
    monkeypatch.delenv("FIELDSYNC_CONFIG", raising=False)


def test_index_writes_every_page_and_thumbnail(server_tree, invoke):
    root = server_tree
    result = invoke("server", "index", root)
    assert result.exit_code == 0, result.output
    assert "pages written" in result.output

    assert (root / "fieldsync.html").read_text("utf-8").count(".fieldsync/site/index.html") >= 1
    for folder in (C1, C2, C3):
        assert (root / customer_page(folder)).is_file()
    for rel in visit_rels(root):
        assert (root / visit_page(rel)).is_file()
    # Nothing generated lands among the mirrored files, so a tablet upload never clashes with it.
    assert not list(root.glob("*/index.html")) and not list(root.glob("*/*/*/*/index.html"))

    photos = sorted(p for p in root.glob("*/*/*/*/*/*.jpg"))
    assert len(photos) == 14
    for photo in photos:
        thumb = root / THUMBS / (photo.relative_to(root).as_posix() + ".jpg")
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= 320

    customers_js = (root / SITE / "customers.js").read_text("utf-8")
    payload = json.loads(customers_js.split("=", 1)[1].rstrip().rstrip(";"))
    assert sorted(row[1] for row in payload["rows"]) == ["3300001234", "3300005678", "3300009999"]

    visit = (root / visit_page(f"{C1}/周期检查/计量装置/2026-11-02_0930")).read_text("utf-8")
    assert "外观正常" in visit and "备注修改记录" in visit and "清单完整" in visit
    assert "zhang.san" in visit
    no_manifest = (root / visit_page(f"{C2}/周期检查/配电房/2026-11-05_0930")).read_text("utf-8")
    assert "无清单" in no_manifest and "无照片" in no_manifest
    customer = (root / customer_page(C1)).read_text("utf-8")
    assert "30.274100" in customer and "供用电合同.pdf" in customer
    root_page = (root / SITE / "index.html").read_text("utf-8")
    assert "li.si" in root_page and "tablet-12" in root_page  # per-inspector activity


def test_second_run_writes_nothing(server_tree):
    first = build(server_tree)
    assert first.full and first.visits_changed == 6
    again = build(server_tree)
    assert again.pages == [] and again.removed == [] and again.visits_changed == 0
    assert again.thumbs_made == 0


def test_new_visit_rebuilds_only_affected_pages(server_tree):
    root = server_tree
    build(root)
    before = all_pages(root)
    time.sleep(0.01)  # distinct mtimes on filesystems with coarse timestamps
    new = write_visit(root / C2, "专项检查", "电容器", datetime(2026, 11, 20, 15, 5, tzinfo=TZ), appearance=2)
    rel = new.relative_to(root).as_posix()

    result = build(root)
    assert not result.full and result.visits_changed == 1
    assert sorted(result.pages) == sorted([visit_page(rel), customer_page(C2), f"{SITE}/index.html"])
    after = all_pages(root)
    changed = {page for page in after if after[page] != before.get(page)}
    assert changed == set(result.pages)
    assert (root / THUMBS / rel / "外观").is_dir() and result.thumbs_made == 3  # 2 外观 + 1 铭牌
    assert "2026-11-20_1505" in (root / SITE / "index.html").read_text("utf-8")


def test_remark_edit_and_removal(server_tree):
    root = server_tree
    build(root)
    visit = root / C3 / "周期检查" / "计量装置" / "2026-12-12_0930"
    text = (visit / "visit.yaml").read_text("utf-8").replace("外观正常", "表箱锈蚀，已告知客户")
    tmp = visit / ".visit.yaml.fieldsync-part"
    tmp.write_text(text, "utf-8")
    os.replace(tmp, visit / "visit.yaml")
    result = build(root)
    rel = visit.relative_to(root).as_posix()
    assert visit_page(rel) in result.pages and customer_page(C3) in result.pages
    assert set(result.pages) <= {visit_page(rel), customer_page(C3), f"{SITE}/index.html"}
    assert "表箱锈蚀" in (root / visit_page(rel)).read_text("utf-8")

    import shutil

    shutil.rmtree(visit)
    result = build(root)
    assert result.removed == [visit_page(rel)]
    assert not (root / visit_page(rel)).exists() and not (root / THUMBS / rel).exists()
    assert "2026-12-12_0930" not in (root / customer_page(C3)).read_text("utf-8")


def test_full_rebuild_rewrites_pages_but_keeps_thumbnails(server_tree, invoke):
    build(server_tree)
    (server_tree / customer_page(C1)).write_text("stale", "utf-8")
    result = invoke("server", "index", "--full", server_tree)
    assert result.exit_code == 0 and "full rebuild" in result.output
    assert "杭州某某机械有限公司" in (server_tree / customer_page(C1)).read_text("utf-8")
    assert "0 thumbnails made" in result.output


def test_broken_photo_and_visit_yaml_are_warnings(server_tree, invoke):
    visit = server_tree / C1 / "周期检查" / "计量装置" / "2026-11-09_0930"
    (visit / "外观" / "broken.jpg").write_bytes(b"not a jpeg at all")
    other = server_tree / C2 / "违约用电检查" / "计量装置" / "2026-11-14_0930"
    (other / "visit.yaml").write_text("name: [unclosed\n", "utf-8")
    result = invoke("server", "index", server_tree)
    assert result.exit_code == 1
    assert "could not be read for a thumbnail" in result.stderr and "visit.yaml" in result.stderr
    assert "无法预览" in (server_tree / visit_page(visit.relative_to(server_tree).as_posix())).read_text("utf-8")


def test_event_paths_map_to_customers(tmp_path):
    (tmp_path / C1).mkdir()
    assert customer_of(tmp_path, str(tmp_path / C1 / "周期检查" / "x" / "v" / "外观" / "a.jpg")) == C1
    assert customer_of(tmp_path, str(tmp_path / C1 / "周期检查" / "x" / "v" / "外观" / ".a.jpg.fieldsync-part")) is None
    assert customer_of(tmp_path, str(tmp_path / ".fieldsync" / "site" / "index.html")) is None
    assert customer_of(tmp_path, str(tmp_path / "fieldsync.html")) is None
    assert customer_of(tmp_path, "/elsewhere/file") is None


def upload_visit_like_transport(category: Path, name: str, at: datetime) -> Path:
    """What the transport does: files under hidden temp names, each renamed into place."""
    staging = category / f".{name}.fieldsync-part"
    (staging / "外观").mkdir(parents=True)
    (staging / "铭牌").mkdir()
    category_visit = category / name
    os.rename(staging, category_visit)
    for i, folder in enumerate(("外观", "外观", "铭牌")):
        part = category_visit / folder / f".IMG_{i}.jpg.fieldsync-part"
        part.write_bytes(jpeg_bytes(taken=at))
        os.rename(part, category_visit / folder / f"IMG_{i}.jpg")
    part = category_visit / ".visit.yaml.fieldsync-part"
    part.write_text(f"name: {name}\ncreated_at: '{at.isoformat()}'\ninspector: wang.wu\ndevice: tablet-31\n"
                    "appearance_note: 新上传\nnameplate_note: ''\nhistory: []\n", "utf-8")
    os.rename(part, category_visit / "visit.yaml")
    return category_visit


def test_watch_rebuilds_when_an_upload_lands(server_tree):
    root = server_tree
    results: queue.Queue = queue.Queue()
    watcher = IndexWatcher(root, quiet=0.3, on_build=results.put, on_error=results.put)
    watcher.start()
    try:
        initial = results.get(timeout=60)
        assert initial.visits_changed == 6
        at = datetime(2026, 11, 25, 14, 30, tzinfo=TZ)
        visit = upload_visit_like_transport(root / C3 / "周期检查" / "计量装置", "2026-11-25_1430", at)
        rel = visit.relative_to(root).as_posix()
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while visit_page(rel) not in seen and time.monotonic() < deadline:
            try:
                result = results.get(timeout=1)
            except queue.Empty:
                continue
            assert not isinstance(result, Exception), result
            seen += result.pages
        assert visit_page(rel) in seen
        page = (root / visit_page(rel)).read_text("utf-8")
        assert "新上传" in page and "IMG_2.jpg" in page and "fieldsync-part" not in page
        assert all(".fieldsync-part" not in p for p in seen)
        assert (root / THUMBS / rel / "铭牌" / "IMG_2.jpg.jpg").is_file()
        assert "wang.wu" in (root / SITE / "index.html").read_text("utf-8")
    finally:
        watcher.stop()


def test_watch_command_runs_and_stops_on_sigterm(server_tree):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FIELDSYNC_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-c", "from fieldsync.cli import main; main()", "server", "index", "--watch",
                             "--quiet-seconds", "0.3", str(server_tree)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("watching"):
                break
        assert any("pages written" in line for line in lines), lines
        at = datetime(2026, 11, 26, 8, 0, tzinfo=TZ)
        visit = upload_visit_like_transport(server_tree / C1 / "专项检查" / "变压器室", "2026-11-26_0800", at)
        page = server_tree / visit_page(visit.relative_to(server_tree).as_posix())
        deadline = time.monotonic() + 60
        while not page.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_evidence_status_shows_unlisted_photos_and_broken_chains(server_tree):
    visit = server_tree / C1 / "周期检查" / "计量装置" / "2026-11-09_0930"
    (visit / "铭牌" / "IMG_extra.jpg").write_bytes(jpeg_bytes())
    other = server_tree / C1 / "周期检查" / "计量装置" / "2026-11-02_0930"
    data = json.loads((other / "manifest.json").read_text("utf-8"))
    data["entries"][0]["kind"] = "nameplate"  # an edited entry no longer matches its hash
    (other / "manifest.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    build(server_tree)
    page = (server_tree / visit_page(visit.relative_to(server_tree).as_posix())).read_text("utf-8")
    assert "清单不一致" in page and "IMG_extra.jpg" in page
    page = (server_tree / visit_page(other.relative_to(server_tree).as_posix())).read_text("utf-8")
    assert "清单不一致" in page and "哈希链问题" in page


def test_full_rebuild_still_removes_pages_of_deleted_customers(server_tree):
    import shutil

    build(server_tree)
    shutil.rmtree(server_tree / C3)
    result = build(server_tree, full=True)
    assert customer_page(C3) in result.removed
    assert not (server_tree / customer_page(C3)).exists()
    assert "绍兴纺织厂" not in (server_tree / SITE / "customers.js").read_text("utf-8")


def test_index_of_a_tree_pushed_by_the_real_engine(sync_visit):
    """End to end: the engine mirrors a tablet tree to a file:// server, the index reads it."""
    from fieldsync.sync import engine
    from tests.fixtures.syncing import camera_photo, server_root

    cfg, visit = sync_visit
    camera_photo(visit / "外观" / "IMG_0001.jpg")
    camera_photo(visit / "铭牌" / "IMG_0002.jpg", seed=3, gps=None)
    assert engine.sync_once(cfg).exit_code == 0
    server = server_root(cfg)
    result = build(server)
    assert result.problems == [] and result.thumbs_failed == 0
    rel = visit.relative_to(cfg.root).as_posix()
    page = (server / visit_page(rel)).read_text("utf-8")
    assert "清单完整" in page and "柜体完好" in page and "IMG_0002.jpg" in page
    with Image.open(server / THUMBS / rel / "外观" / "IMG_0001.jpg.jpg") as thumb:
        assert thumb.height > thumb.width  # EXIF orientation 6 applied (a portrait shot)


def backdate(root: Path, seconds: int = 3600) -> None:
    """Every file and folder of the tree (not .fieldsync) an hour old, as an idle share is."""
    then = time.time() - seconds
    for path in [root, *(p for p in root.rglob("*") if ".fieldsync" not in p.parts)]:
        os.utime(path, (then, then))


def replace_file(path: Path, data: bytes) -> None:
    """Land a file as the transport does: hidden temp name in the same folder, then rename."""
    tmp = path.parent / f".{path.name}.fieldsync-part"
    tmp.write_bytes(data)
    os.replace(tmp, path)


def add_photo_like_a_tablet(visit: Path, folder: str, name: str, data: bytes) -> None:
    """What a tablet's sync pass lands for one new photo: the photo, then the visit's
    manifest.json with an entry for it, each by temp name + rename (engine, manifests last)."""
    from tests.fixtures.server_tree import write_manifest

    replace_file(visit / folder / name, data)
    old = json.loads((visit / "manifest.json").read_text("utf-8"))["entries"]
    entries = [{k: v for k, v in e.items() if k not in ("seq", "prev", "hash")} for e in old]
    entries.append({"path": f"{folder}/{name}", "kind": "appearance",
                    "sha256": hashlib.sha256(data).hexdigest(), "inspector": "zhang.san", "device": "tablet-07"})
    staging = visit.parent / f".{visit.name}.staging" / visit.name  # hidden: not part of the tree
    staging.mkdir(parents=True)
    write_manifest(staging, entries)
    replace_file(visit / "manifest.json", (staging / "manifest.json").read_bytes())
    shutil.rmtree(staging.parent)


def test_plain_incremental_run_sees_changes_deep_in_one_visit(server_tree, monkeypatch):
    from fieldsync.server import scan

    # No "racy" grace period: what is tested here is the folder-mtime comparison alone.
    monkeypatch.setattr(scan, "RACY_NS", 0)
    root = server_tree
    backdate(root)
    assert build(root).full
    idle = build(root)
    # Nothing moved: only folders were stat'ed, no customer scanned, no visit looked at.
    assert idle.folders_checked > 20 and idle.visits_scanned == 0 and idle.pages == []

    # 1. A tablet adds a photo to one visit (the photo, then the visit's manifest.json).
    visit1 = root / C1 / "周期检查" / "计量装置" / "2026-11-09_0930"
    add_photo_like_a_tablet(visit1, "外观", "IMG_NEW_0001.jpg", jpeg_bytes(color=(200, 30, 30)))
    result = build(root)
    rel1 = visit1.relative_to(root).as_posix()
    assert not result.full and not result.deep  # photo folders were not stat'ed ...
    assert result.visits_changed == 1 and result.visits_scanned == 3  # ... yet C1 was rescanned
    assert set(result.pages) == {visit_page(rel1), customer_page(C1), f"{SITE}/index.html"}
    page = (root / visit_page(rel1)).read_text("utf-8")
    assert "IMG_NEW_0001.jpg" in page and "清单完整" in page
    assert (root / THUMBS / rel1 / "外观" / "IMG_NEW_0001.jpg.jpg").is_file()

    # 2. visit.yaml replaced by temp + rename in another customer's visit.
    visit2 = root / C3 / "周期检查" / "计量装置" / "2026-12-12_0930"
    text = (visit2 / "visit.yaml").read_text("utf-8").replace("外观正常", "表计封印缺失")
    replace_file(visit2 / "visit.yaml", text.encode())
    result = build(root)
    rel2 = visit2.relative_to(root).as_posix()
    assert result.visits_changed == 1 and visit_page(rel2) in result.pages
    assert "表计封印缺失" in (root / visit_page(rel2)).read_text("utf-8")

    # 3. A photo deleted from a third visit on the server by hand (no manifest change): only
    #    its photo folder moved, which the deep check looks at.
    visit3 = root / C2 / "违约用电检查" / "计量装置" / "2026-11-14_0930"
    gone = next((visit3 / "外观").glob("*.jpg"))
    gone.unlink()
    assert build(root).visits_changed == 0
    result = build(root, deep=True)
    rel3 = visit3.relative_to(root).as_posix()
    assert result.visits_changed == 1 and visit_page(rel3) in result.pages
    page = (root / visit_page(rel3)).read_text("utf-8")
    assert gone.name in page and "清单完整" not in page  # still listed by the manifest: now missing

    # 4. A new document and a new customer: customer page and root search data follow.
    (root / C1 / "用电资料" / "增容申请.pdf").write_bytes(b"%PDF-1.4 x\n")
    result = build(root)
    assert result.visits_changed == 0 and customer_page(C1) in result.pages
    assert "增容申请.pdf" in (root / customer_page(C1)).read_text("utf-8")
    from tests.fixtures.server_tree import write_customer

    write_customer(root, ("3300007777", "湖州新客户", "", "", "", "", ""))
    result = build(root)
    assert customer_page("3300007777_湖州新客户") in result.pages
    assert "3300007777" in (root / SITE / "customers.js").read_text("utf-8")

    # 5. A customer folder removed.
    import shutil

    shutil.rmtree(root / C3)
    result = build(root)
    assert customer_page(C3) in result.removed and not (root / customer_page(C3)).exists()
    assert build(root).visits_scanned == 0  # settled again


def test_photo_copied_in_by_hand_waits_for_the_deep_check(server_tree, monkeypatch, invoke):
    """Only the photo folder's mtime moves (no manifest.json replaced): a plain run, which
    leaves photo folders to the deep check, does not see it; --deep, and a plain run once the
    last deep check is older than DEEP_CHECK_SECONDS, do."""
    from fieldsync.server import scan, site

    monkeypatch.setattr(scan, "RACY_NS", 0)
    root = server_tree
    backdate(root)
    assert build(root).deep  # the first run scans the whole tree
    visit = root / C2 / "违约用电检查" / "计量装置" / "2026-11-14_0930"
    rel = visit.relative_to(root).as_posix()
    (visit / "铭牌" / "IMG_BY_HAND.jpg").write_bytes(jpeg_bytes(color=(10, 160, 60)))

    plain = build(root)
    assert not plain.deep and plain.visits_changed == 0 and plain.pages == []
    deep = build(root, deep=True)
    assert deep.deep and deep.folders_checked > plain.folders_checked
    assert deep.visits_changed == 1 and visit_page(rel) in deep.pages
    assert "IMG_BY_HAND.jpg" in (root / visit_page(rel)).read_text("utf-8")

    # The same through the CLI, and by itself when the last deep check is old.
    (visit / "铭牌" / "IMG_BY_HAND_2.jpg").write_bytes(jpeg_bytes(color=(10, 60, 160)))
    result = invoke("server", "index", "--deep", root)
    assert result.exit_code == 0 and "photo folders too" in result.output and "1 of 2 visits changed" in result.output
    (visit / "铭牌" / "IMG_BY_HAND_3.jpg").write_bytes(jpeg_bytes(color=(160, 60, 10)))
    assert build(root).visits_changed == 0
    monkeypatch.setattr(site, "DEEP_CHECK_SECONDS", 0)
    auto = build(root)
    assert auto.deep and auto.visits_changed == 1
    assert "IMG_BY_HAND_3.jpg" in (root / visit_page(rel)).read_text("utf-8")


def test_change_in_the_same_timestamp_tick_is_not_missed(server_tree):
    """A folder changed within the file system's timestamp tick keeps its mtime: the run right
    after a change must not trust such a recent mtime (a "racy" stamp)."""
    root = server_tree
    build(root)  # the tree was just written: every stamp is racy
    kind = root / C2 / "违约用电检查" / "计量装置" / "2026-11-14_0930" / "外观"
    before = kind.stat()
    replace_file(kind / "IMG_SAME_TICK.jpg", jpeg_bytes())
    os.utime(kind, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if in the same tick
    result = build(root)
    rel = kind.parent.relative_to(root).as_posix()
    assert result.visits_changed == 1 and visit_page(rel) in result.pages
    assert "IMG_SAME_TICK.jpg" in (root / visit_page(rel)).read_text("utf-8")
    assert build(root).visits_changed == 0  # the racy stamps compare equal while nothing changes


def second_tablet(tmp_path: Path, server: Path, inspector: str, device: str):
    """Another tablet (own tree, own config and master data) pushing to the same server."""
    from fieldsync import config as config_mod
    from fieldsync.masterdata import importer
    from fieldsync.masterdata.store import CustomerStore
    from fieldsync.tree.folders import init_root
    from tests.conftest import SAMPLE_CSV

    root = tmp_path / f"tablet-{device}"
    cfg = config_mod.load(init_root(root, config_mod.render_default(root, inspector, device, server.as_uri())))
    csv_path = tmp_path / f"customers-{device}.csv"
    csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
    CustomerStore(cfg.state_dir).merge(importer.parse(csv_path), str(csv_path))
    return cfg


def test_tablet_pages_and_server_pages_never_share_a_file(sync_visit, tmp_path):
    """Two tablets mirror their own index.html pages (the query page, the customer page) to the
    server, where the last one to push wins; the server index writes only under .fieldsync/
    and fieldsync.html, so it never overwrites theirs (nor they its), its customer page shows
    both tablets' visits, and nothing bounces back to the tablets on their next pass."""
    from fieldsync.sync import engine
    from fieldsync.tree import folders as tree_mod
    from fieldsync.tree import visits
    from fieldsync.tree.layout import PAGE_FILE
    from tests.fixtures.syncing import camera_photo, mirror_problems, server_root

    cfg_a, visit_a = sync_visit
    server = server_root(cfg_a)
    camera_photo(visit_a / "外观" / "IMG_A.jpg")
    cfg_b = second_tablet(tmp_path, server, "li.si", "tablet-12")
    tree_mod.open_customer(cfg_b, "3300001234")
    tree_mod.add_category(cfg_b, "3300001234", "1", "计量装置")
    visit_b = visits.new_visit(cfg_b, "3300001234", "1", "计量装置", name="2026-11-25_1400",
                               appearance_note="表箱锈蚀")
    camera_photo(visit_b / "铭牌" / "IMG_B.jpg", seed=7, gps=None)
    for cfg in (cfg_a, cfg_b):
        assert engine.sync_once(cfg).exit_code == 0

    customer = visit_a.parent.parent.parent.name
    tablet_pages = [PAGE_FILE, f"{customer}/{PAGE_FILE}"]
    # Each page on the server is one tablet's copy, byte for byte (the last to push it wins;
    # the engine also leaves a same-size copy it finds there in place), and only those pages
    # differ from either tablet's tree.
    for page in tablet_pages:
        assert (server / page).read_bytes() in ((cfg_a.root / page).read_bytes(), (cfg_b.root / page).read_bytes())
    for cfg in (cfg_a, cfg_b):
        assert {p.split(" ", 1)[1] for p in mirror_problems(cfg)} <= set(tablet_pages)

    def mirrored() -> dict[str, bytes]:
        return {p.relative_to(server).as_posix(): p.read_bytes() for p in server.rglob("*")
                if p.is_file() and not p.relative_to(server).parts[0].startswith(".")}

    before = mirrored()
    result = build(server)
    assert result.problems == [] and result.visits_changed == 2
    after = mirrored()
    assert set(after) - set(before) == {"fieldsync.html"}  # its entry page, a name no tablet writes
    assert {rel: data for rel, data in after.items() if rel != "fieldsync.html"} == before
    page = (server / customer_page(customer)).read_text("utf-8")
    assert visit_a.name in page and visit_b.name in page  # both tablets' visits, whoever pushed last
    mirrored_page = (server / customer / PAGE_FILE).read_text("utf-8")  # one tablet's own page
    assert (visit_a.name in mirrored_page) != (visit_b.name in mirrored_page)

    for cfg in (cfg_a, cfg_b):  # nothing the server index wrote is pulled into a tablet's pass
        again = engine.sync_once(cfg)
        assert again.exit_code == 0 and again.uploaded == 0
    assert build(server).pages == []
