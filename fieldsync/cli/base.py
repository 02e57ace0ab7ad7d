"""What every command shares: the group, lazy config, output helpers, errors -> exit codes.

Only the CLI prints. Core code raises FieldsyncError; the group turns it into `Error: ...` on
stderr and the error's exit code (spec.md: 0 ok, 1 warnings, 2 error), with a traceback only
under -v. A command that finished with warnings calls `finish_with_warnings()`: the one way a
command exits 1, converted by the group like errors are.
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import NoReturn

import click

from fieldsync import config as config_mod
from fieldsync.errors import EXIT_ERROR, EXIT_WARNING, FieldsyncError


@dataclass
class AppContext:
    config_option: str | None = None
    verbosity: int = 0
    _config: config_mod.Config | None = field(default=None, repr=False)

    @property
    def config(self) -> config_mod.Config:
        """The config, discovered and validated on first use (init and demo never need it)."""
        if self._config is None:
            self._config = config_mod.load(config_mod.discover(self.config_option))
        return self._config

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0


class CommandError(click.ClickException):
    """A FieldsyncError on its way out: printed as `Error: ...`, exits with the error's code."""

    def __init__(self, error: FieldsyncError):
        super().__init__(str(error))
        self.error = error
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        stream = file or sys.stderr
        click.echo(f"Error: {self.format_message()}", file=stream)
        for problem in getattr(self.error, "problems", [])[:MAX_PROBLEMS_SHOWN]:
            click.echo(f"  {problem}", file=stream)
        hidden = len(getattr(self.error, "problems", [])) - MAX_PROBLEMS_SHOWN
        if hidden > 0:
            click.echo(f"  ... and {hidden} more", file=stream)


MAX_PROBLEMS_SHOWN = 200


class Warned(Exception):
    """A command finished and showed its warnings; the group exits 1 (spec.md: 1 = warnings)."""

    def __init__(self, summary: str | None = None):
        super().__init__(summary or "")
        self.summary = summary


def finish_with_warnings(summary: str | None = None) -> NoReturn:
    """End the command with exit code 1, after an optional last `Warning: summary` line."""
    raise Warned(summary)


class FieldsyncGroup(click.Group):
    """A click group that converts fieldsync's errors at the boundary."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Warned as warned:
            if warned.summary:
                warn(warned.summary)
            raise click.exceptions.Exit(EXIT_WARNING) from None
        except FieldsyncError as error:
            if _verbosity(ctx) > 0:
                traceback.print_exc()
            raise CommandError(error) from None
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None
        except Exception as error:  # a bug: still no traceback unless asked
            if _verbosity(ctx) > 0:
                raise
            message = f"unexpected {type(error).__name__}: {error} (run with -v for the traceback, and report it)"
            wrapped = click.ClickException(message)
            wrapped.exit_code = EXIT_ERROR
            raise wrapped from None


def _verbosity(ctx: click.Context) -> int:
    root = ctx.find_root()
    return root.obj.verbosity if isinstance(root.obj, AppContext) else 0


pass_app = click.make_pass_decorator(AppContext)


def echo(app: AppContext, message: str = "", **kwargs) -> None:
    """Normal output; silent under -q."""
    if not app.quiet:
        click.echo(message, **kwargs)


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def setup_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

