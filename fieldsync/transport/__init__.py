"""Where the mirror lives: one small interface (base), a local/mounted folder and SFTP beside it.

As watchdog's observers do, the interface is in `base`, each backend in its own module, and
this package picks one for the configured URL (`open_transport`).
"""

from fieldsync.base.i18n import _
from fieldsync.config import Config
from fieldsync.errors import ConfigError
from fieldsync.transport.base import RemoteEntry, Transport
from fieldsync.transport.local import LocalTransport
from fieldsync.transport.sftp import SFTPTransport

__all__ = ["RemoteEntry", "Transport", "open_transport", "server_url"]


def open_transport(cfg: Config) -> Transport:
    """The transport for cfg.server.url (file:// or sftp://).

    Raises ConfigError when server.url is not set.
    """
    scheme = cfg.server.scheme
    if scheme == "file":
        return LocalTransport.from_config(cfg)
    if scheme == "sftp":
        return SFTPTransport.from_config(cfg)
    raise ConfigError(_("{path}: server.url is not set; expected sftp://user@host/path or file:///path").format(path=cfg.path))


def server_url(cfg: Config) -> str | None:
    """The configured server's URL as its transport spells it (what the sync state records),
    found without connecting; None when server.url is not set or not usable."""
    try:
        transport = open_transport(cfg)
    except ConfigError:
        return None
    with transport:  # nothing is open yet: closing only releases the object
        return transport.url
