"""A flapping link: the daemon pushes photos while the link drops and comes back.

Through tests/fixtures/linkmodel.py (one shared 8/20 Mbit/s link, 80 ms round trip) to the real
sshd; three times up for 5 s then down for 3 s (connections cut, new ones refused) while 20
photos arrive. Nothing may be lost or land twice, no temp file may stay behind, and status
must say offline while the link is down, then come back to idle without an error. And one
`sync` cut by a drop: the next pass resumes instead of sending the photos again.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time

import pytest
from PIL import Image

from fieldsync.sync.daemon import Daemon, status_path
from fieldsync.transport.paths import PART_SUFFIX
from tests.fixtures.daemon_thread import wait_for
from tests.fixtures.linkmodel import LinkModel

PHOTOS = 20


def small_photo(n: int, size=(640, 480)) -> bytes:
    """A JPEG (~150 KB at 640x480) already at the shrink size (the link, not the CPU, is tested)."""
    image = Image.merge("RGB", [Image.effect_noise(size, 30 + n % 5) for _ in range(3)])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture
def over_link(sync_visit, sshd, remote_root):
    cfg, visit = sync_visit
    link = LinkModel(sshd.port)
    cfg = sshd.config(remote_root, base=cfg, port=link.port)
    try:
        yield cfg, visit, link
    finally:
        link.close()


def test_photos_pushed_through_a_flapping_link_arrive_once(over_link, remote_root):
    cfg, visit, link = over_link
    daemon = Daemon(cfg)
    thread = threading.Thread(target=daemon.run, name="daemon-over-flapping-link")
    thread.start()
    seen: set[str] = set()
    watching = threading.Event()

    def watch_status() -> None:
        while not watching.is_set():
            try:
                seen.add(json.loads(status_path(cfg).read_text(encoding="utf-8"))["activity"])
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_status, daemon=True)
    try:
        wait_for(lambda: daemon.passes >= 1 and daemon.idle.is_set(), what="the first pass")
        watcher.start()
        flapper = link.flap(up_seconds=5, down_seconds=3, total_seconds=24)
        photos = {}
        for n in range(PHOTOS):
            name = f"IMG_{n:04d}.jpg"
            folder = visit / ("外观" if n % 2 else "铭牌")
            photos[folder.name + "/" + name] = data = small_photo(n)
            (folder / name).write_bytes(data)
            time.sleep(1.0)
        flapper.join()
        assert link.drops == 3
        target = remote_root / visit.relative_to(cfg.root)

        def all_there() -> bool:
            return all((target / rel).is_file() and (target / rel).stat().st_size == len(data)
                       for rel, data in photos.items())

        wait_for(all_there, timeout=240, what="every photo on the server")  # a loaded machine is slow
        wait_for(lambda: daemon.idle.is_set() and json.loads(status_path(cfg).read_text(encoding="utf-8"))
                 ["activity"] == "idle", what="the daemon idle again")
        status = json.loads(status_path(cfg).read_text(encoding="utf-8"))
    finally:
        watching.set()
        daemon.stop()
        thread.join(timeout=90)
    assert not thread.is_alive()
    on_server = sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                       if p.is_file() and p.parent.name in ("外观", "铭牌"))
    assert on_server == sorted(photos), "lost, duplicated or left-over files on the server"
    for rel, data in photos.items():
        assert (target / rel).read_bytes() == data
    assert not [p for p in remote_root.rglob(f"*{PART_SUFFIX}")], "temp files left behind"
    assert "offline" in seen, f"status never said offline while the link was down: {seen}"
    assert status["activity"] == "idle" and status["error"] is None
    assert link.connections > 1  # reconnected after the drops


def test_sync_over_the_link_resumes_after_a_drop_without_resending_the_photos(over_link, remote_root):
    """`sync` over the shared link; the link drops once mid-push: the pass stops with an error,
    the next one finishes, the server mirrors the tree, and what had reached the server before
    the drop is not sent again (resume from the temp files)."""
    from fieldsync.sync import engine
    from tests.fixtures.syncing import mirror_problems

    cfg, visit, link = over_link
    engine.sync_once(cfg)  # the tree as it was
    total = 0
    for n in range(8):
        path = visit / ("外观" if n % 2 else "铭牌") / f"IMG_{n:04d}.jpg"
        data = small_photo(n, (1200, 900))  # ~0.5 MB
        path.write_bytes(data)
        past = time.time() - 60
        os.utime(path, (past, past))
        total += len(data)
    before = link.up.sent

    def drop_midway() -> None:
        wait_for(lambda: link.up.sent - before > total // 2, what="half the photos sent")
        link.go_down()
        time.sleep(1.0)
        link.come_up()

    dropper = threading.Thread(target=drop_midway, daemon=True)
    dropper.start()
    first = engine.sync_once(cfg)
    dropper.join(timeout=90)
    assert first.error, "the drop must stop the pass"
    second = engine.sync_once(cfg)
    assert not second.error and not second.failed, str(second)
    assert mirror_problems(cfg) == []
    sent = link.up.sent - before
    # Everything once, plus SSH framing, manifests, pages, a reconnection and what was on
    # the air when the link dropped; resending the half already there would exceed this.
    assert sent < total * 1.25, (sent, total)
