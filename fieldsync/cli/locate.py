"""`fieldsync locate` (P12): record where a customer is; `fieldsync where`: where am I."""

from __future__ import annotations

from pathlib import Path

import click

from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, pass_app, warn
from fieldsync.cli.tree import derive_after
from fieldsync.errors import BadInput
from fieldsync.location import gps, locate
from fieldsync.tree import folders as tree
from fieldsync.tree.layout import CUSTOMER_FILE, PAGE_FILE


@click.command("locate")
@click.argument("account")
@click.option("--lat", metavar="DEG", help="Latitude, WGS-84 decimal degrees (north positive).")
@click.option("--lon", metavar="DEG", help="Longitude, WGS-84 decimal degrees (east positive).")
@click.option("--accuracy", metavar="M", help="Accuracy of --lat/--lon in metres.")
@click.option("--from-photo", "photo", metavar="FILE", type=click.Path(dir_okay=False),
              help="Take the position from this photo's EXIF GPS.")
@click.option("--gps", "use_gps", is_flag=True,
              help="Ask this device's positioning (locate.providers: gpsd, nmea, termux, windows).")
@click.option("--accept-accuracy", is_flag=True,
              help="Save even when the fix is worse than locate.max_accuracy_m, without asking.")
@pass_app
def locate_command(app: AppContext, account: str, lat: str | None, lon: str | None,
                   accuracy: str | None, photo: str | None, use_gps: bool, accept_accuracy: bool) -> None:
    """Record ACCOUNT's location (定位) in its customer.yaml; the old one goes to location_history.

    \b
    Exactly one source:
      --lat X --lon Y [--accuracy M]   typed in (WGS-84, e.g. from a GPS app)
      --from-photo FILE                 a photo taken on site with location on
      --gps                             this device's GPS, first working provider
    """
    cfg = app.config
    chosen = [name for name, given in (("--lat/--lon", lat is not None or lon is not None),
                                       ("--from-photo", photo is not None), ("--gps", use_gps)) if given]
    if len(chosen) != 1:
        raise BadInput(_("give exactly one source: --lat X --lon Y, --from-photo FILE or --gps")
                       + (_(" (got {options})").format(options=_(" and ").join(chosen)) if chosen else ""))
    if accuracy is not None and chosen != ["--lat/--lon"]:
        raise BadInput(_("--accuracy goes with --lat/--lon; photos and GPS report their own"))
    folder = tree.customer_dir(cfg, account)  # fail before waiting for a fix
    if chosen == ["--lat/--lon"]:
        if lat is None or lon is None:
            raise BadInput(_("give both --lat and --lon"))
        location = locate.manual(cfg, lat, lon, accuracy)
    elif photo is not None:
        location = locate.from_photo(cfg, Path(photo).expanduser())
    else:
        location = _gps_location(app)
    problem = locate.accuracy_warning(cfg, location)
    if problem and not accept_accuracy:
        try:
            confirmed = click.confirm(_("{problem}. Save this position anyway?").format(problem=problem),
                                      default=False, err=True)
        except click.exceptions.Abort:
            confirmed = False
        if not confirmed:
            raise BadInput(_("location not saved: {problem}; retry under open sky, or pass "
                             "--accept-accuracy to keep it anyway").format(problem=problem))
    stored = locate.save(cfg, folder, location)
    derive_after(app, [folder / CUSTOMER_FILE])
    accuracy_text = f" ±{stored['accuracy_m']:g} m" if stored.get("accuracy_m") is not None else ""
    echo(app, _("located {lat:.6f}, {lon:.6f}{accuracy} ({source})").format(
        lat=stored["lat"], lon=stored["lon"], accuracy=accuracy_text, source=stored["source"]))
    echo(app, str(folder / CUSTOMER_FILE))


def _gps_location(app: AppContext) -> locate.Location:
    cfg = app.config
    fix, reasons = gps.first_fix(cfg.locate)
    for reason in reasons:
        warn(_("skipped {reason}").format(reason=reason))
    locate.save_last_fix(cfg, fix)
    return locate.from_fix(cfg, fix)


@click.command("where")
@pass_app
def where_command(app: AppContext) -> None:
    """Get this device's GPS position and remember it as the last fix.

    Customer pages then show the distance and direction from here to each located customer.
    """
    cfg = app.config
    tree.require_root(cfg)
    fix, reasons = gps.first_fix(cfg.locate)
    for reason in reasons:
        warn(_("skipped {reason}").format(reason=reason))
    locate.save_last_fix(cfg, fix)
    # The pages bake in the distance from the last fix: those of located customers follow it.
    located = [folder / CUSTOMER_FILE for folder in sorted(cfg.root.iterdir())
               if folder.is_dir() and not folder.name.startswith(".")
               and (folder / CUSTOMER_FILE).is_file() and tree.read_customer(folder).get("location")]
    written = derive_after(app, located).written
    refreshed = sum(1 for rel in written if len(rel.parts) == 2 and rel.name == PAGE_FILE)
    accuracy_text = f" ±{fix.accuracy_m:g} m" if fix.accuracy_m is not None else ""
    echo(app, _("{lat:.6f}, {lon:.6f}{accuracy} ({source}); {count} customer page(s) refreshed").format(
        lat=fix.lat, lon=fix.lon, accuracy=accuracy_text, source=fix.source, count=refreshed))


COMMANDS = [locate_command, where_command]
