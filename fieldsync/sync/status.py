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
from fieldsync.base.platform import pid_alive
from fieldsync.config import Config
from fieldsync.location import locate
from fieldsync.masterdata.store import CustomerStore
from fieldsync.sync import daemon, plan, quarantine
from fieldsync.sync.state import SyncState
from fieldsync.transport import server_url
from fieldsync.tree import inbox


def collect(cfg: Config) -> dict[str, Any]:
    """Everything `fieldsync status` shows; key order is the --json output's order."""
    try:
        status = json.loads(daemon.status_path(cfg).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        status = {}  # no daemon ever ran, or it was killed mid-write: the state still answers
    configured = server_url(cfg)
    with SyncState(cfg.state_dir) as state:
        status.update(daemon.summarize(state))
        described = state.server()
        checked = state.meta("server_checked")
        # The state only knows files a pass has seen: count from the tree what is not on the
        # server yet, so an offline tablet still says how much is waiting. A state about
        # another server knows nothing about this one: everything waits.
        other_server = described is None or described.get("url") != configured
        waiting = plan.outstanding(cfg, None if other_server else state)
        # Why each waits, when a pass said so (a refused name: what to rename it for).
        reasons = {} if other_server else {rel: record.reason for rel in waiting[:daemon.MAX_LISTED]
                                           if (record := state.peek(rel)) is not None and record.reason}
    status["server"] = {"configured": configured, "state_describes": described,
                        "same": not other_server, "checked_at": stamp_iso(checked) if checked else None,
                        "key_refused": status.get("activity") == daemon.REFUSED}
    # The quarantine folder is the truth about what is set aside (restore and clear change it
    # without a pass); the state only remembers what a pass moved there.
    set_aside = quarantine.entries(cfg)
    status["counts"] = {**status.get("counts", {}), "pending": len(waiting), "quarantined": len(set_aside)}
    status["quarantined"] = [{"path": e.origin.as_posix(), "reason": e.reason or "(not recorded)",
                              "id": e.id, "moved_to": str(e.stored)} for e in set_aside[:daemon.MAX_LISTED]]
    status["quarantine_folder"] = str(quarantine.quarantine_dir(cfg))
    status["pending"] = [{"path": rel, "reason": reasons.get(rel) or "not on the server yet"}
                         for rel in waiting[:daemon.MAX_LISTED]]
    status["camera"] = inbox.summary(cfg)
    status["suggestions"] = locate.suggestions(cfg)
    status["master_data"] = CustomerStore(cfg.state_dir).meta()
    pid = status.get("pid")
    status["daemon_running"] = bool(pid and status.get("activity") != "stopped" and pid_alive(pid))
    return status
