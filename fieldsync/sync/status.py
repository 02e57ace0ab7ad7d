"""What `fieldsync status` reports, assembled as data: the CLI only renders it.

The daemon's last status.json, the sync state's counts, which server the state describes
(URL, host key, server id) beside the configured one, when the server was last rechecked
against what was pushed and whether it refused this tablet's key, what the tree still holds that the
server does not, the camera inbox, location suggestions, master data and whether the daemon
is alive, in one plain dict (its JSON is `fieldsync status --json`).
"""

from __future__ import annotations

import json
from typing import Any

from fieldsync.base.clock import stamp_iso
from fieldsync.base.i18n import N_
from fieldsync.config import Config
from fieldsync.location import locate
from fieldsync.masterdata.store import CustomerStore
from fieldsync.sync import daemon, plan, quarantine
from fieldsync.sync.state import SyncState
from fieldsync.transport import server_url
from fieldsync.tree import inbox

# Why a file waits while the server cannot be reached: not "failed" (nothing is wrong with the
# file, and the next pass that reaches the server pushes it). The CLI translates it when shown.
OFFLINE_WAITING = N_("offline, waiting")
NOT_ON_SERVER = N_("not on the server yet")


def collect(cfg: Config) -> dict[str, Any]:
    """Everything `fieldsync status` shows; key order is the --json output's order.

    A file that waits is counted once, in one of: uploading (in flight in the running daemon),
    failed (a reason of its own, with the server reachable), pending (everything else not on
    the server as it is now: new, changed, or failed only because the server could not be
    reached: "offline, waiting"). done counts what the server holds, this version or an
    earlier one while a change waits: re-rendered pages do not make it drop (46 -> 42 while
    offline, issue 19), it only grows as files reach the server. quarantined: set aside."""
    try:
        status = json.loads(daemon.status_path(cfg).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        status = {}  # no daemon ever ran, or it was killed mid-write: the state still answers
    configured = server_url(cfg)
    running = daemon.running(cfg)
    live = (status.get("uploading") or {}) if running else {}
    offline = status.get("activity") == "offline"
    with SyncState(cfg.state_dir) as state:
        status.update(daemon.summarize(state))
        described = state.server()
        checked = state.meta("server_checked")
        # The state only knows files a pass has seen: count from the tree what is not on the
        # server yet, so an offline tablet still says how much is waiting. A state about
        # another server knows nothing about this one: everything waits.
        other_server = described is None or described.get("url") != configured
        waiting = plan.outstanding(cfg, None if other_server else state)
        pending, failed = [], []
        for rel in waiting:
            if rel in live:
                continue  # counted as uploading
            record = None if other_server else state.peek(rel)
            if record is not None and record.status == "failed" and not offline:
                failed.append({"path": rel, "reason": record.reason, "attempts": record.attempts,
                               "next_try": stamp_iso(record.next_try) if record.next_try else None})
            elif record is not None and record.status == "failed":
                pending.append({"path": rel, "reason": OFFLINE_WAITING})
            else:
                # Why it waits, when a pass said so (a refused name: what to rename it for).
                pending.append({"path": rel, "reason": (record.reason if record is not None else "")
                                or NOT_ON_SERVER})
        done = 0 if other_server else sum(1 for record in state.all() if not record.is_dir
                                          and record.remote_size is not None and record.status != "quarantined")
    status["server"] = {"configured": configured, "state_describes": described,
                        "same": not other_server, "checked_at": stamp_iso(checked) if checked else None,
                        "key_refused": status.get("activity") == daemon.REFUSED}
    # The quarantine folder is the truth about what is set aside (restore and clear change it
    # without a pass); the state only remembers what a pass moved there.
    set_aside = quarantine.entries(cfg)
    status["counts"] = {"done": done, "pending": len(pending), "uploading": len(live), "failed": len(failed),
                        "quarantined": len(set_aside)}
    status["offline"] = offline
    status["failed"] = failed[:daemon.MAX_LISTED]
    status["quarantined"] = [{"path": e.origin.as_posix(), "reason": e.reason or "(not recorded)",
                              "id": e.id, "moved_to": str(e.stored)} for e in set_aside[:daemon.MAX_LISTED]]
    status["quarantine_folder"] = str(quarantine.quarantine_dir(cfg))
    status["pending"] = pending[:daemon.MAX_LISTED]
    status["camera"] = inbox.summary(cfg)
    status["suggestions"] = locate.suggestions(cfg)
    status["master_data"] = CustomerStore(cfg.state_dir).meta()
    status["daemon_running"] = running
    return status
