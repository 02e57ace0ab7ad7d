"""Server host keys: fetch the key a server presents, check it against known_hosts, pin it.

Nothing here trusts a key by itself: `check` refuses unknown and changed keys, and only
`pin` (called by `fieldsync trust-host` after a person confirmed the fingerprint) adds one.
known_hosts stays in OpenSSH's format, so `ssh` and `sftp` share it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import paramiko

from fieldsync.base import atomic
from fieldsync.base.i18n import N_, _
from fieldsync.errors import HostKeyError, TransportError

TRUST_HINT = N_("run 'fieldsync trust-host' and compare the fingerprint with the one the server admin gives you")


def host_entry_name(host: str, port: int) -> str:
    """The name known_hosts uses: `host` on port 22, `[host]:port` otherwise (as OpenSSH)."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... fingerprint (what `ssh-keygen -lf` prints)."""
    return key.fingerprint


def load(known_hosts: Path | None) -> paramiko.HostKeys:
    """known_hosts as paramiko HostKeys; damaged lines and @cert-authority/@revoked lines are
    skipped (as OpenSSH skips what it cannot read) instead of failing the whole file."""
    keys = paramiko.HostKeys()
    if known_hosts is None or not Path(known_hosts).is_file():
        return keys
    try:
        lines = Path(known_hosts).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HostKeyError(_("cannot read known_hosts {known_hosts}: {exc}").format(
                             known_hosts=known_hosts, exc=exc)) from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except Exception:  # paramiko raises several kinds for a damaged line
            continue
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


def pinned(known_hosts: Path | None, host: str, port: int) -> dict[str, paramiko.PKey]:
    """Key type -> pinned key for this server ({} when none), hashed entries included."""
    found = load(known_hosts).lookup(host_entry_name(host, port))
    return dict(found.items()) if found is not None else {}


def preferred_key_types(pins: dict[str, paramiko.PKey], offered: tuple[str, ...]) -> list[str]:
    """Host key algorithms with the pinned types first, so the server shows the pinned key.

    Without this a server with several host keys could present another type than the one
    pinned, and a good server would look like a changed one.
    """
    first: list[str] = []
    for name in pins:
        first += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if name == "ssh-rsa" else [name]
    first = [t for t in first if t in offered]
    return first + [t for t in offered if t not in first]


def check(known_hosts: Path | None, host: str, port: int, key: paramiko.PKey) -> None:
    """Return when `key` is the pinned key for host:port; else HostKeyError naming the fingerprint."""
    pins = pinned(known_hosts, host, port)
    where = f"{host}:{port}"
    print_ = f"{key.get_name()} {fingerprint(key)}"
    if not pins:
        error = HostKeyError(_("server {where} is not known: it presents host key {key}, not pinned in "
                               "{known_hosts}; {hint}").format(
            where=where, key=print_, hint=_(TRUST_HINT),
            known_hosts=known_hosts or _("known_hosts (server.known_hosts is not set)")))
    elif pins.get(key.get_name()) == key:
        return
    else:
        old = ", ".join(f"{t} {fingerprint(k)}" for t, k in pins.items())
        error = HostKeyError(_("the host key of {where} has CHANGED: it presents {key}, but {known_hosts} "
                               "pins {old}. Nothing was sent. This can be an attack; ask the server admin "
                               "whether the key was replaced, then {hint}").format(
            where=where, key=print_, known_hosts=known_hosts, old=old, hint=_(TRUST_HINT)))
    error.fingerprint = fingerprint(key)
    error.key_type = key.get_name()
    error.changed = bool(pins)
    raise error


def fetch(host: str, port: int, timeout: float, prefer: dict[str, paramiko.PKey] | None = None) -> paramiko.PKey:
    """The host key the server presents (key exchange only: no authentication, nothing sent)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise TransportError(_("cannot reach {host}:{port}: {error}").format(
            host=host, port=port, error=exc.strerror or exc)) from None
    transport = paramiko.Transport(sock)
    try:
        options = transport.get_security_options()
        options.key_types = preferred_key_types(prefer or {}, tuple(options.key_types))
        transport.banner_timeout = transport.handshake_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(_("{host}:{port} did not complete an SSH key exchange: {exc}").format(
                               host=host, port=port, exc=exc)) from None
    finally:
        transport.close()


def pin(known_hosts: Path, host: str, port: int, key: paramiko.PKey, hashed: bool = False) -> None:
    """Make `key` the only pinned key for host:port in `known_hosts` (atomic rewrite).

    Lines for other hosts, comments and markers are kept byte for byte; entries for this host
    (plain or hashed) are dropped, so a replaced server key does not linger beside the new one.
    """
    known_hosts = Path(known_hosts)
    name = host_entry_name(host, port)
    try:
        lines = known_hosts.read_text(encoding="utf-8").splitlines() if known_hosts.exists() else []
    except (OSError, UnicodeDecodeError) as exc:
        raise HostKeyError(_("cannot read known_hosts {known_hosts}: {exc}").format(
                             known_hosts=known_hosts, exc=exc)) from None
    kept = [line for line in (_without_host(line, name) for line in lines) if line is not None]
    written_name = paramiko.HostKeys.hash_host(name) if hashed else name
    kept.append(f"{written_name} {key.get_name()} {key.get_base64()}")
    if not known_hosts.parent.exists():
        known_hosts.parent.mkdir(parents=True, mode=0o700)
    atomic.write_text(known_hosts, "\n".join(kept) + "\n", private=True)
    with contextlib.suppress(OSError):
        os.chmod(known_hosts, 0o600)


def _without_host(line: str, name: str) -> str | None:
    """`line` with `name` removed from its host list; None when nothing is left of it."""
    fields = line.split()
    if not fields or fields[0].startswith("#") or fields[0].startswith("@") or len(fields) < 3:
        return line
    names = fields[0].split(",")
    rest = [n for n in names if not _matches(n, name)]
    if len(rest) == len(names):
        return line
    if not rest:
        return None
    return " ".join([",".join(rest), *fields[1:]])


def _matches(entry: str, name: str) -> bool:
    if entry.startswith("|1|"):
        try:
            return paramiko.HostKeys.hash_host(name, entry) == entry
        except (AssertionError, ValueError, IndexError):  # a damaged hashed entry: not ours
            return False
    return entry == name
