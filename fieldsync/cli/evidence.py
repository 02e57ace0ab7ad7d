"""`fieldsync verify` and `fieldsync evidence`: prove photos were not altered, hand over proof."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from fieldsync.base.hashing import file_sha256
from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, ProgressBar, echo, finish_with_warnings, pass_app, warn
from fieldsync.config import Layout
from fieldsync.errors import ConfigError
from fieldsync.evidence import bundle as evidence_mod
from fieldsync.evidence import keys, ledger
from fieldsync.evidence import receipts as receipts_mod
from fieldsync.evidence import verify as verify_mod
from fieldsync.evidence.hashcache import HashCache
from fieldsync.masterdata import publish as masterdata


def _tree(app: AppContext, tree_path: Path | None) -> tuple[Path, Layout, dict[str, Path]]:
    """(root, layout, ledger files) of this tablet, or of a server tree / extracted bundle."""
    if tree_path is None:
        cfg = app.config
        return cfg.root, cfg.layout, verify_mod.tablet_ledgers(cfg.state_dir, cfg.device)
    root = tree_path.resolve()
    try:  # an ops admin's server may have no config.yaml: the default layout then
        fallback = app.config.layout
    except ConfigError:
        fallback = Layout()
    return root, verify_mod.layout_of(root, fallback), ledger.server_ledgers(root)


def _verify_cache_dir() -> Path | None:
    """Where `verify --server` keeps its cache: systemd's StateDirectory= for a unit, else the
    account's config folder, else a 0700 folder of its own in the temp folder, because a service
    account's home may not exist or be writable (fieldsync-index's is /nonexistent on some
    machines). None when none is usable: verify then hashes everything, it does not fail."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    candidates = [Path(p) for p in os.environ.get("STATE_DIRECTORY", "").split(":")[:1] if p]
    candidates += [Path(click.get_app_dir("fieldsync")),
                   Path(tempfile.gettempdir()) / ("fieldsync" if uid is None else f"fieldsync-{uid}")]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True, mode=0o700)
            # In a shared temp folder another account could have made the name first (or a link).
            mine = uid is None or candidate.lstat().st_uid == uid
        except OSError:
            continue
        if mine and not candidate.is_symlink() and os.access(candidate, os.W_OK):
            return candidate
    return None


receipts_option = click.option(
    "--receipts", "receipts_path", metavar="FILE|DIR", type=click.Path(exists=True, path_type=Path),
    help="The server's receipts (SERVER/.fieldsync/receipts, written by 'fieldsync server receipts'): "
         "catch visits deleted with their ledger records and ledgers rolled back. Needs --server-key.")
server_key_option = click.option(
    "--server-key", "server_key", metavar="KEY|FILE",
    help="The server's public key (base64, or its server_key.pub file), from the server admin, not "
         "from the share. An extracted bundle's own receipts are checked with it.")


def _receipts(root: Path, receipts_path: Path | None, server_key: str | None) -> receipts_mod.Receipts | None:
    """The receipts that speak for the tree at `root`, checked against the server's key."""
    if receipts_path is None and server_key is None:
        return None
    if server_key is None:
        raise click.UsageError(_("--receipts needs --server-key: receipts prove nothing without the "
                                 "server's public key (ask the server admin for server_key.pub)"))
    public = receipts_mod.read_public_key(server_key)
    if receipts_path is None:  # a bundle carries its receipts; so may a server tree
        receipts_path = receipts_mod.receipts_file(root)
        if not receipts_path.is_file():
            raise click.UsageError(_("no receipts in {root}; give --receipts FILE|DIR").format(root=root))
    elif receipts_path.is_dir():
        receipts_path = receipts_path / receipts_mod.RECEIPTS_NAME
    in_bundle = (root / verify_mod.BUNDLE_FILE).is_file()
    tree = None if in_bundle else receipts_mod.tree_of(receipts_path, root)
    return receipts_mod.load(receipts_path, public, tree=tree)


PUBLISHED = "published"


def _keyring(app: AppContext, root: Path, tree_path: Path | None,
             value: str | None) -> tuple[keys.Keyring | None, str | None]:
    """(keyring, a note on where it came from): the file given, or the published copy —
    fetched first on a tablet with '--keyring published', read from the tree's
    .fieldsync/keyring/ on a server tree, and used by default when one is there."""
    if value is not None and value != PUBLISHED:
        path = Path(value).expanduser()
        if not path.is_file():
            raise click.BadParameter(_("{path} is not a file").format(path=path), param_hint="--keyring")
        return keys.load_keyring(path), None
    if tree_path is None:
        cfg = app.config
        if value == PUBLISHED and masterdata.pull_keyring(cfg) is None:
            raise click.UsageError(_("no keyring is published on the server; the back office runs "
                                     "'fieldsync keyring publish --keyring FILE'"))
        path = cfg.state_dir / masterdata.PULLED_KEYRING
    else:
        path = root / masterdata.REMOTE_KEYRING
    if not path.is_file():
        if value == PUBLISHED:
            raise click.UsageError(_("no published keyring at {path}; give --keyring FILE").format(path=path))
        return None, None
    keyring = keys.load_keyring(path)
    return keyring, _("keyring: the published copy {path} (sha256 {sha256}…); it proves as much as where "
                      "it was read from: for a dispute, compare that sha256 with the back office's, or give "
                      "--keyring FILE from the back office").format(path=path, sha256=file_sha256(path)[0][:16])


@click.command("verify")
@click.option("--server", "tree_path", metavar="PATH",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Verify the server tree (or an extracted evidence bundle) at PATH instead of this tablet.")
@click.option("--keyring", "keyring_value", metavar="FILE|published",
              help="Check every ledger signature against this keyring (the back office's list of "
                   "registered tablet keys); 'published': the copy 'fieldsync keyring publish' put "
                   "on the server (the default when one is there). Without any, signatures are "
                   "checked only for consistency.")
@receipts_option
@server_key_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--full", is_flag=True,
              help="Re-hash every photo, ignoring the incremental cache (do this before a dispute).")
@click.option("--max-distance", default=500.0, show_default=True, metavar="M",
              help="Warn when a photo was taken farther than M metres from the customer (0: off).")
@click.option("--max-skew-hours", default=12.0, show_default=True, metavar="H",
              help="Warn when EXIF time and filing time differ by more than H hours.")
@click.option("--no-gps-warning", is_flag=True, help="Do not warn about photos without GPS.")
@click.option("--ignore-warnings", is_flag=True, help="Exit 0 when there are warnings but no problems.")
@pass_app
def verify_command(app: AppContext, tree_path: Path | None, keyring_value: str | None,
                   receipts_path: Path | None, server_key: str | None, as_json: bool,
                   full: bool, max_distance: float, max_skew_hours: float, no_gps_warning: bool,
                   ignore_warnings: bool) -> None:
    """Check every photo against its manifest, the manifests against the ledger, and the
    remark histories (append-only).

    \b
    Exit 0: clean. Exit 1: a list of problems (evidence broken: altered, missing or unlisted
    photos, broken chains, rolled-back manifests, rewritten remarks) and/or warnings (photo
    far from the customer, EXIF time far from filing time, no GPS, not sealed yet).
    Unchanged files are not re-hashed when the filesystem proves they did not change
    (same device, inode, size, mtime and ctime as when last hashed); --full re-hashes all.
    """
    options = verify_mod.Options(max_distance_m=max_distance, max_skew=timedelta(hours=max_skew_hours),
                                 warn_missing_gps=not no_gps_warning)
    root, layout, ledgers = _tree(app, tree_path)
    if tree_path is None:
        cache_path = app.config.state_dir / "verify-cache.json"
    else:
        private = _verify_cache_dir()
        cache_path = verify_mod.cache_file_for(root, private) if private else None
    cache = HashCache(cache_path, root, reuse=not full)
    keyring, keyring_note = _keyring(app, root, tree_path, keyring_value)
    if keyring_note:
        warn(keyring_note)
    receipts = _receipts(root, receipts_path, server_key)
    with ProgressBar(app, _("checking photos")) as bar:
        report = verify_mod.verify_tree(root, layout, ledgers, cache=cache, options=options, keyring=keyring,
                                        receipts=receipts, progress=bar)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
    else:
        for finding in report.problems:
            click.echo(_("problem: {finding}").format(finding=finding))
        for finding in report.warnings:
            click.echo(_("warning: {finding}").format(finding=finding))
        ledgers = _(", ").join(_("{device} ({count} records, head {head})").format(
            device=d, count=n, head=report.ledger_heads[d][:16]) for d, n in report.ledgers.items())
        echo(app, _("{root}: {visits} visits, {photos} photos checked ({hashed} hashed, {cached} unchanged "
                    "since last verify), ledgers: {ledgers}").format(
            root=root, visits=report.visits, photos=report.photos, hashed=report.hashed, cached=report.cached,
            ledgers=ledgers or _("none")))
        for line in signature_lines(report):
            echo(app, line)
    if keyring is None and any(report.signers.values()):
        warn(_("signatures not checked against a keyring: they show the records were not changed "
               "since signing, not who signed them (give --keyring FILE from the back office)"))
    if report.problems:
        finish_with_warnings(_("{problems} problem(s), {warnings} warning(s): evidence does not verify").format(
            problems=len(report.problems), warnings=len(report.warnings)))
    if report.warnings and not ignore_warnings:
        finish_with_warnings(_("{warnings} warning(s), no problems: photos and records are intact").format(
            warnings=len(report.warnings)))
    if not as_json:
        echo(app, _("verified: every photo matches its manifest; chains, ledgers and remark histories intact"))


def signature_lines(report: verify_mod.Report) -> list[str]:
    """What the signatures proved, per ledger, in words a dispute officer can quote."""
    lines = []
    for device, signers in report.signers.items():
        for signer in signers:
            who = signer.get("registered")
            if who:
                lines.append(_("signed: {records} record(s) of ledger {ledger} signed by device {device} of "
                               "inspector {inspector}, key fingerprint {fingerprint} (registered in the "
                               "keyring)").format(records=signer["records"], ledger=device, device=who["device"],
                                                  inspector=who.get("inspector") or "?",
                                                  fingerprint=signer["fingerprint"]))
            else:
                lines.append(_("signed: {records} record(s) of ledger {ledger} signed by key fingerprint "
                               "{fingerprint}, not vouched for by a keyring").format(
                    records=signer["records"], ledger=device, fingerprint=signer["fingerprint"]))
        if report.unsigned.get(device):
            lines.append(_("not proven: {records} record(s) of ledger {ledger} are unsigned (made before "
                           "signing began): they rest on the share's integrity only").format(
                records=report.unsigned[device], ledger=device))
    if report.keyring is None and any(report.signers.values()):
        lines.append(_("not proven: which tablet and inspector signed (no --keyring given)"))
    lines += receipt_lines(report)
    return lines


SHOWN_RECEIPTS = 20  # visits named one by one; more are summed up


def receipt_lines(report: verify_mod.Report) -> list[str]:
    """What the server's receipts proved: when each visit reached the server."""
    if report.receipts is None:
        if report.ledgers:
            return [_("not proven: when the server received these records, and that no visit was deleted "
                      "together with its ledger records (no --receipts and --server-key given)")]
        return []
    received = report.receipts["received"]
    key = report.receipts["server_key"]
    lines = []
    for rel, got in list(received.items())[:SHOWN_RECEIPTS]:
        state = _("its current head") if got["current"] else _("an earlier head; later photos not receipted yet")
        lines.append(_("received: visit {visit}: {photos} photo(s) from device {device} received by the server "
                       "at {at} ({state}; receipt signed by server key {key})").format(
            visit=rel, photos=got["photos"], device=got["device"], at=got["at"], state=state, key=key))
    if len(received) > SHOWN_RECEIPTS:
        lines.append(_("received: … {count} visits in all received by the server (receipts signed by server "
                       "key {key})").format(count=len(received), key=key))
    missing = report.visits - len(received)
    if missing > 0:
        lines.append(_("not proven: {count} visit(s) have no server receipt yet (received after the last "
                       "'fieldsync server receipts' run, or not received)").format(count=missing))
    return lines


@click.command("evidence")
@click.argument("account")
@click.option("--visit", metavar="V", help="Only this visit (its folder name, or BUSINESS/CATEGORY/VISIT).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The bundle to write, e.g. 3300001234.zip.")
@click.option("--server", "tree_path", metavar="PATH",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Take the records from the server tree at PATH instead of this tablet.")
@click.option("--keyring", "keyring_path", metavar="FILE",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Check the signatures against this keyring first and record who signed in the bundle.")
@receipts_option
@server_key_option
@pass_app
def evidence_command(app: AppContext, account: str, visit: str | None, out: Path,
                     tree_path: Path | None, keyring_path: Path | None, receipts_path: Path | None,
                     server_key: str | None) -> None:
    """Make a dispute bundle for ACCOUNT: photos, visit.yaml, manifests, a ledger excerpt,
    SHA256SUMS and a printable report.html (thumbnails, time, place, hashes, remark history).

    \b
    The records are verified first; a bundle is only made when they verify. The customer
    can check it without fieldsync (sha256sum -c SHA256SUMS: only that nothing changed by
    accident) or with 'fieldsync verify --server FOLDER --keyring FILE' on the extracted
    folder (which tablet signed every record, against the back office's keyring). With
    --receipts and --server-key the bundle carries the server's receipts for its visits, and
    verify with --server-key proves when the server received each one.
    """
    root, layout, ledgers = _tree(app, tree_path)
    try:
        made_by = app.config.inspector
    except ConfigError:
        made_by = ""
    keyring = keys.load_keyring(keyring_path) if keyring_path else None
    receipts = _receipts(root, receipts_path, server_key)
    with ProgressBar(app, _("making the report")) as bar:
        bundle = evidence_mod.build_bundle(root, layout, ledgers, account, out.expanduser(), visit=visit,
                                           made_by=made_by, keyring=keyring, receipts=receipts, progress=bar)
    for line in bundle.warnings:
        warn(line)
    if bundle.pdf_missing:
        warn(_("no report.pdf: {reason}").format(reason=bundle.pdf_missing))
    echo(app, _("{path}: {visits} visit(s), {photos} photo(s), verified").format(
        path=bundle.path, visits=bundle.visits, photos=bundle.photos))


COMMANDS = [verify_command, evidence_command]
