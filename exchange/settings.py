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
from envelope.signing import key_id_of, public_key_from_text
from exchange.audit.tasks import (
    PERSONAL_RETENTION_MINIMUM_DAYS,
    RETENTION_MINIMUM_DAYS,
    AuditSettings,
)

ENV_PREFIX = "LIJIAO_"


@dataclass(frozen=True)
class Settings:
    """Everything the gateway and the CLI can be told.

    Attributes:
        data_dir: Folder holding the SQLite files and the gateway key.
        database_url: SQLAlchemy URL of the catalog; default: catalog.db in data_dir.
        log_url: Where the record log is: empty for log.db in data_dir (embedded
            SQLite), ``nats://host:4222?prefix=lijiao`` for NATS JetStream (replicas).
        listen: host:port the gateway serves gRPC on.
        metrics_listen: host:port of the Prometheus /metrics endpoint; empty disables it.
        health_listen: host:port of a plaintext port serving only grpc.health.v1, for
            probes without a client certificate; empty (the default) disables it.
        gateway: host:port a client (CLI, adapter) connects to.
        token: Bearer token a client presents.
        tls_cert: PEM certificate the gateway serves with.
        tls_key: PEM private key of tls_cert.
        ca_cert: PEM certificate a client trusts for the gateway.
        client_ca: PEM CA certificate(s) the gateway verifies client certificates with
            (mutual TLS; `lijiao pki init` makes one).
        crl_file: PEM revocation list the gateway honours (re-read when it changes);
            default: crl.pem beside client_ca, when there is one.
        client_cert: PEM client certificate a client presents (mutual TLS).
        client_key: PEM private key of client_cert.
        insecure: Development mode: serve or connect in plaintext (or TLS without client
            certificates) and accept bearer tokens. Prints a warning.
        max_batch_records: Most records one batch may carry.
        max_record_bytes: Largest single encoded record.
        max_message_bytes: Largest gRPC message the gateway accepts.
        ack_timeout_seconds: Unacknowledged deliveries are sent again after this.
        max_deliveries: A batch not acknowledged after this many deliveries to a
            subscription is given up: a DEAD_LETTER ledger entry, and the cursor moves
            on (0: deliver until acknowledged).
        synchronous: SQLite synchronous mode of the record log ("FULL" or "NORMAL").
        review_enabled: Run the platform's compliance review before the provider decides.
        review_days: Working days the compliance review may take.
        provider_days: Working days the owning department has to decide.
        holiday_file: Holidays and make-up working days (see catalog/deadlines.py).
        masks: Masks per sensitivity tag, e.g. "PHONE=keep_first_last:3:4,NAME=full".
        ledger_checkpoint_seconds: How often the gateway signs the ledger head (0: only at stop).
        ledger_verify_seconds: How often the gateway verifies the whole ledger (0: never).
        ledger_retention_days: Ledger entries older than this leave the database, into an
            archive file (at least 183: 网络安全法 §21 keeps logs six months).
        personal_data_retention_days: Archive files are kept this long (at least 1096:
            个人信息保护法 §56 keeps records of providing personal data three years).
        ledger_prune: Apply retention once a day.
        ledger_archive_dir: Where pruned entries are archived; default data_dir/ledger-archive.
        trusted_gateway_keys: Other gateways' public keys whose checkpoints verify too
            (comma-separated PEM files, or hex/base64 keys).
        metrics_resource_labels: Label publish and delivery metrics by resource; turn off
            when the catalog is large, to bound the number of series.
        migrate: Migrate the catalog database to the newest revision at start.
        max_clock_skew_seconds: How far ahead of the gateway's clock a batch's
            create_time may be.
        max_batch_age_seconds: How old a batch's create_time may be (older: a replay).
        max_streams_per_principal: Concurrent Publish/Subscribe/Export streams of one
            principal (0: no limit).
        rate_limit_calls_per_second: Calls one principal may make per second (0: no limit).
        rate_limit_call_burst: Calls one principal may make at once.
        rate_limit_records_per_second: Records one principal may publish per second.
        rate_limit_record_burst: Records one principal may publish at once.
        rate_limit_check_cpu_per_second: CPU seconds a second that checking one
            principal's records may take, on average (0: no limit). Decoding costs by
            the values in a record, not its bytes: this bounds what one principal's
            batches can take from everyone else's.
        rate_limit_check_cpu_burst: CPU seconds of checking one principal may use at once.
        record_check_workers: Worker processes that check big batches' records off the
            event loop (0: as many as the machine has cores).
    """

    data_dir: Path = Path("lijiao-data")
    database_url: str = ""
    log_url: str = ""
    listen: str = "127.0.0.1:7443"
    metrics_listen: str = "127.0.0.1:9464"
    health_listen: str = ""
    gateway: str = "127.0.0.1:7443"
    token: str = field(default="", repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_cert: Path | None = None
    client_ca: Path | None = None
    crl_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    insecure: bool = False
    max_batch_records: int = 10_000
    max_record_bytes: int = 1 << 20
    max_message_bytes: int = 64 << 20
    ack_timeout_seconds: float = 30.0
    max_deliveries: int = 0
    synchronous: str = "FULL"
    review_enabled: bool = True
    review_days: int = 2
    provider_days: int = 10
    holiday_file: Path | None = None
    masks: str = ""
    ledger_checkpoint_seconds: float = 300.0
    ledger_verify_seconds: float = 3600.0
    ledger_retention_days: int = 183
    personal_data_retention_days: int = 1096
    ledger_prune: bool = True
    ledger_archive_dir: Path | None = None
    trusted_gateway_keys: str = ""
    metrics_resource_labels: bool = True
    migrate: bool = True
    max_clock_skew_seconds: float = 300.0
    max_batch_age_seconds: float = 7 * 86_400.0
    max_streams_per_principal: int = 64
    rate_limit_calls_per_second: float = 100.0
    rate_limit_call_burst: int = 200
    rate_limit_records_per_second: float = 200_000.0
    rate_limit_record_burst: int = 400_000
    rate_limit_check_cpu_per_second: float = 1.0
    rate_limit_check_cpu_burst: float = 10.0
    record_check_workers: int = 0

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

    def audit(self) -> AuditSettings:
        """The ledger's timers and retention."""
        return AuditSettings(
            checkpoint_seconds=self.ledger_checkpoint_seconds,
            verify_seconds=self.ledger_verify_seconds,
            retention_days=self.ledger_retention_days,
            personal_retention_days=self.personal_data_retention_days,
            archive_dir=self.archive_dir,
            prune=self.ledger_prune,
            witness_file=self.data_dir / "ledger-witness.json",
        )

    @property
    def revocation_list(self) -> Path | None:
        """The CRL file the gateway honours."""
        if self.crl_file is not None:
            return self.crl_file
        if self.client_ca is not None and (self.client_ca.parent / "crl.pem").exists():
            return self.client_ca.parent / "crl.pem"
        return None

    def trusted_keys(self) -> dict[str, bytes]:
        """The other gateways' checkpoint keys, by key id.

        Raises:
            ValueError: An entry is neither a readable PEM file nor a key.
        """
        out: dict[str, bytes] = {}
        for entry in filter(None, (e.strip() for e in self.trusted_gateway_keys.split(","))):
            path = Path(entry)
            try:
                text = path.read_text() if path.is_file() else entry
                key = public_key_from_text(text)
            except (OSError, ValueError) as exc:
                raise ValueError(f"LIJIAO_TRUSTED_GATEWAY_KEYS entry {entry!r}: {exc}") from exc
            out[key_id_of(key)] = key
        return out

    @property
    def archive_dir(self) -> Path:
        """Where retention archives pruned ledger entries."""
        return self.ledger_archive_dir or self.data_dir / "ledger-archive"

    @property
    def catalog_url(self) -> str:
        """SQLAlchemy URL of the catalog database."""
        return self.database_url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    def made_catalog_url(self) -> str:
        """:attr:`catalog_url`, with the data directory made (0700) when the catalog is
        its default SQLite file: for commands run before the gateway's first start."""
        if not self.database_url:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.catalog_url

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
        for f in dataclasses.fields(cls):  # every Path setting, so none is forgotten
            if "Path" in str(f.type) and isinstance(values.get(f.name), str):
                values[f.name] = Path(values[f.name])
        settings = cls(**values)
        if settings.max_deliveries < 0:
            raise ValueError("LIJIAO_MAX_DELIVERIES must be 0 (no limit) or more")
        if settings.synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError("LIJIAO_SYNCHRONOUS must be FULL or NORMAL")
        if settings.ledger_retention_days < RETENTION_MINIMUM_DAYS:
            raise ValueError(
                f"LIJIAO_LEDGER_RETENTION_DAYS must be at least {RETENTION_MINIMUM_DAYS}: "
                "network logs are kept six months (网络安全法 §21)"
            )
        if settings.personal_data_retention_days < PERSONAL_RETENTION_MINIMUM_DAYS:
            raise ValueError(
                "LIJIAO_PERSONAL_DATA_RETENTION_DAYS must be at least "
                f"{PERSONAL_RETENTION_MINIMUM_DAYS}: records of providing personal data are "
                "kept three years (个人信息保护法 §56)"
            )
        if settings.ledger_checkpoint_seconds < 0 or settings.ledger_verify_seconds < 0:
            raise ValueError(
                "LIJIAO_LEDGER_CHECKPOINT_SECONDS and LIJIAO_LEDGER_VERIFY_SECONDS must not be "
                "negative"
            )
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
