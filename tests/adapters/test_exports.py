"""The SDK's public API is pinned: a name appears or disappears only with this test.

Like temporalio's ``test_client_exports``: adding a public name to ``adapters`` (or to a
built-in adapter's package) means adding it here too, on purpose.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import adapters

ROOT = Path(__file__).resolve().parents[2]

SDK_EXPORTS = [
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

BUILT_IN_EXPORTS = {
    "adapters.sql": ["SqlSink", "SqlSource", "avro_name", "avro_type", "record_schema"],
    "adapters.files": ["DONE", "FORMATS", "REJECTED", "FileSink", "FileSource"],
}


def test_the_sdk_exports_exactly_its_pinned_names() -> None:
    assert sorted(adapters.__all__) == sorted(SDK_EXPORTS)
    assert len(set(adapters.__all__)) == len(adapters.__all__)


def test_every_sdk_export_is_the_object_its_module_defines() -> None:
    for name in adapters.__all__:
        value = getattr(adapters, name)
        home = importlib.import_module(adapters._HOME_OF[name])
        assert value is getattr(home, name), name
    assert set(adapters._HOME_OF) == set(adapters.__all__)


def test_the_sdk_has_no_public_name_outside_its_exports() -> None:
    public = {
        name
        for name in dir(adapters)
        if not name.startswith("_") and not isinstance(getattr(adapters, name), types.ModuleType)
    }
    assert public == set(SDK_EXPORTS)
    with pytest.raises(AttributeError, match="no attribute 'Runner'"):
        _ = adapters.Runner


@pytest.mark.parametrize("package", sorted(BUILT_IN_EXPORTS))
def test_a_built_in_adapter_package_exports_exactly_its_pinned_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(BUILT_IN_EXPORTS[package])
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_importing_the_sdk_loads_neither_grpc_nor_the_gateway() -> None:
    probe = (
        "import sys, adapters\n"
        "heavy = ('grpc', 'fastavro', 'sqlalchemy', 'exchange', 'catalog', 'envelope')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith('adapters.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
