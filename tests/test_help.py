"""Every command and group has help text, reachable with --help, and the group lists them all."""

from __future__ import annotations

import click
import pytest

from fieldsync.cli import cli


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
