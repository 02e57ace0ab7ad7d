"""`fieldsync server index --watch --tablets`: the watcher over a share of chrooted tablets.

A real watchdog observer on SHARE/tablets: an upload in one tablet's tree rebuilds that customer's
page (merged over every tablet), a new tablet's tree is picked up, and the chroot's dev/log and the
share's own output are no events at all.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from fieldsync.server.site import SITE, visit_page
from fieldsync.server.watch import EVERY, IndexWatcher, tablet_customer_of
from tests.fixtures.server_tree import TZ, write_customer, write_visit

C1 = ("3300001234", "杭州某某机械有限公司")
C2 = ("3300005678", "宁波港口物流有限公司")
WAIT = 60  # seconds allowed for a page to appear (never asserted as a speed)


def tablet_tree(share: Path, account: str) -> Path:
    tree = share / "tablets" / account / "fieldsync"
    tree.mkdir(parents=True, exist_ok=True)
    return tree


def visit_at(tree: Path, record: tuple, hour: int) -> Path:
    customer = write_customer(tree, record)
    return write_visit(customer, "周期检查", "高压", datetime(2026, 3, 2, hour, 0, tzinfo=TZ))


def wait_for_page(results: queue.Queue, page: str) -> None:
    deadline = time.monotonic() + WAIT
    seen: list[str] = []
    while page not in seen and time.monotonic() < deadline:
        try:
            result = results.get(timeout=1)
        except queue.Empty:
            continue
        assert not isinstance(result, Exception), result
        seen += result.pages
    assert page in seen


def test_event_paths_map_to_the_customer_across_tablets(tmp_path):
    tablets = tmp_path / "tablets"
    tree = tablet_tree(tmp_path, "insp-a")
    (tree / "3300001234_x").mkdir()
    (tree / "index.html").write_text("")
    assert tablet_customer_of(tablets, str(tree / "3300001234_x" / "a" / "b" / "IMG_1.jpg")) == "3300001234_x"
    assert tablet_customer_of(tablets, str(tree / "3300001234_x")) == "3300001234_x"
    assert tablet_customer_of(tablets, str(tablets / "insp-b")) is EVERY  # a tablet added or removed
    assert tablet_customer_of(tablets, str(tree)) is EVERY
    assert tablet_customer_of(tablets, str(tablets / "insp-a" / "dev" / "log")) is None  # rsyslog's socket
    assert tablet_customer_of(tablets, str(tree / "index.html")) is None  # the tablet's own query page
    assert tablet_customer_of(tablets, str(tree / ".fieldsync" / "ledgers" / "t1")) is None


def test_watch_tablets_rebuilds_a_customer_and_sees_a_new_tablet(tmp_path):
    share = tmp_path / "share"
    a = tablet_tree(share, "insp-a")
    visit_at(a, C1, 9)
    results: queue.Queue = queue.Queue()
    watcher = IndexWatcher(share, quiet=0.3, on_build=results.put, on_error=results.put, tablets=True)
    watcher.start()
    try:
        assert results.get(timeout=WAIT).visits_scanned == 1
        later = visit_at(a, C1, 12)
        wait_for_page(results, visit_page(later.relative_to(share).as_posix()))
        b = tablet_tree(share, "insp-b")  # a tablet added while the watcher runs
        newcomer = visit_at(b, C2, 14)
        wait_for_page(results, visit_page(newcomer.relative_to(share).as_posix()))
        assert "3300005678" in (share / SITE / "index.html").read_text("utf-8")
    finally:
        watcher.stop()


def test_watch_tablets_command_runs_and_stops_on_sigterm(tmp_path):
    share = tmp_path / "share"
    visit_at(tablet_tree(share, "insp-a"), C1, 9)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FIELDSYNC_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-c", "from fieldsync.cli import main; main()", "server", "index",
                             "--watch", "--tablets", "--quiet-seconds", "0.3", str(share)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "watching" in proc.stdout.readline() or "watching" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (share / SITE / "index.html").is_file()
