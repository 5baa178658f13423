"""Signing keys: the one narrow interface every private-key operation goes through.

A :class:`Signer` only signs digests; nothing else in lijiao touches a private key. An
HSM (PKCS#11) or a 国密 SM2 signer plugs in by implementing the same protocol.
Verification takes raw public keys as registered in the catalog.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = ["ALGORITHM", "Ed25519Signer", "Signer", "key_id_of", "public_key_from_text", "verify"]

ALGORITHM = "ed25519"


def key_id_of(public_key: bytes) -> str:
    """Returns the key id of a raw public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


class Signer(Protocol):
    """Signs digests with one private key."""

    @property
    def key_id(self) -> str:
        """Id of the key, as registered in the catalog."""
        ...

    @property
    def public_key(self) -> bytes:
        """Raw public key bytes."""
        ...

    def sign(self, digest: bytes) -> bytes:
        """Returns the signature over ``digest``."""
        ...


class Ed25519Signer:
    """A :class:`Signer` holding an Ed25519 private key in memory."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_id_of(self._public)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """Creates a signer with a fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Ed25519Signer:
        """Loads an unencrypted PKCS#8 PEM private key.

        Raises:
            ValueError: The file does not hold an Ed25519 private key.
        """
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(key)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the private key as PKCS#8 PEM, readable by the owner only."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, digest: bytes) -> bytes:
        return self._key.sign(digest)


@functools.lru_cache(maxsize=4096)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Returns whether ``signature`` is a valid signature of ``digest`` by the key."""
    try:
        _public_key(public_key).verify(signature, digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_from_text(text: str) -> bytes:
    """Parses a public key given as PEM, base64 or hex of the raw 32 bytes.

    Raises:
        ValueError: The text is none of those, or not an Ed25519 key.
    """
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw: bytes | None = None
    if len(stripped) == 64:
        try:
            raw = bytes.fromhex(stripped)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(stripped, validate=True)
        except binascii.Error as exc:
            raise ValueError("expected a PEM, base64 or hex Ed25519 public key") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return raw
