"""`fieldsync demo`: the guided tour on local folders."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from fieldsync import demo
from fieldsync.cli.base import AppContext, echo, pass_app


@click.command("demo")
@click.option("--dir", "sandbox", type=click.Path(file_okay=False, path_type=Path),
              help="An empty or new folder for the sandbox (default: a new temporary folder).")
@pass_app
def demo_command(app: AppContext, sandbox: Path | None) -> None:
    """Build a sandbox tablet tree with sample customers, visits and photos; push it locally.

    Needs no server and no network: the "server" is a folder in the sandbox (file://).
    """
    sandbox = sandbox or Path(tempfile.mkdtemp(prefix="fieldsync-demo-"))
    result = demo.run(sandbox, progress=lambda line: echo(app, f"  {line}"))
    echo(app, "")
    echo(app, f"demo ready in {result.sandbox}")
    echo(app, f"  tablet tree:  {result.root}   ({result.customers} customers imported, "
              f"{len(result.visits)} visits, {result.photos} photos)")
    echo(app, f"  query page:   {(result.root / 'index.html').as_uri()}")
    echo(app, f"  first visit:  {result.visits[0]}")
    echo(app, f"  server copy:  {result.server}   ({result.synced})")
    echo(app, "")
    echo(app, "try it:")
    echo(app, f"  export FIELDSYNC_CONFIG={result.config_path}")
    echo(app, "  fieldsync customers show 3300001234")
    echo(app, "  fieldsync visit new 3300009999 2 计量装置 --appearance-note 外观正常")
    echo(app, "  fieldsync check")
    echo(app, "  fieldsync status")
    echo(app, f"  fieldsync verify --server {result.server}")


COMMANDS = [demo_command]
