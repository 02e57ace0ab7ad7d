"""Where the mirror lives: one small interface, a local/mounted folder and SFTP behind it."""

from fieldsync.transport.base import RemoteEntry, Transport, open_transport

__all__ = ["RemoteEntry", "Transport", "open_transport"]
