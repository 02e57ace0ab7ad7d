"""The mirror on an SFTP server (OpenSSH, or a gateway such as SFTPGo), with paramiko.

One SSH connection, a small pool of SFTP channels on it: each upload in flight has a channel of
its own, so per-file round trips (open, close, stat, rename) overlap between files while the
writes inside a file are pipelined. Host keys are checked against server.known_hosts before
anything is sent; only keys authenticate (file or ssh-agent), never a password.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
import socket
import stat as stat_mod
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import paramiko

from fieldsync.base.i18n import _
from fieldsync.errors import BadInput, ConfigError, FieldsyncError, KeyRefused, TransportError
from fieldsync.transport import hostkeys
from fieldsync.transport.base import (
    MAX_SERVER_ID,
    REMOTE_ROOT,
    SERVER_ID,
    ProgressFn,
    RemoteEntry,
    Transport,
    safe_rel,
)
from fieldsync.transport.inflight import InFlight
from fieldsync.transport.paths import PathLocks, file_rel, part_name
from fieldsync.transport.pipelined import (
    finish_upload,
    list_folder,
    lstat_many,
    read_small,
    real_folder,
    real_folder_and_small,
)

# Data per SFTP write request: paramiko's 32 KiB plus the request's own header is just over
# the 32 KiB channel packet OpenSSH allows, so every write went out as two SSH packets (one of
# ~30 bytes). 512 bytes less leaves room for the header and any handle length a server uses.
WRITE_REQUEST = 32 * 1024 - 512
IN_FLIGHT = 1024 * 1024  # unanswered write bytes on one connection, all channels together (inflight)
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
CHECK_BLOCK = 64 * 1024  # head and tail of a partial upload read back before resuming it
NETWORK_ERRORS = (paramiko.SSHException, OSError, EOFError)

log = logging.getLogger(__name__)


def parse_url(url: str) -> tuple[str | None, str, int, PurePosixPath]:
    """(user, host, port, remote root) from sftp://user@host:port/path."""
    parts = urlsplit(url)
    if parts.scheme != "sftp" or not parts.hostname:
        raise ConfigError(_("server.url: expected sftp://user@host[:port]/path, got {url!r}").format(url=url))
    if parts.password:
        raise ConfigError(_("server.url: no password in the URL; use server.key_file or ssh-agent"))
    try:
        port = parts.port or 22
    except ValueError:
        raise ConfigError(_("server.url: bad port in {url!r}").format(url=url)) from None
    root = PurePosixPath(unquote(parts.path) or "/")
    return (unquote(parts.username) if parts.username else None), parts.hostname, port, root


class SFTPTransport(Transport):
    """A remote root on an SFTP server; safe to call from several threads at once."""

    def __init__(self, host: str, port: int, user: str | None, root: PurePosixPath | str, *,
                 key_file: Path | None = None, known_hosts: Path | None = None,
                 timeout: float = 15.0, channels: int = 4, use_agent: bool = True):
        self.host, self.port = host, port
        self.user = user or _local_user()
        self.root = PurePosixPath(root)
        self.key_file = Path(key_file).expanduser() if key_file else None
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else None
        self.timeout = timeout
        self.use_agent = use_agent
        self.url = f"sftp://{self.user}@{host}:{port}{self.root}"
        self._lock = threading.Lock()  # guards the connection, the channel pool, the dir cache
        self._free = threading.Condition(self._lock)  # a channel was returned
        self._ssh: paramiko.Transport | None = None
        self._idle: list[paramiko.SFTPClient] = []
        self._busy = 0  # channels out on the current connection (opening ones included)
        self._cap = max(1, channels)
        self._generation = 0  # bumped when a connection is dropped
        self._dirs: set[PurePosixPath] = set()
        # Folders this client made in this pass: empty when made, so what lies under them
        # needs no lstat before its mkdir (a new visit's kind folders).
        self._made: set[PurePosixPath] = set()
        self._real_root: str | None = None
        self._host_key: str | None = None  # fingerprint the live connection's server presented
        self._locks = PathLocks()
        self._making = PathLocks()  # folders being made (_ensure_dirs)
        # Uploads prepared ahead: rel -> (channel, generation, the temp file's handle when
        # opened ahead, or what was written when written ahead).
        self._aheads: dict[PurePosixPath, tuple[paramiko.SFTPClient, int, paramiko.SFTPFile | Written]] = {}
        self._in_flight = InFlight(IN_FLIGHT)  # a new one for each connection

    @classmethod
    def from_config(cls, cfg) -> SFTPTransport:
        user, host, port, root = parse_url(cfg.server.url or "")
        transport = cls(host, port, user, root, key_file=cfg.server.key_file, known_hosts=cfg.server.known_hosts,
                        timeout=cfg.server.timeout_seconds, channels=cfg.server.parallel)
        transport.owner = cfg.device
        return transport

    # ------------------------------------------------------------------ connection

    def _connect(self) -> paramiko.Transport:
        """The live SSH connection, made (host key checked, key auth) when there is none."""
        if self._ssh is not None and self._ssh.is_active():
            return self._ssh
        self._drop()
        pins = hostkeys.pinned(self.known_hosts, self.host, self.port)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise TransportError(_("cannot reach {host}:{port}: {error}; sync retries when the network is back")
                                 .format(host=self.host, port=self.port, error=exc.strerror or exc)) from None
        ssh = paramiko.Transport(sock)
        try:
            options = ssh.get_security_options()
            options.key_types = hostkeys.preferred_key_types(pins, tuple(options.key_types))
            options.ciphers = preferred_ciphers(tuple(options.ciphers))
            ssh.banner_timeout = ssh.handshake_timeout = ssh.auth_timeout = self.timeout
            ssh.channel_timeout = self.timeout
            ssh.start_client(timeout=self.timeout)
            # Checked before authenticating: a wrong server must not even see our public key.
            hostkeys.check(self.known_hosts, self.host, self.port, ssh.get_remote_server_key())
            self._host_key = hostkeys.fingerprint(ssh.get_remote_server_key())
            self._authenticate(ssh)
            ssh.set_keepalive(max(5, int(self.timeout)))
        except FieldsyncError:
            ssh.close()
            raise
        except NETWORK_ERRORS as exc:
            ssh.close()
            reason = exc or type(exc).__name__
            raise TransportError(_("SSH connection to {host}:{port} failed: {reason}").format(
                host=self.host, port=self.port, reason=reason)) from None
        self._ssh = ssh
        # The pool's channels are opened now, beside the first one's work (the root, the server
        # id), not one at a time as uploads ask: each costs three round trips (OpenSSH opens a
        # session with no window until its subsystem runs), which were on the path of a pass's
        # first uploads and folders.
        for _channel in range(self._cap):
            threading.Thread(target=self._warm, name="fieldsync-channel", daemon=True).start()
        return ssh

    def _warm(self) -> None:
        with contextlib.suppress(FieldsyncError, *NETWORK_ERRORS):
            opened = self._checkout(reconnect=False, fresh=True)
            if opened is not None:
                self._checkin(*opened, False)

    def _authenticate(self, ssh: paramiko.Transport) -> None:
        """Public key only: the key file, then the agent's keys. A server that asks for a
        password (or a second factor after the key) is refused rather than answered."""
        keys = []
        if self.key_file is not None:
            keys.append(_load_key(self.key_file))
        agent = _agent() if self.use_agent else None
        try:
            if agent is not None:
                keys += list(agent.get_keys())
            if not keys:
                raise ConfigError(_("no SSH key to log in with: set server.key_file or load a key into ssh-agent"))
            for key in keys:
                try:
                    remaining = ssh.auth_publickey(self.user, key)
                except paramiko.AuthenticationException:
                    continue
                if not remaining:
                    return
                raise TransportError(_("{host} wants more than a key ({methods}) after it; fieldsync logs in with "
                                       "keys only: ask the admin for key-only login").format(
                                       host=self.host, methods=', '.join(remaining)))
        finally:
            if agent is not None:
                agent.close()
        tried = self.key_file or "ssh-agent keys"
        raise KeyRefused(_("server refused this tablet's key (revoked?): ask the admin ({account} "
                           "refused the key {tried}; a new tablet's public key must be in the account's "
                           "authorized_keys)").format(account=f"{self.user}@{self.host}", tried=tried))

    def _drop(self) -> None:
        """Forget the connection (under the lock); channels still out are closed on return."""
        for client in self._idle:
            with contextlib.suppress(Exception):
                client.close()
        self._idle.clear()
        self._aheads.clear()  # their channels die with the connection
        if self._ssh is not None:
            with contextlib.suppress(Exception):
                self._ssh.close()
        self._ssh = None
        self._busy = 0
        self._generation += 1
        self._in_flight = InFlight(IN_FLIGHT)  # the writers of the old one free theirs into it
        self._dirs.clear()  # a new connection looks again (the server may have changed)
        self._made.clear()
        self._free.notify_all()

    def _checkout(self, reconnect: bool = True, fresh: bool = False) -> tuple[paramiko.SFTPClient, int] | None:
        """An idle channel, or a new one while fewer than the cap are open; else wait.
        reconnect False: on the live connection only (TransportError when there is none).
        fresh: only a channel opened now, None when the pool is full or it cannot be opened
        (warming the pool up: what a server allows is learned by the channels asked for)."""
        while True:
            surplus: list = []
            with self._free:
                while True:
                    if not reconnect and not (self._ssh is not None and self._ssh.is_active()):
                        raise TransportError(_("not connected to {host}").format(host=self.host))
                    ssh = self._connect()
                    generation = self._generation
                    if self._idle and not fresh:
                        self._busy += 1
                        return self._idle.pop(), generation
                    if self._busy + (len(self._idle) if fresh else 0) < self._cap:
                        self._busy += 1
                        break
                    if fresh:
                        return None
                    surplus = self._surplus_aheads()
                    if surplus:
                        break
                    self._free.wait()
            if surplus:
                for rel, ahead in surplus:
                    # Its temp file stays: the upload may be starting now, and it resumes that
                    # file like any partial of ours (only its rename left, when unchanged).
                    self._release_ahead(rel, ahead, keep_temp=True)
                continue
            try:
                client = paramiko.SFTPClient.from_transport(ssh)
                if client is None:
                    raise paramiko.ChannelException(0, "no SFTP channel")
            except Exception as exc:
                outcome = self._open_failed(exc, ssh, generation, fresh)
                if outcome == "raise":
                    raise
                if outcome == "give up":
                    return None
                continue
            client.get_channel().settimeout(self.timeout)
            return client, generation

    def _open_failed(self, exc: Exception, ssh: paramiko.Transport, generation: int, fresh: bool) -> str:
        """After a channel failed to open: "give up" (warming up), "raise" (not the server
        refusing one more channel), or "retry" once a channel is free, the server's limit
        learned."""
        with self._free:
            if generation == self._generation:
                self._busy -= 1  # whatever failed, the open no longer counts
            self._free.notify_all()  # threads waiting on this open learn its outcome
            if fresh:
                return "give up"
            # Concurrent opens share paramiko's saved error, so a refusal may surface as a
            # plain SSHException: while the connection lives, it is a refused channel.
            if not isinstance(exc, paramiko.SSHException) or generation != self._generation or not ssh.is_active():
                return "raise"
            # Channels open or still opening (those may yet succeed): the server's limit.
            allowed = self._busy
            if allowed == 0:
                return "raise"
            if allowed < self._cap:
                # The server allows fewer sessions per connection (OpenSSH MaxSessions): share
                # the channels it grants instead of failing.
                self._cap = allowed
                log.info("%s allows %d SFTP channels per connection", self.host, allowed)
            self._free.wait()
            return "retry"

    def _surplus_aheads(self) -> list:
        """Under the lock, when no channel is left: uploads prepared ahead beyond half the cap,
        taken out to be released. They held at most half when they were made, but a server's
        limit learned since (a smaller cap) could leave them every channel, and the uploads
        they wait for none."""
        keep = self._cap // 2
        if self._busy < self._cap or len(self._aheads) <= keep:
            return []
        rels = list(self._aheads)[keep:]
        return [(rel, self._aheads.pop(rel)) for rel in rels]

    def _checkin(self, client: paramiko.SFTPClient, generation: int, broken: bool) -> None:
        with self._free:
            if generation != self._generation:
                stale = True
            else:
                stale = False
                self._busy -= 1
                if broken:
                    # A timeout or a cut: the whole connection is suspect; the next call redials.
                    self._drop()
                else:
                    self._idle.append(client)
                self._free.notify()
        if stale or broken:
            with contextlib.suppress(Exception):
                client.close()

    @contextlib.contextmanager
    def _channel(self, doing: str, taken: tuple[paramiko.SFTPClient, int] | None = None,
                 resolve_root: bool = True) -> Iterator[paramiko.SFTPClient]:
        """An SFTP channel of our own for one operation (`taken`: one checked out already);
        every network failure in it becomes TransportError (retryable) and leaves the
        connection to be remade on the next call. The remote root is resolved first, unless
        the operation does that itself (resolve_root False)."""
        client = generation = None
        broken = False
        try:
            client, generation = taken or self._checkout()
            if self._real_root is None and resolve_root:
                self._real_root = _root_of(client, self.root, self.host)
            yield client
        except FieldsyncError:
            raise
        except NETWORK_ERRORS as exc:
            broken = _is_connection_error(exc) or not (self._ssh and self._ssh.is_active())
            raise TransportError(_("{doing} on {host}: {reason}").format(
                                   doing=doing, host=self.host, reason=_describe(exc))) from None
        except BaseException:
            broken = True
            raise
        finally:
            if client is not None:
                self._checkin(client, generation, broken)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def begin_pass(self) -> None:
        """Forget the folders checked in earlier passes: a long-running daemon keeps its
        connection, and a folder it checked an hour ago may have been swapped for a symlink
        since. Within a pass the check stands (SFTP v3 has no openat: a swap during the pass
        is outside what a client can close). Uploads prepared ahead that an earlier pass did
        not use (it failed before them) are released: their channels return to the pool."""
        with self._lock:
            self._dirs.clear()
            self._made.clear()
            left = list(self._aheads.items())
            self._aheads.clear()
        for rel, ahead in left:
            self._release_ahead(rel, ahead)

    def host_key(self) -> str | None:
        with self._lock:
            self._connect()
            return self._host_key

    def _read_server_id(self, scratch: Path) -> str | None:
        # Asked on every new connection: the lstat, open and read of a few bytes in two round
        # trips, where a stat and then a download took six or seven.
        with self._channel(f"read {SERVER_ID}", resolve_root=False) as client:
            if self._real_root is None:  # a new connection: its root looked at in the same round trip
                try:
                    real, st, got = real_folder_and_small(client, str(self.root), SERVER_ID, MAX_SERVER_ID)
                except FileNotFoundError:
                    raise _missing_root(self.root, self.host) from None
                self._real_root = _checked_root(real, st, self.root, self.host)
            else:
                got = read_small(client, self._remote(SERVER_ID), MAX_SERVER_ID)
        if got is None:
            return None
        attrs, data = got
        if not stat_mod.S_ISREG(attrs.st_mode or 0) or (attrs.st_size or 0) > MAX_SERVER_ID:
            raise BadInput(_("{name} is not a plain file of at most {size} bytes").format(
                name=SERVER_ID, size=MAX_SERVER_ID))
        return data.decode("ascii", "replace").strip() or None

    # ------------------------------------------------------------------ paths

    def _remote(self, rel: PurePosixPath | str) -> str:
        rel = safe_rel(rel)
        return f"{self._real_root}/{rel}" if str(rel) != "." else self._real_root

    def _ensure_dirs(self, client: paramiko.SFTPClient, rel: PurePosixPath) -> None:
        """Make `rel` and its parents; refuse a symlink on the way (it could lead out of the root).

        Every component is either made by us or seen as a real directory with lstat, so no
        write can be redirected outside the root. Known directories are cached until the next
        pass (begin_pass) or connection.
        """
        parts = safe_rel(rel).parts
        with self._lock:
            todo = [here for here in (PurePosixPath(*parts[:depth]) for depth in range(1, len(parts) + 1))
                    if here not in self._dirs]
            fresh = next((n for n, here in enumerate(todo) if here.parent in self._made), len(todo))
        if not todo:
            return
        # Every unknown folder on the way looked at in one round trip (those below a folder
        # made in this pass do not exist yet); then the missing ones made parents first, one
        # at a time (each mkdir only once its parent is known sound).
        found = lstat_many(client, [self._remote(here) for here in todo[:fresh]]) if fresh else []
        found += [None] * (len(todo) - fresh)
        for here, st in zip(todo, found, strict=True):
            if st is not None:
                _require_dir(st, here)
                with self._lock:
                    self._dirs.add(here)
                continue
            # The uploads into a new visit all need its folders at once: one makes each, the
            # others wait for it, where racing it cost them a failed mkdir and an lstat.
            with self._making.hold(here):
                with self._lock:
                    if here in self._dirs:
                        continue
                try:
                    client.mkdir(self._remote(here))
                    made = True
                except OSError:
                    st = client.lstat(self._remote(here))  # made by another client meanwhile
                    _require_dir(st, here)
                    made = False
                with self._lock:
                    self._dirs.add(here)
                    if made:
                        self._made.add(here)

    # ------------------------------------------------------------------ interface

    def stat(self, rel: PurePosixPath) -> RemoteEntry | None:
        rel = safe_rel(rel)
        with self._channel(f"stat {rel}") as client:
            # The folders on the way that are not known yet are looked at in the same round
            # trip: an upload to `rel` next (the daemon's one photo) then needs no folder check.
            with self._lock:
                parents = [p for p in reversed(rel.parents) if p.parts and p not in self._dirs]
            *above, st = lstat_many(client, [self._remote(p) for p in parents] + [self._remote(rel)])
            sound = []
            for parent, attrs in zip(parents, above, strict=True):
                if attrs is None or not stat_mod.S_ISDIR(attrs.st_mode or 0):
                    break  # missing, a file or a symlink: the upload's own check deals with it
                sound.append(parent)
            with self._lock:
                self._dirs.update(sound)
            if st is None:
                return None
            return RemoteEntry(PurePosixPath(rel), st.st_size or 0, float(st.st_mtime or 0),
                               stat_mod.S_ISDIR(st.st_mode or 0))

    def walk(self, rel: PurePosixPath = REMOTE_ROOT) -> Iterator[RemoteEntry]:
        # Listed in one go under one channel, then yielded: a caller that stops early must
        # not keep a channel busy.
        entries: list[RemoteEntry] = []
        with self._channel(f"list {rel}") as client:
            pending = [PurePosixPath(rel)]
            while pending:
                folder = pending.pop()
                try:
                    listing = list_folder(client, self._remote(folder))
                except FileNotFoundError:
                    continue
                for attr in sorted(listing, key=lambda a: a.filename):
                    mode = attr.st_mode or 0
                    if stat_mod.S_ISLNK(mode):
                        continue  # never followed: it could point anywhere
                    child = folder / attr.filename if str(folder) != "." else PurePosixPath(attr.filename)
                    entries.append(RemoteEntry(child, attr.st_size or 0, float(attr.st_mtime or 0),
                                               stat_mod.S_ISDIR(mode)))
                    if stat_mod.S_ISDIR(mode):
                        pending.append(child)
        yield from entries

    def makedirs(self, rel: PurePosixPath) -> None:
        with self._channel(f"make folder {rel}") as client:
            self._ensure_dirs(client, rel)

    def open_ahead(self, rel: PurePosixPath, reconnect: bool = True) -> bool:
        """Check the folders and create the temp file of an upload about to come, on a channel
        kept for it: the daemon's photo is shrunk and sealed meanwhile, and its upload then
        starts with its first write. Anything unusual (a temp file already there, a symlink,
        the network) returns False, and the upload does it all itself as usual."""
        rel = file_rel(rel)
        try:
            client, generation = self._checkout(reconnect)
        except (FieldsyncError, *NETWORK_ERRORS):
            return False
        try:
            if self._real_root is None:
                self._real_root = _root_of(client, self.root, self.host)
            if rel.parent != PurePosixPath("."):
                self._ensure_dirs(client, rel.parent)
            out = _create_exclusive(client, self._remote(rel.parent / part_name(rel.name, self.owner)))
        except (FieldsyncError, *NETWORK_ERRORS) as exc:
            self._checkin(client, generation, not isinstance(exc, FieldsyncError) and _is_connection_error(exc))
            return False
        if out is None:
            self._checkin(client, generation, False)
            return False
        with self._lock:
            earlier = self._aheads.pop(rel, None)
            self._aheads[rel] = (client, generation, out)
        if earlier is not None:
            self._release_ahead(rel, earlier)
        return True

    def write_ahead(self, local: Path, rel: PurePosixPath) -> bool:
        rel = file_rel(rel)
        with self._lock:
            # Each holds a channel until its upload: at most half the pool (the server's
            # MaxSessions included), so the uploads it waits for always have channels.
            if len(self._aheads) >= self._cap // 2:
                return False
        # On the live connection only: a pass that lost it has failed, and a temp file
        # written on a new one for that pass would be left behind.
        if not self.open_ahead(rel, reconnect=False):
            return False
        with self._lock:
            ahead = self._aheads.pop(rel, None)
        if ahead is None:
            return False
        client, generation, out = ahead
        try:
            with open(local, "rb") as source, self._locks.hold(rel):
                st = os.fstat(source.fileno())
                remote_size = self._write_part(client, source, out, 0, st.st_size, None)
        except (OSError, *NETWORK_ERRORS):  # the upload itself does it all again
            self._release_ahead(rel, (client, generation, None))
            return False
        if remote_size != st.st_size:
            self._release_ahead(rel, (client, generation, None))
            return False
        with self._lock:
            current = generation == self._generation
            if current:
                self._aheads[rel] = (client, generation, Written(st.st_size, st.st_mtime_ns))
        if not current:  # the connection went meanwhile: its channel is closed, nothing kept
            self._checkin(client, generation, False)
        return current

    def drop_ahead(self, rel: PurePosixPath) -> None:
        rel = file_rel(rel)
        with self._lock:
            ahead = self._aheads.pop(rel, None)
        if ahead is not None:
            self._release_ahead(rel, ahead)

    def _release_ahead(self, rel: PurePosixPath, ahead, keep_temp: bool = False) -> None:
        client, generation, out = ahead
        broken = False
        try:
            if isinstance(out, paramiko.SFTPFile):
                out.close()
            if not keep_temp:
                client.remove(self._remote(rel.parent / part_name(rel.name, self.owner)))
        except (*NETWORK_ERRORS,) as exc:
            broken = _is_connection_error(exc)
        self._checkin(client, generation, broken)

    def upload(self, local: Path, rel: PurePosixPath, progress: ProgressFn | None = None) -> None:
        rel = file_rel(rel)
        try:
            source = open(local, "rb")
        except OSError as exc:
            raise BadInput(_("cannot read {local}: {strerror}").format(local=local, strerror=exc.strerror)) from None
        with self._lock:
            ahead = self._aheads.pop(rel, None)
        if ahead is not None:
            client, generation, out = ahead
            with source, self._locks.hold(rel), self._channel(f"upload {rel}", (client, generation)) as client:
                if isinstance(out, Written):
                    if out.matches(os.fstat(source.fileno())):
                        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: redone below
                            client.posix_rename(self._remote(rel.parent / part_name(rel.name, self.owner)),
                                                self._remote(rel))
                            if progress:
                                progress(out.size, out.size)
                            return
                    out = None  # changed since it was written: the temp file is resumed or redone
                self._put(client, source, rel, progress, out)
            return
        with source, self._locks.hold(rel), self._channel(f"upload {rel}") as client:
            if rel.parent != PurePosixPath("."):
                self._ensure_dirs(client, rel.parent)
            try:
                self._put(client, source, rel, progress)
            except FileNotFoundError:
                # A folder we had seen was removed on the server meanwhile: forget it, remake it.
                with self._lock:
                    self._dirs.clear()
                    self._made.clear()
                self._ensure_dirs(client, rel.parent)
                self._put(client, source, rel, progress)

    def _put(self, client: paramiko.SFTPClient, source, rel: PurePosixPath, progress: ProgressFn | None,
             opened: paramiko.SFTPFile | None = None) -> None:
        target = self._remote(rel)
        part = self._remote(rel.parent / part_name(rel.name, self.owner))
        size = os.fstat(source.fileno()).st_size
        out = opened or _create_exclusive(client, part)
        # Usually nothing is under the temp name and the exclusive create above made it (one
        # round trip, no lstat first). Only when something is there do we look at it: a
        # partial of ours to resume, or a planted symlink to remove.
        offset = 0 if out is not None else _resumable_offset(client, part, source, size)
        if progress:
            progress(offset, size)
        if out is None and (offset < size or size == 0):
            out = client.open(part, "r+" if offset else "w")
        if out is not None:
            remote_size = self._write_part(client, source, out, offset, size, progress)
        else:
            remote_size = client.stat(part).st_size
        if remote_size != size:
            raise TransportError(_("{rel}: the server holds {remote_size} bytes of {size} after the upload (disk "
                                   "full? file changed while sending?); retrying later").format(
                                   rel=rel, remote_size=remote_size, size=size))
        client.posix_rename(part, target)

    def _write_part(self, client: paramiko.SFTPClient, source, out: paramiko.SFTPFile, offset: int, size: int,
                    progress: ProgressFn | None) -> int:
        """`source` from `offset` into the open temp file `out`, which is closed after; returns
        the size the server then holds. The writes are pipelined, within the connection's
        allowance of bytes in flight (inflight)."""
        in_flight = self._in_flight
        sizes: deque[int] = deque()  # this file's writes not answered yet, oldest first

        def answer_oldest() -> int:
            if not out._reqs:
                return 0
            client._read_response(out._reqs.popleft())  # raises the write's error
            return sizes.popleft()

        try:
            out.set_pipelined(True)
            out.MAX_REQUEST_SIZE = WRITE_REQUEST
            out.seek(offset)
            source.seek(offset)
            done = offset
            while chunk := source.read(WRITE_REQUEST):  # one write request each
                in_flight.take(len(chunk), answer_oldest)
                sizes.append(len(chunk))  # before the write: given back below even if it fails
                out.write(chunk)
                while len(sizes) > len(out._reqs):  # answered by paramiko itself meanwhile
                    in_flight.give(sizes.popleft())
                done += len(chunk)
                if progress:
                    progress(done, size)
            # The size check and the close go right behind the last write; every write's
            # answer is read (the first error raised) before the rename is sent.
            return finish_upload(client, out)
        finally:
            in_flight.give(sum(sizes))
            out.close()  # after an error only: finish_upload closed it otherwise

    def download(self, rel: PurePosixPath, local: Path) -> None:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(part_name(local.name))
        try:
            with self._channel(f"download {rel}") as client:
                remote = self._remote(rel)
                try:
                    if stat_mod.S_ISLNK(client.lstat(remote).st_mode or 0):
                        raise BadInput(_("refusing {rel}: it is a symlink on the server side").format(rel=rel))
                    with open(tmp, "wb") as out:
                        client.getfo(remote, out)  # prefetching, and checks the size
                        out.flush()
                        os.fsync(out.fileno())
                except FileNotFoundError:
                    raise TransportError(_("{rel} is not on the server").format(rel=rel)) from None
            os.replace(tmp, local)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def rename(self, old: PurePosixPath, new: PurePosixPath) -> None:
        """Move `old` to `new` inside the root (a renamed visit: no re-upload)."""
        with self._channel(f"rename {old}") as client:
            new = safe_rel(new)
            if new.parent != PurePosixPath("."):
                self._ensure_dirs(client, new.parent)
            client.posix_rename(self._remote(old), self._remote(new))
            with self._lock:
                self._dirs = {d for d in self._dirs if not d.is_relative_to(safe_rel(old))}
                self._made.clear()

    def remove(self, rel: PurePosixPath) -> None:
        with self._channel(f"remove {rel}") as client:
            with contextlib.suppress(FileNotFoundError):
                client.remove(self._remote(rel))


# ---------------------------------------------------------------------- helpers

@dataclass(frozen=True)
class Written:
    """A temp file written ahead (write_ahead): the local file's size and mtime then."""

    size: int
    mtime_ns: int

    def matches(self, st: os.stat_result) -> bool:
        return (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)


def preferred_ciphers(available: tuple[str, ...]) -> tuple[str, ...]:
    """AES-GCM first, then paramiko's own order. GCM is an AEAD cipher (no separate MAC pass
    over every packet), so the same CPU pushes more: bench.transport measures it. Servers
    without it (rare: OpenSSH has had it since 6.2) still get the CTR ciphers."""
    first = tuple(c for c in AEAD_CIPHERS if c in available)
    return first + tuple(c for c in available if c not in first)


def _local_user() -> str:
    return getpass.getuser()


def _agent() -> paramiko.Agent | None:
    """The ssh-agent, when one is running ($SSH_AUTH_SOCK); None otherwise."""
    try:
        return paramiko.Agent()
    except paramiko.SSHException:
        return None


def _load_key(path: Path) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise ConfigError(_("server.key_file {path} does not exist; make a key with 'ssh-keygen -t ed25519' and "
                            "give its path").format(path=path)) from None
    except paramiko.PasswordRequiredException:
        raise ConfigError(_("server.key_file {path} is protected by a passphrase; load it into ssh-agent "
                            "('ssh-add') and leave server.key_file empty").format(path=path)) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise ConfigError(_("server.key_file {path} is not a usable private key (ed25519, RSA or ECDSA): {exc}").format(
                            path=path, exc=exc)) from None


def _root_of(client: paramiko.SFTPClient, root: PurePosixPath, host: str) -> str:
    """The remote root with symlinks resolved by the server; it must exist already."""
    try:
        real, st = real_folder(client, str(root))
    except FileNotFoundError:
        raise _missing_root(root, host) from None
    return _checked_root(real, st, root, host)


def _missing_root(root: PurePosixPath, host: str) -> TransportError:
    return TransportError(_("the remote root {root} does not exist on {host}; the server admin must create it "
                            "(fieldsync never creates it: it may be an unmounted share)").format(root=root, host=host))


def _checked_root(real: str, st: paramiko.SFTPAttributes, root: PurePosixPath, host: str) -> str:
    if not stat_mod.S_ISDIR(st.st_mode or 0):
        raise TransportError(_("the remote root {root} on {host} is not a folder").format(root=root, host=host))
    return real.rstrip("/") or "/"


def _require_dir(st: paramiko.SFTPAttributes, rel: PurePosixPath) -> None:
    mode = st.st_mode or 0
    if stat_mod.S_ISLNK(mode):
        raise BadInput(_("refusing {rel}: it is a symlink on the server, and fieldsync never writes through one (it "
                         "could lead out of the remote root)").format(rel=rel))
    if not stat_mod.S_ISDIR(mode):
        raise TransportError(_("cannot make folder {rel} on the server: a file has that name").format(rel=rel))


def _create_exclusive(client: paramiko.SFTPClient, part: str) -> paramiko.SFTPFile | None:
    """The temp file created afresh (O_CREAT|O_EXCL), or None when something already has
    its name. O_EXCL never follows a symlink, so nothing can be written through one here.

    SFTP v3 answers an existing name with a bare "Failure", like many other refusals, so
    any refusal returns None and the caller's lstat finds out what is there."""
    try:
        return client.open(part, "wx")
    except (FileNotFoundError, PermissionError):
        raise  # no folder (the caller remakes it) or not ours to write: nothing to look at
    except OSError:
        return None


def _resumable_offset(client: paramiko.SFTPClient, part: str, source, size: int) -> int:
    """Bytes of the remote partial upload that can be kept: all of them or none.

    The head and the tail block of the partial are read back and compared with the source at
    the same offsets (at most 128 KiB over the network, whatever the size). A partial from
    other content fails this almost surely, as writes land in order and a leftover of another
    version differs at the start or where it stopped.
    """
    try:
        st = client.lstat(part)
    except FileNotFoundError:
        return 0
    mode = st.st_mode or 0
    if not stat_mod.S_ISREG(mode):
        client.remove(part)  # a symlink planted under our temp name must not be written through
        return 0
    held = st.st_size or 0
    if held == 0 or held > size:
        return 0
    blocks = {(0, min(held, CHECK_BLOCK)), (max(0, held - CHECK_BLOCK), min(held, CHECK_BLOCK))}
    with client.open(part, "r") as remote:
        for start, length in sorted(blocks):
            remote.seek(start)
            source.seek(start)
            if remote.read(length) != source.read(length):
                return 0
    return held


def _is_connection_error(exc: BaseException) -> bool:
    """True when the connection itself failed (cut, stall), not just one file operation.

    paramiko reports a refused SFTP operation as a plain IOError (with an errno for "no such
    file" and "permission denied"); a dropped connection as SSHException or EOFError.
    """
    return isinstance(exc, (paramiko.SSHException, EOFError, socket.timeout, ConnectionError))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "no answer within server.timeout_seconds (network stalled)"
    if isinstance(exc, OSError) and exc.errno == errno.EACCES:
        return f"permission denied ({exc.strerror or exc})"
    text = str(exc) or type(exc).__name__
    if "Failure" in text:
        return f"the server failed the operation (disk full or quota?): {text}"
    return text
