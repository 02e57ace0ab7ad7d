"""fieldsync: utility inspection records as real folders, mirrored to an SFTP server."""

__version__ = "0.1.0"
