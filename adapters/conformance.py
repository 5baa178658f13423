"""A reusable conformance suite: the adapter contract, checked by tests.

Every adapter, built-in or third-party, runs the same tests against itself. Subclass
:class:`SourceConformance` or :class:`SinkConformance` in a pytest module and provide
the one fixture each asks for::

    from adapters.conformance import SourceCase, SourceConformance

    class TestMySource(SourceConformance):
        @pytest.fixture
        def case(self, tmp_path):
            make_my_system_with_rows(tmp_path, ROWS)
            return SourceCase(MySource({"path": str(tmp_path)}), "people", ROWS)

The suite then checks: the connection check passes, discovery proposes a valid Avro
record schema, a full read returns exactly the rows, a read resumed after any batch's
cursor neither repeats nor skips a row, batches respect the batch size, and an unknown
option is a clear error. For sinks: writes are committed, writing the same batch again
changes nothing, records with the same key are updated in place, and an unknown option
is a clear error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.contract import AdapterError, ReadBatch, Sink, Source
from envelope import schemas


@dataclass
class SourceCase:
    """A source over a system holding known rows.

    Attributes:
        source: The adapter under test.
        stream: Name of the stream holding ``rows``.
        rows: The rows the stream holds, in the source's read order.
    """

    source: Source
    stream: str
    rows: Sequence[dict[str, Any]]


@dataclass
class SinkCase:
    """A sink over an empty store, and a way to read the store back.

    Attributes:
        sink: The adapter under test.
        schema: Avro record schema of the records.
        key_fields: Upsert key.
        rows: Sample records (at least 3, distinct keys).
        read_back: Returns every record in the store, in any order.
        update: Returns a copy of a record with a non-key field changed.
    """

    sink: Sink
    schema: dict[str, Any]
    key_fields: Sequence[str]
    rows: Sequence[dict[str, Any]]
    read_back: Callable[[], list[dict[str, Any]]]
    update: Callable[[dict[str, Any]], dict[str, Any]]


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _read_all(
    source: Source, schema: dict[str, Any], cursor: Any, size: int
) -> list[ReadBatch]:
    return [batch async for batch in source.read(schema, cursor, size)]


def _key(record: dict[str, Any], fields: Sequence[str]) -> tuple[Any, ...]:
    return tuple(record[name] for name in fields)


class SourceConformance:
    """The contract every source keeps. Subclasses provide a ``case`` fixture."""

    @pytest.fixture
    def case(self) -> SourceCase:
        raise NotImplementedError("provide a `case` fixture returning a SourceCase")

    def _schema(self, case: SourceCase) -> dict[str, Any]:
        streams = {s.name: s for s in _run(case.source.discover())}
        assert case.stream in streams, f"discover() does not list {case.stream!r}"
        schema: dict[str, Any] = streams[case.stream].schema
        return schema

    def test_check_passes_on_a_working_system(self, case: SourceCase) -> None:
        _run(case.source.check())

    def test_discovery_proposes_a_valid_record_schema(self, case: SourceCase) -> None:
        parsed = schemas.parse(self._schema(case))
        assert parsed.top_level_fields(), "the proposed schema must be an Avro record"

    def test_a_full_read_returns_exactly_the_rows(self, case: SourceCase) -> None:
        schema = self._schema(case)
        batches = _run(_read_all(case.source, schema, None, 7))
        records = [r for b in batches for r in b.records]
        assert records == list(case.rows)

    def test_a_read_resumed_after_any_batch_neither_repeats_nor_skips(
        self, case: SourceCase
    ) -> None:
        schema = self._schema(case)
        batches = _run(_read_all(case.source, schema, None, 5))
        for index, batch in enumerate(batches):
            _run(case.source.committed(batch.on_commit))
            resumed = _run(_read_all(case.source, schema, batch.cursor, 5))
            rest = [r for b in resumed for r in b.records]
            expected = [r for b in batches[index + 1 :] for r in b.records]
            assert rest == expected, f"resuming after batch {index} differs"

    def test_batches_respect_the_batch_size(self, case: SourceCase) -> None:
        schema = self._schema(case)
        batches = _run(_read_all(case.source, schema, None, 3))
        assert all(len(b.records) <= 3 for b in batches)

    def test_records_encode_with_the_proposed_schema(self, case: SourceCase) -> None:
        from adapters.publisher import encode_records

        schema = self._schema(case)
        batches = _run(_read_all(case.source, schema, None, 50))
        encode_records(schemas.parse(schema), [r for b in batches for r in b.records])

    def test_an_unknown_option_is_a_clear_error(self, case: SourceCase) -> None:
        with pytest.raises(AdapterError) as error:
            type(case.source)({"no_such_option": 1})
        assert "no_such_option" in str(error.value)


class SinkConformance:
    """The contract every sink keeps. Subclasses provide a ``case`` fixture."""

    @pytest.fixture
    def case(self) -> SinkCase:
        raise NotImplementedError("provide a `case` fixture returning a SinkCase")

    def _write(self, case: SinkCase, rows: Sequence[dict[str, Any]], batch_id: str) -> Any:
        return _run(case.sink.write(case.schema, case.key_fields, list(rows), batch_id))

    def _stored(self, case: SinkCase) -> dict[tuple[Any, ...], dict[str, Any]]:
        stored = case.read_back()
        keyed = {_key(r, case.key_fields): r for r in stored}
        assert len(keyed) == len(stored), "the store holds two records with one key"
        return keyed

    def test_check_passes_on_a_working_store(self, case: SinkCase) -> None:
        _run(case.sink.check())

    def test_a_written_batch_is_committed(self, case: SinkCase) -> None:
        result = self._write(case, case.rows, "b-1")
        assert result.written == len(case.rows)
        assert not result.rejected
        stored = self._stored(case)
        for row in case.rows:
            assert stored[_key(row, case.key_fields)] == row

    def test_writing_the_same_batch_again_changes_nothing(self, case: SinkCase) -> None:
        self._write(case, case.rows, "b-1")
        before = self._stored(case)
        self._write(case, case.rows, "b-1")
        assert self._stored(case) == before

    def test_a_record_with_a_known_key_is_updated_in_place(self, case: SinkCase) -> None:
        self._write(case, case.rows, "b-1")
        changed = case.update(dict(case.rows[0]))
        self._write(case, [changed], "b-2")
        stored = self._stored(case)
        assert len(stored) == len(case.rows)
        assert stored[_key(changed, case.key_fields)] == changed

    def test_an_unknown_option_is_a_clear_error(self, case: SinkCase) -> None:
        with pytest.raises(AdapterError) as error:
            type(case.sink)({"no_such_option": 1})
        assert "no_such_option" in str(error.value)
