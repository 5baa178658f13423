"""Corrections (疑义数据): a receiving department flags a wrong record; the provider
answers."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from catalog import validation
from catalog.credentials import Identity
from catalog.governance.backflow import active_enrolment
from catalog.governance.base import WorkflowBase
from catalog.governance.rules import check_text, require_owner_officer
from catalog.governance.visibility import visible
from catalog.models import Correction, CorrectionState, Grant, Resource, Role, System, utcnow
from envelope.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Reason

if TYPE_CHECKING:
    from catalog.service import Page


def check_record_key(record_key: Mapping[str, str]) -> dict[str, str]:
    """Checks a flagged record's key: a few key fields, each value short, kept exactly.

    Raises:
        InvalidArgument: INVALID_FIELD on ``record_key``.
    """
    most = validation.MAX_KEY_FIELDS
    if len(record_key) > most:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"record_key names at most {most} key fields, got {len(record_key)}",
            {"field": "record_key"},
        )
    for value in record_key.values():
        validation.text("record_key", value, limit=validation.KEY_VALUE_LIMIT, strip=False)
    return dict(record_key)


def load_correction(session: Session, correction_id: str) -> Correction:
    """Returns a flagged record or raises NotFound (UNKNOWN_CORRECTION)."""
    row = session.scalar(select(Correction).where(Correction.public_id == correction_id))
    if row is None:
        raise NotFound(Reason.UNKNOWN_CORRECTION, f"no correction with id {correction_id!r}")
    return row


class Corrections(WorkflowBase):
    """Flags delivered records as wrong, answers them, and lists them."""

    def flag(
        self,
        actor: Identity,
        *,
        resource_code: str,
        batch_id: str,
        record_key: Mapping[str, str],
        comment: str,
    ) -> Correction:
        """Flags a delivered record as wrong (a receiving system or its officers)."""
        comment = check_text("comment", comment)
        batch_id = check_text("batch_id", batch_id, 128)
        key = check_record_key(record_key)
        if actor.role not in (Role.SYSTEM, Role.DATA_OFFICER) or not actor.department:
            raise PermissionDenied(
                Reason.ROLE_NOT_ALLOWED, "records are flagged by receiving systems or officers"
            )
        with self.catalog.sessions() as session:
            resource = self.catalog.resource(session, resource_code)
            department = self.catalog.department(session, actor.department)
            unknown = [k for k in key if k not in resource.key_fields]
            if not key or unknown:
                raise InvalidArgument(
                    Reason.INVALID_FIELD,
                    f"record_key names the record by the key fields of {resource.code}: "
                    f"{', '.join(resource.key_fields) or '(none registered)'}",
                    {"field": "record_key"},
                )
            received = session.scalar(
                select(Grant.id)
                .join(Grant.grantee)
                .where(Grant.resource_id == resource.id, System.department_id == department.id)
                .limit(1)
            )
            enrolled = resource.backflow_eligible and active_enrolment(session, department.id)
            if received is None and not enrolled:
                raise PermissionDenied(
                    Reason.NO_GRANT,
                    f"{department.code} has never been granted {resource.code}",
                )
            correction = Correction(
                public_id="c-" + secrets.token_hex(8),
                resource_id=resource.id,
                batch_id=batch_id,
                record_key=key,
                comment=comment,
                flagged_by=actor.name,
                flagging_department_id=department.id,
            )
            session.add(correction)
            session.commit()
            return load_correction(session, correction.public_id)

    def answer(self, actor: Identity, correction_id: str, answer: str) -> Correction:
        """Answers a flagged record (data officers of the owning department)."""
        answer = check_text("answer", answer)
        with self.catalog.sessions() as session:
            correction = load_correction(session, correction_id)
            require_owner_officer(actor, correction.resource, "answer its flagged records")
            if correction.state is not CorrectionState.OPEN:
                raise FailedPrecondition(
                    Reason.WRONG_STATE, f"correction {correction_id} is already answered"
                )
            correction.state = CorrectionState.ANSWERED
            correction.answer = answer
            correction.answered_by = actor.name
            correction.answered_at = utcnow()
            session.commit()
            return load_correction(session, correction_id)

    def corrections(
        self,
        *,
        resource: str = "",
        state: CorrectionState | None = None,
        page_size: int = 0,
        page_token: str = "",
        viewer: Identity | None = None,
    ) -> Page[Correction]:
        """Pages through the flagged records ``viewer`` may see, oldest first."""
        query: Select[Any] = visible(
            select(Correction),
            viewer,
            made_by=lambda mine: Correction.flagging_department_id == mine,
            resource_id=Correction.resource_id,
        )
        if resource:
            query = query.join(Correction.resource).where(Resource.code == resource)
        if state is not None:
            query = query.where(Correction.state == state)
        return self.catalog.page(query, Correction.id, page_size, page_token)
