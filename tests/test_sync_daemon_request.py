"""`fieldsync sync` while the daemon runs asks the daemon for a pass and shows its result
(issue 19): a real daemon, a real `fieldsync sync` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from filelock import FileLock

from fieldsync.base.atomic import write_text
from fieldsync.sync import daemon as daemon_mod
from fieldsync.sync import requests
from fieldsync.sync.engine import LOCK_FILE
from fieldsync.sync.result import SyncResult
from tests.fixtures.syncing import camera_photo, server_root


def fieldsync(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "LANG": "C.UTF-8"}
    env.pop("LC_ALL", None)
    return subprocess.run([sys.executable, "-m", "fieldsync", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_sync_during_the_daemon_asks_it_for_a_pass(running):
    cfg, visit, daemon = running
    passes = daemon.passes
    photo = camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600))
    lost = server_root(cfg) / photo.relative_to(cfg.root)
    done = fieldsync("sync")
    assert done.returncode == 0, done.stderr
    assert "asked it for a pass" in done.stderr and "uploaded" in done.stdout
    assert lost.is_file()  # on the server when the command returns
    assert daemon.passes > passes
    # A server restored from an old backup lost the photo: the watcher cannot see that, only
    # the pass the command asked for (with --recheck-server) can.
    lost.unlink()
    rechecked = fieldsync("sync", "--recheck-server")
    assert rechecked.returncode == 0, rechecked.stderr
    assert "server rechecked: 1 lost" in rechecked.stdout
    assert f"lost on the server, pushed again: {photo.relative_to(cfg.root).as_posix()}" in rechecked.stdout
    assert lost.is_file()
    assert not list(requests.request_dir(cfg).iterdir())  # answers collected, requests gone


def test_a_daemon_that_does_not_answer_times_out_clearly(tree):
    # status.json names a live process (this one) that holds the lock but never answers.
    write_text(daemon_mod.status_path(tree), json.dumps({"pid": os.getpid(), "activity": "idle"}))
    with FileLock(tree.state_dir / LOCK_FILE):
        result = fieldsync("sync", "--timeout", "1")
    assert result.returncode == 2
    assert "did not answer within 1 s" in result.stderr and "--timeout" in result.stderr
    assert not list(requests.request_dir(tree).glob("*.request.json"))  # withdrawn


def test_a_second_sync_without_a_daemon_is_still_refused(tree):
    with FileLock(tree.state_dir / LOCK_FILE):
        result = fieldsync("sync", "--timeout", "1")
    assert result.returncode == 2 and "another sync is running" in result.stderr


def test_results_travel_whole():
    result = SyncResult(uploaded=3, unchanged=2, quarantined=[("a.jpg", "not a photo")], failed=[("b.jpg", "x")],
                        waiting=["c.jpg"], lost=["d.jpg"], rechecked=True, error="offline", wrote={"e": (1, 2)})
    back = requests.result_from_json(json.loads(json.dumps(requests.result_to_json(result))))
    assert back.quarantined == result.quarantined and back.failed == result.failed
    assert str(back) == str(result) and back.exit_code == result.exit_code and back.wrote == {}
