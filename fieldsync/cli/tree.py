"""The tree commands: init, customer open, category add/list, visit new/edit/list, add, check.

Help texts speak the inspector's words, never the requirement numbers (P1 ...) of the design notes."""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterable
from pathlib import Path

import click

from fieldsync import config as config_mod
from fieldsync.base.clock import local_time
from fieldsync.base.i18n import _
from fieldsync.base.platform import quote_command
from fieldsync.cli.base import AppContext, echo, finish_with_warnings, pass_app, warn
from fieldsync.location import locate
from fieldsync.sync.derive import DeriveResult, derive
from fieldsync.tree import check as check_mod
from fieldsync.tree import folders as tree
from fieldsync.tree import listing, photos, visits
from fieldsync.tree.layout import CUSTOMER_FILE, PHOTO_KINDS, VISIT_FILE

KINDS = click.Choice(PHOTO_KINDS)


@click.command("init")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--inspector", default=getpass.getuser, show_default="your login name",
              help="Who takes the photos (recorded in visits and manifests).")
@click.option("--device", default=socket.gethostname, show_default="this machine's name",
              help="This tablet's name.")
@click.option("--server", "server_url", metavar="URL",
              help="sftp://user@host/path or file:///path (edit config.yaml later if unsure).")
@pass_app
def init_command(app: AppContext, root: Path, inspector: str, device: str, server_url: str | None) -> None:
    """Create the tablet tree ROOT and a commented ROOT/config.yaml (kept if present)."""
    root = root.expanduser().resolve()
    text = config_mod.render_default(root, inspector, device, server_url)
    target = Path(app.config_option).expanduser() if app.config_option else None
    config_path = tree.init_root(root, text, target)
    cfg = config_mod.load(config_path)  # an existing config.yaml must still be valid
    echo(app, f"{root}")
    echo(app, _("config: {path}").format(path=config_path))
    if cfg.server.scheme == "sftp":
        # A tablet: the master data comes from the server (an admin publishes it), and the
        # server's key must be pinned before the first pull can log in.
        echo(app, _("next: fieldsync trust-host (compare the fingerprint with your admin's), "
                    "then fieldsync customers pull, then fieldsync customer open ACCOUNT"))
    else:
        echo(app, _("next: fieldsync customers import EXPORT.csv, then fieldsync customer open ACCOUNT"))
    if Path.cwd().resolve() != root and not target:
        echo(app, _("(run commands inside {root}, or export {setting})").format(
            root=root, setting=f"{config_mod.ENV_VAR}={config_path}"))


def derive_after(app: AppContext, changed: Iterable[Path], master_data_changed: bool = False) -> DeriveResult:
    """Seals, customer.yaml and pages follow the tree: every command that changed it calls this
    with what it changed (the daemon does the same for the file manager's changes)."""
    done = derive(app.config, changed, master_data_changed)
    for problem in done.problems:
        warn(problem)
    return done


@click.group("customer")
def customer_group() -> None:
    """A customer's root folder."""


@customer_group.command("open")
@click.argument("account")
@pass_app
def customer_open(app: AppContext, account: str) -> None:
    """Make or refresh ACCOUNT's folder (customer.yaml, documents, business folders); print its path."""
    folder = tree.open_customer(app.config, account)
    derive_after(app, [folder, folder / CUSTOMER_FILE])
    click.echo(folder)


@click.group("category")
def category_group() -> None:
    """Categories under a business type."""


@category_group.command("add")
@click.argument("account")
@click.argument("business")
@click.argument("name")
@pass_app
def category_add(app: AppContext, account: str, business: str, name: str) -> None:
    """Create category NAME under BUSINESS (its name, or 1/2/3) of ACCOUNT; print its path."""
    folder = tree.add_category(app.config, account, business, name)
    derive_after(app, [folder])
    click.echo(folder)


@category_group.command("list")
@click.argument("account", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON array: account_no, business, category, path, visits.")
@pass_app
def category_list(app: AppContext, account: str | None, as_json: bool) -> None:
    """List the categories of ACCOUNT (or of every customer) with their number of visits."""
    found = listing.categories(app.config, account)
    if as_json:
        click.echo(json.dumps([c.as_json() for c in found], ensure_ascii=False, indent=1))
        return
    for category in found:
        click.echo(_("{path}  ({count} visit(s))").format(path=category.path, count=category.visits))
    echo(app, _("{count} category(ies) in {root}").format(count=len(found), root=app.config.root))


@click.group("visit")
def visit_group() -> None:
    """Dated visits and their remarks."""


@visit_group.command("new")
@click.argument("account")
@click.argument("business")
@click.argument("category")
@click.option("--name", help="Folder name (default: layout.visit_folder, e.g. 2026-11-25_1430).")
@click.option("--appearance-note", default="", help="外观备注: remark on the overall shots.")
@click.option("--nameplate-note", default="", help="铭牌备注: remark on the nameplate close-ups.")
@click.option("--create-category", is_flag=True,
              help="Create CATEGORY first when it does not exist yet (as 'category add' does).")
@pass_app
def visit_new(app: AppContext, account: str, business: str, category: str, name: str | None,
              appearance_note: str, nameplate_note: str, create_category: bool) -> None:
    """Create a visit with visit.yaml and both photo folders; print its path."""
    if create_category:
        tree.add_category(app.config, account, business, category)
    path = visits.new_visit(app.config, account, business, category, name=name,
                            appearance_note=appearance_note, nameplate_note=nameplate_note)
    derive_after(app, [path / VISIT_FILE])  # seals the starting remarks, renders the pages
    click.echo(path)


@visit_group.command("list")
@click.argument("account", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON array: account_no, business, category, name, path, created_at, inspector, photos.")
@pass_app
def visit_list(app: AppContext, account: str | None, as_json: bool) -> None:
    """List the visits of ACCOUNT (or of every customer): path, when, photos of each kind."""
    found = listing.visits(app.config, account)
    if as_json:
        click.echo(json.dumps([v.as_json() for v in found], ensure_ascii=False, indent=1))
        return
    folders = app.config.layout.kind_folders
    for visit in found:
        counts = "  ".join(f"{folders[kind]} {count}" for kind, count in visit.photos.items())
        click.echo(f"{visit.path}  {local_time(visit.created_at)}  {counts}")
    echo(app, _("{count} visit(s) in {root}").format(count=len(found), root=app.config.root))


@visit_group.command("edit")
@click.argument("visit")
@click.option("--name", help="Rename the visit folder.")
@click.option("--appearance-note", help="New appearance remark ('' clears it).")
@click.option("--nameplate-note", help="New nameplate remark ('' clears it).")
@pass_app
def visit_edit(app: AppContext, visit: str, name: str | None, appearance_note: str | None,
               nameplate_note: str | None) -> None:
    """Change a visit's name or remarks; every change is kept in its history. Prints the path."""
    cfg = app.config
    path = visits.resolve_visit(cfg, visit)
    target = visits.edit_visit(cfg, path, name=name, appearance_note=appearance_note,
                               nameplate_note=nameplate_note)
    derive_after(app, [path, target / VISIT_FILE])  # seals the edit now, not with the next photo
    click.echo(target)


@click.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--visit", "visit", required=True, help="The visit folder (path, or relative to ROOT).")
@click.option("--kind", required=True, type=KINDS, help="appearance (外观) or nameplate (铭牌).")
@pass_app
def add_command(app: AppContext, files: tuple[Path, ...], visit: str, kind: str) -> None:
    """Copy photos into a visit's appearance or nameplate folder.

    Never overwrites: a name clash gets a suffix (IMG_1-2.jpg). Every file is checked first;
    if one is not a photo, nothing is copied.
    """
    cfg = app.config
    path = visits.resolve_visit(cfg, visit)
    added_photos = photos.add_photos(cfg, path, kind, list(files))
    for added in added_photos:
        if added.duplicate:
            warn(_("{source}: already in the visit as {name}, not copied again").format(
                source=added.source, name=added.target.name))
        else:
            echo(app, str(added.target))
    derive_after(app, [path] + [added.target for added in added_photos])


@click.command("check")
@click.option("--deep", is_flag=True, help="Decode every photo in full (slower; finds damage inside a file).")
@pass_app
def check_command(app: AppContext, deep: bool) -> None:
    """Lint the tree: misplaced photos, visits without visit.yaml, unknown folders, unsafe names.

    Each problem a command can fix is followed by that command, quoted to paste as it is.
    Exit 0 when clean, 1 when something needs attention.
    """
    findings = check_mod.check_tree(app.config, deep=deep)
    for finding in findings:
        click.echo(str(finding))
        if finding.fix:  # shell-quoted, absolute paths: it runs as pasted, from any folder
            click.echo(_("  fix: {command}").format(command=quote_command(finding.fix)))
    # Suggestions are not problems: they never change the exit code.
    for suggestion in locate.suggestions(app.config):
        click.echo(_("suggestion: {suggestion}").format(suggestion=suggestion))
    if findings:
        finish_with_warnings(_("{count} problem(s) in {root}").format(count=len(findings), root=app.config.root))
    echo(app, _("{root}: no problems found").format(root=app.config.root))


COMMANDS = [init_command, customer_group, category_group, visit_group, add_command, check_command]
