"""The session factory every part of the registry shares, with paging and commits."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from catalog.models import Department, Grant, Resource, SchemaVersion, System
from catalog.service.paging import Page, keyset_page
from envelope.errors import AlreadyExists, Reason

Row = TypeVar("Row", Department, System, Resource, SchemaVersion, Grant)


class Store:
    """The registry's database: the base of each part of :class:`~catalog.service.Catalog`."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def page(self, query: Select[Any], key: Any, page_size: int, page_token: str) -> Page[Any]:
        """Runs one page of ``query`` in ascending order of ``key`` (keyset paging)."""
        return keyset_page(self.sessions, query, key, page_size, page_token, descending=False)

    def page_desc(self, query: Select[Any], key: Any, page_size: int, page_token: str) -> Page[Any]:
        """Runs one page of ``query`` in descending order of ``key``."""
        return keyset_page(self.sessions, query, key, page_size, page_token, descending=True)

    def _insert(self, row: Row, what: str) -> Row:
        with self.sessions() as session:
            session.add(row)
            self._commit(session, what)
            return row

    @staticmethod
    def _commit(session: Session, what: str) -> None:
        try:
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise AlreadyExists(Reason.ALREADY_EXISTS, f"{what} already exists") from exc
