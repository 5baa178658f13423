"""Connections from a department's side to the gateway."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

MAX_MESSAGE_BYTES = 64 << 20

_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Returns call metadata that presents ``token``."""
    return (("authorization", f"Bearer {token}"),)


def _credentials(ca_cert: Path | None) -> grpc.ChannelCredentials:
    root = ca_cert.read_bytes() if ca_cert is not None else None
    return grpc.ssl_channel_credentials(root_certificates=root)


def _warn_insecure(target: str) -> None:
    print(
        f"WARNING: connecting to {target} without TLS (--insecure); "
        "tokens and records travel in plaintext",
        file=sys.stderr,
    )


def open_channel(
    target: str, *, ca_cert: Path | None = None, insecure: bool = False, quiet: bool = False
) -> grpc.aio.Channel:
    """Opens an asyncio channel to the gateway.

    Args:
        target: host:port of the gateway.
        ca_cert: PEM certificate to trust; None uses the system's roots.
        insecure: Connect in plaintext (local development only; prints a warning).
        quiet: Do not print the plaintext warning (the caller already did).
    """
    if insecure:
        if not quiet:
            _warn_insecure(target)
        return grpc.aio.insecure_channel(target, options=_OPTIONS)
    return grpc.aio.secure_channel(target, _credentials(ca_cert), options=_OPTIONS)


def open_blocking_channel(
    target: str, *, ca_cert: Path | None = None, insecure: bool = False, quiet: bool = False
) -> grpc.Channel:
    """Opens a blocking channel to the gateway (for command-line tools)."""
    if insecure:
        if not quiet:
            _warn_insecure(target)
        return grpc.insecure_channel(target, options=_OPTIONS)
    return grpc.secure_channel(target, _credentials(ca_cert), options=_OPTIONS)
