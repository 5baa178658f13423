"""The house's rules, checked on every module's imports and size.

The allowed directions are written once, in ``RULES``: a module of a layer may import
only what its layer allows. ``docs/architecture.md`` explains them to a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("exchange/v1/", "catalog/v1/")
STUBS = ("exchange.v1", "catalog.v1")
MAX_LINES = 600

# layer -> (prefixes of this project it may import, third-party tops it may not import)
RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # the leaf: digests, signing, schemas, the Avro codec, refusal reasons
    "envelope": (("envelope", "exchange.v1.exchange_pb2"), ("grpc",)),
    # the catalog's rules and stores; domain errors stay free of grpc
    "catalog": (("envelope", "catalog", *STUBS), ("grpc",)),
    # what runs beside a department's system: only the envelope and the stubs
    "adapters": (("envelope", "adapters", *STUBS), ()),
    # the gateway: everything but the adapters (see CLIENT_SIDE)
    "exchange": (("envelope", "catalog", "exchange"), ()),
}
# Modules of the gateway's package that are clients of a gateway, not the gateway: the
# CLI and the demo use the SDK as any department would.
CLIENT_SIDE = ("exchange/cli", "exchange/demo")
PROJECT = ("envelope", "catalog", "exchange", "adapters")


def _modules() -> list[Path]:
    return sorted(
        path
        for layer in RULES
        for path in (ROOT / layer).rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith(GENERATED)
    )


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def crossings(paths: list[Path]) -> list[str]:
    """Every import that crosses a layer the wrong way, as 'module -> import'."""
    wrong = []
    for path in paths:
        relative = path.relative_to(ROOT).as_posix()
        layer = relative.split("/", 1)[0]
        allowed, banned = RULES[layer]
        if relative.startswith(CLIENT_SIDE):
            allowed = (*allowed, "adapters")
        for name in sorted(_imports(path)):
            top = name.split(".", 1)[0]
            ours = top in PROJECT
            if (ours and not name.startswith(allowed)) or top in banned:
                wrong.append(f"{relative} -> {name}")
    return wrong


def test_no_import_crosses_a_layer_the_wrong_way() -> None:
    assert crossings(_modules()) == []


def test_the_layer_rules_catch_a_wrong_import(tmp_path: Path) -> None:
    """The check itself can fail: an adapter that imports the gateway is caught."""
    fake = ROOT / "adapters" / "_layer_probe.py"
    fake.write_text("from exchange.publish.path import PublishPath\nimport grpc\n")
    try:
        found = crossings([fake])
    finally:
        fake.unlink()
    assert found == ["adapters/_layer_probe.py -> exchange.publish.path.PublishPath"]


@pytest.mark.parametrize("layer", ["envelope", "catalog"])
def test_the_leaf_layers_do_not_import_grpc(layer: str) -> None:
    users = [
        path.relative_to(ROOT).as_posix()
        for path in _modules()
        if path.relative_to(ROOT).parts[0] == layer
        and any(name.split(".")[0] == "grpc" for name in _imports(path))
    ]
    assert users == []


def test_no_module_grows_past_600_lines() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in [*_modules(), *(ROOT / "benchmarks").rglob("*.py")]
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
