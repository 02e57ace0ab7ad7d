"""Two OpenSSH sshd behind HAProxy on one shared tree (docs/scale.md), with real tablets.

Each tablet is a separate process running the sync engine (bench/load.py's tablets), all
released at once against HAProxy's address (docs/deploy/haproxy-fieldsync.cfg, the guide's own
file). Both sshd serve the same folder, as two hosts on shared storage do. Afterwards every photo
is on the server exactly once, byte for byte, no temp file is left, `verify --server` finds the
evidence intact and one `server index` over the shared tree pages every visit. The second test
kills one sshd with its sessions mid-burst: the tablets on it retry and finish through the other.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from bench import load
from fieldsync.server.site import SITE, customer_page
from tests.conftest import SAMPLE_CSV
from tests.fixtures.haproxy import crash

pytestmark = pytest.mark.slow

TABLETS = 10
PHOTOS = 10  # a tablet (one visit each)


def accepted(server) -> int:
    """Logins the sshd accepted, from its own log."""
    return len(re.findall(r"Accepted publickey", server.log_text()))


def fleet_work(tmp_path: Path) -> tuple[Path, Path, Path]:
    work, remote = tmp_path / "fleet", tmp_path / "shared-tree"
    work.mkdir()
    remote.mkdir()
    csv_path = work / "customers.csv"
    csv_path.write_text(SAMPLE_CSV, encoding="utf-8")
    return work, remote, csv_path


def assert_exactly_once(run: dict, remote: Path, tablets: int, photos: int) -> None:
    check = load.check_mirror(run["reports"], remote)
    assert check["expected"] == tablets * photos
    assert check["on_server"] == tablets * photos
    assert not check["missing"] and not check["extra"] and not check["different"]
    assert not check["temps"], check["temps"]
    assert {r["exit_code"] for r in run["reports"]} == {0}, [r["summary"] for r in run["reports"]]


def assert_evidence_and_pages(invoke, remote: Path, tablets: int) -> None:
    verified = invoke("verify", "--server", remote, "--no-gps-warning")
    assert verified.exit_code == 0, verified.output
    assert f"{tablets} visits, {tablets * PHOTOS} photos checked" in verified.output
    for index in range(tablets):
        assert f"tablet-{index:02d} (" in verified.output  # every tablet's ledger on the one tree
    indexed = invoke("server", "index", remote)
    assert indexed.exit_code == 0, indexed.output
    # A page for every tablet's visit, and the customers' pages link them all.
    pages = {p.stem for p in (remote / SITE).rglob("2026-11-25_tablet-*.html")}
    assert pages == {f"2026-11-25_tablet-{i:02d}_000" for i in range(tablets)}
    customers = "\n".join((remote / customer_page(c)).read_text("utf-8") for c in {
        p.relative_to(remote).parts[0] for p in remote.glob("*/*/*/2026-11-25_tablet-*")})
    assert all(f"{name}.html" in customers for name in pages)


def test_ten_tablets_through_haproxy_to_two_sshd_on_one_tree(sftp_pair, tmp_path, invoke):
    work, remote, csv_path = fleet_work(tmp_path)

    run = load.run_fleet(TABLETS, list(range(TABLETS)), work, sftp_pair, remote, PHOTOS, csv_path)

    assert_exactly_once(run, remote, TABLETS, PHOTOS)
    assert all(r["passes"] == 1 for r in run["reports"]), [r["errors"] for r in run["reports"]]
    # leastconn spread the burst: both sshd took sessions (HAProxy's counters and sshd's own logs).
    sessions = sftp_pair.sessions()
    assert sessions["sftp1"] >= 2 and sessions["sftp2"] >= 2, sessions
    assert sum(sessions.values()) >= TABLETS
    one, two = (accepted(s) for s in sftp_pair.servers)
    assert one >= 2 and two >= 2 and one + two >= TABLETS, (one, two)
    assert_evidence_and_pages(invoke, remote, TABLETS)


def test_one_sshd_dies_mid_burst_and_the_tablets_finish_through_the_other(sftp_pair, tmp_path, invoke):
    work, remote, csv_path = fleet_work(tmp_path)
    outcome: dict = {}

    def fleet() -> None:
        try:
            outcome["run"] = load.run_fleet(TABLETS, list(range(TABLETS)), work, sftp_pair, remote, PHOTOS,
                                            csv_path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=fleet, daemon=True)
    thread.start()
    # Kill sftp1 (sshd and every session it forked) once the burst is under way on both servers.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and thread.is_alive():
        arrived = len(list(remote.glob("*/*/*/*/*/*.jpg")))
        if arrived >= 5 and min(accepted(s) for s in sftp_pair.servers) >= 1:
            break
        time.sleep(0.02)
    assert thread.is_alive(), "the burst finished before the kill: nothing was tested"
    arrived_at_kill = len(list(remote.glob("*/*/*/*/*/*.jpg")))
    survivor_before = accepted(sftp_pair.servers[1])
    crash(sftp_pair.servers[0])
    thread.join(300)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    run = outcome["run"]

    assert arrived_at_kill < TABLETS * PHOTOS
    assert_exactly_once(run, remote, TABLETS, PHOTOS)
    # The tablets cut off reconnected: through HAProxy to the surviving sshd.
    retried = [r for r in run["reports"] if r["passes"] > 1]
    assert retried, "no tablet lost its session: the kill came too late"
    assert accepted(sftp_pair.servers[1]) >= survivor_before + len(retried)
    sftp_pair.wait_for(lambda: sftp_pair.stats()["sftp1"]["status"].startswith("DOWN"), "sftp1 marked down")
    assert_evidence_and_pages(invoke, remote, TABLETS)
