"""sync, daemon, status: push the tree to the server once, keep pushing, say where things are."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from fieldsync.base.clock import local_time
from fieldsync.base.i18n import N_, _
from fieldsync.cli.base import AppContext, echo, finish_with_warnings, pass_app, progress_bar, shows_progress, warn
from fieldsync.errors import KeyRefused, SyncBusy, TransportError
from fieldsync.sync import daemon as daemon_mod
from fieldsync.sync import engine
from fieldsync.sync import requests as sync_requests
from fieldsync.sync import status as status_mod
from fieldsync.sync.result import Progress, SyncResult

LOST_SHOWN = 20  # files the server had lost named one by one; the rest counted


class _Bar(Progress):
    """A click progress bar over the bytes of one pass (only on a terminal)."""

    def __init__(self, app: AppContext) -> None:
        self.app, self.bar = app, None
        self._done: dict[str, int] = {}
        self._lock = threading.Lock()

    def planned(self, files: int, total_bytes: int) -> None:
        if files:
            label = _("pushing {count} file(s)").format(count=files)
            self.bar = progress_bar(self.app, total_bytes, label)
            self.bar.__enter__()

    def advanced(self, rel: str, done: int, total: int) -> None:
        with self._lock:
            step = done - self._done.get(rel, 0)
            self._done[rel] = done
            if self.bar is not None and step > 0:
                self.bar.update(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command("sync")
@click.option("--recheck-server", is_flag=True,
              help="List the server now and push again whatever it lost (after a restore from backup); "
                   "done by itself every sync.verify_server_hours.")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=0), metavar="SECONDS",
              help="While the daemon runs: how long to wait for the pass it is asked for.")
@pass_app
def sync_command(app: AppContext, recheck_server: bool, timeout: float) -> None:
    """One pass: push everything new or changed to the server.

    Exit 0 when the server holds everything, 1 when files were quarantined or are still
    being written, 2 on an error (server unreachable or refusing this tablet's key, files
    failed). The pass logs in even when nothing is new, so a revoked key is noticed.
    While the daemon runs, it is asked for the pass, and its result is shown the same way.
    """
    result = _one_pass(app, recheck_server, timeout)
    echo(app, str(result))
    for rel, reason in result.quarantined:
        warn(_("quarantined {path}: {reason}").format(path=rel, reason=reason))
    if result.quarantined:
        warn(_("quarantined files are set aside: 'fieldsync quarantine list' shows them, "
               "'fieldsync quarantine restore' retries"))
    for rel, reason in result.refused:
        warn(_("not pushed {path}: {reason}").format(path=rel, reason=reason))
    for rel, reason in result.conflicts:
        warn(_("conflict {path}: {reason}").format(path=rel, reason=reason))
    for rel in result.waiting:
        warn(_("{path} is still being written; run sync again in a moment").format(path=rel))
    for rel in result.lost[:LOST_SHOWN]:
        echo(app, _("lost on the server, pushed again: {path}").format(path=rel))
    if len(result.lost) > LOST_SHOWN:
        echo(app, _("... {count} more lost on the server, pushed again").format(count=len(result.lost) - LOST_SHOWN))
    for rel, reason in result.failed:
        click.echo(_("failed {path}: {reason}").format(path=rel, reason=reason), err=True)
    if result.refused_key:
        raise KeyRefused(result.error)
    if result.error:
        raise TransportError(_("{error}; nothing is lost, run 'fieldsync sync' again "
                               "when the server is reachable (the daemon retries by itself)").format(
            error=result.error))
    if result.failed:
        raise TransportError(_("{count} file(s) failed (listed above); nothing is lost, "
                               "run 'fieldsync sync' again (the daemon retries by itself)").format(
            count=len(result.failed)))
    if result.exit_code:
        finish_with_warnings()


def _one_pass(app: AppContext, recheck_server: bool, timeout: float) -> SyncResult:
    """A pass here, or, while the daemon holds the tree, the one it runs when asked."""
    try:
        eng = engine.Engine(app.config)
    except SyncBusy:
        if not daemon_mod.running(app.config):
            raise  # a second `fieldsync sync`, not the daemon: nobody to ask
        return _ask_daemon(app, recheck_server, timeout)
    return _pass_here(app, eng, recheck_server)


def _pass_here(app: AppContext, eng: engine.Engine, recheck_server: bool) -> SyncResult:
    bar = _Bar(app) if shows_progress(app) else None
    with eng:
        try:
            result = eng.run(progress=bar, recheck_server=recheck_server)
        finally:
            if bar:
                bar.close()
        daemon_mod.write_pass_status(app.config, eng, result)
    return result


def _ask_daemon(app: AppContext, recheck_server: bool, timeout: float) -> SyncResult:
    """The daemon holds the tree: ask it for a full pass and wait for that pass's result."""
    if not app.quiet:
        click.echo(_("the daemon is running: asked it for a pass, waiting for the result"), err=True)
    request = sync_requests.ask(app.config, recheck_server=recheck_server)
    return sync_requests.wait_for_answer(app.config, request, timeout, lambda: daemon_mod.running(app.config))


@click.command("daemon")
@pass_app
def daemon_command(app: AppContext) -> None:
    """Watch the tree and push until SIGINT/SIGTERM (Ctrl-C); files in flight finish first."""
    runner = daemon_mod.Daemon(app.config)

    def stop(signum, frame) -> None:
        runner.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    log_file = _log_to_file(app.config)
    echo(app, _("watching {root} (stop with Ctrl-C); status: fieldsync status; log: {log}").format(
        root=app.config.root, log=log_file))
    ticker = None
    if sys.stderr.isatty() and not app.quiet:
        ticker = threading.Thread(target=_show_progress, args=(app.config, runner), daemon=True)
        ticker.start()
    log = logging.getLogger("fieldsync.daemon")
    log.info("daemon started on %s (pid %d)", app.config.root, os.getpid())
    runner.run()
    log.info("daemon stopped")
    echo(app, _("stopped"))


def _log_to_file(cfg) -> Path:
    """A rotating log under ROOT/.fieldsync/logs/, so a daemon started at login leaves a trail."""
    folder = cfg.state_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "daemon.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    # fieldsync's own INFO lines; libraries (paramiko logs every SFTP command at INFO) only
    # from WARNING, so a day of pushing leaves a readable log, not megabytes of chatter.
    handler.addFilter(lambda record: record.name.startswith("fieldsync") or record.levelno >= logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    return path


def _show_progress(cfg, runner) -> None:
    """On a terminal: one status line, rewritten every second from status.json."""
    path = daemon_mod.status_path(cfg)
    while not runner.stopping:
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            status = {}
        counts = status.get("counts") or {}
        uploading = status.get("uploading") or {}
        sent = sum(done for done, _ in uploading.values())
        total = sum(size for _, size in uploading.values())
        activity = status.get("activity") or "starting"
        line = _("{activity}: uploading {count}{percent}, done {done}, pending {pending}, failed {failed}, "
                 "last push {when}").format(
            activity=_(ACTIVITIES[activity]) if activity in ACTIVITIES else activity, count=len(uploading),
            percent=f" ({sent * 100 // total}%)" if total else "", done=counts.get("done", 0),
            pending=counts.get("pending", 0), failed=counts.get("failed", 0),
            when=local_time(status["last_push"]) if status.get("last_push") else "-")
        click.echo(f"\r{line[:150]:<150}", nl=False, err=True)
        time.sleep(1)
    click.echo("", err=True)


# What the daemon is doing, as status.json names it, in the reader's words.
ACTIVITIES = {"idle": N_("idle"), "syncing": N_("syncing"), "starting": N_("starting"), "stopped": N_("stopped"),
              "offline": N_("offline, waiting"), daemon_mod.REFUSED: N_("refused by the server")}
FILE_LISTS = (("failed", N_("failed")), ("quarantined", N_("quarantined")), ("pending", N_("pending")))


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--files", is_flag=True, help="List every pending, failed and quarantined file.")
@pass_app
def status_command(app: AppContext, as_json: bool, files: bool) -> None:
    """What is pending, uploading, failed (and why), quarantined, and the last push."""
    status = status_mod.collect(app.config)
    if as_json:
        click.echo(json.dumps(status, ensure_ascii=False, indent=1))
        return
    counts = status.get("counts", {})
    activity = status.get("activity")
    echo(app, _("daemon: {state} ({activity}, watcher {watcher})").format(
        state=_("running") if status["daemon_running"] else _("not running"),
        activity=_(ACTIVITIES[activity]) if activity in ACTIVITIES else (activity or "-"),
        watcher=status.get("watcher") or "-"))
    echo(app, _("done {done}  pending {pending}  uploading {uploading}  failed {failed}  quarantined {quarantined}")
         .format(**{k: counts.get(k, 0) for k in ("done", "pending", "uploading", "failed", "quarantined")}))
    last_push = status.get("last_push")
    echo(app, _("last push: {when}").format(when=local_time(last_push) if last_push else _("never")))
    _show_server(app, status["server"])
    _show_camera(app, status["camera"])
    master = status["master_data"]
    if master.get("imported_at"):
        echo(app, _("master data: {count} customers, imported {when}").format(
            count=master.get("count", 0), when=local_time(master["imported_at"])))
    else:
        echo(app, _("master data: {count} customers, not imported").format(count=master.get("count", 0)))
    for suggestion in status["suggestions"]:
        echo(app, _("suggestion: {suggestion}").format(suggestion=suggestion))
    next_try = local_time(status["next_retry"]) if status.get("next_retry") else _("soon")
    if status["server"].get("key_refused"):
        echo(app, _("server refused this tablet: {error}").format(error=status.get("error")))
    elif status.get("error") and status.get("offline"):
        echo(app, _("offline, waiting: {error} (next try {when})").format(error=status["error"], when=next_try))
    elif status.get("error"):
        echo(app, _("waiting to retry: {error} (next try {when})").format(error=status["error"], when=next_try))
    for rel, (done, total) in sorted((status.get("uploading") or {}).items()):
        echo(app, _("  uploading {path}: {percent}%").format(path=rel, percent=done * 100 // max(1, total)))
    shown = None if files else 10
    for key, label in FILE_LISTS:
        items = status.get(key) or []
        for item in items[:shown]:
            echo(app, _("  {label} {path}: {reason}").format(
                label=_(label), path=item["path"], reason=_(item["reason"]) if item.get("reason") else ""))
        if shown is not None and len(items) > shown:
            echo(app, _("  ... {count} more (fieldsync status --files)").format(count=len(items) - shown))
    if status.get("quarantined"):
        echo(app, _("  quarantined files are set aside in {folder}: 'fieldsync quarantine list' shows why, "
                    "'fieldsync quarantine restore ID' retries one").format(folder=status["quarantine_folder"]))


def _show_server(app: AppContext, server: dict) -> None:
    described = server.get("state_describes") or {}
    line = _("server: {url}").format(url=server.get("configured") or _("not set"))
    if described.get("host_key"):
        line += _(" (host key {key})").format(key=described["host_key"])
    echo(app, line)
    checked = server.get("checked_at")
    echo(app, _("  last server recheck: {when}").format(when=local_time(checked) if checked else _("never")))
    if not server.get("same"):
        was = described.get("url") or _("no server yet")
        echo(app, _("  the sync state describes {was}: the next sync lists the configured server "
                    "and pushes everything it lacks").format(was=was))


def _show_camera(app: AppContext, camera: dict) -> None:
    if not camera.get("inbox"):
        return
    target = camera.get("target") or {}
    where = target.get("visit") if isinstance(target, dict) else target
    line = _("camera: {state}").format(state=camera.get("state"))
    if where:
        line += f" → {where} ({target.get('kind', '') if isinstance(target, dict) else ''})"
    if camera.get("expires_at"):
        line += _(", expires {when}").format(when=local_time(camera["expires_at"]))
    echo(app, line)
    if camera.get("waiting"):
        echo(app, _("  {count} photo(s) waiting in {inbox}: set a target with 'fieldsync visit use'").format(
            count=camera["waiting"], inbox=camera["inbox"]))


COMMANDS = [sync_command, daemon_command, status_command]
