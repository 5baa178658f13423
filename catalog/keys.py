"""Identity of signing keys, shared by the catalog and the signers."""

from __future__ import annotations

import hashlib


def key_id_of(public_key: bytes) -> str:
    """Returns the key id of a raw public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]
