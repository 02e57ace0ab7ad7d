"""The quarantine commands: list, restore and clear the files sync set aside (issue 14)."""

from __future__ import annotations

import json

import click

from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, pass_app, warn
from fieldsync.sync import quarantine


@click.group("quarantine")
def quarantine_group() -> None:
    """隔离区 Files sync set aside (not photos, or corrupt): list, restore or clear them.

    \b
    They live under ROOT/.fieldsync/quarantine/, at the path they came from.
    Restore puts a file back so sync tries it again; clear deletes it for good.
    """


@quarantine_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array: id, origin, stored, at, reason, size, sha256.")
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """列出 Each quarantined file: id, where it came from, when, why, size."""
    found = quarantine.entries(app.config)
    if as_json:
        click.echo(json.dumps([e.as_json() for e in found], ensure_ascii=False, indent=1))
        return
    folder = quarantine.quarantine_dir(app.config)
    if not found:
        echo(app, _("the quarantine is empty ({folder})").format(folder=folder))
        return
    echo(app, _("quarantine: {count} file(s) in {folder}").format(count=len(found), folder=folder))
    for entry in found:
        click.echo(f"{entry.id}  {entry.at}  {_size(entry.size)}  {entry.origin}")
        click.echo(_("    why: {reason}").format(
            reason=entry.reason or _("(not recorded: set aside just before an interruption)")))
        if entry.grew:
            click.echo(_("    grew from {size} after it was set aside: a writer was still at it; "
                         "restore it to try again").format(size=_size(entry.recorded_size or 0)))
    echo(app, _("next: fieldsync quarantine restore ID (try again) | clear ID (delete for good)"))


def _targets(app: AppContext, keys: tuple[str, ...], everything: bool) -> list[quarantine.Entry]:
    if everything == bool(keys):
        raise click.UsageError(_("name the files (ID or PATH, see 'fieldsync quarantine list') or give --all"))
    return quarantine.entries(app.config) if everything else quarantine.select(app.config, keys)


@quarantine_group.command("restore")
@click.argument("keys", metavar="ID|PATH...", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Restore every quarantined file.")
@pass_app
def restore_command(app: AppContext, keys: tuple[str, ...], everything: bool) -> None:
    """恢复 Put files back where they came from, so the next sync tries them again.

    A place that is taken now gets the file under a -2, -3 ... name; nothing is overwritten.
    """
    chosen = _targets(app, keys, everything)
    for entry in chosen:
        target = quarantine.restore(app.config, entry)
        echo(app, _("restored {id}: {target}").format(id=entry.id, target=target))
        if target.name != entry.origin.name:
            warn(_("{origin} is taken, so it came back as {name}").format(origin=entry.origin, name=target.name))
    if chosen:
        echo(app, _("next: fieldsync sync (or the running daemon) tries them again"))
    else:
        echo(app, _("the quarantine is empty: nothing to restore"))


@quarantine_group.command("clear")
@click.argument("keys", metavar="ID|PATH...", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Delete every quarantined file.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def clear_command(app: AppContext, keys: tuple[str, ...], everything: bool, yes: bool) -> None:
    """删除 Delete quarantined files for good (asks first unless --yes).

    They may be an inspector's only copy: look at them, or restore them, before clearing.
    """
    chosen = _targets(app, keys, everything)
    if not chosen:
        echo(app, _("the quarantine is empty: nothing to delete"))
        return
    for entry in chosen:
        reason = entry.reason or _("reason not recorded")
        click.echo(f"{entry.id}  {_size(entry.size)}  {entry.origin}  ({reason})", err=True)
    if not yes:
        click.confirm(_("delete these {count} file(s) for good?").format(count=len(chosen)), abort=True, err=True)
    deleted = quarantine.clear(app.config, chosen)
    echo(app, _("deleted {count} file(s) from {folder}").format(count=deleted,
                                                                  folder=quarantine.quarantine_dir(app.config)))


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


COMMANDS = [quarantine_group]
