"""Finding adapters by name: built-in and third-party alike, through entry points.

An adapter package declares, in its ``pyproject.toml``::

    [project.entry-points."lijiao.adapters"]
    "oracle.source" = "lijiao_oracle:OracleSource"
    "oracle.sink" = "lijiao_oracle:OracleSink"

and a config file can then say ``source = "oracle"``.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from adapters.contract import ENTRY_POINT_GROUP, AdapterError, Sink, Source


def _load(kind: str, name: str) -> type:
    wanted = f"{name}.{kind}"
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if wanted not in found:
        known = sorted(n.rsplit(".", 1)[0] for n in found if n.endswith("." + kind))
        raise AdapterError(
            f"no {kind} adapter named {name!r}; installed: {', '.join(known) or 'none'}",
            kind,
        )
    loaded: type = found[wanted].load()
    return loaded


def source_class(name: str) -> type[Source]:
    """The source adapter registered as ``name``.

    Raises:
        AdapterError: None is installed under that name; the message lists those that are.
    """
    cls = _load("source", name)
    if not issubclass(cls, Source):
        raise AdapterError(f"{name!r} is registered as a source but is not a Source", "source")
    return cls


def sink_class(name: str) -> type[Sink]:
    """The sink adapter registered as ``name``.

    Raises:
        AdapterError: None is installed under that name; the message lists those that are.
    """
    cls = _load("sink", name)
    if not issubclass(cls, Sink):
        raise AdapterError(f"{name!r} is registered as a sink but is not a Sink", "sink")
    return cls
