"""`fieldsync keyring`: the tablet shows its signing key; the back office registers and revokes keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fieldsync.base import signing
from fieldsync.base.clock import local_time
from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, pass_app
from fieldsync.evidence import keys, ledger
from fieldsync.masterdata import publish as masterdata
from fieldsync.transport import open_transport
from fieldsync.transport.local import LocalTransport

keyring_option = click.option(
    "--keyring", "keyring_path", required=True, metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The keyring file (JSON), kept by the back office off the share.")


@click.group("keyring")
def keyring_group() -> None:
    """密钥 Tablet signing keys: show this tablet's key; register, revoke and list keys.

    \b
    Every ledger record a tablet writes is signed with its own key (made at 'init', kept in
    ROOT/.fieldsync/, never pushed). The back office registers each tablet's public key in a
    keyring; 'fieldsync verify --keyring FILE' then proves which tablet signed what.
    A lost or replaced tablet: 'keyring revoke' its key, 'keyring add' the new tablet's key
    (its own device name); records signed before the revocation still verify.
    'keyring publish' puts the keyring on the server like master data; 'verify' then uses the
    published copy when no --keyring is given ('--keyring published' fetches it first).
    """


@keyring_group.command("device-key")
@pass_app
def device_key_command(app: AppContext) -> None:
    """本机密钥 This tablet's public signing key and its fingerprint (made if missing).

    Give both to the back office; they check the fingerprint on the tablet's screen before
    registering the key.
    """
    cfg = app.config
    key = signing.load_key(signing.ensure_key(ledger.key_path(cfg)))
    public = signing.public_b64(key)
    click.echo(_("device:      {value}").format(value=cfg.device))
    click.echo(_("inspector:   {value}").format(value=cfg.inspector))
    click.echo(_("key:         {value}").format(value=public))
    click.echo(_("fingerprint: {value}").format(value=signing.fingerprint(public)))


@keyring_group.command("add")
@keyring_option
@click.option("--device", required=True, help="The tablet's device name (config.yaml 'device').")
@click.option("--inspector", required=True, help="The inspector who carries it.")
@click.option("--key", "public", required=True, help="The public key 'keyring device-key' printed on the tablet.")
@click.option("--from", "valid_from", metavar="DATE", help="Valid from (default: today).")
@click.option("--to", "valid_to", metavar="DATE", help="Valid until (default: open-ended).")
@pass_app
def add_command(app: AppContext, keyring_path: Path, device: str, inspector: str, public: str,
                valid_from: str | None, valid_to: str | None) -> None:
    """登记 Register a tablet's public key (the file is made if missing)."""
    entry = keys.add_key(keyring_path, device, inspector, public, valid_from=valid_from, valid_to=valid_to)
    echo(app, _("registered {fingerprint}: device {device}, inspector {inspector}, valid from {start} to {end}")
         .format(fingerprint=entry["fingerprint"], device=device, inspector=inspector, start=entry["valid_from"],
                 end=entry["valid_to"] or _("(open)")))


@keyring_group.command("revoke")
@keyring_option
@click.argument("which", metavar="FINGERPRINT|DEVICE")
@click.option("--at", metavar="TIME", help="Revoked from (default: now); records signed before still verify.")
@click.option("--reason", default="", help="e.g. lost, stolen, replaced.")
@pass_app
def revoke_command(app: AppContext, keyring_path: Path, which: str, at: str | None, reason: str) -> None:
    """吊销 Revoke a key (by fingerprint) or every key of a device (lost, stolen, replaced)."""
    for entry in keys.revoke_key(keyring_path, which, at=at, reason=reason):
        echo(app, _("revoked {fingerprint} (device {device}) from {at}").format(
            fingerprint=entry["fingerprint"], device=entry["device"], at=local_time(entry["revoked"]["at"])))


@keyring_group.command("list")
@keyring_option
@click.option("--json", "as_json", is_flag=True, help="Print the keyring's entries as JSON.")
def list_command(keyring_path: Path, as_json: bool) -> None:
    """列出 Every registered key: fingerprint, device, inspector, validity, revocation."""
    keyring = keys.load_keyring(keyring_path)
    if as_json:
        click.echo(json.dumps(keyring.keys, ensure_ascii=False, indent=1))
        return
    for entry in keyring.keys:
        revoked = entry.get("revoked")
        state = _("revoked {at} {reason}").format(
            at=local_time(revoked["at"]), reason=revoked.get("reason") or "").rstrip() if revoked else _("valid")
        click.echo(_("{fingerprint}  {device}  {inspector}  {start} to {end}  {state}").format(
            fingerprint=entry["fingerprint"], device=entry["device"], inspector=entry.get("inspector") or "?",
            start=entry.get("valid_from") or "…", end=entry.get("valid_to") or "…", state=state))


@keyring_group.command("publish")
@keyring_option
@click.argument("server_root", required=False, type=click.Path(file_okay=False, path_type=Path))
@pass_app
def publish_command(app: AppContext, keyring_path: Path, server_root: Path | None) -> None:
    """发布 Publish the keyring for tablets and verifiers, the way master data is published.

    \b
    SERVER_ROOT: the server tree's folder when run on the server itself; without it, the
    keyring goes to server.url from config.yaml (file:// or sftp://), into .fieldsync/keyring/.
    A copy read from the share proves only as much as the share: for a dispute, verifiers
    compare its sha256 with the back office's or give --keyring FILE from the back office.
    """
    keyring = keys.load_keyring(keyring_path)  # never publish a keyring verify would refuse
    transport = LocalTransport(server_root.resolve()) if server_root else open_transport(app.config)
    with transport:
        version = masterdata.publish_keyring(keyring.path, keyring.path.resolve().parent, transport)
    echo(app, _("published {count} key(s) to {url} ({folder}, sha256 {sha256})").format(
        count=len(keyring.keys), url=transport.url, folder=masterdata.KEYRING_DIR, sha256=version["sha256"]))


COMMANDS = [keyring_group]
