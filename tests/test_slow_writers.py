"""Complete before taken: photos written slowly, through one open file or by an app that opens,
appends and closes, arrive whole and once on the server through the real daemon (real watchdog
observer); nothing is quarantined or split, and a photo that does not decode yet is retried
with backoff without a busy loop."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from PIL import Image

from fieldsync.evidence import manifest
from fieldsync.sync.daemon import Daemon, status_path
from fieldsync.sync.scan import held_for_writing
from tests.fixtures.daemon_thread import wait_for
from tests.fixtures.syncing import camera_photo, server_root

RATE = 10_000  # bytes per second, as the slow camera


def _one_open_file(path: Path, data: bytes, chunk: int = RATE) -> None:
    # One write a second, as the camera: the file holds still for a second between.
    with open(path, "wb") as handle:
        for start in range(0, len(data), chunk):
            handle.write(data[start:start + chunk])
            handle.flush()
            time.sleep(chunk / RATE)


def _open_append_close(path: Path, data: bytes, every: float = 0.2, chunk: int = 2000) -> None:
    for start in range(0, len(data), chunk):
        with open(path, "ab") as handle:
            handle.write(data[start:start + chunk])
        time.sleep(every)


def _arrives_whole_and_once(cfg, visit: Path, photo: Path, data: bytes, daemon: Daemon) -> None:
    there = server_root(cfg) / photo.relative_to(cfg.root)
    key = "外观/" + photo.name

    def sealed():
        entries = manifest.current_entries(manifest.load(visit) or {})
        return key in entries and there.is_file() and daemon.idle.is_set()

    wait_for(sealed, what=f"{photo.name} sealed and on the server")
    entry = manifest.current_entries(manifest.load(visit))[key]
    assert entry["original_sha256"] == hashlib.sha256(data).hexdigest()  # the whole original, not its first bytes
    assert not (manifest.load(visit).get("pending") or {})
    with Image.open(there) as image:
        image.load()  # decodes to the end
    assert sorted(p.name for p in there.parent.iterdir()) == [photo.name]  # once: no fragments
    assert sorted(p.name for p in photo.parent.iterdir()) == [photo.name]
    quarantine = cfg.state_dir / "quarantine"
    assert not quarantine.exists() or not [p for p in quarantine.rglob("*") if p.is_file()]


def test_photo_written_through_one_open_file_at_10_kb_per_s(running, tmp_path):
    cfg, visit, daemon = running
    data = camera_photo(tmp_path / "camera" / "slow.jpg", upright=(2000, 1500)).read_bytes()
    photo = visit / "外观" / "slow_camera.jpg"

    _one_open_file(photo, data)

    _arrives_whole_and_once(cfg, visit, photo, data, daemon)


def test_open_append_close_writer_yields_one_photo(running, tmp_path):
    cfg, visit, daemon = running
    data = camera_photo(tmp_path / "camera" / "app.jpg", upright=(2000, 1500), seed=5).read_bytes()
    photo = visit / "外观" / "slow_app.jpg"

    _open_append_close(photo, data)

    _arrives_whole_and_once(cfg, visit, photo, data, daemon)


def test_truncated_photo_waits_with_backoff_without_busy_loop(running, tmp_path):
    cfg, visit, daemon = running
    data = camera_photo(tmp_path / "camera" / "cut.jpg", upright=(2000, 1500)).read_bytes()
    photo = visit / "外观" / "cut.jpg"
    photo.write_bytes(data[: len(data) // 2])
    key = photo.relative_to(cfg.root).as_posix()

    def shown_waiting():
        status = json.loads(status_path(cfg).read_text(encoding="utf-8")) if status_path(cfg).exists() else {}
        return key in json.dumps(status, ensure_ascii=False) and daemon.idle.is_set()

    wait_for(shown_waiting, what="status showing the photo as still being written")
    passes = daemon.passes
    time.sleep(5)
    # Backoff 1-2 s, then 2-4 s, ...: a handful of looks, not a pass every settle_seconds.
    assert daemon.passes - passes <= 4, daemon.passes - passes
    assert photo.exists() and not (cfg.state_dir / "quarantine").exists()
    assert not (server_root(cfg) / photo.relative_to(cfg.root)).exists()

    with open(photo, "ab") as handle:  # the camera finishes it after all
        handle.write(data[len(data) // 2:])
    _arrives_whole_and_once(cfg, visit, photo, data, daemon)


def test_open_file_check_costs_little(tmp_path):
    held = tmp_path / "held.jpg"
    free = tmp_path / "free.jpg"
    free.write_bytes(b"x")
    with open(held, "wb"), open(free, "rb"):
        started = time.perf_counter()
        found = held_for_writing([held, free])
        cost = time.perf_counter() - started
    print(f"held_for_writing: {cost * 1000:.1f} ms for 2 paths")
    if Path("/proc/self/fdinfo").is_dir():
        assert found == {held}  # the reader of free.jpg does not count
    else:
        assert found == set()
    assert held_for_writing([held, free]) == set()  # closed now
