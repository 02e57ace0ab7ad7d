"""Every command and group has help text, reachable with --help, and the group lists them all."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import fieldsync.cli as package
from fieldsync.cli import cli
from fieldsync.cli.base import AppContext, FieldsyncGroup, finish_with_warnings
from fieldsync.errors import BadInput


def all_commands(group: click.Group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join(prefix + (name,))} is listed but does not load"
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


COMMANDS = list(all_commands(cli))


def test_the_foundation_commands_exist():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"init", "customers import", "customer open", "category add", "visit new", "visit edit",
            "add", "check", "demo"} <= names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(invoke, path, command):
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output and command.help.strip().splitlines()[0][:30] in result.output


def test_lazy_command_table_matches_the_modules():
    """Every COMMANDS entry of every fieldsync.cli module is in the lazy table, and back."""
    import importlib
    import pkgutil

    import fieldsync.cli as package

    defined = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"fieldsync.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            defined[command.name] = info.name
    assert {name: modules[0] for name, modules in package.COMMAND_MODULES.items()} == defined


def test_version(invoke):
    from fieldsync import __version__
    assert __version__ in invoke("--version").output




def _exit_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name.endswith(("sys.exit", "ctx.exit", "exceptions.Exit", ".Exit")) or name == "Exit":
                found.append(f"line {node.lineno}: {name}")
    return found


def test_one_way_out_for_warnings():
    """Commands exit 1 only through cli.base.finish_with_warnings (spec: 0 ok, 1 warnings, 2 errors)."""
    folder = Path(package.__file__).parent
    offenders = {}
    for path in sorted(folder.glob("*.py")):
        if path.name in {"base.py", "__init__.py"}:
            continue  # base.py converts Warned into the exit; __init__.main hands click's code to the OS
        calls = _exit_calls(path.read_text(encoding="utf-8"))
        if calls:
            offenders[path.name] = calls
    assert offenders == {}


@pytest.mark.parametrize("verbose", [False, True])
def test_the_group_turns_warnings_into_1_and_errors_into_2(verbose):
    """The conversion itself, on a throwaway group of the same class as `fieldsync`."""
    @click.group(cls=FieldsyncGroup)
    @click.pass_context
    def group(ctx):
        ctx.obj = AppContext(verbosity=1 if verbose else 0)

    @group.command()
    def warned():
        click.echo("done")
        finish_with_warnings("2 photos quarantined")

    @group.command()
    def failed():
        raise BadInput("bad value; try again")

    runner = CliRunner()
    result = runner.invoke(group, ["warned"])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "done\n", "Warning: 2 photos quarantined\n")
    result = runner.invoke(group, ["failed"])
    assert result.exit_code == 2 and result.stderr.endswith("Error: bad value; try again\n")
    assert ("Traceback" in result.stderr) == verbose
