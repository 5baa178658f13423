"""The adapter contract: what a source and a sink beside a department's system do.

A **source** reads what changed in the department's own system, after a cursor, in
batches, and proposes an Avro schema for each table or stream it can read. A **sink**
writes delivered records into the department's own store idempotently (upsert by the
resource's key fields) and reports rows it cannot take. The runner (``adapters.runner``)
ties sources to a ``Publisher`` and a ``Subscriber`` to sinks; the adapter never talks
to the gateway itself.

Third-party adapters subclass :class:`Source` or :class:`Sink`, set ``name`` and
``options`` (the config keys they take), and register under the entry point group
``lijiao.adapters``. ``adapters.conformance`` checks any adapter against this contract.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

ENTRY_POINT_GROUP = "lijiao.adapters"


class AdapterError(Exception):
    """A problem an operator must fix (bad option, unreachable system, missing table).

    The message says what to fix; ``key`` names the config key concerned, if any.
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Option:
    """A config key an adapter takes.

    Attributes:
        name: Key in the adapter's ``options`` table of the config file.
        kind: Python type expected (str, int, bool, float, list).
        required: Whether it must be given.
        default: Value when not given.
        help: What it means.
    """

    name: str
    kind: type
    required: bool = False
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class Stream:
    """Something a source can read: a table, a folder, an endpoint.

    Attributes:
        name: The stream's name in the department's system.
        schema: Proposed Avro record schema (JSON object).
        key_fields: Fields that identify a record (the upsert key).
        cursor_field: Field that orders changes, if any.
    """

    name: str
    schema: dict[str, Any]
    key_fields: tuple[str, ...] = ()
    cursor_field: str = ""


@dataclass
class ReadBatch:
    """Records read after a cursor, and the cursor that follows them.

    Attributes:
        records: Records as dicts matching the resource's schema.
        cursor: Where the next read starts once this batch is acknowledged (JSON-able).
        rejected: Inputs the source refused (e.g. a malformed file), with reasons; they
            are not published, and the source has already set them aside.
        on_commit: Opaque note the runner hands back to :meth:`Source.committed` after
            the gateway acknowledged the batch (e.g. "move file X to done/").
    """

    records: list[dict[str, Any]]
    cursor: Any
    rejected: list[tuple[str, str]] = field(default_factory=list)
    on_commit: Any = None


@dataclass(frozen=True)
class WriteResult:
    """What a sink did with a batch.

    Attributes:
        written: Records upserted and committed.
        rejected: (index in the batch, reason) of records the sink could not take.
    """

    written: int
    rejected: Sequence[tuple[int, str]] = ()


class _Adapter(abc.ABC):
    """What sources and sinks share: a name, options, and a connection check."""

    name: ClassVar[str] = ""
    options: ClassVar[Sequence[Option]] = ()

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.config = resolve_options(type(self), options)

    @abc.abstractmethod
    async def check(self) -> None:
        """Raises :class:`AdapterError` saying what is wrong when the system is unusable."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Releases connections (default: nothing to release)."""


class Source(_Adapter):
    """Reads changes from a department's system."""

    @abc.abstractmethod
    async def discover(self) -> list[Stream]:
        """Lists what can be read, each with a proposed schema."""

    @abc.abstractmethod
    def read(
        self, schema: dict[str, Any], cursor: Any, batch_size: int
    ) -> AsyncIterator[ReadBatch]:
        """Yields batches of records after ``cursor`` (None: from the beginning).

        Each batch's ``cursor`` resumes right after it. The runner stops iterating when it
        has enough in flight and calls ``read`` again later with the last committed cursor,
        so a source must not assume it is read to the end.
        """

    async def committed(self, note: Any) -> None:
        """Called after the gateway acknowledged the batch that carried ``note``."""


class Sink(_Adapter):
    """Writes delivered records into a department's store."""

    @abc.abstractmethod
    async def write(
        self,
        schema: dict[str, Any],
        key_fields: Sequence[str],
        records: Sequence[dict[str, Any]],
        batch_id: str,
    ) -> WriteResult:
        """Upserts ``records`` by ``key_fields`` and commits before returning.

        Writing the same batch again must leave the store as after the first write: the
        runner acknowledges a batch only after this returns, so a crash in between means
        the same batch comes again.
        """


def resolve_options(kind: type[_Adapter], given: Mapping[str, Any]) -> dict[str, Any]:
    """Checks an adapter's options against its declared :class:`Option` list.

    Raises:
        AdapterError: An unknown key, a missing required key, or a value of the wrong
            type; the message names the key and what was expected.
    """
    declared = {option.name: option for option in kind.options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise AdapterError(
            f"unknown option {unknown[0]!r} for adapter {kind.name!r}; it takes "
            f"{', '.join(sorted(declared)) or 'no options'}",
            unknown[0],
        )
    resolved: dict[str, Any] = {}
    for name, option in declared.items():
        if name not in given:
            if option.required:
                raise AdapterError(
                    f"adapter {kind.name!r} needs option {name!r}: {option.help}", name
                )
            resolved[name] = option.default
            continue
        value = given[name]
        if option.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, option.kind) or (option.kind is int and isinstance(value, bool)):
            raise AdapterError(
                f"option {name!r} of adapter {kind.name!r} must be a "
                f"{option.kind.__name__}, got {type(value).__name__} {value!r}",
                name,
            )
        resolved[name] = value
    return resolved
