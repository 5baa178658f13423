"""Connections from a department's side to the gateway."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

MAX_MESSAGE_BYTES = 64 << 20

_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


@dataclass(frozen=True)
class ClientCertificate:
    """A principal's TLS client certificate and its private key (PEM files).

    With one, the gateway knows the caller from the verified certificate (mutual TLS)
    and no bearer token is sent.
    """

    cert: Path
    key: Path


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Returns call metadata that presents ``token`` (none for an empty token)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def _credentials(ca_cert: Path | None, client: ClientCertificate | None) -> grpc.ChannelCredentials:
    root = ca_cert.read_bytes() if ca_cert is not None else None
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=client.key.read_bytes(),
        certificate_chain=client.cert.read_bytes(),
    )


def _warn_insecure(target: str) -> None:
    print(
        f"WARNING: connecting to {target} without TLS (--insecure); "
        "tokens and records travel in plaintext",
        file=sys.stderr,
    )


def open_channel(
    target: str,
    *,
    ca_cert: Path | None = None,
    insecure: bool = False,
    quiet: bool = False,
    client_cert: ClientCertificate | None = None,
) -> grpc.aio.Channel:
    """Opens an asyncio channel to the gateway.

    Args:
        target: host:port of the gateway.
        ca_cert: PEM certificate to trust; None uses the system's roots.
        insecure: Connect in plaintext (local development only; prints a warning).
        quiet: Do not print the plaintext warning (the caller already did).
        client_cert: Present this certificate (mutual TLS).
    """
    if insecure and client_cert is None:
        if not quiet:
            _warn_insecure(target)
        return grpc.aio.insecure_channel(target, options=_OPTIONS)
    return grpc.aio.secure_channel(target, _credentials(ca_cert, client_cert), options=_OPTIONS)


def open_blocking_channel(
    target: str,
    *,
    ca_cert: Path | None = None,
    insecure: bool = False,
    quiet: bool = False,
    client_cert: ClientCertificate | None = None,
) -> grpc.Channel:
    """Opens a blocking channel to the gateway (for command-line tools)."""
    if insecure and client_cert is None:
        if not quiet:
            _warn_insecure(target)
        return grpc.insecure_channel(target, options=_OPTIONS)
    return grpc.secure_channel(target, _credentials(ca_cert, client_cert), options=_OPTIONS)


class Backoff:
    """Exponential backoff whose budget counts from the first failure after a success.

    Args:
        budget_seconds: How long failures may go on before :meth:`failed` gives up.
        first: First delay in seconds.
        most: Longest delay in seconds.
    """

    def __init__(self, budget_seconds: float, first: float = 0.1, most: float = 5.0) -> None:
        self.budget_seconds = budget_seconds
        self._first = first
        self._most = most
        self._delay = first
        self._failing_since: float | None = None

    def succeeded(self) -> None:
        """Records progress: the next failure starts a fresh budget."""
        self._failing_since = None
        self._delay = self._first

    async def failed(self) -> bool:
        """Waits before the next try; returns False when the budget is spent."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since > self.budget_seconds:
            return False
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, self._most)
        return True
