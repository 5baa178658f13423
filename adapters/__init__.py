"""The lijiao SDK: what runs beside a department's system.

Its public API is the names in ``__all__``, importable from here or from the module that
defines each (``adapters.publisher``, ``adapters.subscriber``, ``adapters.connection``,
``adapters.errors``, ``adapters.contract``)::

    from adapters import Publisher, Subscriber, GatewayRefusal, Source, Sink

- Publishing and receiving: :class:`Publisher`, :class:`PublishAck`,
  :func:`encode_records`, :class:`Subscriber`, :class:`ReceivedBatch`.
- Connecting to the gateway: :func:`open_channel`, :func:`open_blocking_channel`,
  :func:`auth_metadata`, :class:`ClientCertificate`.
- Refusals: :class:`GatewayRefusal`, :class:`VerificationError`, ``RETRYABLE``,
  :func:`error_info`, :func:`retry_delay`.
- The adapter contract: :class:`Source`, :class:`Sink`, :class:`Option`,
  :class:`Stream`, :class:`ReadBatch`, :class:`WriteResult`, :class:`AdapterError`.

Each name is imported on first use, so ``import adapters`` loads neither grpc nor a
database driver; the built-in adapters (``adapters.sql``, ``adapters.files``,
``adapters.rest``) and the conformance suite (``adapters.conformance``) are imported by
their own module names. ``tests/adapters/test_exports.py`` pins this list.
"""

import importlib
import typing

if typing.TYPE_CHECKING:
    from adapters.connection import (
        ClientCertificate,
        auth_metadata,
        open_blocking_channel,
        open_channel,
    )
    from adapters.contract import (
        AdapterError,
        Option,
        ReadBatch,
        Sink,
        Source,
        Stream,
        WriteResult,
    )
    from adapters.errors import (
        RETRYABLE,
        GatewayRefusal,
        VerificationError,
        error_info,
        retry_delay,
    )
    from adapters.publisher import PublishAck, Publisher, encode_records
    from adapters.subscriber import ReceivedBatch, Subscriber

_HOMES: dict[str, tuple[str, ...]] = {
    "adapters.connection": (
        "ClientCertificate",
        "auth_metadata",
        "open_blocking_channel",
        "open_channel",
    ),
    "adapters.contract": (
        "AdapterError",
        "Option",
        "ReadBatch",
        "Sink",
        "Source",
        "Stream",
        "WriteResult",
    ),
    "adapters.errors": (
        "RETRYABLE",
        "GatewayRefusal",
        "VerificationError",
        "error_info",
        "retry_delay",
    ),
    "adapters.publisher": ("PublishAck", "Publisher", "encode_records"),
    "adapters.subscriber": ("ReceivedBatch", "Subscriber"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "RETRYABLE",
    "AdapterError",
    "ClientCertificate",
    "GatewayRefusal",
    "Option",
    "PublishAck",
    "Publisher",
    "ReadBatch",
    "ReceivedBatch",
    "Sink",
    "Source",
    "Stream",
    "Subscriber",
    "VerificationError",
    "WriteResult",
    "auth_metadata",
    "encode_records",
    "error_info",
    "open_blocking_channel",
    "open_channel",
    "retry_delay",
]


def __getattr__(name: str) -> typing.Any:
    """Imports a public name from its module the first time it is used."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
