"""The adapter's one config file (TOML): the gateway, what to publish, what to receive.

Example::

    [gateway]
    address = "gateway.city.gov.cn:7443"
    client_cert = "SAMR-LICENCE-cert.pem" # mutual TLS (lijiao pki issue): the system's
    client_key = "SAMR-LICENCE-key.pem"   #   certificate; or token_file/token with insecure
    ca_cert = "ca.pem"                   # or insecure = true (local development only)
    signing_key = "samr-signing-key.pem" # needed when publishing
    state = "samr-adapter.db"            # default: <config name>.state.db beside the file
    gateway_key = "MCowBQYDK2VwAyEA..."  # pin the countersigning key (base64, hex or PEM)

    [[publish]]
    resource = "SAMR-LICENCE"
    source = "sql"
    batch_size = 1000
    poll_seconds = 5
    [publish.options]
    url = "sqlite:///market.db"
    table = "licences"
    cursor = "updated_at"

    [[subscribe]]
    resource = "PSB-RESIDENT"
    sink = "sql"
    subscription = "default"
    [subscribe.options]
    url = "sqlite:///civil.db"
    table = "residents"
    create_table = true

Relative paths are relative to the config file's folder. Every mistake is reported with
the key it is in and what was expected.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.connection import ClientCertificate


class ConfigError(Exception):
    """The config file is wrong; the message names the key and what was expected."""


@dataclass(frozen=True)
class GatewayConfig:
    """How to reach the gateway."""

    address: str
    token: str = field(repr=False)
    ca_cert: Path | None
    insecure: bool
    signing_key: Path | None
    state: Path
    gateway_key: bytes | None = None
    client_cert: ClientCertificate | None = None


@dataclass(frozen=True)
class PublishConfig:
    """One resource published from one source."""

    key: str
    resource: str
    source: str
    options: dict[str, Any]
    stream: str
    batch_size: int
    poll_seconds: float


@dataclass(frozen=True)
class SubscribeConfig:
    """One resource received into one sink."""

    key: str
    resource: str
    sink: str
    subscription: str
    options: dict[str, Any]
    start_after_offset: int | None = None  # replay: where a new subscription starts
    start_time: datetime | None = None


@dataclass(frozen=True)
class AdapterConfig:
    """A whole config file."""

    path: Path
    gateway: GatewayConfig
    publish: list[PublishConfig]
    subscribe: list[SubscribeConfig]


_PATH_OPTIONS = ("url", "folder", "schema", "dead_letter", "path")


def _get(table: dict[str, Any], key: str, where: str, kind: type, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}.{key}: required ({kind.__name__})")
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _no_extra(table: dict[str, Any], where: str, allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(
            f"{where}.{extra[0]}: unknown key; expected one of {', '.join(sorted(allowed))}"
        )


def _relative(base: Path, value: str) -> str:
    """Resolves a relative file path or sqlite:/// path against the config folder."""
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        target = value.removeprefix("sqlite:///")
        if target and target != ":memory:":
            return "sqlite:///" + str(base / target)
        return value
    if "://" in value or Path(value).is_absolute():
        return value
    return str(base / value)


def load(path: Path) -> AdapterConfig:
    """Reads and checks a config file.

    Raises:
        ConfigError: The file is missing, not TOML, or a key is missing or wrong.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    base = path.resolve().parent
    _no_extra(data, "(top level)", {"gateway", "publish", "subscribe"})
    gateway_table = _get(data, "gateway", "(top level)", dict)
    gateway = _gateway(gateway_table, base, path)
    publish = [
        _publish(entry, base, f"publish[{i}]")
        for i, entry in enumerate(_get(data, "publish", "(top level)", list, []))
    ]
    subscribe = [
        _subscribe(entry, base, f"subscribe[{i}]")
        for i, entry in enumerate(_get(data, "subscribe", "(top level)", list, []))
    ]
    if not publish and not subscribe:
        raise ConfigError("(top level): nothing to do: add a [[publish]] or [[subscribe]] table")
    if publish and gateway.signing_key is None:
        raise ConfigError("gateway.signing_key: required when publishing (path of a PEM key)")
    if gateway.signing_key is not None:
        _check_signing_key(gateway.signing_key)
    seen: dict[tuple[str, str, str], str] = {}
    for entry in publish:
        key = (entry.resource, entry.source, entry.stream)
        if key in seen:
            raise ConfigError(
                f"{entry.key}: same resource, source and stream as {seen[key]}; give each a "
                "distinct stream name (they keep separate cursors)"
            )
        seen[key] = entry.key
    return AdapterConfig(path, gateway, publish, subscribe)


def _check_signing_key(path: Path) -> None:
    from envelope.signing import Ed25519Signer

    try:
        Ed25519Signer.from_file(path)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"gateway.signing_key: {path} is not a readable Ed25519 private key (PEM): {exc}"
        ) from exc


def _gateway(table: dict[str, Any], base: Path, path: Path) -> GatewayConfig:
    where = "gateway"
    _no_extra(
        table,
        where,
        {
            "address",
            "token",
            "token_file",
            "client_cert",
            "client_key",
            "ca_cert",
            "insecure",
            "signing_key",
            "state",
            "gateway_key",
        },
    )
    token = _get(table, "token", where, str, "")
    token_file = _get(table, "token_file", where, str, "")
    cert = _get(table, "client_cert", where, str, "")
    key = _get(table, "client_key", where, str, "")
    if bool(cert) != bool(key):
        raise ConfigError(f"{where}.client_cert: give client_cert and client_key together")
    if (1 if cert else 0) + (1 if token else 0) + (1 if token_file else 0) != 1:
        raise ConfigError(
            f"{where}.token: give exactly one of token, token_file and client_cert "
            "(with client_key)"
        )
    client_cert = None
    if cert:
        client_cert = ClientCertificate(Path(_relative(base, cert)), Path(_relative(base, key)))
        for name, file in (("client_cert", client_cert.cert), ("client_key", client_cert.key)):
            if not file.is_file():
                raise ConfigError(f"{where}.{name}: no file {file}")
    if token_file:
        try:
            token = (base / token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}.token_file: cannot read {token_file}: {exc}") from exc
    ca_cert = _get(table, "ca_cert", where, str, "")
    insecure = _get(table, "insecure", where, bool, False)
    if not ca_cert and not insecure:
        raise ConfigError(
            f"{where}.ca_cert: required (the CA certificate that signed the gateway's), "
            "or insecure = true for local development"
        )
    signing_key = _get(table, "signing_key", where, str, "")
    state = _get(table, "state", where, str, f"{path.stem}.state.db")
    pinned = _get(table, "gateway_key", where, str, "")
    gateway_key = None
    if pinned:
        from envelope.signing import public_key_from_text

        try:
            gateway_key = public_key_from_text(pinned)
        except ValueError as exc:
            raise ConfigError(f"{where}.gateway_key: {exc}") from exc
    return GatewayConfig(
        address=_get(table, "address", where, str),
        token=token,
        ca_cert=Path(_relative(base, ca_cert)) if ca_cert else None,
        insecure=insecure,
        signing_key=Path(_relative(base, signing_key)) if signing_key else None,
        state=Path(_relative(base, state)),
        gateway_key=gateway_key,
        client_cert=client_cert,
    )


def _options(table: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    options = dict(_get(table, "options", where, dict, {}))
    for key in _PATH_OPTIONS:
        if isinstance(options.get(key), str):
            options[key] = _relative(base, options[key])
    return options


def _publish(table: Any, base: Path, where: str) -> PublishConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    _no_extra(
        table, where, {"resource", "source", "options", "stream", "batch_size", "poll_seconds"}
    )
    batch_size = _get(table, "batch_size", where, int, 1000)
    if not 1 <= batch_size <= 10_000:
        raise ConfigError(f"{where}.batch_size: expected 1..10000, got {batch_size}")
    poll = _get(table, "poll_seconds", where, float, 5.0)
    if poll <= 0:
        raise ConfigError(f"{where}.poll_seconds: expected a positive number, got {poll}")
    resource = _get(table, "resource", where, str)
    return PublishConfig(
        key=where,
        resource=resource,
        source=_get(table, "source", where, str),
        options=_options(table, base, where),
        stream=_get(table, "stream", where, str, ""),
        batch_size=batch_size,
        poll_seconds=poll,
    )


def _subscribe(table: Any, base: Path, where: str) -> SubscribeConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    _no_extra(
        table,
        where,
        {"resource", "sink", "subscription", "options", "start_after_offset", "start_time"},
    )
    offset = _get(table, "start_after_offset", where, int, None)
    start = _get(table, "start_time", where, datetime, None)
    if offset is not None and start is not None:
        raise ConfigError(f"{where}: give start_after_offset or start_time, not both")
    if offset is not None and offset < 0:
        raise ConfigError(f"{where}.start_after_offset: expected 0 or more, got {offset}")
    if start is not None and start.tzinfo is None:
        raise ConfigError(
            f"{where}.start_time: give a time with its UTC offset, e.g. 2026-11-01T00:00:00+08:00"
        )
    return SubscribeConfig(
        key=where,
        resource=_get(table, "resource", where, str),
        sink=_get(table, "sink", where, str),
        subscription=_get(table, "subscription", where, str, "default"),
        options=_options(table, base, where),
        start_after_offset=offset,
        start_time=start,
    )
