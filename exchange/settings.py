"""Settings: the one place that reads ``LIJIAO_*`` environment variables.

Command-line flags override environment variables, which override the defaults here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.deadlines import DEFAULT_CALENDAR, WorkingCalendar
from catalog.governance import GovernanceRules
from catalog.masks import MaskPolicy

ENV_PREFIX = "LIJIAO_"


@dataclass(frozen=True)
class Settings:
    """Everything the gateway and the CLI can be told.

    Attributes:
        data_dir: Folder holding the SQLite files and the gateway key.
        database_url: SQLAlchemy URL of the catalog; default: catalog.db in data_dir.
        listen: host:port the gateway serves gRPC on.
        metrics_listen: host:port of the Prometheus /metrics endpoint; empty disables it.
        gateway: host:port a client (CLI, adapter) connects to.
        token: Bearer token a client presents.
        tls_cert: PEM certificate the gateway serves with.
        tls_key: PEM private key of tls_cert.
        ca_cert: PEM certificate a client trusts for the gateway.
        insecure: Serve or connect in plaintext (local development only).
        max_batch_records: Most records one batch may carry.
        max_record_bytes: Largest single encoded record.
        max_message_bytes: Largest gRPC message the gateway accepts.
        ack_timeout_seconds: Unacknowledged deliveries are sent again after this.
        synchronous: SQLite synchronous mode of the record log ("FULL" or "NORMAL").
        review_enabled: Run the platform's compliance review before the provider decides.
        review_days: Working days the compliance review may take.
        provider_days: Working days the owning department has to decide.
        holiday_file: Holidays and make-up working days (see catalog/deadlines.py).
        masks: Masks per sensitivity tag, e.g. "PHONE=keep_first_last:3:4,NAME=full".
    """

    data_dir: Path = Path("lijiao-data")
    database_url: str = ""
    listen: str = "127.0.0.1:7443"
    metrics_listen: str = "127.0.0.1:9464"
    gateway: str = "127.0.0.1:7443"
    token: str = field(default="", repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_cert: Path | None = None
    insecure: bool = False
    max_batch_records: int = 10_000
    max_record_bytes: int = 1 << 20
    max_message_bytes: int = 64 << 20
    ack_timeout_seconds: float = 30.0
    synchronous: str = "FULL"
    review_enabled: bool = True
    review_days: int = 2
    provider_days: int = 10
    holiday_file: Path | None = None
    masks: str = ""

    def governance_rules(self) -> GovernanceRules:
        """The workflow settings.

        Raises:
            ValueError: The holiday file does not parse, or a day count is below 1.
        """
        if self.review_days < 1 or self.provider_days < 1:
            raise ValueError("LIJIAO_REVIEW_DAYS and LIJIAO_PROVIDER_DAYS must be at least 1")
        calendar = (
            WorkingCalendar.from_file(self.holiday_file) if self.holiday_file else DEFAULT_CALENDAR
        )
        return GovernanceRules(self.review_enabled, self.review_days, self.provider_days, calendar)

    def mask_policy(self) -> MaskPolicy:
        """The masks per sensitivity tag.

        Raises:
            ValueError: An entry is not TAG=SPEC, or names an unknown tag or spec.
        """
        mapping: dict[str, str] = {}
        for entry in filter(None, (e.strip() for e in self.masks.split(","))):
            tag, sep, spec = entry.partition("=")
            if not sep:
                raise ValueError(f"LIJIAO_MASKS entry {entry!r} is not TAG=SPEC")
            mapping[tag.strip().upper()] = spec.strip()
        return MaskPolicy.from_mapping(mapping)

    @property
    def catalog_url(self) -> str:
        """SQLAlchemy URL of the catalog database."""
        return self.database_url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    @property
    def log_path(self) -> Path:
        """Path of the SQLite record log."""
        return self.data_dir / "log.db"

    @property
    def gateway_key_path(self) -> Path:
        """Path of the gateway's countersigning key."""
        return self.data_dir / "gateway-signing-key.pem"

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Builds settings from defaults, then ``LIJIAO_*`` variables, then overrides.

        Args:
            overrides: Values from command-line flags; None values are ignored.
            env: Environment to read; defaults to ``os.environ``.

        Raises:
            ValueError: A variable does not parse; the message names it.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name not in env:
                continue
            if env[name] != "":
                values[f.name] = _parse(name, env[name], f.type)
            elif f.type in ("str", str):
                values[f.name] = ""  # e.g. LIJIAO_METRICS_LISTEN= turns metrics off
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        for key in ("data_dir", "tls_cert", "tls_key", "ca_cert", "holiday_file"):
            if isinstance(values.get(key), str):
                values[key] = Path(values[key])
        settings = cls(**values)
        if settings.synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError("LIJIAO_SYNCHRONOUS must be FULL or NORMAL")
        return dataclasses.replace(settings, synchronous=settings.synchronous.upper())


def _parse(name: str, raw: str, kind: Any) -> Any:
    text = str(kind)
    try:
        if "bool" in text:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if "int" in text:
            return int(raw)
        if "float" in text:
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} does not parse as {text}") from exc
    return raw
