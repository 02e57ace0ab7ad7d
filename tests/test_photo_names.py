"""One photo-name rule: whatever the engine files and seals, verify, check and evidence count.

Real parts: camera-like JPEG and MPO files, the engine pushing to a file:// server, the
verifier on both trees and a real evidence bundle.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath

import pytest

from fieldsync.evidence import ledger, manifest
from fieldsync.evidence.verify import Options, tablet_ledgers, verify_tree
from fieldsync.media.imaging import is_photo_name
from fieldsync.sync import engine
from fieldsync.tree.check import check_tree
from fieldsync.tree.layout import classify
from tests.fixtures.syncing import camera_photo, mirror_problems, server_root


@pytest.mark.parametrize(("name", "photo"), [
    ("IMG_1.jpg", True), ("IMG_1.JPEG", True), ("DSC_1.MPO", True), ("IMG_1.heic", True),
    ("IMG_1.jpg ", True), ("IMG_1.jpg.", True), ("IMG_1.jpg. ", True),
    (".IMG_1.jpg", False), (".IMG_1.jpg.fieldsync-part", False), ("IMG_1.jpg.part", False),
    ("notes.txt", False), ("jpg", False), ("", False),
])
def test_photo_name_rule(name, photo):
    assert is_photo_name(name) is photo


def test_classify_counts_only_photo_names(tree):
    layout = tree.layout
    visit = PurePosixPath("3300001234_x", "周期检查", "计量装置", "2026-11-25_0930", "外观")
    assert classify(visit / "DSC_1.MPO", layout, is_dir=False).role == "photo"
    assert classify(visit / "IMG_1.jpg ", layout, is_dir=False).role == "photo"
    assert classify(visit / "notes.txt", layout, is_dir=False).role == "misplaced"


def test_mpo_and_trailing_space_photos_verify_and_bundle(sync_visit, tmp_path, invoke):
    cfg, visit = sync_visit
    folder = visit / "外观"
    folder.mkdir(exist_ok=True)
    now = datetime.now().replace(microsecond=0)  # no "old photo" warning
    camera_photo(folder / "DSC_0001.MPO", upright=(600, 800), fmt="MPO", taken=now)
    camera_photo(folder / "IMG_0002.jpg ", upright=(600, 800), taken=now, seed=2)
    camera_photo(folder / "IMG_0003.jpg", upright=(600, 800), taken=now, seed=3)

    result = engine.sync_once(cfg)

    assert result.exit_code == 0 and result.complete and not result.quarantined, str(result)
    assert mirror_problems(cfg) == []
    sealed = manifest.current_entries(manifest.load(visit))
    assert {"外观/DSC_0001.MPO", "外观/IMG_0002.jpg ", "外观/IMG_0003.jpg"} <= set(sealed)

    tablet = verify_tree(cfg.root, cfg.layout, tablet_ledgers(cfg.state_dir, cfg.device), options=Options())
    assert tablet.findings == [] and tablet.photos == 3, [str(f) for f in tablet.findings]
    server = server_root(cfg)
    remote = verify_tree(server, cfg.layout, ledger.server_ledgers(server), options=Options())
    assert remote.findings == [] and remote.photos == 3, [str(f) for f in remote.findings]

    # check files the photos where they belong; the trailing space is only advised against.
    findings = [f for f in check_tree(cfg) if f.path.parent.name == "外观"]
    assert {f.path.name for f in findings} == {"IMG_0002.jpg "}
    assert any("not safe" in f.problem for f in findings)

    for where in ((), ("--server", str(server))):
        out = tmp_path / f"bundle{len(where)}.zip"
        bundled = invoke("evidence", "3300001234", *where, "--out", str(out))
        assert bundled.exit_code == 0, bundled.output
        assert out.is_file()
