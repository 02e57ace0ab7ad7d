"""`fieldsync trust-host`: show the server's host key fingerprint, pin it only when confirmed."""

from __future__ import annotations

import click

from fieldsync.base.i18n import _
from fieldsync.cli.base import AppContext, echo, finish_with_warnings, pass_app, warn
from fieldsync.errors import BadInput, ConfigError
from fieldsync.transport import hostkeys
from fieldsync.transport.sftp import parse_url


@click.command("trust-host")
@click.option("--fingerprint", metavar="SHA256:...",
              help="The fingerprint the server admin gave you; the key is pinned only if it matches.")
@click.option("--yes", is_flag=True,
              help="Do not ask (for scripts); only allowed together with --fingerprint.")
@click.option("--hashed", is_flag=True, help="Write the host name hashed, as OpenSSH's HashKnownHosts.")
@pass_app
def trust_host_command(app: AppContext, fingerprint: str | None, yes: bool, hashed: bool) -> None:
    """Show the SFTP server's host key and pin it in server.known_hosts when you confirm.

    \b
    Compare the fingerprint with the one the server admin reads from the server:
        ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
    A key that changed since it was pinned is shown with the old one; accept it only when
    the admin confirms the server's key was replaced.
    """
    if yes and not fingerprint:
        raise click.UsageError(_("--yes needs --fingerprint SHA256:...: a key is never trusted unseen"))
    cfg = app.config
    if cfg.server.scheme != "sftp":
        raise ConfigError(_("{path}: server.url is {url}; trust-host is for sftp:// servers").format(
            path=cfg.path, url=repr(cfg.server.url)))
    if cfg.server.known_hosts is None:
        raise ConfigError(_("{path}: key 'server.known_hosts': expected the file to pin the key in").format(
            path=cfg.path))
    _user, host, port, _root = parse_url(cfg.server.url)
    known_hosts = cfg.server.known_hosts
    pins = hostkeys.pinned(known_hosts, host, port)
    key = hostkeys.fetch(host, port, cfg.server.timeout_seconds, prefer=pins)
    shown = hostkeys.fingerprint(key)

    echo(app, _("server: {host}:{port}").format(host=host, port=port))
    echo(app, _("key type: {type}").format(type=key.get_name()))
    echo(app, _("fingerprint: {fingerprint}").format(fingerprint=shown))
    if pins.get(key.get_name()) == key:
        echo(app, _("already pinned in {known_hosts}; nothing to do").format(known_hosts=known_hosts))
        return
    if pins:
        old = ", ".join(f"{t} {hostkeys.fingerprint(k)}" for t, k in pins.items())
        warn(_("the server's key CHANGED: {known_hosts} pins {old}. Accept the new key only if the server "
               "admin confirms it was replaced.").format(known_hosts=known_hosts, old=old))

    if fingerprint is not None:
        if fingerprint.strip() != shown:
            raise BadInput(_("the server presents {shown}, not the expected {expected}; "
                             "nothing was pinned. Check with the server admin").format(
                shown=shown, expected=fingerprint.strip()))
        echo(app, _("the fingerprint matches the one given"))
    if not yes:
        if not click.confirm(_("Trust this key and pin it?"), default=False):
            finish_with_warnings(_("not pinned; sync to {host} stays refused until the key is trusted").format(
                host=host))
    hostkeys.pin(known_hosts, host, port, key, hashed=hashed)
    echo(app, _("pinned {type} {fingerprint} for {host} in {known_hosts}").format(
        type=key.get_name(), fingerprint=shown, host=hostkeys.host_entry_name(host, port), known_hosts=known_hosts))


COMMANDS = [trust_host_command]
