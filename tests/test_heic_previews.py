"""Every photo viewable in every page (issue 19): HEIC photos are mirrored as taken, and the pages
show a JPEG thumbnail, link a JPEG preview for viewing and offer the original as a download.

Real HEIC files (pillow-heif), a real sync to a file:// server, the server index, and the pages
in headless Debian chromium.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from fieldsync.evidence import manifest
from fieldsync.media.imaging import DecodeBudget, register_heif
from fieldsync.media.preview import PREVIEW_EDGE, browser_shows, needs_preview
from fieldsync.media.thumbs import ThumbnailCache
from fieldsync.server import build
from fieldsync.server.site import PREVIEWS, THUMBS, customer_page, visit_page
from fieldsync.sync import engine
from fieldsync.views.refresh import refresh
from tests.fixtures.syncing import MARK, camera_photo, mirror_problems, server_root

pytestmark = pytest.mark.browser

LOAD_IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = "eager"; });  // lazy images below the fold must load too
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return imgs.map(i => [i.getAttribute("src"), i.naturalWidth]);
}"""
# What the page offers for each photo: the view link around the thumbnail, the download link.
PHOTO_LINKS = """() => [...document.querySelectorAll('.thumbs figure')].map(f => ({
  view: f.querySelector('a').href,
  img: !!f.querySelector('img'),
  broken: !!f.querySelector('.broken'),
  original: f.querySelector('a.original') ? f.querySelector('a.original').href : null,
  label: f.querySelector('a.original') ? f.querySelector('a.original').textContent : null,
}))"""
OPENED_IMAGE = """async () => {
  const img = document.images[0];
  if (!img) return [0, 0];
  await img.decode().catch(() => null);
  return [img.naturalWidth, img.naturalHeight];
}"""


def file_of(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(unquote(parts.path))


def images_on(page, path: Path) -> list:
    page.goto(path.as_uri())
    images = page.evaluate(LOAD_IMAGES)
    assert images, f"no <img> on {path}"
    return images


def opens_as_image(page, url: str) -> tuple[int, int]:
    """(width, height) the browser decodes when the link is opened (0, 0: it cannot show it)."""
    page.goto(url)
    return tuple(page.evaluate(OPENED_IMAGE))


def is_red(pixel) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], MARK))


def bad_heic(path: Path, good: Path) -> Path:
    """A HEIC cut in the middle of its picture data, as an interrupted copy leaves it."""
    data = good.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def synced_visit(sync_visit):
    """(cfg, visit, jpeg, heic): a JPEG and an orientation-6 HEIC photo, synced to the server."""
    cfg, visit = sync_visit
    jpeg = camera_photo(visit / "外观" / "IMG_0001.jpg", upright=(1500, 2000))
    heic = camera_photo(visit / "铭牌" / "IMG_0002.heic", upright=(3024, 4032), fmt="HEIF")
    result = engine.sync_once(cfg)
    assert result.exit_code == 0 and result.complete, str(result)
    return cfg, visit, jpeg, heic


def test_heic_is_viewable_on_the_tablet_and_server_pages_and_mirrored_as_taken(synced_visit, page, invoke):
    cfg, visit, jpeg, heic = synced_visit
    server = server_root(cfg)
    rel = visit.relative_to(cfg.root)

    # Mirrored as taken (shrunk, still HEIC), byte for byte; previews and thumbnails stay on the
    # tablet in .fieldsync/, neither pushed nor entered in the manifest.
    assert mirror_problems(cfg) == []
    with Image.open(heic) as image:
        assert image.format == "HEIF"
    preview = cfg.state_dir / "previews" / rel / "铭牌" / "IMG_0002.heic.jpg"
    assert preview.is_file() and (cfg.state_dir / "thumbs" / rel / "铭牌" / "IMG_0002.heic.jpg").is_file()
    assert not (server / ".fieldsync" / "previews").exists()
    assert not (server / ".fieldsync" / "thumbs").exists()
    assert set(manifest.current_entries(manifest.load(visit))) == {"外观/IMG_0001.jpg", "铭牌/IMG_0002.heic"}
    # The preview is an upright JPEG at display size: the red corner of the picture top left.
    with Image.open(preview) as image:
        assert image.format == "JPEG" and image.size[0] < image.size[1] <= PREVIEW_EDGE
        assert is_red(image.convert("RGB").getpixel((5, 5)))

    # The tablet's visit page: every thumbnail decodes, the HEIC opens as its preview, and its
    # original (the file in the visit folder) is offered as a download.
    assert all(width > 0 for _, width in images_on(page, visit / "index.html"))
    photos = page.evaluate(PHOTO_LINKS)
    assert len(photos) == 2 and all(p["img"] and not p["broken"] for p in photos)
    by_file = {file_of(p["view"]): p for p in photos}
    assert by_file[jpeg]["original"] is None  # a JPEG is its own view
    heic_links = by_file[preview]
    assert file_of(heic_links["original"]) == heic and heic_links["label"] == "原图 HEIC 下载"
    width, height = opens_as_image(page, heic_links["view"])
    assert 0 < width < height
    assert all(width > 0 for _, width in images_on(page, cfg.root / rel.parts[0] / "index.html"))

    # The server's pages build their own thumbnails and previews beside the mirror.
    result = build(server)
    assert not result.problems and result.thumbs_failed == 0
    server_heic = server / rel / "铭牌" / "IMG_0002.heic"
    assert server_heic.read_bytes() == heic.read_bytes()
    assert all(width > 0 for _, width in images_on(page, server / visit_page(rel.as_posix())))
    assert "清单完整" in page.inner_text("#evidence")  # the previews are not taken for photos
    photos = page.evaluate(PHOTO_LINKS)
    assert len(photos) == 2 and all(p["img"] for p in photos)
    heic_links = next(p for p in photos if p["original"])
    assert file_of(heic_links["view"]) == server / PREVIEWS / rel / "铭牌" / "IMG_0002.heic.jpg"
    assert file_of(heic_links["original"]).read_bytes() == heic.read_bytes()
    assert heic_links["label"] == "原图 HEIC 下载"
    width, height = opens_as_image(page, heic_links["view"])
    assert 0 < width < height
    jpeg_view = next(p["view"] for p in photos if not p["original"])
    assert file_of(jpeg_view).read_bytes() == jpeg.read_bytes()

    # The customer page links the preview too, never the HEIC itself.
    assert all(width > 0 for _, width in images_on(page, server / customer_page(rel.parts[0])))
    views = page.evaluate("() => [...document.querySelectorAll('.thumbs a')].map(a => a.href)")
    assert len(views) == 2 and not [v for v in views if v.endswith(".heic")]
    # The tablet's own pages, mirrored to a single server tree, find the server's previews.
    assert all(width > 0 for _, width in images_on(page, server / rel / "index.html"))
    assert page.blocked == []
    # The evidence is the photos as mirrored: no preview is taken for a photo, on either side.
    for where in ((), ("--server", server)):
        result = invoke("verify", "--json", "--no-gps-warning", *where)
        report = json.loads(result.stdout)
        assert result.exit_code in (0, 1) and report["problems"] == [], report["problems"]


def test_previews_of_deleted_photos_go(synced_visit):
    cfg, visit, jpeg, heic = synced_visit
    server = server_root(cfg)
    rel = visit.relative_to(cfg.root)
    build(server)
    derived = [cfg.state_dir / kind / rel / "铭牌" / "IMG_0002.heic.jpg" for kind in ("thumbs", "previews")]
    derived += [server / kind / rel / "铭牌" / "IMG_0002.heic.jpg" for kind in (THUMBS, PREVIEWS)]
    assert all(path.is_file() for path in derived)
    heic.unlink()
    (server / rel / "铭牌" / "IMG_0002.heic").unlink()
    refresh(cfg, [heic.relative_to(cfg.root)])
    build(server, full=True)
    assert not [path for path in derived if path.exists()]
    assert (server / THUMBS / rel / "外观" / "IMG_0001.jpg.jpg").is_file()  # the others stay


def test_a_broken_heic_is_a_placeholder_on_the_tablet_page(sync_visit, page, tmp_path):
    cfg, visit = sync_visit
    good = camera_photo(visit / "铭牌" / "good.heic", upright=(900, 1200), fmt="HEIF")
    bad_heic(visit / "铭牌" / "cut.heic", camera_photo(tmp_path / "whole.heic", fmt="HEIF", upright=(900, 1200)))
    result = refresh(cfg, [good.relative_to(cfg.root)])
    assert result.problems == [] and visit.relative_to(cfg.root) / "index.html" in result.written

    assert all(width > 0 for _, width in images_on(page, visit / "index.html"))
    photos = {file_of(p["original"]).name: p for p in page.evaluate(PHOTO_LINKS)}
    assert photos["cut.heic"]["broken"] and not photos["cut.heic"]["img"]
    assert photos["good.heic"]["img"] and not photos["good.heic"]["broken"]
    assert opens_as_image(page, photos["good.heic"]["view"])[0] > 0


def test_a_broken_heic_is_a_placeholder_on_the_server_page_until_it_is_whole(tmp_path, page):
    """Photos put on the server without fieldsync: a cut HEIC, a HEIC named .jpg, a PNG."""
    server = tmp_path / "server"
    visit = server / "3300001234_杭州某某机械有限公司" / "周期检查" / "计量装置" / "2026-11-25_0930"
    whole = camera_photo(tmp_path / "whole.heic", upright=(900, 1200), fmt="HEIF")
    cut = bad_heic(visit / "铭牌" / "cut.heic", whole)
    camera_photo(visit / "铭牌" / "named.jpg", upright=(800, 600), orientation=1, fmt="HEIF")
    camera_photo(visit / "外观" / "plain.png", upright=(640, 480), orientation=1, fmt="PNG")
    rel = visit.relative_to(server).as_posix()

    result = build(server)
    assert result.thumbs_failed == 1 and result.thumbs_made == 2
    assert all(width > 0 for _, width in images_on(page, server / visit_page(rel)))
    photos = {Path(unquote(urlsplit(p["original"] or p["view"]).path)).name: p
              for p in page.evaluate(PHOTO_LINKS)}
    assert photos["cut.heic"]["broken"] and file_of(photos["cut.heic"]["original"]) == cut
    assert photos["named.jpg"]["label"] == "原图 HEIC 下载"  # read from its bytes, not its name
    assert opens_as_image(page, photos["named.jpg"]["view"]) == (800, 600)
    assert photos["plain.png"]["original"] is None and file_of(photos["plain.png"]["view"]).suffix == ".png"
    assert not (server / PREVIEWS / rel / "外观").exists()  # browsers show PNG as it is

    # The whole file arrives: the next build makes its thumbnail and preview.
    cut.write_bytes(whole.read_bytes())
    os.utime(cut, ns=(cut.stat().st_atime_ns, cut.stat().st_mtime_ns + 10**9))
    result = build(server, full=True)
    assert result.thumbs_failed == 0 and result.thumbs_made == 1
    assert all(width > 0 for _, width in images_on(page, server / visit_page(rel)))
    assert not [p for p in page.evaluate(PHOTO_LINKS) if p["broken"]]
    assert (server / THUMBS / rel / "铭牌" / "cut.heic.jpg").is_file()


def test_previews_are_never_written_through_a_planted_link(tmp_path):
    server = tmp_path / "server"
    outside = tmp_path / "outside"
    outside.mkdir()
    visit = server / "3300001234_某某" / "周期检查" / "计量装置" / "2026-11-25_0930"
    camera_photo(visit / "铭牌" / "a.heic", upright=(600, 800), fmt="HEIF")
    (server / PREVIEWS).parent.mkdir(parents=True)
    (server / PREVIEWS).symlink_to(outside, target_is_directory=True)
    result = build(server)
    assert list(outside.iterdir()) == []
    assert any("symbolic link" in p and str(server / PREVIEWS) in p for p in result.problems), result.problems
    assert (server / THUMBS / visit.relative_to(server) / "铭牌" / "a.heic.jpg").is_file()


class RecordingBudget(DecodeBudget):
    def __init__(self, total_bytes: int):
        super().__init__(total_bytes)
        self.admitted: list[int] = []

    def admit(self, nbytes: int):
        self.admitted.append(nbytes)
        return super().admit(nbytes)


def test_previews_decode_inside_the_budget_and_refuse_bombs(tmp_path):
    camera_photo(tmp_path / "root" / "v" / "a.heic", upright=(1200, 1600), fmt="HEIF")
    budget = RecordingBudget(64 * 1024 * 1024)
    cache = ThumbnailCache(tmp_path / "root", tmp_path / "root" / ".t", tmp_path / "root" / ".p", budget)
    assert cache.ensure("v/a.heic") and cache.previews == {"v/a.heic": True}
    assert budget.admitted == [2 * 1200 * 1600 * 4]  # one decode for thumbnail and preview
    assert cache.ensure("v/a.heic") and budget.admitted == [2 * 1200 * 1600 * 4]  # fresh: no decode

    small = ThumbnailCache(tmp_path / "root", tmp_path / "s" / ".t", tmp_path / "s" / ".p",
                           RecordingBudget(0), max_pixels=1_000_000)
    assert not small.ensure("v/a.heic") and small.previews == {"v/a.heic": False}
    assert small.budget.admitted == []  # refused from the header, nothing decoded


def test_what_browsers_show_is_read_from_the_bytes(tmp_path):
    register_heif()
    for fmt, shown in (("JPEG", True), ("PNG", True), ("WEBP", True), ("GIF", True), ("HEIF", False)):
        path = tmp_path / f"x.{fmt.lower()}"
        Image.new("RGB", (16, 16), (1, 2, 3)).save(path, fmt)
        assert browser_shows(path.read_bytes()[:12]) is shown, fmt
        assert needs_preview(str(path)) is not shown
    assert not needs_preview(str(tmp_path / "missing.heic"))
