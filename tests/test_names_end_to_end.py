"""One rule for names (base.names.photo_name_problem): a name the engine takes is taken literally
by the manifest, verify, evidence and the server, through both transports; a name it refuses
(backslash, control characters) is left in place with "rename it" advice, never half-taken."""

from __future__ import annotations

import unicodedata
import zipfile

import pytest

from fieldsync.base.names import NAME_MAX_BYTES, fit_name, photo_name_problem
from fieldsync.evidence import manifest
from fieldsync.sync import engine
from fieldsync.transport.paths import part_name
from fieldsync.tree import folders as tree_mod
from fieldsync.tree import visits
from tests.fixtures.syncing import camera_photo, server_root

LONG = "长" * 78 + "ab.jpg"  # 240 UTF-8 bytes: its temp names used to pass 255
TRAILING_SPACE = "IMG_0002.jpg "
NFD = unicodedata.normalize("NFD", "IMG_é_0003.jpg")  # as macOS and some file managers write it
BACKSLASH = "外观\\IMG_0004.jpg"


def test_the_rule_is_one_pure_function():
    assert len(LONG.encode()) == 240
    for name in (LONG, TRAILING_SPACE, NFD, "IMG_0001.jpg", "照片 (1).jpeg"):
        assert photo_name_problem(name) is None, name
    assert "rename it" in photo_name_problem(BACKSLASH)
    assert "rename it" in photo_name_problem("IMG\t1.jpg")
    assert "rename it" in photo_name_problem("IMG\n1.jpg")


@pytest.mark.parametrize("name", [LONG, "长" * 85, "a" * 255])
def test_temp_names_fit_the_filesystem_limit(name):
    for temp in (part_name(name, "tablet-07"), fit_name(".", name, ".shrink.jpg"), fit_name("", name, "-2.jpg")):
        assert len(temp.encode()) <= NAME_MAX_BYTES
    assert part_name(name, "tablet-07").startswith(".")
    assert part_name(name, "tablet-07") == part_name(name, "tablet-07")  # fixed: a resume finds it
    assert part_name(name + "x", "tablet-07") != part_name(name, "tablet-07")  # unique


def _visit(cfg):
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    return visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_0930",
                            appearance_note="柜体完好")


@pytest.fixture(params=["local", "sftp"])
def named_tree(request):
    """(cfg, server folder) for the file:// server or the real sshd."""
    if request.param == "local":
        cfg = request.getfixturevalue("tree")
        return cfg, server_root(cfg)
    return request.getfixturevalue("sftp_tree"), request.getfixturevalue("remote_root")


def test_names_end_to_end(named_tree, invoke, tmp_path):
    cfg, server = named_tree
    visit = _visit(cfg)
    taken = [camera_photo(visit / "外观" / LONG, upright=(1500, 2000)),
             camera_photo(visit / "外观" / TRAILING_SPACE, upright=(1500, 2000), seed=2),
             camera_photo(visit / "铭牌" / NFD, upright=(1500, 2000), seed=3)]
    refused = camera_photo(visit / "铭牌" / BACKSLASH, upright=(1500, 2000), seed=4)

    result = engine.sync_once(cfg)

    assert not result.failed and not result.quarantined and not result.error, str(result)
    assert [(rel.rsplit("/", 1)[-1], "rename it" in why) for rel, why in result.refused] == [(BACKSLASH, True)]
    assert result.exit_code == 1
    assert refused.exists() and not (server / refused.relative_to(cfg.root)).exists()  # left in place
    sealed = manifest.current_entries(manifest.load(visit))
    assert sorted(sealed) == sorted(f"{p.parent.name}/{p.name}" for p in taken)  # literally, byte for byte
    for photo in taken:
        there = server / photo.relative_to(cfg.root)
        assert there.read_bytes() == photo.read_bytes()
    assert not [p for p in server.rglob("*") if p.name.endswith(".fieldsync-part")]

    # The advice followed: renamed, it is taken on the next pass.
    refused.rename(refused.with_name("IMG_0004.jpg"))
    again = engine.sync_once(cfg)
    assert again.exit_code == 0 and again.uploaded >= 2, str(again)  # the photo and its manifest

    check = invoke("verify", "--ignore-warnings")  # old EXIF times only: the names are clean
    assert check.exit_code == 0, check.output
    check = invoke("verify", "--server", server, "--ignore-warnings")
    assert check.exit_code == 0, check.output
    out = tmp_path / "bundle.zip"
    bundle = invoke("evidence", "3300001234", "--out", out)
    assert bundle.exit_code == 0, bundle.output
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    for photo in [*taken, refused.with_name("IMG_0004.jpg")]:
        assert any(n.endswith(f"{photo.parent.name}/{photo.name}") for n in names), photo.name
