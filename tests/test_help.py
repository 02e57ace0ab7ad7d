"""Every command and group has help text, reachable with --help, and the group lists them all."""

from __future__ import annotations

import click
import pytest

from fieldsync.cli import cli


def all_commands(group: click.Group, prefix=()):
    for name, command in sorted(group.commands.items()):
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


def test_version(invoke):
    from fieldsync import __version__
    assert __version__ in invoke("--version").output
