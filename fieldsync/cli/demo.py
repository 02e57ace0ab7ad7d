"""`fieldsync demo`: the guided tour on local folders.

The commands it prints work exactly as printed when pasted into a new shell, in any folder:
a new shell has neither the venv nor FIELDSYNC_CONFIG, so the block starts with the lines that
give it both (tests/test_frictions.py runs every printed line in a fresh `bash -c`).
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import click

from fieldsync import config as config_mod
from fieldsync import demo
from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, pass_app

# The account of the demo's sample data the guide makes a new visit for (it has no folder yet).
NEW_VISIT_ACCOUNT = "3300009999"


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
    echo(app, _("demo ready in {path}").format(path=result.sandbox))
    echo(app, _("  tablet tree:  {root}   ({customers} customers imported, {visits} visits, {photos} photos)").format(
        root=result.root, customers=result.customers, visits=len(result.visits), photos=result.photos))
    echo(app, _("  query page:   {url}").format(url=(result.root / "index.html").as_uri()))
    echo(app, _("  first visit:  {path}").format(path=result.visits[0]))
    echo(app, _("  server copy:  {path}   ({summary})").format(path=result.server, summary=result.synced))
    echo(app, "")
    echo(app, _("try it: paste these lines into a new shell, in any folder:"))
    for line in guide_lines(result):
        echo(app, f"  {line}")


def guide_lines(result: demo.DemoResult) -> list[str]:
    """The setup lines a new shell needs, then commands that all succeed in this order."""
    q = shlex.quote
    account = NEW_VISIT_ACCOUNT
    return [
        *launcher_lines(),
        f"export {config_mod.ENV_VAR}={q(str(result.config_path))}",
        "fieldsync customers show 3300001234",
        "fieldsync visit list 3300001234",
        f"fieldsync customer open {account}",
        f"fieldsync visit new {account} 2 计量装置 --create-category --appearance-note 外观正常",
        "fieldsync category list",
        "fieldsync sync",
        "fieldsync status",
        "fieldsync check",
        f"fieldsync verify --server {q(str(result.server))}",
    ]


def launcher_lines() -> list[str]:
    """What makes `fieldsync` a command in a new shell: the venv's activation when fieldsync runs
    from a venv (./run's .venv is never on PATH by itself), nothing when this very fieldsync is
    on PATH, else a shell function that runs this Python's fieldsync."""
    bin_dir = Path(sys.executable).parent
    script, activate = bin_dir / "fieldsync", bin_dir / "activate"
    if script.is_file() and activate.is_file():
        return [f"source {shlex.quote(str(activate))}"]
    found = shutil.which("fieldsync")
    if script.is_file() and found and Path(found).resolve() == script.resolve():
        return []
    return [f'fieldsync() {{ {shlex.quote(sys.executable)} -m fieldsync "$@"; }}']


COMMANDS = [demo_command]
