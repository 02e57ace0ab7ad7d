"""Ed25519 signing keys: make, load, sign, verify, fingerprint (the `cryptography` package).

Here in base/ because a key is made by `init` (tree layer) and used by the ledger (evidence
layer). Keys travel as base64 of the 32 raw public key bytes; a fingerprint is the first 16
bytes of their SHA-256, in hex groups of four, short enough to read over the phone.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fieldsync.base.atomic import write_bytes

KEY_FILE = "device_key.pem"  # under ROOT/.fieldsync/, which is never mirrored


def ensure_key(path: Path) -> Path:
    """Make a private key at `path` (PKCS#8 PEM, mode 0600) unless one is there already."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        write_bytes(path, pem, private=True)
    return path


@functools.lru_cache(maxsize=8)
def _load(path: str, stamp: tuple[int, int]) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    """The private key at `path`, loaded once per file version (signing runs per record)."""
    st = Path(path).stat()
    return _load(str(path), (st.st_ino, st.st_mtime_ns))


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode("ascii")


@functools.lru_cache(maxsize=256)
def _public(public: str) -> Ed25519PublicKey | None:
    try:
        raw = base64.b64decode(public, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError, TypeError):
        return None


def is_public_key(public: object) -> bool:
    return isinstance(public, str) and _public(public) is not None


def verify(public: object, signature: object, message: bytes) -> bool:
    """True only for a well-formed key and a signature it made over `message`."""
    if not isinstance(public, str) or not isinstance(signature, str):
        return False
    key = _public(public)
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def fingerprint(public: object) -> str:
    """e.g. 'SHA256:3f2a-91c0-...' of a base64 public key (of its text if it is malformed)."""
    try:
        raw = base64.b64decode(str(public), validate=True)
    except binascii.Error:
        raw = str(public).encode("utf-8")
    hexed = hashlib.sha256(raw).hexdigest()[:32]
    return "SHA256:" + "-".join(hexed[i:i + 4] for i in range(0, 32, 4))
