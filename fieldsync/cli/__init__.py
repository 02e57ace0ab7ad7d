"""The `fieldsync` command line (click). The only layer that prints.

Commands live in one module per area; this module builds the group and registers them.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from fieldsync import __version__
from fieldsync.cli.base import AppContext, FieldsyncGroup, PipeClosed, setup_logging, translate_help


@click.group(cls=FieldsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_option", metavar="PATH", envvar=None,
              help="config.yaml to use (default: $FIELDSYNC_CONFIG, ./config.yaml, the enclosing tree, "
                   "the user config).")
@click.option("-v", "--verbose", count=True, help="More detail, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings.")
@click.version_option(__version__, prog_name="fieldsync")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, verbose: int, quiet: bool) -> None:
    """fieldsync: inspection records as real folders, mirrored to the server.

    \b
    The tree:  ROOT/customer/business/category/visit/(外观|铭牌)/photo
    Start with 'fieldsync init ROOT', import customers, then 'customer open'.
    """
    verbosity = -1 if quiet else verbose
    ctx.obj = AppContext(config_option=config_option, verbosity=verbosity)
    setup_logging(verbosity)


# Command name -> the modules of this package that make it (the first defines it, the others
# add subcommands to it). Commands load only when used, so `fieldsync find` does not pay for
# paramiko, Pillow and watchdog; tests/test_help.py checks this table against the modules.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "init": ("tree",), "customer": ("tree",), "category": ("tree",), "add": ("tree",),
    "check": ("tree",), "visit": ("tree", "inbox"),
    "customers": ("customers", "masterdata"), "find": ("find",),
    "pick": ("inbox",), "shoot": ("inbox",), "appearance": ("inbox",), "nameplate": ("inbox",),
    "remark": ("inbox",),
    "locate": ("locate",), "where": ("locate",),
    "sync": ("sync",), "daemon": ("sync",), "status": ("sync",), "trust-host": ("transport",),
    "verify": ("evidence",), "evidence": ("evidence",),
    "server": ("server",), "demo": ("demo",),
    "quarantine": ("quarantine",),
    "keyring": ("keyring",),
}


def _load_command(name: str) -> click.Command | None:
    modules = [importlib.import_module(f"{__name__}.{m}") for m in COMMAND_MODULES.get(name, ())]
    for command in getattr(modules[0], "COMMANDS", ()) if modules else ():
        if command.name == name:
            translate_help(command)
            return command
    return None


cli.list_commands = lambda ctx: sorted(COMMAND_MODULES)  # type: ignore[method-assign]
cli.get_command = lambda ctx, name: _load_command(name)  # type: ignore[method-assign]


# What a shell shows for a program ended by SIGPIPE (128 + 13), as `yes | head -1` does.
EXIT_PIPE_CLOSED = 128 + getattr(signal, "SIGPIPE", 13)


def main() -> None:
    """Console entry point.

    A reader that stops early (`fieldsync status | head -3`) closes the pipe: the command ends
    quietly with EXIT_PIPE_CLOSED, wherever the closed pipe is noticed — while a command
    writes (the group raises PipeClosed) or in the last flush of stdout.
    """
    try:
        try:
            cli.main(prog_name="fieldsync")
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is a traceback
    except (PipeClosed, BrokenPipeError):
        # Python's advice: point stdout at /dev/null so the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_PIPE_CLOSED)
