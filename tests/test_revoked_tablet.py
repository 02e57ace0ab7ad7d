"""A revoked tablet learns it (issue 16): with nothing to push, `sync` still logs in and exits 2
with "server refused this tablet's key (revoked?)", and a running daemon, whose SSH session
outlives the revocation, logs in afresh at its next full rescan and says so in status."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
import yaml

from fieldsync import config as config_mod
from fieldsync.sync.daemon import Daemon
from tests.fixtures.sshd import keygen
from tests.fixtures.syncing import camera_photo
from tests.test_restore_recheck import a_visit

WAIT = 60  # seconds allowed for a condition to come true (never asserted as a speed)
REFUSED = "server refused this tablet's key (revoked?): ask the admin"


@pytest.fixture
def own_key_tablet(tree, sshd, remote_root, tmp_path, monkeypatch):
    """(cfg, revoke, reinstate): a tablet on the real sshd with a key of its own, so revoking
    it (its line out of authorized_keys, as the guide's offboarding does) leaves the other
    tests' key alone."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # only this tablet's key file counts
    key = tmp_path / "tablet_key"
    public = keygen(key)
    sshd.write_config_yaml(tree.path, remote_root)
    data = yaml.safe_load(tree.path.read_text(encoding="utf-8"))
    data["server"]["key_file"] = str(key)
    tree.path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    def revoke() -> None:
        lines = sshd.authorized_keys.read_text().splitlines()
        sshd.authorized_keys.write_text("".join(f"{line}\n" for line in lines if line.strip() != public))

    def reinstate() -> None:
        with sshd.authorized_keys.open("a") as handle:
            handle.write(public + "\n")

    reinstate()
    try:
        yield config_mod.load(tree.path), revoke, reinstate
    finally:
        revoke()


def test_sync_with_nothing_pending_tells_a_revoked_tablet(own_key_tablet, invoke):
    cfg, revoke, _ = own_key_tablet
    visit = a_visit(cfg)
    camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600))
    assert invoke("sync").exit_code == 0
    revoke()

    result = invoke("sync")  # nothing new: it still logs in
    assert result.exit_code == 2
    assert REFUSED in result.stderr
    assert "when the server is reachable" not in result.stderr  # not told to wait for the network

    status = invoke("status")
    assert f"server refused this tablet: {REFUSED}" in status.stdout, status.stdout
    assert "waiting to retry" not in status.stdout
    assert json.loads(invoke("status", "--json").stdout)["server"]["key_refused"] is True


def test_running_daemon_learns_at_its_next_rescan(own_key_tablet, invoke):
    loaded, revoke, reinstate = own_key_tablet
    visit = a_visit(loaded)
    camera_photo(visit / "外观" / "IMG_1.jpg", upright=(800, 600))
    cfg = dataclasses.replace(loaded, sync=dataclasses.replace(loaded.sync, rescan_seconds=1))
    daemon = Daemon(cfg)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()

    def status() -> dict:
        return json.loads(invoke("status", "--json").stdout)

    def wait_for(condition, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    try:
        wait_for(lambda: daemon.passes >= 1 and daemon.idle.is_set(), "the first pass")
        assert status()["counts"]["pending"] == 0
        revoke()  # the daemon's session stays open: only a new login is refused
        wait_for(lambda: status().get("activity") == "refused", "the refusal in status")
        text = invoke("status").stdout
        assert f"server refused this tablet: {REFUSED}" in text, text
        reinstate()
        wait_for(lambda: status().get("activity") == "idle", "the daemon back to idle")
        assert status()["server"]["key_refused"] is False
    finally:
        daemon.stop()
        thread.join(timeout=WAIT)
    assert not thread.is_alive()
