"""Adapters are found by name through the lijiao.adapters entry points, third-party too."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.contract import AdapterError, Sink, Source
from adapters.registry import sink_class, source_class

PLUGIN = """
from adapters.contract import Option, ReadBatch, Source, Stream


class EchoSource(Source):
    name = "echo"
    options = (Option("rows", int, default=3, help="how many rows"),)

    async def check(self):
        return None

    async def discover(self):
        schema = {"type": "record", "name": "Echo", "fields": [{"name": "n", "type": "long"}]}
        return [Stream("echo", schema, ("n",), "n")]

    async def read(self, schema, cursor, batch_size):
        start = cursor or 0
        rows = [{"n": n} for n in range(start, self.config["rows"])]
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            yield ReadBatch(chunk, chunk[-1]["n"] + 1)
"""


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[None]:
    """A third-party distribution on sys.path that declares an entry point."""
    (tmp_path / "echo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[lijiao.adapters]\necho.source = echo_plugin:EchoSource\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("echo_plugin", None)


@pytest.mark.parametrize("name", ["sql", "files", "http"])
def test_built_in_adapters_are_registered_both_ways(name: str) -> None:
    assert issubclass(source_class(name), Source)
    assert issubclass(sink_class(name), Sink)


def test_an_unknown_adapter_names_those_installed() -> None:
    with pytest.raises(AdapterError) as error:
        source_class("oracle")
    assert "installed: " in str(error.value)
    assert "sql" in str(error.value)


def test_a_third_party_adapter_registers_through_its_entry_point(installed_plugin: None) -> None:
    import asyncio

    echo = source_class("echo")
    assert echo.name == "echo"
    source = echo({"rows": 5})

    async def read() -> list[int]:
        return [r["n"] async for b in source.read({}, None, 2) for r in b.records]

    assert asyncio.run(read()) == [0, 1, 2, 3, 4]
    with pytest.raises(AdapterError, match="no sink adapter named 'echo'"):
        sink_class("echo")
