"""`fieldsync sync` while the daemon runs: ask the daemon for a pass and read back its result.

The daemon holds the tree lock, so a second engine cannot run. Instead the command drops a
request file in ROOT/.fieldsync/sync-requests/ (written atomically: the daemon never reads
half a request); the daemon looks there twice a second, runs a full pass that starts after it
took the request, and writes the pass's result beside it (atomically too) as JSON. The command
waits for that file, with a timeout, and shows it like a pass of its own. Plain files: nothing
to listen on, nothing left open when either side dies, and the same on Android and Windows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fieldsync.base.atomic import write_text
from fieldsync.base.i18n import _
from fieldsync.config import Config
from fieldsync.errors import SyncBusy
from fieldsync.sync.result import SyncResult

REQUEST_DIR = "sync-requests"
REQUEST_SUFFIX = ".request.json"
RESULT_SUFFIX = ".result.json"
POLL_SECONDS = 0.1  # how often the asking command looks for its answer
STALE_SECONDS = 3600.0  # an answer nobody collected (the asker was killed) is removed after this
# SyncResult fields that travel back (wrote and next_look are the daemon's own bookkeeping).
_SENT = tuple(f.name for f in dataclasses.fields(SyncResult) if f.name not in ("wrote", "next_look"))


@dataclass(frozen=True)
class Request:
    id: str
    recheck_server: bool = False


def request_dir(cfg: Config) -> Path:
    return cfg.state_dir / REQUEST_DIR


def ask(cfg: Config, recheck_server: bool = False) -> Request:
    """Leave a request for the daemon's next full pass; returns it (its id names the answer)."""
    request = Request(f"{int(time.time())}-{os.getpid()}-{secrets.token_hex(4)}", recheck_server)
    folder = request_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / f"{request.id}{REQUEST_SUFFIX}",
               json.dumps({"id": request.id, "recheck_server": recheck_server}) + "\n", private=True)
    return request


def wait_for_answer(cfg: Config, request: Request, timeout: float,
                    daemon_alive: Callable[[], bool]) -> SyncResult:
    """The result of the pass the daemon ran for `request`. Raises SyncBusy when the daemon
    does not answer within `timeout` seconds or stops before it does (the request is withdrawn)."""
    answer = request_dir(cfg) / f"{request.id}{RESULT_SUFFIX}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = json.loads(answer.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = None
        if data is not None:
            answer.unlink(missing_ok=True)
            return result_from_json(data)
        if not daemon_alive():
            withdraw(cfg, request)
            raise SyncBusy(_("the daemon stopped before it answered; run 'fieldsync sync' again"))
        if time.monotonic() >= deadline:
            withdraw(cfg, request)
            raise SyncBusy(_("the daemon did not answer within {seconds:.0f} s (a long pass, or it hangs); "
                             "see 'fieldsync status', or give more time with --timeout").format(seconds=timeout))
        time.sleep(POLL_SECONDS)


def withdraw(cfg: Config, request: Request) -> None:
    (request_dir(cfg) / f"{request.id}{REQUEST_SUFFIX}").unlink(missing_ok=True)


# --------------------------------------------------------------------------- the daemon's side

def waiting_requests(cfg: Config) -> list[Request]:
    """Requests not answered yet, oldest first (a broken one is dropped: it cannot be answered)."""
    folder = request_dir(cfg)
    try:
        names = sorted(p for p in folder.iterdir() if p.name.endswith(REQUEST_SUFFIX))
    except FileNotFoundError:
        return []
    _drop_stale_answers(folder)
    found = []
    for path in names:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found.append(Request(str(data["id"]), bool(data.get("recheck_server"))))
        except FileNotFoundError:
            continue  # withdrawn meanwhile
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
    return found


def _drop_stale_answers(folder: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    for path in folder.glob(f"*{RESULT_SUFFIX}"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            continue  # collected meanwhile


def answer(cfg: Config, request: Request, result: SyncResult) -> None:
    """Write the result for `request` (atomically: the asker never reads half of it)."""
    folder = request_dir(cfg)
    (folder / f"{request.id}{REQUEST_SUFFIX}").unlink(missing_ok=True)
    write_text(folder / f"{request.id}{RESULT_SUFFIX}",
               json.dumps(result_to_json(result), ensure_ascii=False) + "\n", private=True)


def result_to_json(result: SyncResult) -> dict:
    return {name: getattr(result, name) for name in _SENT}


def result_from_json(data: dict) -> SyncResult:
    values = {name: data[name] for name in _SENT if name in data}
    for name in ("quarantined", "failed", "refused", "conflicts"):
        values[name] = [tuple(item) for item in values.get(name, [])]
    return SyncResult(**values)
