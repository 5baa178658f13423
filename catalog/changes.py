"""Every change to the catalog becomes a ledger entry, in the same transaction.

A session listener collects what each flush inserts, updates and deletes, and appends
one entry per changed row before the transaction commits: if the change commits, so
does its entry; if it rolls back, neither exists. Nothing in the catalog's services has
to remember to log.

Who acted comes from :data:`catalog.ledger.ACTOR`, set by the RPC layer (or the CLI)
for the duration of a call. Secrets never enter the ledger: a credential's hash and a
schema's text are replaced by what identifies them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from catalog import ledger, models

_KINDS: dict[type[Any], tuple[ledger.EntryKind, str]] = {
    models.Department: (ledger.EntryKind.CATALOG, "department"),
    models.System: (ledger.EntryKind.CATALOG, "system"),
    models.SigningKey: (ledger.EntryKind.CATALOG, "signing_key"),
    models.Resource: (ledger.EntryKind.CATALOG, "resource"),
    models.SchemaVersion: (ledger.EntryKind.CATALOG, "schema"),
    models.Principal: (ledger.EntryKind.CATALOG, "principal"),
    models.Credential: (ledger.EntryKind.CATALOG, "credential"),
    models.Grant: (ledger.EntryKind.GRANT, "grant"),
    models.AccessRequest: (ledger.EntryKind.REQUEST, "request"),
    models.RequestTransition: (ledger.EntryKind.REQUEST, "request_step"),
    models.BackflowEnrolment: (ledger.EntryKind.REQUEST, "backflow_enrolment"),
    models.Correction: (ledger.EntryKind.REQUEST, "correction"),
}

_HIDDEN = {"secret_hash", "version"}  # a token's hash; the optimistic-lock counter
_DIGESTED = {"definition", "canonical_form"}  # schema texts: long, and in the catalog


def _value(key: str, value: Any) -> Any:
    if key in _DIGESTED and isinstance(value, str):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _columns(obj: Any) -> list[str]:
    mapper = inspect(obj).mapper
    out = []
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if column.primary_key or column.foreign_keys or attr.key in _HIDDEN:
            continue
        out.append(attr.key)
    return out


def _personal(resource: models.Resource | None) -> bool:
    return resource is not None and any(
        f.get("sensitivity", "NONE") != "NONE" for f in resource.fields or ()
    )


def _where(obj: Any) -> dict[str, Any]:
    """The entry's filter columns for a changed row: what it is about, and whose."""
    resource: models.Resource | None = getattr(obj, "resource", None)
    system: models.System | None = None
    department: models.Department | None = None
    subject = ""
    grant_id = ""
    if isinstance(obj, models.Department):
        department, subject = obj, obj.code
    elif isinstance(obj, models.System):
        system, subject = obj, obj.code
    elif isinstance(obj, models.SigningKey):
        system, subject = obj.system, obj.key_id
    elif isinstance(obj, models.Resource):
        resource, subject = obj, obj.code
        department = obj.owner
    elif isinstance(obj, models.SchemaVersion):
        subject = f"{obj.resource.code} v{obj.version}"
    elif isinstance(obj, models.Grant):
        system, subject, grant_id = obj.grantee, obj.public_id, obj.public_id
    elif isinstance(obj, models.AccessRequest):
        system, subject, grant_id = obj.requesting_system, obj.public_id, obj.grant_id
    elif isinstance(obj, models.RequestTransition):
        request = obj.request
        resource, system = request.resource, request.requesting_system
        subject, grant_id = request.public_id, request.grant_id
    elif isinstance(obj, models.BackflowEnrolment):
        department, subject = obj.department, obj.department.code
    elif isinstance(obj, models.Correction):
        department, subject = obj.flagging_department, obj.public_id
    elif isinstance(obj, models.Principal):
        system, department, subject = obj.system, obj.department, obj.name
    elif isinstance(obj, models.Credential):
        principal = obj.principal
        system, department, subject = principal.system, principal.department, principal.name
    if department is None and system is not None:
        department = system.department
    return {
        "department": department.code if department is not None else "",
        "provider": resource.owner.code if resource is not None else "",
        "system": system.code if system is not None else "",
        "resource": resource.code if resource is not None else "",
        "grant_id": grant_id,
        "subject": subject,
        "personal": _personal(resource),
    }


def _collect(session: Session, _context: Any) -> None:
    pending: list[tuple[str, Any, dict[str, Any]]] = session.info.setdefault("ledger", [])
    for verb, objs in (
        ("created", session.new),
        ("updated", session.dirty),
        ("deleted", session.deleted),
    ):
        for obj in objs:
            if type(obj) not in _KINDS:
                continue
            state = inspect(obj)
            details: dict[str, Any] = {}
            if verb == "created":
                details = {k: _value(k, getattr(obj, k)) for k in _columns(obj)}
            elif verb == "updated":
                for key in _columns(obj):
                    history = state.attrs[key].history
                    if history.has_changes():
                        old = history.deleted[0] if history.deleted else None
                        new = history.added[0] if history.added else None
                        details[key] = [_value(key, old), _value(key, new)]
                if not details:
                    continue
                details = {"changed": details}
            pending.append((verb, obj, details))


def _write(session: Session, _context: Any) -> None:
    pending = session.info.pop("ledger", None)
    if not pending:
        return
    actor = ledger.ACTOR.get() or "local"
    entries = []
    for verb, obj, details in pending:
        kind, noun = _KINDS[type(obj)]
        entries.append(
            ledger.NewEntry(kind, f"{noun}.{verb}", principal=actor, details=details, **_where(obj))
        )
    ledger.append(session.connection(), entries)
    counts = session.info.setdefault("ledger_counts", Counter())
    counts.update(entry.kind.value for entry in entries)


def _committed(session: Session) -> None:
    counts = session.info.pop("ledger_counts", None)
    if counts:
        ledger.committed(counts)


def _rolled_back(session: Session) -> None:
    session.info.pop("ledger", None)
    session.info.pop("ledger_counts", None)


def record_changes(sessions: sessionmaker[Session]) -> None:
    """Makes every session of ``sessions`` write its catalog changes to the ledger."""
    event.listen(sessions, "after_flush", _collect)
    event.listen(sessions, "after_flush_postexec", _write)
    event.listen(sessions, "after_commit", _committed)
    event.listen(sessions, "after_rollback", _rolled_back)
