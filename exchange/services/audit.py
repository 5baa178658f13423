"""gRPC ``AuditService``: the auditor's read-only view of the ledger."""

from __future__ import annotations

import asyncio
import functools
import json
import tempfile
import zoneinfo
from collections.abc import AsyncIterator, Iterable
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.orm import Session, sessionmaker

from catalog import ledger, ledger_files
from catalog.credentials import Identity
from catalog.ledger import EntryFilter, EntryKind
from catalog.models import Role
from catalog.service import decode_page_token, encode_page_token
from catalog.v1 import audit_pb2 as pb
from catalog.v1 import audit_pb2_grpc
from envelope.errors import InvalidArgument, Reason
from exchange.audit.tasks import AuditTasks
from exchange.gate.rpc import Authenticator, datetime_of, streaming, unary

DEFAULT_PAGE = 100
MAX_PAGE = 1000
CHUNK_BYTES = 1 << 20
_PREFIX = "LEDGER_ENTRY_KIND_"


def _timestamp(text: str) -> Timestamp | None:
    if not text:
        return None
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


def _operation(row: Any, body: dict[str, Any]) -> pb.OperationalRecord | None:
    details = body.get("details", {})
    if row.kind == EntryKind.BATCH.value:
        client_department, client_system = "", ""
        provider_system = row.system
    elif row.kind == EntryKind.DELIVERY.value:
        client_department, client_system = row.department, row.system
        provider_system = details.get("publisher_system", "")
    elif row.kind == EntryKind.DENIAL.value:
        client_department, client_system, provider_system = row.department, row.system, ""
    else:
        return None
    return pb.OperationalRecord(
        receive_time=_timestamp(details.get("receive_time", "")),
        store_time=_timestamp(details.get("store_time", "")),
        deliver_time=_timestamp(details.get("deliver_time", "")),
        ack_time=_timestamp(details.get("ack_time", "")),
        client_department=client_department,
        client_system=client_system,
        provider_department=row.provider,
        provider_system=provider_system,
        resource=row.resource,
        records=row.records,
        bytes=row.bytes,
        outcome=details.get("outcome", ""),
        fault_reason=details.get("reason", ""),
    )


def entry_message(row: Any) -> pb.LedgerEntry:
    """A ledger row as its wire message."""
    body = json.loads(row.content)
    time = Timestamp()
    time.FromDatetime(row.time)
    return pb.LedgerEntry(
        sequence=row.sequence,
        time=time,
        kind=pb.LedgerEntryKind.Value(_PREFIX + row.kind),
        action=row.action,
        principal=row.principal,
        department=row.department,
        provider=row.provider,
        system=row.system,
        resource=row.resource,
        grant_id=row.grant_id,
        subject=row.subject,
        personal=row.personal,
        content=row.content,
        content_digest=bytes(row.content_digest),
        previous_hash=bytes(row.previous_hash),
        hash=bytes(row.hash),
        operation=_operation(row, body),
    )


def entry_filter(message: pb.LedgerFilter, after_sequence: int = 0) -> EntryFilter:
    """The filter of a request."""
    start = (
        datetime_of(message.start_time, "filter.start_time")
        if message.HasField("start_time")
        else None
    )
    end = datetime_of(message.end_time, "filter.end_time") if message.HasField("end_time") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            "filter.end_time must be after filter.start_time",
            {"field": "filter.end_time"},
        )
    kinds = []
    for value in message.kinds:
        if value == pb.LEDGER_ENTRY_KIND_UNSPECIFIED or value not in pb.LedgerEntryKind.values():
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"filter.kinds holds an unknown kind {value}",
                {"field": "filter.kinds"},
            )
        kinds.append(EntryKind(pb.LedgerEntryKind.Name(value).removeprefix(_PREFIX)))
    return EntryFilter(
        start=start,
        end=end,
        department=message.department,
        system=message.system,
        resource=message.resource,
        kinds=tuple(kinds),
        grant_id=message.grant_id,
        subject=message.subject,
        after_sequence=after_sequence,
    )


def _after(token: str) -> int:
    """The sequence a page token of ListLedgerEntries carries (0 for no token)."""
    after = decode_page_token(token)
    if after is None:
        return 0
    if not isinstance(after, int):
        raise InvalidArgument(
            Reason.INVALID_PAGE_TOKEN,
            "page_token is not one this call returned",
            {"field": "page_token"},
        )
    return after


def verification_message(
    result: ledger.Verification, keys: Iterable[str]
) -> pb.VerifyLedgerResponse:
    """A verification as its wire message."""
    return pb.VerifyLedgerResponse(
        ok=result.ok,
        entries=result.entries,
        checkpoints=result.checkpoints,
        first_sequence=result.first_sequence,
        last_sequence=result.last_sequence,
        verified_through=max(result.verified_through, 0),
        problem=result.problem.value if result.problem else "",
        broken_sequence=result.sequence,
        message=result.message,
        last_checkpoint=result.last_checkpoint,
        trusted_key_ids=sorted(keys),
    )


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """Read-only; every method is for auditors only."""

    def __init__(
        self, auth: Authenticator, sessions: sessionmaker[Session], tasks: AuditTasks
    ) -> None:
        self.auth = auth
        self.sessions = sessions
        self.tasks = tasks

    async def _settled(self) -> None:
        """Lets entries this gateway has queued (an acknowledgement just received) commit
        first, so a read sees everything that happened before it."""
        await self.tasks.writer.flush()

    @unary(Role.AUDITOR)
    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, identity: Identity, context: Any
    ) -> pb.ListLedgerEntriesResponse:
        size = request.page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            raise InvalidArgument(
                Reason.INVALID_FIELD, f"page_size must be 1..{MAX_PAGE}", {"field": "page_size"}
            )
        where = entry_filter(request.filter, _after(request.page_token))
        await self._settled()
        rows = await asyncio.to_thread(ledger.entries, self.sessions, where, size + 1)
        token = encode_page_token(rows[size - 1].sequence) if len(rows) > size else ""
        return pb.ListLedgerEntriesResponse(
            entries=[entry_message(row) for row in rows[:size]], next_page_token=token
        )

    @unary(Role.AUDITOR)
    async def TraceBatch(
        self, request: pb.TraceBatchRequest, identity: Identity, context: Any
    ) -> pb.TraceBatchResponse:
        if not request.batch_id:
            raise InvalidArgument(
                Reason.INVALID_FIELD, "batch_id is required", {"field": "batch_id"}
            )
        await self._settled()
        rows = await asyncio.to_thread(
            ledger.trace, self.sessions, request.batch_id, request.publisher_system
        )
        response = pb.TraceBatchResponse()
        for row in rows:
            target = {
                EntryKind.BATCH.value: response.stored,
                EntryKind.DELIVERY.value: response.deliveries,
            }.get(row.kind, response.refusals)
            target.append(entry_message(row))
        return response

    @unary(Role.AUDITOR)
    async def SummarizeExchanges(
        self, request: pb.SummarizeExchangesRequest, identity: Identity, context: Any
    ) -> pb.SummarizeExchangesResponse:
        try:
            zone = zoneinfo.ZoneInfo(request.time_zone or "Asia/Shanghai")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidArgument(
                Reason.INVALID_FIELD,
                f"time_zone {request.time_zone!r} is not an IANA zone",
                {"field": "time_zone"},
            ) from exc
        where = entry_filter(request.filter)
        await self._settled()
        totals = await asyncio.to_thread(ledger.summary, self.sessions, where, zone)
        return pb.SummarizeExchangesResponse(
            totals=[
                pb.ExchangeTotal(
                    day=t.day,
                    provider_department=t.provider,
                    receiving_department=t.receiver,
                    batches=t.batches,
                    records=t.records,
                    bytes=t.bytes,
                )
                for t in totals
            ]
        )

    @streaming(Role.AUDITOR)
    async def ExportLedger(
        self, requests: Any, identity: Identity, context: Any
    ) -> AsyncIterator[pb.ExportLedgerResponse]:
        request: pb.ExportLedgerRequest = requests
        if request.format not in pb.ExportFormat.values():
            raise InvalidArgument(
                Reason.INVALID_FIELD, f"format {request.format} is unknown", {"field": "format"}
            )
        where = entry_filter(request.filter)
        jsonl = request.format == pb.EXPORT_FORMAT_JSONL
        await self._settled()
        # Written to a temporary file first: an export of months is disk, not memory.
        with tempfile.TemporaryFile() as spool:
            rows = ledger.iterate(self.sessions, where)
            selection = request.filter
            # A time range is still a run of consecutive entries; any other filter is not.
            filtered = bool(
                selection.department
                or selection.system
                or selection.resource
                or selection.kinds
                or selection.grant_id
                or selection.subject
            )
            if jsonl:
                count = await asyncio.to_thread(ledger_files.write_jsonl, rows, spool)
            else:
                count = await asyncio.to_thread(
                    functools.partial(ledger_files.write_avro, filtered=filtered), rows, spool
                )
            spool.seek(0)
            while chunk := spool.read(CHUNK_BYTES):
                yield pb.ExportLedgerResponse(chunk=chunk, entries=count)

    @unary(Role.AUDITOR)
    async def VerifyLedger(
        self, request: pb.VerifyLedgerRequest, identity: Identity, context: Any
    ) -> pb.VerifyLedgerResponse:
        await self._settled()
        result = await asyncio.to_thread(self.tasks.verify)
        return verification_message(result, self.tasks.trusted)
