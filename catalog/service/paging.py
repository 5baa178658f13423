"""Keyset paging of catalog listings, and the page tokens that carry a position."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

from envelope.errors import InvalidArgument, Reason

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    next_page_token: str


def page_size(size: int) -> int:
    """The number of rows a page holds (``DEFAULT_PAGE_SIZE`` for 0).

    Raises:
        InvalidArgument: INVALID_FIELD, a size outside 0..``MAX_PAGE_SIZE``.
    """
    if size < 0 or size > MAX_PAGE_SIZE:
        raise InvalidArgument(
            Reason.INVALID_FIELD, f"page_size must be 0..{MAX_PAGE_SIZE}", {"field": "page_size"}
        )
    return size or DEFAULT_PAGE_SIZE


def decode_page_token(token: str) -> Any:
    """The position a page token carries (None for no token).

    Raises:
        InvalidArgument: INVALID_PAGE_TOKEN, a token no gateway issued.
    """
    if not token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (ValueError, KeyError, TypeError) as exc:
        after = exc
    if isinstance(after, bool) or not isinstance(after, str | int) or not _in_int64(after):
        raise InvalidArgument(
            Reason.INVALID_PAGE_TOKEN,
            "page_token is not one this gateway issued; start again without it",
        )
    return after


def _in_int64(value: str | int) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def encode_page_token(after: Any) -> str:
    """A page token carrying the last position of a page (keyset paging)."""
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def keyset_page(
    sessions: sessionmaker[Session],
    query: Select[Any],
    key: Any,
    size: int,
    token: str,
    *,
    descending: bool,
) -> Page[Any]:
    """Runs one page of ``query`` ordered by ``key``, after the position ``token`` carries."""
    size = page_size(size)
    after = decode_page_token(token)
    if after is not None:
        query = query.where(key < after if descending else key > after)
    order = key.desc() if descending else key
    with sessions() as session:
        rows = list(session.scalars(query.order_by(order).limit(size + 1)).unique())
    more = len(rows) > size
    rows = rows[:size]
    next_token = encode_page_token(getattr(rows[-1], key.key)) if more else ""
    return Page(rows, next_token)
