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

from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, finish_with_warnings, pass_app, progress_bar, shows_progress, warn
from fieldsync.errors import KeyRefused, TransportError
from fieldsync.sync import daemon as daemon_mod
from fieldsync.sync import engine
from fieldsync.sync import status as status_mod
from fieldsync.sync.result import Progress

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
@pass_app
def sync_command(app: AppContext, recheck_server: bool) -> None:
    """One pass: push everything new or changed to the server.

    Exit 0 when the server holds everything, 1 when files were quarantined or are still
    being written, 2 on an error (server unreachable or refusing this tablet's key, files
    failed). The pass logs in even when nothing is new, so a revoked key is noticed.
    """
    cfg = app.config
    bar = _Bar(app) if shows_progress(app) else None
    with engine.Engine(cfg) as eng:
        try:
            result = eng.run(progress=bar, recheck_server=recheck_server)
        finally:
            if bar:
                bar.close()
        daemon_mod.write_pass_status(cfg, eng, result)
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
        line = (f"{status.get('activity') or 'starting'}: 上传中 uploading {len(uploading)}"
                f"{f' ({sent * 100 // total}%)' if total else ''}, 已推送 done {counts.get('done', 0)}, "
                f"失败 failed {counts.get('failed', 0)}, last push {status.get('last_push') or '-'}")
        click.echo(f"\r{line[:150]:<150}", nl=False, err=True)
        time.sleep(1)
    click.echo("", err=True)


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
    echo(app, f"守护进程 daemon: {'运行中 running' if status['daemon_running'] else '未运行 not running'}"
              f" ({status.get('activity') or '-'}, watcher {status.get('watcher') or '-'})")
    echo(app, "已推送 done {done}  待推送 pending {pending}  上传中 uploading {uploading}  "
              "失败 failed {failed}  隔离 quarantined {quarantined}".format(**{
                  k: counts.get(k, 0) for k in ("done", "pending", "uploading", "failed", "quarantined")}))
    echo(app, f"上次推送 last push: {status.get('last_push') or '从未 never'}")
    _show_server(app, status["server"])
    _show_camera(app, status["camera"])
    master = status["master_data"]
    echo(app, f"客户档案 master data: {master.get('count', 0)} 户, "
              f"{'imported ' + master['imported_at'] if master.get('imported_at') else '未导入 not imported'}")
    for suggestion in status["suggestions"]:
        echo(app, f"建议 suggestion: {suggestion}")
    if status["server"].get("key_refused"):
        echo(app, f"服务器拒绝 {status.get('error')}")
    elif status.get("error"):
        echo(app, f"等待重试 waiting to retry: {status['error']} (next try {status.get('next_retry') or 'soon'})")
    for rel, (done, total) in sorted((status.get("uploading") or {}).items()):
        echo(app, f"  上传中 {rel}: {done * 100 // max(1, total)}%")
    shown = None if files else 10
    for label, key in (("失败 failed", "failed"), ("隔离 quarantined", "quarantined"), ("待推送 pending", "pending")):
        items = status.get(key) or []
        for item in items[:shown]:
            echo(app, f"  {label} {item['path']}: {item.get('reason') or ''}")
        if shown is not None and len(items) > shown:
            echo(app, f"  ... {len(items) - shown} more (fieldsync status --files)")
    if status.get("quarantined"):
        echo(app, f"  隔离的文件在 set aside in {status['quarantine_folder']}: "
                  "'fieldsync quarantine list' shows why, 'fieldsync quarantine restore ID' retries one")


def _show_server(app: AppContext, server: dict) -> None:
    described = server.get("state_describes") or {}
    line = f"服务器 server: {server.get('configured') or '未设置 not set'}"
    if described.get("host_key"):
        line += f" (host key {described['host_key']})"
    echo(app, line)
    echo(app, f"  上次核对 last server recheck: {server.get('checked_at') or '从未 never'}")
    if not server.get("same"):
        was = described.get("url") or "no server yet"
        echo(app, f"  the sync state describes {was}: the next sync lists the configured server "
                  "and pushes everything it lacks")


def _show_camera(app: AppContext, camera: dict) -> None:
    if not camera.get("inbox"):
        return
    target = camera.get("target") or {}
    where = target.get("visit") if isinstance(target, dict) else target
    line = f"相机 camera: {camera.get('state')}"
    if where:
        line += f" → {where} ({target.get('kind', '') if isinstance(target, dict) else ''})"
    if camera.get("expires_at"):
        line += f", expires {camera['expires_at']}"
    echo(app, line)
    if camera.get("waiting"):
        echo(app, f"  {camera['waiting']} photo(s) waiting in {camera['inbox']}: "
                  "set a target with 'fieldsync visit use'")


COMMANDS = [sync_command, daemon_command, status_command]
