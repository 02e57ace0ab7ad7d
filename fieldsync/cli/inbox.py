"""The patent's five visit buttons as one-word commands, and `visit use` for the camera inbox.

    本地选择 local select  ->  fieldsync pick FILE...      copy photos into the active visit
    拍照     take photo    ->  fieldsync shoot             file new camera photos now
    外观     appearance    ->  fieldsync appearance        camera photos go to 外观 from now on
    铭牌     nameplate     ->  fieldsync nameplate         camera photos go to 铭牌 from now on
    编辑     edit          ->  fieldsync remark            show or change the active visit's remarks

All of them work on the active target that `fieldsync visit use VISIT` sets; contrib/launchers/
has desktop, Windows and Termux:Widget launchers for them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from fieldsync.base.clock import local_time
from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, finish_with_warnings, pass_app, warn
from fieldsync.cli.tree import KINDS, derive_after, visit_group
from fieldsync.config import Config
from fieldsync.errors import ConfigError, TreeError
from fieldsync.tree import inbox, photos, visits
from fieldsync.tree.layout import VISIT_FILE


def _kind_label(cfg: Config, kind: str) -> str:
    return f"{cfg.layout.kind_folders[kind]} ({kind})"


def _clock(at: datetime) -> str:
    return local_time(at)  # in ui.timezone, like the pages


def _describe(cfg: Config, status: inbox.TargetStatus) -> str:
    target = status.target
    if target is None:
        return _("active visit: none; camera photos stay in the inbox (fieldsync visit use VISIT)")
    where = f"{target.visit} -> {_kind_label(cfg, target.kind)}"
    if status.state == "active":
        return _("active: {where}, until {until} unless used again").format(
            where=where, until=_clock(status.expires_at))
    if status.state == inbox.EXPIRED:
        return _("expired at {at}: {where}; run 'fieldsync visit use' again").format(
            at=_clock(status.expires_at), where=where)
    return _("visit folder gone: {where}; run 'fieldsync visit use' again").format(where=where)


def _show_waiting(cfg: Config) -> None:
    waiting = inbox.waiting_photos(cfg)
    if waiting:
        click.echo(_("waiting: {count} photo(s) in the camera inbox {inbox}").format(
            count=len(waiting), inbox=cfg.camera.inbox))


@visit_group.command("use")
@click.argument("visit", required=False)
@click.option("--kind", type=KINDS,
              help="Which folder camera photos go to: appearance (外观, the default) or nameplate (铭牌); "
                   "without VISIT it switches the active visit's kind.")
@click.option("--clear", is_flag=True, help="Forget the active visit; camera photos stay in the inbox.")
@pass_app
def visit_use(app: AppContext, visit: str | None, kind: str | None, clear: bool) -> None:
    """Set the visit (and kind) new camera photos are filed into; without VISIT, show it.

    The target expires after camera.idle_minutes without use, so tomorrow's photos do not
    land in today's visit. Photos are filed by 'fieldsync daemon', or now by 'fieldsync shoot'.
    """
    cfg = app.config
    if clear and visit:
        raise click.UsageError(_("give VISIT or --clear, not both"))
    if clear:
        old = inbox.clear_active(cfg)
        echo(app, _("cleared: {visit}").format(visit=old.visit) if old else _("active visit: none"))
        return
    if not visit and kind:
        _switch(app, kind)
        return
    if visit:
        target = inbox.use_visit(cfg, visits.resolve_visit(cfg, visit), kind or "appearance")
        echo(app, str(target.visit_path(cfg) / target.folder_name(cfg)))
        if cfg.camera.inbox is None:
            warn(_("camera.inbox is not set in config.yaml: only 'fieldsync pick' files photos"))
    click.echo(_describe(cfg, inbox.target_status(cfg)))
    _show_waiting(cfg)


def _switch(app: AppContext, kind: str) -> None:
    cfg = app.config
    target = inbox.switch_kind(cfg, kind)
    echo(app, str(target.visit_path(cfg) / target.folder_name(cfg)))
    click.echo(_describe(cfg, inbox.target_status(cfg)))


@click.command("appearance")
@pass_app
def appearance_command(app: AppContext) -> None:
    """外观: camera photos go to the active visit's appearance folder from now on."""
    _switch(app, "appearance")


@click.command("nameplate")
@pass_app
def nameplate_command(app: AppContext) -> None:
    """铭牌: camera photos go to the active visit's nameplate folder from now on."""
    _switch(app, "nameplate")


@click.command("shoot")
@click.option("--all", "include_older", is_flag=True,
              help="Also file photos taken before the visit was set (e.g. you forgot 'visit use').")
@pass_app
def shoot_command(app: AppContext, include_older: bool) -> None:
    """拍照: file the camera's new photos into the active visit now (the daemon does it too).

    Exit 0 when everything complete was filed, 1 when photos were left in the inbox.
    """
    cfg = app.config
    result = inbox.file_inbox(cfg, include_older=include_older)
    if result.reason in (inbox.NO_INBOX,):
        raise ConfigError(f"{cfg.path}: {_(inbox.REASON_TEXT[result.reason])}")
    if result.reason in (inbox.INBOX_MISSING, inbox.INBOX_DENIED):
        raise TreeError(f"{cfg.camera.inbox}: {_(inbox.REASON_TEXT[result.reason])}")
    for filed in result.filed:
        echo(app, str(filed.target))
    if result.filed:
        derive_after(app, [filed.target for filed in result.filed])
    left = False
    if result.waiting:
        left = True
        warn(_("{count} photo(s) left in {inbox}: {reason}").format(
            count=len(result.waiting), inbox=cfg.camera.inbox, reason=_(result.reason_text or "")))
    if result.older:
        left = True
        warn(_("{count} photo(s) taken before this visit was set are left in the inbox; "
               "'fieldsync shoot --all' files them into it").format(count=len(result.older)))
    for source, why in result.failed:
        left = True
        warn(f"{source}: {why}")
    if result.settling:
        echo(app, _("{count} photo(s) still being written; run 'fieldsync shoot' again in a moment").format(
            count=len(result.settling)))
    if not (result.filed or left or result.settling):
        echo(app, _("no new photos in the camera inbox"))
    if result.target is not None:
        kind = _kind_label(cfg, result.target.kind)
        echo(app, _("filed: {count} into {visit} / {kind}").format(
            count=len(result.filed), visit=result.target.visit, kind=kind))
    if left:
        finish_with_warnings()


@click.command("pick")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", type=KINDS, help="Override the active kind for these photos.")
@pass_app
def pick_command(app: AppContext, files: tuple[Path, ...], kind: str | None) -> None:
    """本地选择: copy existing photos into the active visit (like 'add', without naming it)."""
    cfg = app.config
    target = inbox.require_live(cfg)
    added_photos = photos.add_photos(cfg, target.visit_path(cfg), kind or target.kind, list(files))
    for added in added_photos:
        if added.duplicate:
            warn(_("{source}: already in the visit as {name}, not copied again").format(
                source=added.source, name=added.target.name))
        else:
            echo(app, str(added.target))
    inbox.touch(cfg, target)
    derive_after(app, [target.visit_path(cfg)] + [added.target for added in added_photos])


@click.command("remark")
@click.option("--appearance", "appearance_note", metavar="TEXT", help="New 外观备注 ('' clears it).")
@click.option("--nameplate", "nameplate_note", metavar="TEXT", help="New 铭牌备注 ('' clears it).")
@click.option("--visit", "visit", help="Another visit than the active one.")
@pass_app
def remark_command(app: AppContext, appearance_note: str | None, nameplate_note: str | None,
                   visit: str | None) -> None:
    """编辑: show or change the remarks of the active visit (every change kept in its history)."""
    cfg = app.config
    target = None
    if visit:
        path = visits.resolve_visit(cfg, visit)
    else:
        target = inbox.require_live(cfg)
        path = target.visit_path(cfg)
    if appearance_note is not None or nameplate_note is not None:
        visits.edit_visit(cfg, path, appearance_note=appearance_note, nameplate_note=nameplate_note)
        derive_after(app, [path / VISIT_FILE])
        if target is not None:
            inbox.touch(cfg, target)
    data = visits.read_visit(path)
    click.echo(str(path))
    for folder, key in ((cfg.layout.appearance_folder, "appearance_note"),
                        (cfg.layout.nameplate_folder, "nameplate_note")):
        click.echo(_("{folder} remark: {text}").format(folder=folder, text=data.get(key) or _("(empty)")))


COMMANDS = [shoot_command, pick_command, appearance_command, nameplate_command, remark_command]
