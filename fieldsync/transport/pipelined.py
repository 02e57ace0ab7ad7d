"""SFTP requests sent without waiting for each answer, on one paramiko SFTP channel.

On a mobile link every round trip is 80 ms or more, and paramiko's SFTPClient waits for the
answer to each request before sending the next. SFTP lets a client send many requests and read
the answers later (each carries its request id); paramiko already does that for the writes of
a pipelined file. Here the same for the few requests around them: the lstat of every folder
on the way in one round trip, a listing whose reads are all in flight at once, the size check
and close of an upload sent right behind its last write, a small file's check and read in two
round trips. Nothing here sends a request whose safety depends on the answer to another one
still in flight: what must be checked first (a folder is no symlink, the bytes all arrived) is
checked before what depends on it is sent.
"""

from __future__ import annotations

import errno
import stat as stat_mod

import paramiko
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_LSTAT,
    CMD_NAME,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_REALPATH,
    CMD_STAT,
    CMD_STATUS,
    SFTP_FLAG_READ,
    int64,
)

READ_AHEAD = 4  # READDIR requests in flight for a listing (OpenSSH answers up to 100 names each)


class Replies:
    """Collects the answers to requests sent without waiting (paramiko's async requests).

    paramiko keeps a weak reference to the object a request was sent for and hands it the
    answer when it reads one; this object keeps them until asked. A request whose answer is
    never asked for (a close sent last) is dropped with this object: paramiko then reads and
    ignores its answer."""

    def __init__(self, client: paramiko.SFTPClient):
        self.client = client
        self._got: dict[int, tuple[int, paramiko.Message]] = {}

    def send(self, kind: int, *args) -> int:
        return self.client._async_request(self, kind, *args)

    def _async_response(self, kind: int, msg: paramiko.Message, num: int) -> None:
        self._got[num] = (kind, msg)

    def wait(self, num: int) -> tuple[int, paramiko.Message]:
        """The answer to request `num`; a status other than OK raises as paramiko does
        (FileNotFoundError, PermissionError, EOFError, OSError)."""
        while num not in self._got:
            self.client._read_response()
        kind, msg = self._got.pop(num)
        if kind == CMD_STATUS:
            self.client._convert_status(msg)
        return kind, msg


def lstat_many(client: paramiko.SFTPClient, paths: list[str]) -> list[paramiko.SFTPAttributes | None]:
    """lstat of every path in one round trip; None for a path that does not exist."""
    replies = Replies(client)
    nums = [replies.send(CMD_LSTAT, path) for path in paths]
    found: list[paramiko.SFTPAttributes | None] = []
    for num in nums:
        try:
            kind, msg = replies.wait(num)
        except FileNotFoundError:
            found.append(None)
            continue
        if kind != CMD_ATTRS:
            raise paramiko.SFTPError("expected attributes")
        found.append(paramiko.SFTPAttributes._from_msg(msg))
    return found


def list_folder(client: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    """The entries of one folder (no . and ..): open, then READ_AHEAD reads in flight at a
    time until the end, the close not waited for. Two round trips for a photo folder."""
    replies = Replies(client)
    kind, msg = replies.wait(replies.send(CMD_OPENDIR, path))
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("expected a handle")
    handle = msg.get_binary()
    entries: list[paramiko.SFTPAttributes] = []
    done = False
    try:
        while not done:
            for num in [replies.send(CMD_READDIR, handle) for _ in range(READ_AHEAD)]:
                try:
                    kind, msg = replies.wait(num)
                except EOFError:
                    done = True
                    continue
                if kind != CMD_NAME:
                    raise paramiko.SFTPError("expected names")
                for _ in range(msg.get_int()):
                    name, longname = msg.get_text(), msg.get_text()
                    attr = paramiko.SFTPAttributes._from_msg(msg, name, longname)
                    if name not in (".", ".."):
                        entries.append(attr)
    finally:
        replies.send(CMD_CLOSE, handle)  # answer ignored: nothing to do if a close fails
    return entries


def finish_upload(client: paramiko.SFTPClient, out: paramiko.SFTPFile) -> int:
    """After the last write of a pipelined file: its size on the server and its close sent
    right behind the writes, then every answer read. Returns the size the server holds after
    all the writes; raises the first write's error. One round trip where waiting for the
    writes, then closing, then a stat took three."""
    out.flush()  # paramiko's buffer: the last bytes become write requests now
    replies = Replies(client)
    size_num = replies.send(CMD_FSTAT, out.handle)
    close_num = replies.send(CMD_CLOSE, out.handle)
    out._closed = True  # closed by the request above: paramiko must not send a second close
    client._finish_responses(out)  # every write's answer; raises the first error
    kind, msg = replies.wait(size_num)
    if kind != CMD_ATTRS:
        raise paramiko.SFTPError("expected attributes")
    size = paramiko.SFTPAttributes._from_msg(msg).st_size or 0
    replies.wait(close_num)
    return size


def read_small(client: paramiko.SFTPClient, path: str, limit: int) -> tuple[paramiko.SFTPAttributes, bytes] | None:
    """(lstat, content) of a small file in two round trips, None when absent.

    The lstat and the open go together (opening for reading writes nothing, so it needs no
    check first); the content is read only when the lstat shows a regular file of at most
    `limit` bytes. Anything else comes back with the content empty: the caller refuses it."""
    replies = Replies(client)
    return _read_small(replies, _ask_small(replies, path), limit)


def real_folder_and_small(client: paramiko.SFTPClient, folder: str, name: str, limit: int
                          ) -> tuple[str, paramiko.SFTPAttributes, tuple[paramiko.SFTPAttributes, bytes] | None]:
    """real_folder(folder) and read_small(folder/name) together, in two round trips where
    they took three: a new connection's look at its root and at the server's id."""
    replies = Replies(client)
    real_num = replies.send(CMD_REALPATH, folder)
    stat_num = replies.send(CMD_STAT, folder)
    small = _ask_small(replies, f"{folder.rstrip('/')}/{name}")
    real, st = _real_folder(replies, real_num, stat_num)
    return real, st, _read_small(replies, small, limit)


def _ask_small(replies: Replies, path: str) -> tuple[int, int]:
    # The lstat and the open go together: opening for reading writes nothing.
    return replies.send(CMD_LSTAT, path), replies.send(CMD_OPEN, path, SFTP_FLAG_READ, paramiko.SFTPAttributes())


def _read_small(replies: Replies, asked: tuple[int, int], limit: int
                ) -> tuple[paramiko.SFTPAttributes, bytes] | None:
    stat_num, open_num = asked
    try:
        kind, msg = replies.wait(stat_num)
    except FileNotFoundError:
        attrs = None
    else:
        attrs = paramiko.SFTPAttributes._from_msg(msg) if kind == CMD_ATTRS else None
    try:
        kind, msg = replies.wait(open_num)
        handle = msg.get_binary() if kind == CMD_HANDLE else None
    except OSError as exc:
        if attrs is not None and exc.errno not in (errno.ENOENT, None):
            raise
        handle = None
    if attrs is None:
        if handle is not None:
            replies.send(CMD_CLOSE, handle)
        return None
    if handle is None:
        return attrs, b""
    data = b""
    try:
        if stat_mod.S_ISREG(attrs.st_mode or 0) and (attrs.st_size or 0) <= limit:
            try:
                kind, msg = replies.wait(replies.send(CMD_READ, handle, int64(0), limit + 1))
                data = msg.get_binary() if kind == CMD_DATA else b""
            except EOFError:
                data = b""
    finally:
        replies.send(CMD_CLOSE, handle)
    return attrs, data



def real_folder(client: paramiko.SFTPClient, path: str) -> tuple[str, paramiko.SFTPAttributes]:
    """(the server's realpath of `path`, its stat) in one round trip: the stat follows the
    symlinks the realpath resolves, so both describe the same folder. Raises
    FileNotFoundError when it does not exist."""
    replies = Replies(client)
    return _real_folder(replies, replies.send(CMD_REALPATH, path), replies.send(CMD_STAT, path))


def _real_folder(replies: Replies, real_num: int, stat_num: int) -> tuple[str, paramiko.SFTPAttributes]:
    kind, msg = replies.wait(real_num)  # an error leaves the stat's answer to be ignored
    if kind != CMD_NAME or msg.get_int() != 1:
        raise paramiko.SFTPError("expected one name")
    real = msg.get_text()
    kind, msg = replies.wait(stat_num)
    if kind != CMD_ATTRS:
        raise paramiko.SFTPError("expected attributes")
    return real, paramiko.SFTPAttributes._from_msg(msg)
