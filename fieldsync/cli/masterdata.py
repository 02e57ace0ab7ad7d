"""`fieldsync customers publish | pull`: master data from the server to every tablet."""

from __future__ import annotations

from pathlib import Path

import click

from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, pass_app
from fieldsync.cli.customers import customers_group
from fieldsync.cli.tree import derive_after
from fieldsync.masterdata import publish as masterdata
from fieldsync.masterdata.store import CustomerStore
from fieldsync.transport import open_transport
from fieldsync.transport.local import LocalTransport


@customers_group.command("publish")
@click.argument("server_root", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_app
def publish_command(app: AppContext, server_root: Path | None) -> None:
    """Publish this master data for tablets to pull.

    \b
    SERVER_ROOT: the server tree's folder when run on the server itself; without it, the
    data goes to server.url from config.yaml (file:// or sftp://).
    """
    transport = LocalTransport(server_root.resolve()) if server_root else open_transport(app.config)
    with transport:
        published = masterdata.publish(app.config.state_dir, transport)
    echo(app, _("published {count} customers to {url} (.fieldsync/master, sha256 {sha256})").format(
        count=published.count, url=transport.url, sha256=published.sha256[:12]))


@customers_group.command("pull")
@pass_app
def pull_command(app: AppContext) -> None:
    """Fetch the server's master data when it changed (swapped in atomically)."""
    cfg = app.config
    if masterdata.pull_if_changed(cfg):
        if cfg.root.is_dir():
            derive_after(app, [], master_data_changed=True)
        count = CustomerStore(cfg.state_dir).meta().get("count")
        echo(app, _("pulled new master data: {count} customers").format(count=count))
    else:
        echo(app, _("master data is up to date (or nothing is published yet)"))


COMMANDS: list = []  # both commands hang off `customers_group` (fieldsync/cli/customers.py)
