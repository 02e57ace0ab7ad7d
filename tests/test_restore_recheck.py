"""Restore that tells the truth (issue 16): when the server loses files (a restore from an
older backup, a disk swap, an admin's mistake) the tablet finds out at its next recheck
(`sync --recheck-server`, or every sync.verify_server_hours) and pushes them again, photos
whose manifest is still there included; verify --server is clean afterwards."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from fieldsync.evidence import ledger
from fieldsync.sync import state as state_mod
from fieldsync.sync.daemon import Daemon
from fieldsync.tree import folders as tree_mod
from fieldsync.tree import visits
from tests.fixtures.syncing import camera_photo, mirror_problems, server_root

WAIT = 60  # seconds allowed for a condition to come true (never asserted as a speed)


def a_visit(cfg) -> Path:
    tree_mod.open_customer(cfg, "3300001234")
    tree_mod.add_category(cfg, "3300001234", "1", "计量装置")
    return visits.new_visit(cfg, "3300001234", "1", "计量装置", name="2026-11-25_0930",
                            appearance_note="柜体完好")


def on_server(cfg, path: Path) -> Path:
    return server_root(cfg) / path.relative_to(cfg.root)


def verify_server(invoke, cfg) -> list:
    result = invoke("verify", "--server", server_root(cfg), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code in (0, 1), result.output
    return report["problems"]


def pushed_with_an_old_manifest(invoke, cfg) -> tuple[Path, bytes]:
    """A visit pushed in two steps; returns it and the server's manifest after the first
    step (what last night's backup holds)."""
    visit = a_visit(cfg)
    for n in (1, 2):
        camera_photo(visit / "外观" / f"IMG_{n}.jpg", upright=(800, 600), seed=n)
    assert invoke("sync").exit_code == 0
    old_manifest = on_server(cfg, visit / "manifest.json").read_bytes()
    camera_photo(visit / "铭牌" / "IMG_3.jpg", upright=(800, 600), seed=3)
    assert invoke("sync").exit_code == 0
    assert mirror_problems(cfg) == [] and verify_server(invoke, cfg) == []
    return visit, old_manifest


def lose_files(cfg, visit: Path, old_manifest: bytes) -> None:
    """What a restore from an older backup and an admin's mistake leave on the server."""
    on_server(cfg, visit / "外观" / "IMG_1.jpg").unlink()  # gone
    with on_server(cfg, visit / "外观" / "IMG_2.jpg").open("r+b") as handle:
        handle.truncate(1000)  # cut short (a disk swap, a broken copy)
    shutil.rmtree(on_server(cfg, visit / "铭牌"))  # a folder and the photo in it
    on_server(cfg, visit / "manifest.json").write_bytes(old_manifest)  # last night's copy
    on_server(cfg, visit.parent.parent.parent / "customer.yaml").unlink()
    server_root(cfg).joinpath(ledger.remote_rel(cfg.device)).unlink()


@pytest.mark.parametrize("server", ["file", "sftp"])
def test_recheck_server_pushes_again_what_the_server_lost(server, request, invoke):
    cfg = request.getfixturevalue("tree" if server == "file" else "sftp_tree")
    visit, old_manifest = pushed_with_an_old_manifest(invoke, cfg)
    lose_files(cfg, visit, old_manifest)

    # Without a recheck the state still says "done": this is what the issue saw.
    plain = invoke("sync")
    assert plain.exit_code == 0 and "0 uploaded" in plain.stdout, plain.output
    assert mirror_problems(cfg) != []

    result = invoke("sync", "--recheck-server")
    assert result.exit_code == 0, result.output
    assert "server rechecked: 7 lost" in result.stdout, result.stdout
    for lost in ("外观/IMG_1.jpg", "外观/IMG_2.jpg", "铭牌/IMG_3.jpg", "manifest.json", "customer.yaml"):
        assert lost in result.stdout
    assert mirror_problems(cfg) == []
    assert verify_server(invoke, cfg) == []
    assert on_server(cfg, visit / "manifest.json").read_bytes() == (visit / "manifest.json").read_bytes()

    # A later remark edit pushes the remark only: nothing is "listed in the manifest but missing".
    assert invoke("visit", "edit", visit, "--appearance-note", "柜门锁已更换").exit_code == 0
    assert invoke("sync").exit_code == 0
    assert mirror_problems(cfg) == [] and verify_server(invoke, cfg) == []
    again = invoke("sync", "--recheck-server")
    assert "server rechecked" in again.stdout and "lost" not in again.stdout, again.stdout
    status = json.loads(invoke("status", "--json").stdout)
    assert status["server"]["checked_at"] is not None and status["counts"]["pending"] == 0


def test_recheck_pushes_a_photo_as_it_is_without_processing_it_again(tree, invoke):
    cfg = tree
    visit, _ = pushed_with_an_old_manifest(invoke, cfg)
    manifest_before = (visit / "manifest.json").read_bytes()
    photo = visit / "外观" / "IMG_1.jpg"
    mtime = photo.stat().st_mtime_ns
    on_server(cfg, photo).unlink()
    assert invoke("sync", "--recheck-server").exit_code == 0
    assert on_server(cfg, photo).read_bytes() == photo.read_bytes()
    assert photo.stat().st_mtime_ns == mtime  # not shrunk or sealed a second time
    assert (visit / "manifest.json").read_bytes() == manifest_before


def test_daemon_rechecks_on_its_schedule(tree, invoke):
    visit, old_manifest = pushed_with_an_old_manifest(invoke, tree)
    # The schedule forced small: a recheck is due at every full rescan (every 0.5 s here).
    cfg = dataclasses.replace(tree, sync=dataclasses.replace(tree.sync, verify_server_hours=0.5 / 3600,
                                                             rescan_seconds=0.5))
    daemon = Daemon(cfg)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not (daemon.passes >= 1 and daemon.idle.is_set()) and time.monotonic() < deadline:
            time.sleep(0.05)
        lose_files(cfg, visit, old_manifest)
        while mirror_problems(cfg) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert mirror_problems(cfg) == []
    finally:
        daemon.stop()
        thread.join(timeout=WAIT)
    assert not thread.is_alive()
    assert verify_server(invoke, cfg) == []
    last = json.loads(invoke("status", "--json").stdout)
    assert last["server"]["checked_at"] is not None


def test_verify_server_hours_zero_never_rechecks_by_itself(tree, invoke):
    visit, _ = pushed_with_an_old_manifest(invoke, tree)
    text = re.sub(r"(?m)^  verify_server_hours: .*$", "  verify_server_hours: 0", tree.path.read_text(encoding="utf-8"))
    tree.path.write_text(text, encoding="utf-8")
    on_server(tree, visit / "外观" / "IMG_1.jpg").unlink()
    with state_mod.SyncState(tree.state_dir) as state:
        state.set_meta("server_checked", 0.0)  # as if the last recheck were long ago
    assert "rechecked" not in invoke("sync").stdout
    assert "server rechecked: 1 lost" in invoke("sync", "--recheck-server").stdout


def test_recheck_never_overwrites_content_a_conflict_copy_was_kept_beside(tree, invoke):
    cfg = tree
    folder = tree_mod.open_customer(cfg, "3300001234") / "用电资料"
    (folder / "合同.txt").write_text("tablet copy", encoding="utf-8")
    theirs = on_server(cfg, folder / "合同.txt")
    theirs.parent.mkdir(parents=True)
    theirs.write_text("server content, not this tablet's", encoding="utf-8")
    assert invoke("sync").exit_code == 1  # a conflict kept: a warning
    ours = theirs.with_name("合同.conflict-tablet-07.txt")
    assert ours.read_text(encoding="utf-8") == "tablet copy"

    again = invoke("sync", "--recheck-server")
    assert "lost" not in again.stdout, again.stdout
    ours.unlink()
    again = invoke("sync", "--recheck-server")
    assert "server rechecked: 1 lost" in again.stdout, again.stdout
    assert ours.read_text(encoding="utf-8") == "tablet copy"
    assert theirs.read_text(encoding="utf-8") == "server content, not this tablet's"
