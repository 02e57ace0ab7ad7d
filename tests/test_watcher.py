"""watcher.py with real watchdog observers (inotify and polling) on a real tree."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import PurePosixPath

from fieldsync.sync import engine
from fieldsync.sync.watcher import Changes, Watcher
from tests.fixtures.syncing import camera_photo

TIMEOUT = 20  # generous: a loaded machine delivers events late, never never


def _take_until(watcher: Watcher, wanted, timeout: float = TIMEOUT):
    """Collect batches until `wanted(paths, closed)` holds or nothing more arrives."""
    paths, closed = set(), set()
    for _ in range(50):
        batch = watcher.changes.take(timeout, quiet=0.1)
        if not batch:
            break
        paths |= batch.paths
        closed |= batch.closed
        if wanted(paths, closed):
            break
    return paths, closed


def test_changes_debounce_into_one_batch():
    changes = Changes()
    for name in ("a", "b", "c"):
        changes.add(PurePosixPath(name), closed=name == "b")
    batch = changes.take(timeout=1, quiet=0.05)
    assert batch.paths == {PurePosixPath("a"), PurePosixPath("b"), PurePosixPath("c")}
    assert batch.closed == {"b"}
    assert not changes.take(timeout=0, quiet=0)  # drained


def test_take_returns_on_stop():
    stop = threading.Event()
    stop.set()
    assert not Changes().take(timeout=60, quiet=1, stop=stop)


def test_camera_write_is_seen_with_close_write(sync_visit):
    cfg, visit = sync_visit
    with Watcher(cfg.root, "never") as watcher:
        assert watcher.mode == "events"
        photo = camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600))
        rel = photo.relative_to(cfg.root).as_posix()
        paths, closed = _take_until(watcher, lambda p, c: rel in c)
    assert PurePosixPath(rel) in paths
    assert rel in closed  # inotify IN_CLOSE_WRITE: the camera finished writing it


def test_file_manager_move_into_visit_is_seen(sync_visit, tmp_path):
    cfg, visit = sync_visit
    outside = camera_photo(tmp_path / "Download" / "IMG_2.jpg", upright=(800, 600))
    with Watcher(cfg.root, "never") as watcher:
        target = visit / "铭牌" / "IMG_2.jpg"
        os.rename(outside, target)
        rel = PurePosixPath(target.relative_to(cfg.root).as_posix())
        paths, _ = _take_until(watcher, lambda p, c: rel in p)
    assert rel in paths


def test_new_folder_with_files_made_before_its_watch(sync_visit):
    """mkdir -p + files at once: whatever the events say, scanning the queued folder after
    the event finds every file (the engine scans queued folders, it does not trust events)."""
    cfg, visit = sync_visit
    with Watcher(cfg.root, "never") as watcher:
        fresh = visit.parent / "2026-11-25_1500" / "外观"
        fresh.mkdir(parents=True)
        for i in range(5):
            (fresh / f"IMG_{i}.jpg").write_bytes(b"x")
        top = PurePosixPath(fresh.parent.relative_to(cfg.root).as_posix())
        paths, _ = _take_until(watcher, lambda p, c: top in p)
    assert top in paths
    found = engine.scan(cfg, paths)
    for i in range(5):
        assert (top / "外观" / f"IMG_{i}.jpg").as_posix() in found


def test_private_names_are_ignored(sync_visit):
    cfg, visit = sync_visit
    with Watcher(cfg.root, "never") as watcher:
        (visit / "外观" / ".IMG_3.jpg.fieldsync-part").write_bytes(b"temp")
        (cfg.state_dir / "scratch").write_text("state", encoding="utf-8")
        marker = visit / "外观" / "after.txt"
        marker.write_text("x", encoding="utf-8")
        rel = PurePosixPath(marker.relative_to(cfg.root).as_posix())
        paths, _ = _take_until(watcher, lambda p, c: rel in p)
    assert rel in paths
    assert not [p for p in paths if any(part.startswith(".") for part in p.parts)]


def test_polling_observer_sees_files(sync_visit):
    cfg, visit = sync_visit
    with Watcher(cfg.root, "always") as watcher:
        assert watcher.mode == "polling"
        photo = (visit / "外观" / "polled.jpg")
        photo.write_bytes(b"jpeg")
        rel = PurePosixPath(photo.relative_to(cfg.root).as_posix())
        paths, _ = _take_until(watcher, lambda p, c: rel in p)
    assert rel in paths


def test_auto_mode_keeps_events_when_they_arrive(sync_visit):
    cfg, _ = sync_visit
    with Watcher(cfg.root, "auto") as watcher:
        assert watcher.mode == "events"  # our own probe write came back as an event


def test_queue_overflow_asks_for_a_full_rescan(sync_visit):
    cfg, _ = sync_visit
    with Watcher(cfg.root, "never") as watcher:
        # What watchdog's inotify layer logs when the kernel dropped events (IN_Q_OVERFLOW).
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
        batch = watcher.changes.take(timeout=5, quiet=0)
    assert batch.full and "overflow" in batch.reasons[0]


def test_watch_limit_falls_back_to_polling(sync_visit, monkeypatch, caplog):
    """Exhausting fs.inotify.max_user_watches here would break every other process on the
    machine, so the observer's ENOSPC is injected; the fallback itself is real."""
    cfg, visit = sync_visit
    real_start = Watcher._start

    def start(self, polling):
        if not polling:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        real_start(self, polling)

    monkeypatch.setattr(Watcher, "_start", start)
    with caplog.at_level(logging.WARNING), Watcher(cfg.root, "auto") as watcher:
        assert watcher.mode == "polling"
        batch = watcher.changes.take(timeout=5, quiet=0)
        assert batch.full and "inotify" in batch.reasons[0]
    assert "switching to polling" in caplog.text


def test_stop_is_clean(sync_visit):
    cfg, _ = sync_visit
    before = threading.active_count()
    watcher = Watcher(cfg.root, "never")
    watcher.start()
    watcher.stop()
    assert watcher.mode == "stopped"
    assert threading.active_count() <= before  # no observer thread left behind


def test_overflow_is_seen_under_quiet_output(sync_visit):
    """The CLI's default output raises the root logger's level to hide library chatter; the
    watcher must still hear watchdog's overflow warning (the daemon runs with that output)."""
    from fieldsync.cli.base import setup_logging

    cfg, _ = sync_visit
    root_level = logging.getLogger().level
    setup_logging(0)
    try:
        with Watcher(cfg.root, "never") as watcher:
            logging.getLogger("watchdog.observers.inotify_c").warning(
                "Inotify queue overflowed; filesystem events were lost")
            batch = watcher.changes.take(timeout=5, quiet=0)
        assert batch.full and "overflow" in batch.reasons[0]
    finally:
        logging.getLogger().setLevel(root_level)
