"""`fieldsync server index|report`: the ops admins' side, run on the server tree itself.

No config.yaml is needed there: the layout defaults apply unless `fieldsync --config FILE`
names one (for a site that renamed its folders). Times are shown in --timezone, else that
config's ui.timezone, else the server machine's own zone.
"""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path

import click

from fieldsync.base import clock
from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, ProgressBar, echo, finish_with_warnings, pass_app, warn
from fieldsync.config import Layout, Maps
from fieldsync.masterdata.publish import SHARE_MASTER, install_in_tablets
from fieldsync.server import build, report, scan
from fieldsync.server.receipts import KEY_FILE, take_receipts
from fieldsync.server.watch import IndexWatcher

TREE = click.Path(exists=True, file_okay=False, path_type=Path)
MAX_PROBLEMS = 20


def _check_timezone(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            clock.zone(value)
        except ValueError:
            raise click.BadParameter(_("{value} is not a time zone: give auto or an IANA name such as "
                                       "Asia/Shanghai").format(value=repr(value))) from None
    return value


TIMEZONE = click.option(
    "--timezone", metavar="ZONE", default=None, callback=_check_timezone,
    help="Show times in this zone: auto (this machine's) or an IANA name such as Asia/Shanghai "
         "[default: ui.timezone of --config, else auto].")


def _layout_and_maps(app: AppContext, timezone: str | None) -> tuple[Layout, Maps]:
    """The layout and maps of --config (else the defaults); times shown in --timezone, else
    that config's ui.timezone (loading it sets it), else this machine's zone."""
    layout, maps = (app.config.layout, app.config.maps) if app.config_option else (Layout(), Maps())
    if timezone is not None:
        clock.use_zone(timezone)
    return layout, maps


def _show_problems(problems: list[str]) -> None:
    for problem in problems[:MAX_PROBLEMS]:
        warn(problem)
    if len(problems) > MAX_PROBLEMS:
        warn(_("... and {count} more").format(count=len(problems) - MAX_PROBLEMS))


@click.group("server")
def server_group() -> None:
    """Ops admins: browsable pages and reports over the server tree."""


@server_group.command("index")
@click.argument("path", type=TREE)
@click.option("--watch", is_flag=True, help="Keep running and rebuild as uploads land (Ctrl-C stops).")
@click.option("--full", is_flag=True, help="Ignore the cache and rewrite every page.")
@click.option("--deep", is_flag=True,
              help="Also check every photo folder, for photos put on the server without fieldsync "
                   "(done by itself once an hour, and by --watch at start and each rescan).")
@click.option("--tablets", is_flag=True,
              help="PATH is a share of chrooted tablet accounts (docs/deployment.md): index every "
                   "PATH/tablets/ACCOUNT/fieldsync into one site, the same customer folder from "
                   "several tablets on one customer page.")
@click.option("--quiet-seconds", type=click.FloatRange(0.05, 600), default=2.0, show_default=True,
              help="With --watch: rebuild once the tree has been quiet this long.")
@click.option("--rescan-minutes", type=click.FloatRange(0.1, 1440), default=10.0, show_default=True,
              help="With --watch: also scan the whole tree this often (events can be lost).")
@TIMEZONE
@pass_app
def index_command(app: AppContext, path: Path, watch: bool, full: bool, deep: bool, tablets: bool,
                  quiet_seconds: float, rescan_minutes: float, timezone: str | None) -> None:
    """Write the browsable pages for the server tree at PATH.

    \b
    Open PATH/fieldsync.html (from the share or a static web server): search every customer,
    latest visits, per-inspector activity, a page per customer and per visit with thumbnails,
    remarks and their history. Pages and thumbnails live under PATH/.fieldsync/; only the
    pages affected by a change are rewritten. The index.html pages the tablets mirror into
    PATH are theirs: they are never written here.
    """
    layout, maps = _layout_and_maps(app, timezone)
    if not watch:
        with ProgressBar(app, _("building pages")) as bar:
            result = build(path, layout, full=full, maps=maps, deep=True if deep else None, tablets=tablets,
                           progress=bar)
        _report_build(app, result)
        _show_problems(result.problems)
        if result.problems or result.thumbs_failed:
            finish_with_warnings()
        return

    def on_build(result) -> None:
        if result.pages or result.removed:
            _report_build(app, result)
        _show_problems(result.problems)

    watcher = IndexWatcher(path, layout, quiet=quiet_seconds, rescan=rescan_minutes * 60, maps=maps,
                           on_build=on_build, on_error=lambda exc: warn(_("build failed: {error}").format(error=exc)),
                           tablets=tablets)
    if full:
        with ProgressBar(app, _("building pages")) as bar:
            result = build(path, layout, full=True, maps=maps, tablets=tablets, progress=bar)
        _report_build(app, result)
    watcher.start()
    # systemd stops a service with SIGTERM: finish the current build, then exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: watcher.request_stop())
    echo(app, _("watching {path} (Ctrl-C to stop)").format(path=path))
    try:
        watcher.wait()
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()


def _folders_checked(result) -> str:
    if not result.folders_checked:
        return ""
    checked = _(" ({count} folders checked, photo folders too)") if result.deep else _(" ({count} folders checked)")
    return checked.format(count=result.folders_checked)


def _report_build(app: AppContext, result) -> None:
    echo(app, _("{pages} pages written, {removed} removed, {changed} of {scanned} visits changed{checked}, "
                "{thumbs} thumbnails made in {seconds}s{full}; open {entry}").format(
        pages=len(result.pages), removed=len(result.removed), changed=result.visits_changed,
        scanned=result.visits_scanned, checked=_folders_checked(result), thumbs=result.thumbs_made,
        seconds=f"{result.seconds:.2f}", full=_(" (full rebuild)") if result.full else "", entry=result.entry))
    if result.thumbs_failed:
        warn(_("{count} photos could not be read for a thumbnail (shown as 无法预览)").format(
            count=result.thumbs_failed))


@server_group.command("report")
@click.argument("path", type=TREE)
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (included).")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default=None,
              help="Default: from --out's suffix, else csv.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: fieldsync-report-FROM-TO.csv|xlsx here).")
@click.option("--tablets", is_flag=True,
              help="PATH is a share of chrooted tablet accounts: report every PATH/tablets/ACCOUNT/fieldsync.")
@TIMEZONE
@pass_app
def report_command(app: AppContext, path: Path, start: dt.datetime, end: dt.datetime, fmt: str | None,
                   out: Path | None, tablets: bool, timezone: str | None) -> None:
    """Report the visits of the days FROM..TO in the server tree at PATH (CSV or XLSX).

    
    Visits per inspector, business type, category and day; photos per visit; the visits
    without photos or remarks. CSV is UTF-8 with a BOM (Excel opens it with Chinese intact);
    XLSX has one sheet per table. Text cells starting with = + - @ get a leading '.
    """
    layout, _maps = _layout_and_maps(app, timezone)
    if fmt is None:
        fmt = "xlsx" if out is not None and out.suffix.lower() == ".xlsx" else "csv"
    if out is None:
        out = Path(f"fieldsync-report-{start:%Y%m%d}-{end:%Y%m%d}.{fmt}")
    trees = [path / tree for tree in scan.tablet_sources(path)] if tablets else [path]
    parts = [report.collect(tree, start.date(), end.date(), layout) for tree in trees]
    visits = sorted((v for part in parts for v in part.visits), key=report.in_time_order)
    data = report.Report(start.date(), end.date(), visits, [p for part in parts for p in part.problems])
    (report.write_xlsx if fmt == "xlsx" else report.write_csv)(data, out)
    no_photos = sum(1 for v in data.visits if v.photos == 0)
    no_remarks = sum(1 for v in data.visits if v.without_remarks)
    echo(app, _("{visits} visits, {photos} photos from {start} to {end} ({no_photos} without photos, "
                "{no_remarks} without remarks) written to {out}").format(
        visits=len(data.visits), photos=sum(v.photos for v in data.visits), start=f"{start:%Y-%m-%d}",
        end=f"{end:%Y-%m-%d}", no_photos=no_photos, no_remarks=no_remarks, out=out))
    _show_problems(data.problems)
    if data.problems:
        finish_with_warnings()


@server_group.command("publish-master")
@click.argument("share", type=TREE)
@pass_app
def publish_master_command(app: AppContext, share: Path) -> None:
    """Copy the master data published in SHARE/master into every tablet's tree (run as root).

    
    On a share of chrooted tablets (docs/deployment.md) the back office runs 'fieldsync customers
    publish' into SHARE/master; this puts a read-only copy, owned by root, into each
    SHARE/tablets/ACCOUNT/fieldsync/.fieldsync/master, where that tablet pulls it from and no
    tablet can change it.
    """
    trees = scan.tablet_sources(share)
    published = install_in_tablets(share, list(trees))
    echo(app, _("master data ({count} customers, sha256 {sha256}) from {source} installed in {trees} tablet trees")
         .format(count=published.count, sha256=published.sha256[:12], source=share / SHARE_MASTER, trees=len(trees)))


@server_group.command("receipts")
@click.argument("path", type=TREE)
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              # Spelled out, not f"{KEY_FILE}": help texts are the catalog's keys, found as literals.
              help="The server's private signing key (made 0600 on first run; default: server_key.pem in "
                   "this account's fieldsync config folder). Keep it off the share.")
@click.option("--tablets", is_flag=True,
              help="PATH is a share of chrooted tablet accounts: cover every PATH/tablets/ACCOUNT/fieldsync.")
@pass_app
def receipts_command(app: AppContext, path: Path, key_path: Path | None, tablets: bool) -> None:
    """收据 Record what the server received: every visit head and ledger record, signed.

    \b
    Appends to PATH/.fieldsync/receipts/receipts (private to this account) a signed,
    hash-chained receipt for each visit head and ledger record not receipted yet. Run it from
    the index timer (docs/deployment.md). Then 'fieldsync verify --server TREE --receipts
    PATH/.fieldsync/receipts --server-key KEY.pub' catches a visit deleted together with its
    ledger records, or a ledger rolled back, which the tree alone cannot show.
    """
    key_path = key_path or Path(click.get_app_dir("fieldsync")) / KEY_FILE
    result = take_receipts(path, key_path.expanduser(), tablets=tablets)
    echo(app, _("{added} receipt(s) added for {ledgers} ledger(s) in {trees} tree(s) to {path}; server key "
                "{fingerprint} (public key {public_key}, also in {key_path}.pub)").format(
        added=result.added, ledgers=result.ledgers, trees=result.trees, path=result.path,
        fingerprint=result.fingerprint, public_key=result.public_key, key_path=key_path))
    _show_problems(result.problems)
    if result.problems:
        finish_with_warnings(_("{count} ledger(s) no longer hold what the server received; "
                               "run 'fieldsync verify --server' with --receipts").format(count=len(result.problems)))


COMMANDS = [server_group]
