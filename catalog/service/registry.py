"""The registry as one object: :class:`Catalog`, composed of one part per concept."""

from __future__ import annotations

from catalog.service.departments import Departments
from catalog.service.grants import Grants
from catalog.service.resources import Resources
from catalog.service.schema_versions import SchemaVersions
from catalog.service.systems import Systems


class Catalog(Grants, SchemaVersions, Resources, Systems, Departments):
    """The resource catalog over a SQLAlchemy session factory.

    Each base holds one concept's methods: departments, systems and their signing keys,
    resources, schema versions and direct grants; all share the session factory and
    paging of :class:`~catalog.service.store.Store`.
    """
