"""The `fieldsync` command line (click). The only layer that prints.

Commands live in one module per area; this module builds the group and registers them.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from .base import AppContext, FieldsyncGroup, setup_logging


@click.group(cls=FieldsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_option", metavar="PATH", envvar=None,
              help="config.yaml to use (default: $FIELDSYNC_CONFIG, ./config.yaml, the enclosing tree, the user config).")
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


def _register() -> None:
    # Every module in this package except `base` contributes its COMMANDS list, so each
    # command area stays in its own file and adding one touches nothing else.
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


_register()


def main() -> None:
    """Console entry point."""
    sys.exit(cli.main(prog_name="fieldsync"))
