"""The daemon with a real watchdog observer: camera writes, file manager copies and moves, new
folders, bad photos, server outages, SIGTERM, and kill -9 mid-push with a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fieldsync.evidence import manifest
from fieldsync.sync.daemon import Daemon, status_path
from tests.fixtures.daemon_thread import WAIT, wait_for
from tests.fixtures.syncing import camera_photo, mirror_problems, server_root

REPO = Path(__file__).resolve().parent.parent


def on_server(cfg, path: Path) -> Path:
    return server_root(cfg) / path.relative_to(cfg.root)


def test_camera_copy_move_and_new_folder_reach_the_server(running, tmp_path):
    cfg, visit, daemon = running
    shot = camera_photo(visit / "外观" / "IMG_1.jpg")  # the camera app writes in place
    copied = visit / "铭牌" / "IMG_2.jpg"
    shutil.copyfile(camera_photo(tmp_path / "DCIM" / "IMG_2.jpg", seed=2), copied)  # file manager copy
    moved = visit / "外观" / "IMG_3.jpg"
    os.rename(camera_photo(tmp_path / "Download" / "IMG_3.jpg", seed=3), moved)  # file manager move
    fresh = visit.parent / "2026-11-25_1600" / "外观"
    fresh.mkdir(parents=True)  # a new visit made in the file manager, photos in it at once
    made = [camera_photo(fresh / f"P{i}.jpg", upright=(900, 1200), seed=i) for i in range(3)]

    for path in (shot, copied, moved, *made):
        wait_for(lambda path=path: on_server(cfg, path).exists() and not mirror_problems_for(cfg, path),
                 what=f"{path.name} on the server")
    wait_for(lambda: mirror_problems(cfg) == [], what="the mirror to settle")
    entries = manifest.current_entries(manifest.load(visit))
    assert set(entries) == {"外观/IMG_1.jpg", "铭牌/IMG_2.jpg", "外观/IMG_3.jpg"}
    status = json.loads(status_path(cfg).read_text(encoding="utf-8"))
    assert status["last_push"] and status["counts"]["failed"] == 0


def mirror_problems_for(cfg, path: Path) -> bool:
    there = on_server(cfg, path)
    return not there.exists() or there.read_bytes() != path.read_bytes()


@pytest.mark.parametrize("running", [3], indirect=True)  # retried 3 s, then quarantined
def test_bad_photo_quarantined_daemon_keeps_going(running):
    cfg, visit, daemon = running
    bad = visit / "外观" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe1 definitely not a whole jpeg")
    os.utime(bad, (time.time() - 30, time.time() - 30))
    wait_for(lambda: daemon.passes >= 2, what="a pass that saw it")
    assert bad.exists()  # it may still be being written: retried first
    wait_for(lambda: not bad.exists(), what="quarantine")
    good = camera_photo(visit / "外观" / "after.jpg")
    wait_for(lambda: on_server(cfg, good).exists(), what="the next photo")
    status = json.loads(status_path(cfg).read_text(encoding="utf-8"))
    assert status["counts"]["quarantined"] == 1
    reason = status["quarantined"][0]["reason"]
    assert "broken.jpg" in reason and ("corrupt" in reason or "not a readable image" in reason)
    assert not on_server(cfg, bad).exists()


def test_server_outage_is_waited_out(running):
    cfg, visit, daemon = running
    server = server_root(cfg)
    away = server.with_name("server-away")
    server.rename(away)  # the share drops off
    photo = camera_photo(visit / "外观" / "offline.jpg")
    wait_for(lambda: json.loads(status_path(cfg).read_text(encoding="utf-8")).get("error"),
             what="the outage in status.json")
    status = json.loads(status_path(cfg).read_text(encoding="utf-8"))
    assert status["activity"] == "offline" and status["next_retry"]
    away.rename(server)  # back: the backoff retry pushes it without any new event
    wait_for(lambda: on_server(cfg, photo).exists(), what="the retry after the outage")
    wait_for(lambda: json.loads(status_path(cfg).read_text(encoding="utf-8")).get("error") is None,
             what="status to clear")


def _daemon_process(cfg) -> subprocess.Popen:
    env = dict(os.environ, FIELDSYNC_CONFIG=str(cfg.path))
    return subprocess.Popen([sys.executable, "-c", "from fieldsync.cli import main; main()", "daemon"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _status(cfg) -> dict:
    try:
        return json.loads(status_path(cfg).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}


def test_sigterm_stops_cleanly(sync_visit):
    cfg, visit = sync_visit
    process = _daemon_process(cfg)
    try:
        wait_for(lambda: _status(cfg).get("activity") == "idle", what="daemon idle")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert _status(cfg)["activity"] == "stopped"


def test_kill_9_during_a_push_then_restart_loses_and_duplicates_nothing(sync_visit):
    cfg, visit = sync_visit
    process = _daemon_process(cfg)
    photos = []
    try:
        wait_for(lambda: _status(cfg).get("activity") == "idle", what="daemon idle")
        for i in range(12):
            photos.append(camera_photo(visit / "外观" / f"IMG_{i:03}.jpg", seed=i))
        wait_for(lambda: any(on_server(cfg, p).exists() for p in photos), what="the first upload")
        process.kill()  # SIGKILL in the middle of the batch
        process.wait(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    process = _daemon_process(cfg)
    try:
        wait_for(lambda: all(on_server(cfg, p).exists() for p in photos), what="every photo")
        wait_for(lambda: mirror_problems(cfg) == [], what="the mirror to settle")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=WAIT)
    data = manifest.load(visit)
    assert sorted(manifest.current_entries(data)) == sorted(f"外观/{p.name}" for p in photos)
    assert len(data["entries"]) == len(photos)  # each photo sealed exactly once
    assert not data["pending"]
    server_files = [p for p in (server_root(cfg) / visit.relative_to(cfg.root) / "外观").iterdir()]
    assert sorted(p.name for p in server_files) == sorted(p.name for p in photos)


def test_sync_while_the_daemon_runs_asks_it_for_a_pass(running, invoke):
    cfg, visit, daemon = running
    result = invoke("sync")  # tests/test_sync_daemon_request.py has the details
    assert result.exit_code == 0 and "asked it for a pass" in result.output
    status = json.loads(invoke("status", "--json").output)
    assert status["daemon_running"] and status["watcher"] in ("events", "polling")


def test_visit_renamed_while_the_daemon_runs_is_renamed_on_the_server(running):
    from fieldsync.tree import visits

    cfg, visit, daemon = running
    photo = camera_photo(visit / "外观" / "IMG_R.jpg")
    wait_for(lambda: on_server(cfg, photo).exists(), what="the photo on the server")
    wait_for(lambda: mirror_problems(cfg) == [], what="the mirror to settle")
    server_copy = on_server(cfg, photo)
    inode = server_copy.stat().st_ino
    new = visits.edit_visit(cfg, visit, name="2026-11-25_0930-改名")
    moved = on_server(cfg, new / "外观" / "IMG_R.jpg")
    wait_for(lambda: moved.exists() and not on_server(cfg, visit).exists(), what="the rename on the server")
    wait_for(lambda: mirror_problems(cfg) == [], what="the mirror to settle")
    assert moved.stat().st_ino == inode  # renamed, not uploaded again


def test_own_writes_skip_the_settle_wait_only_while_unchanged(sync_visit):
    from fieldsync.sync.result import SyncResult
    from fieldsync.sync.watcher import Batch

    cfg, visit = sync_visit
    photo = camera_photo(visit / "外观" / "IMG_E.jpg", upright=(600, 800))
    other = camera_photo(visit / "外观" / "IMG_F.jpg", upright=(600, 800), seed=1)
    rels = [p.relative_to(cfg.root).as_posix() for p in (photo, other)]
    daemon = Daemon(cfg)
    written = {rel: (os.stat(cfg.root / rel).st_size, os.stat(cfg.root / rel).st_mtime_ns) for rel in rels}
    daemon._expect_echo(SyncResult(wrote=written))  # as a pass that shrank both would report
    batch = daemon.watcher.changes.take(0, 0)
    assert batch.closed == set(rels)  # the echo of our own writes needs no settle wait...
    with open(other, "ab") as handle:  # ...unless someone wrote to the file since
        handle.write(b"more")
    assert daemon._closed(batch) == {rels[0]}
    assert daemon._own == {}  # each echo is used once
    assert daemon._closed(Batch(closed=set(rels))) == set(rels)  # real close-writes pass as they are
