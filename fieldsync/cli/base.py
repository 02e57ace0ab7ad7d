"""What every command shares: the group, lazy config, output helpers, errors -> exit codes.

Only the CLI prints. Core code raises FieldsyncError; the group turns it into `Error: ...` on
stderr and the error's exit code (spec.md: 0 ok, 1 warnings, 2 error), with a traceback only
under -v. A command that finished with warnings calls `finish_with_warnings()`: the one way a
command exits 1, converted by the group like errors are.
"""

from __future__ import annotations

import inspect
import logging
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click

from fieldsync import config as config_mod
from fieldsync.base import clock, i18n
from fieldsync.base.i18n import N_, _
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
            clock.use_zone(self._config.ui.timezone)  # pages and tables show times in ui.timezone
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
        click.echo(_("Error: {message}").format(message=self.format_message()), file=stream)
        for problem in getattr(self.error, "problems", [])[:MAX_PROBLEMS_SHOWN]:
            click.echo(f"  {problem}", file=stream)
        hidden = len(getattr(self.error, "problems", [])) - MAX_PROBLEMS_SHOWN
        if hidden > 0:
            click.echo(_("  ... and {count} more").format(count=hidden), file=stream)


MAX_PROBLEMS_SHOWN = 200


class PipeClosed(Exception):
    """The reader of our output went away (`fieldsync status | head -3`); not an error."""


class Warned(Exception):
    """A command finished and showed its warnings; the group exits 1 (spec.md: 1 = warnings)."""

    def __init__(self, summary: str | None = None):
        super().__init__(summary or "")
        self.summary = summary


def finish_with_warnings(summary: str | None = None) -> NoReturn:
    """End the command with exit code 1, after an optional last `Warning: summary` line."""
    raise Warned(summary)


class FieldsyncGroup(click.Group):
    """A click group that speaks the chosen language and converts fieldsync's errors at the boundary."""

    def main(self, args=None, *pos, **kwargs):
        """Pick the language (config's ui.language, else the locale) before any help is shown."""
        args = list(sys.argv[1:] if args is None else args)
        i18n.choose(config_mod.ui_language(config_mod.discover(_config_argument(args))))
        clock.use_zone(clock.AUTO)  # until a config is loaded (a command without one: this machine's)
        translate_help(self)
        return super().main(args, *pos, **kwargs)

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
        except BrokenPipeError:
            raise PipeClosed() from None  # the reader stopped early: main() ends quietly
        except Exception as error:  # a bug: still no traceback unless asked
            if _verbosity(ctx) > 0:
                raise
            message = _("unexpected {kind}: {error} (run with -v for the traceback, and report it)").format(
                kind=type(error).__name__, error=error)
            wrapped = click.ClickException(message)
            wrapped.exit_code = EXIT_ERROR
            raise wrapped from None


def _config_argument(args: list[str]) -> str | None:
    """The value of the group's --config among the raw arguments, read before click parses them."""
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def translate_help(command: click.Command) -> None:
    """Show `command`'s help texts (and its subcommands' and options') in the chosen language.

    The English texts in the source are the catalog's keys (babel.cfg extracts them); they are
    kept on the command, so a second run in another language (tests) translates from English.
    """
    english = command.__dict__.setdefault("_english_help", (command.help, command.short_help))
    command.help, command.short_help = (_(inspect.cleandoc(text)) if text else text for text in english)
    for param in command.params:
        if isinstance(param, click.Option):
            original = param.__dict__.setdefault("_english_help", param.help)
            param.help = _(original) if original else original
        if isinstance(param.type, click.Path):  # "directory '...' does not exist": named when defined
            name = param.type.__dict__.setdefault("_english_name", param.type.name)
            param.type.name = _(name)
    # click makes --help's option (with its own translated text) once per command: make it anew.
    command._help_option = None
    for sub in getattr(command, "commands", {}).values():
        translate_help(sub)


def _verbosity(ctx: click.Context) -> int:
    root = ctx.find_root()
    return root.obj.verbosity if isinstance(root.obj, AppContext) else 0


pass_app = click.make_pass_decorator(AppContext)


def echo(app: AppContext, message: str = "", **kwargs) -> None:
    """Normal output; silent under -q."""
    if not app.quiet:
        click.echo(message, **kwargs)


def warn(message: str) -> None:
    click.echo(_("Warning: {message}").format(message=message), err=True)


def shows_progress(app: AppContext) -> bool:
    """Progress bars are for a person at a terminal: none when stderr is piped or under -q."""
    return not app.quiet and sys.stderr.isatty()


def progress_bar(app: AppContext, length: int, label: str) -> Any:
    """The CLI's one bar style (on stderr, so stdout and --json stay as they are); hidden when
    nobody watches, where click would still print the label."""
    return click.progressbar(length=max(1, length), label=label, file=sys.stderr, show_percent=True,
                             show_eta=True, hidden=not shows_progress(app))


class ProgressBar:
    """A bar for core code's `progress(done, total)` callbacks: opened on the first call, when the
    total is known; a no-op when nobody watches. Use as a context manager."""

    def __init__(self, app: AppContext, label: str):
        self.app, self.label, self.bar = app, label, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if not shows_progress(self.app):
                return
            self.bar = progress_bar(self.app, total, self.label)
            self.bar.__enter__()
        self.bar.length = max(1, total)
        if done > self.bar.pos:
            self.bar.update(done - self.bar.pos)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# Libraries whose Python warnings are their own business unless asked for with -vv: watchdog
# warns "Callback ... already exists" each time it re-adds a watch, Pillow about odd EXIF that
# fieldsync handles itself, fpdf2/fontTools about fonts.
LIBRARY_WARNINGS = r"(watchdog|PIL|paramiko|fontTools|fpdf)(\.|$)"


def log_levels(verbosity: int) -> tuple[int, int]:
    """(fieldsync's level, every library's level) on stderr for -q, none, -v, -vv.

    Libraries (paramiko's INFO per SFTP command, fontTools' font subsetting) only speak at
    -v (warnings) and -vv (everything): their errors reach the user as fieldsync's own.
    """
    if verbosity < 0:
        return logging.WARNING, logging.CRITICAL
    if verbosity == 0:
        return logging.INFO, logging.CRITICAL
    return logging.DEBUG, logging.WARNING if verbosity == 1 else logging.DEBUG


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (click's test runner swaps it per command), and
    only what the verbosity lets through: the daemon's log file lowers the root logger's level
    for itself, which must not make libraries speak on the terminal."""

    def __init__(self, own: int, libraries: int):
        super().__init__(sys.stderr)
        self.own, self.libraries = own, libraries
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "fieldsync" or record.name.startswith("fieldsync.")
        return record.levelno >= (self.own if ours else self.libraries)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbosity: int) -> None:
    """stderr logging for this verbosity; Python warnings go through logging, libraries' are
    dropped unless -vv. Called once per command; a second call replaces the first."""
    own, libraries = log_levels(verbosity)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    root.addHandler(_StderrHandler(own, libraries))
    root.setLevel(libraries)  # paramiko and fontTools do not even format what nobody shows
    logging.getLogger("fieldsync").setLevel(own)
    logging.captureWarnings(True)
    if verbosity < 2:
        warnings.filterwarnings("ignore", module=LIBRARY_WARNINGS)



# click's own words (usage lines, option errors) come from gettext's default domain, which
# i18n.choose() points at fieldsync's catalog; marked here so that `pybabel extract` keeps them.
CLICK_MESSAGES = (
    N_("Usage:"), N_("Options"), N_("Commands"), N_("Positional arguments"), N_("Show this message and exit."),
    N_("Show the version and exit."), N_("Error: {message}"), N_("Try '{command} {option}' for help."),
    N_("No such option {name!r}."), N_("No such command {name!r}."), N_("Missing argument"),
    N_("Missing option"), N_("Missing parameter"), N_("Missing command."), N_("Aborted!"),
    N_("Invalid value for {param_hint}: {message}"), N_("Invalid value: {message}"),
    N_("Option {name!r} does not take a value."), N_("Argument {name!r} takes {nargs} values."),
    N_("default: {default}"), N_("env var: {var}"), N_("%(prog)s, version %(version)s"),
    N_("Do you want to continue?"), N_("Confirm the action without prompting."),
    N_("Missing parameter: {param_name}"), N_("Missing {param_type}"),
    N_("file"), N_("directory"), N_("path"), N_("{name} {filename!r} does not exist."),
    N_("{name} {filename!r} is a file."), N_("{name} {filename!r} is a directory."),
    N_("{name} {filename!r} is not readable."), N_("{name} {filename!r} is not writable."),
    N_("{value!r} is not a valid {number_type}."), N_("{value} is not in the range {range}."),
    N_("{value!r} is not a valid boolean. Recognized values: {states}"),
    N_("Could not open file {filename!r}: {message}"),
    N_("Error: invalid input"), N_("Repeat for confirmation"), N_("Error: The two entered values do not match."),
)


def ngettext(singular: str, plural: str) -> tuple[str, str]:
    """Marks one of click's plural messages for the catalog (pybabel's default `ngettext`
    keyword); click looks them up itself through gettext, one form for Chinese."""
    return singular, plural


CLICK_PLURALS = (
    ngettext("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"),
    ngettext("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."),
    ngettext("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"),
    ngettext("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."),
    ngettext("{value!r} is not {choice}.", "{value!r} is not one of {choices}."),
    ngettext("{value!r} does not match the format {format}.", "{value!r} does not match the formats {formats}."),
)
