"""The resource catalog's rules: who may register what, and what is valid.

:class:`Catalog` serves the gateway's ``CatalogService`` and the publish and subscribe
paths. Methods that change the catalog take the acting
:class:`~catalog.credentials.Identity` and raise :mod:`envelope.errors` refusals.

One module per concept: ``departments``, ``systems`` (with signing keys),
``resources``, ``schema_versions``, ``grants`` (direct grants); ``fields`` describes
top-level fields, ``paging`` pages listings, ``roles`` holds the role checks, ``store``
the shared session factory, and ``registry`` composes them into :class:`Catalog`.
"""

from catalog.service.fields import FieldSpec
from catalog.service.paging import Page, decode_page_token, encode_page_token
from catalog.service.registry import Catalog
from catalog.service.resources import ResourceSpec

__all__ = [
    "Catalog",
    "FieldSpec",
    "Page",
    "ResourceSpec",
    "decode_page_token",
    "encode_page_token",
]
