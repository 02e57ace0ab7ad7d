"""Links planted on the share are never followed: the server index neither writes nor deletes
through them, evidence bundles leave them out, verify names them (issue 15)."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from fieldsync.errors import TreeError
from fieldsync.evidence import bundle as evidence
from fieldsync.evidence.verify import Options, layout_of, verify_tree
from fieldsync.media.thumbs import ThumbnailCache
from fieldsync.server import build
from fieldsync.server.site import SITE, THUMBS
from tests.fixtures.server_tree import CUSTOMERS, customer_folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the server tree, standing for /etc or the admin's home."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious", encoding="utf-8")
    return folder


def contents(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=target.is_dir())


@pytest.mark.parametrize("rel", [SITE, THUMBS, f"{SITE}/{customer_folder(*CUSTOMERS[0][:2])}",
                                 f"{SITE}/_assets"])
def test_index_writes_nothing_through_a_planted_link(server_tree, outside, rel):
    plant(server_tree / rel, outside)
    result = build(server_tree)
    assert contents(outside) == ["keep.txt"]
    assert (server_tree / rel).is_symlink()  # left alone
    assert any(str(server_tree / rel) in p and "symbolic link" in p for p in result.problems), result.problems
    assert (server_tree / "fieldsync.html").is_file()  # the rest is still built
    if rel != SITE:
        assert (server_tree / SITE / "index.html").is_file()


def test_index_deletes_nothing_through_a_planted_site_link(server_tree, outside):
    build(server_tree)
    gone = customer_folder(*CUSTOMERS[2][:2])
    # The tablet's account swaps the site folder for a link to the admin's files, which hold
    # a folder named like a customer's page folder; then that customer disappears.
    shutil.rmtree(server_tree / SITE)
    (outside / gone).mkdir()
    (outside / gone / "index.html").write_text("admin's file", encoding="utf-8")
    plant(server_tree / SITE, outside)
    shutil.rmtree(server_tree / gone)
    result = build(server_tree)
    assert (outside / gone / "index.html").read_text(encoding="utf-8") == "admin's file"
    assert (outside / "keep.txt").exists()
    assert any("symbolic link" in p for p in result.problems)


def test_index_refuses_a_planted_state_folder(server_tree, outside):
    plant(server_tree / ".fieldsync", outside)
    with pytest.raises(TreeError, match="symbolic link"):
        build(server_tree)
    assert contents(outside) == ["keep.txt"]


def test_thumbnails_skip_a_linked_photo(server_tree, tmp_path):
    secret = tmp_path / "secret.jpg"
    shutil.copy(next(server_tree.rglob("*.jpg")), secret)
    visit = next(p for p in server_tree.rglob("manifest.json")).parent
    kind = next(p for p in visit.iterdir() if p.is_dir())
    plant(kind / "IMG_planted.jpg", secret)
    cache = ThumbnailCache(server_tree, server_tree / THUMBS)
    rel = (kind / "IMG_planted.jpg").relative_to(server_tree).as_posix()
    assert cache.ensure(rel) is False and rel in cache.links
    assert not (server_tree / THUMBS).exists()


# --------------------------------------------------------------------------- evidence bundles

def test_bundle_leaves_a_planted_link_out(filed_visit, tmp_path, invoke):
    cfg, visit = filed_visit
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret", encoding="utf-8")
    plant(visit / "notes.txt", secret)
    plant(visit / "外观" / "IMG_9.jpg", secret)
    out = tmp_path / "ev.zip"
    result = invoke("evidence", "3300001234", "--out", out)
    assert result.exit_code in (0, 1), result.output
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert not any(n.endswith(("notes.txt", "IMG_9.jpg")) for n in names)
        assert all(b"root:$6$secret" not in archive.read(n) for n in names)
    assert "notes.txt" in result.output and "symbolic link" in result.output
    found = evidence.build_bundle(cfg.root, cfg.layout, _ledgers(cfg), "3300001234", tmp_path / "ev2.zip")
    assert any("notes.txt" in w and "symbolic link" in w for w in found.warnings)


def _ledgers(cfg) -> dict:
    from fieldsync.evidence.verify import tablet_ledgers

    return tablet_ledgers(cfg.state_dir, cfg.device)


def test_bundle_from_server_leaves_a_planted_link_out(filed_visit, tmp_path, invoke):
    from tests.test_verify import mirror

    cfg, visit = filed_visit
    server = mirror(cfg, tmp_path / "srv")
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret", encoding="utf-8")
    plant(server / visit.relative_to(cfg.root) / "notes.txt", secret)
    out = tmp_path / "srv.zip"
    result = invoke("evidence", "3300001234", "--server", server, "--out", out)
    with zipfile.ZipFile(out) as archive:
        assert all(b"root:$6$secret" not in archive.read(n) for n in archive.namelist())
    assert "notes.txt" in result.output


def test_verify_names_a_planted_link(filed_visit, tmp_path):
    cfg, visit = filed_visit
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret", encoding="utf-8")
    plant(visit / "notes.txt", secret)
    report = verify_tree(cfg.root, layout_of(cfg.root, cfg.layout), _ledgers(cfg), options=Options())
    assert not report.clean
    assert any(f.path.endswith("notes.txt") and "symbolic link" in f.message for f in report.findings)
    os.unlink(visit / "notes.txt")


@pytest.mark.timeout(60)  # the old code would wait on the FIFO until killed
def test_index_never_opens_a_planted_visit_file(server_tree, tmp_path):
    """visit.yaml -> /etc/shadow: the index stamps the link and never reads through it. The
    target here is a FIFO, which an open() would wait on forever: the build finishing at all
    proves nothing opened it (as root the old code read and hashed whatever the link named)."""
    build(server_tree)
    visit = next(p.parent for p in sorted(server_tree.rglob("visit.yaml")))
    fifo = tmp_path / "shadow"
    os.mkfifo(fifo)
    (visit / "visit.yaml").unlink()
    (visit / "visit.yaml").symlink_to(fifo)
    os.utime(visit)  # the tablet's rename moved the visit folder's mtime
    result = build(server_tree)
    assert any("symbolic link" in p and "visit.yaml" in p for p in result.problems), result.problems
    assert (server_tree / "fieldsync.html").is_file()

