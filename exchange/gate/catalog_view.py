"""What the publish and deliver paths need from the catalog, cached for a moment.

The hot path must not hit the database per batch; entries live ``ttl`` seconds, so a
change in the catalog (a suspended system, a new key, a revoked grant) takes effect
within that time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select

from catalog.governance import Governance
from catalog.models import Resource, Sensitivity, SigningKey, System, SystemStatus, utcnow
from catalog.service import Catalog
from envelope import schemas
from envelope.errors import FailedPrecondition, NotFound, Reason

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class ResourceView:
    """A resource as the exchange paths see it."""

    code: str
    owner_department: str
    region_field: str
    key_fields: tuple[str, ...]
    tags: dict[str, Sensitivity]
    fingerprints: frozenset[bytes]


@dataclass(frozen=True)
class KeyView:
    """A signing key: its raw public key, and from when it is revoked (if it is)."""

    public_key: bytes
    revoked_at: datetime | None
    compromised: bool = False


@dataclass(frozen=True)
class SystemView:
    """A system as the exchange paths see it."""

    code: str
    department: str
    active: bool
    keys: dict[str, KeyView]


@dataclass(frozen=True)
class GrantView:
    """An active grant as the delivery path applies it."""

    id: str
    fields: tuple[str, ...]
    clear_fields: tuple[str, ...]
    region: str
    expires_at: datetime | None

    def active(self) -> bool:
        """Whether the grant has not expired (revocation shows up within the cache TTL)."""
        return self.expires_at is None or utcnow() < self.expires_at


class _TTLCache(dict[Any, tuple[float, Any]]):
    def __init__(self, ttl: float) -> None:
        super().__init__()
        self.ttl = ttl

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        now = time.monotonic()
        hit = self.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        self[key] = (now + self.ttl, value)
        return value


class CatalogView:
    """Cached reads of the catalog for publish and delivery."""

    def __init__(self, catalog: Catalog, governance: Governance, ttl: float = 2.0) -> None:
        self.catalog = catalog
        self.governance = governance
        self._resources = _TTLCache(ttl)
        self._systems = _TTLCache(ttl)
        self._grants = _TTLCache(ttl)
        self._schemas: dict[tuple[str, bytes], schemas.ParsedSchema] = {}

    def resource(self, code: str) -> ResourceView:
        """Returns a resource or raises NotFound(UNKNOWN_RESOURCE)."""

        def load() -> ResourceView:
            with self.catalog.sessions() as session:
                row = session.scalar(select(Resource).where(Resource.code == code))
                if row is None:
                    raise NotFound(Reason.UNKNOWN_RESOURCE, f"no resource with code {code!r}")
                tags = {
                    f["name"]: Sensitivity(f["sensitivity"])
                    for f in row.fields
                    if f["sensitivity"] != Sensitivity.NONE.value
                }
                return ResourceView(
                    row.code,
                    row.owner.code,
                    row.region_field,
                    tuple(row.key_fields),
                    tags,
                    frozenset(bytes.fromhex(s.fingerprint) for s in row.schemas),
                )

        return self._resources.get_or_load(code, load)

    def system(self, code: str) -> SystemView:
        """Returns a system with its signing keys (revoked ones too), or raises NotFound."""

        def load() -> SystemView:
            with self.catalog.sessions() as session:
                row = session.scalar(select(System).where(System.code == code))
                if row is None:
                    raise NotFound(Reason.UNKNOWN_SYSTEM, f"no system with code {code!r}")
                keys = {
                    k.key_id: KeyView(k.public_key, k.revoked_at, k.compromised)
                    for k in session.scalars(
                        select(SigningKey).where(SigningKey.system_id == row.id)
                    )
                }
                return SystemView(
                    row.code, row.department.code, row.status is SystemStatus.ACTIVE, keys
                )

        return self._systems.get_or_load(code, load)

    def schema(self, resource: str, fingerprint: bytes) -> schemas.ParsedSchema:
        """Returns a registered schema of a resource by fingerprint.

        Raises:
            FailedPrecondition: UNKNOWN_SCHEMA when no version has that fingerprint.
        """
        key = (resource, fingerprint)
        parsed = self._schemas.get(key)
        if parsed is None:
            try:
                row = self.catalog.get_schema(resource, fingerprint=fingerprint)
            except NotFound as exc:
                raise FailedPrecondition(
                    Reason.UNKNOWN_SCHEMA,
                    f"resource {resource!r} has no schema with fingerprint "
                    f"{fingerprint.hex()}; register it with 'lijiao catalog schemas add'",
                    {"fingerprint": fingerprint.hex()},
                ) from exc
            parsed = schemas.parse(json.loads(row.definition), stored=True)
            self._schemas[key] = parsed
        return parsed

    def grant(self, system: str, resource: str) -> GrantView | None:
        """Returns the active grant for a system and resource, if any."""

        def load() -> GrantView | None:
            found = self.governance.effective_grant(system, resource)
            if found is None:
                return None
            return GrantView(
                found.id, found.fields, found.clear_fields, found.region, found.expires_at
            )

        return self._grants.get_or_load((system, resource), load)

    def forget_resource(self, code: str) -> None:
        """Drops one cached resource (its field tags changed with a new schema version)."""
        self._resources.pop(code, None)

    def forget_systems(self) -> None:
        """Drops the cached systems (after a key was added or revoked on this gateway)."""
        self._systems.clear()

    def forget_grants(self) -> None:
        """Drops cached grants and resources: a revocation takes effect at once."""
        self._grants.clear()
        self._resources.clear()
