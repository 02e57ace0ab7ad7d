"""`fieldsync status`: what is waiting even offline, camera target, master data, suggestions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fieldsync.base.atomic import write_text
from fieldsync.demo import write_sample_photo
from fieldsync.sync import daemon
from fieldsync.sync import status as status_mod
from fieldsync.tree.visits import now


def make_visit(invoke) -> Path:
    invoke("customer", "open", "3300001234")
    invoke("category", "add", "3300001234", "1", "计量装置")
    return Path(invoke("visit", "new", "3300001234", "1", "计量装置").stdout.strip())


def test_offline_status_counts_what_is_waiting(tree, invoke, tmp_path):
    visit = make_visit(invoke)
    photo = write_sample_photo(tmp_path / "a.jpg", now(), (30.28, 120.13), size=(640, 480))
    invoke("add", photo, "--visit", visit, "--kind", "appearance")
    server = Path(tree.server.url.removeprefix("file://"))
    shutil.rmtree(server)  # the share is unreachable
    offline = invoke("sync")
    assert offline.exit_code == 2
    status = json.loads(invoke("status", "--json").stdout)
    assert status["counts"]["pending"] > 0
    assert any(item["path"].endswith("外观/a.jpg") for item in status["pending"])
    assert status["master_data"]["count"] == 3
    assert any("fieldsync locate 3300001234 --from-photo" in s for s in status["suggestions"])
    server.mkdir()
    assert invoke("sync").exit_code == 0
    status = json.loads(invoke("status", "--json").stdout)
    assert status["counts"]["pending"] == 0 and status["last_push"]
    text = invoke("status").stdout
    assert "pending 0" in text and "master data: 3" in text


def test_status_is_assembled_in_core_and_the_cli_only_renders_it(tree, invoke):
    make_visit(invoke)
    data = status_mod.collect(tree)
    assert data["daemon_running"] is False and data["master_data"]["count"] == 3
    # --json is exactly the core's dict, keys in the same order.
    assert invoke("status", "--json").stdout == json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def test_a_dead_daemons_pid_is_not_running(tree, invoke):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    write_text(daemon.status_path(tree), json.dumps({"pid": child.pid, "activity": "idle"}))
    assert status_mod.collect(tree)["daemon_running"] is False
    write_text(daemon.status_path(tree), json.dumps({"pid": os.getpid(), "activity": "idle"}))
    assert status_mod.collect(tree)["daemon_running"] is True


def test_daemon_writes_a_rotating_log_under_the_tree(tree, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from fieldsync.tree.folders import open_customer

    open_customer(tree, "3300001234")  # something to push
    server = Path(tree.server.url.removeprefix("file://"))
    env = {**os.environ, "FIELDSYNC_CONFIG": str(tree.path)}
    daemon = subprocess.Popen([sys.executable, "-m", "fieldsync", "daemon"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (server / "index.html").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (server / "index.html").exists(), "the daemon pushed nothing"
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    log = tree.state_dir / "logs" / "daemon.log"
    assert log.is_file() and "daemon.log" in out
    assert log.stat().st_size > 0
