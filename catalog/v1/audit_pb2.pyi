import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LedgerEntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEDGER_ENTRY_KIND_UNSPECIFIED: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_CATALOG: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_REQUEST: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_GRANT: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_BATCH: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_DELIVERY: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_DENIAL: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_LEDGER: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_ANOMALY: _ClassVar[LedgerEntryKind]
    LEDGER_ENTRY_KIND_DEAD_LETTER: _ClassVar[LedgerEntryKind]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_AVRO: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSONL: _ClassVar[ExportFormat]
LEDGER_ENTRY_KIND_UNSPECIFIED: LedgerEntryKind
LEDGER_ENTRY_KIND_CATALOG: LedgerEntryKind
LEDGER_ENTRY_KIND_REQUEST: LedgerEntryKind
LEDGER_ENTRY_KIND_GRANT: LedgerEntryKind
LEDGER_ENTRY_KIND_BATCH: LedgerEntryKind
LEDGER_ENTRY_KIND_DELIVERY: LedgerEntryKind
LEDGER_ENTRY_KIND_DENIAL: LedgerEntryKind
LEDGER_ENTRY_KIND_LEDGER: LedgerEntryKind
LEDGER_ENTRY_KIND_ANOMALY: LedgerEntryKind
LEDGER_ENTRY_KIND_DEAD_LETTER: LedgerEntryKind
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_AVRO: ExportFormat
EXPORT_FORMAT_JSONL: ExportFormat

class LedgerFilter(_message.Message):
    __slots__ = ("start_time", "end_time", "department", "system", "resource", "kinds", "grant_id", "subject")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    department: str
    system: str
    resource: str
    kinds: _containers.RepeatedScalarFieldContainer[LedgerEntryKind]
    grant_id: str
    subject: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., department: _Optional[str] = ..., system: _Optional[str] = ..., resource: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[LedgerEntryKind, str]]] = ..., grant_id: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class OperationalRecord(_message.Message):
    __slots__ = ("receive_time", "store_time", "deliver_time", "ack_time", "client_department", "client_system", "provider_department", "provider_system", "resource", "records", "bytes", "outcome", "fault_reason")
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    STORE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVER_TIME_FIELD_NUMBER: _ClassVar[int]
    ACK_TIME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FAULT_REASON_FIELD_NUMBER: _ClassVar[int]
    receive_time: _timestamp_pb2.Timestamp
    store_time: _timestamp_pb2.Timestamp
    deliver_time: _timestamp_pb2.Timestamp
    ack_time: _timestamp_pb2.Timestamp
    client_department: str
    client_system: str
    provider_department: str
    provider_system: str
    resource: str
    records: int
    bytes: int
    outcome: str
    fault_reason: str
    def __init__(self, receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., store_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deliver_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ack_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client_department: _Optional[str] = ..., client_system: _Optional[str] = ..., provider_department: _Optional[str] = ..., provider_system: _Optional[str] = ..., resource: _Optional[str] = ..., records: _Optional[int] = ..., bytes: _Optional[int] = ..., outcome: _Optional[str] = ..., fault_reason: _Optional[str] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("sequence", "time", "kind", "action", "principal", "department", "provider", "system", "resource", "grant_id", "subject", "personal", "content", "content_digest", "previous_hash", "hash", "operation")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    kind: LedgerEntryKind
    action: str
    principal: str
    department: str
    provider: str
    system: str
    resource: str
    grant_id: str
    subject: str
    personal: bool
    content: str
    content_digest: bytes
    previous_hash: bytes
    hash: bytes
    operation: OperationalRecord
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[LedgerEntryKind, str]] = ..., action: _Optional[str] = ..., principal: _Optional[str] = ..., department: _Optional[str] = ..., provider: _Optional[str] = ..., system: _Optional[str] = ..., resource: _Optional[str] = ..., grant_id: _Optional[str] = ..., subject: _Optional[str] = ..., personal: _Optional[bool] = ..., content: _Optional[str] = ..., content_digest: _Optional[bytes] = ..., previous_hash: _Optional[bytes] = ..., hash: _Optional[bytes] = ..., operation: _Optional[_Union[OperationalRecord, _Mapping]] = ...) -> None: ...

class ListLedgerEntriesRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: LedgerFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[LedgerFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLedgerEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class TraceBatchRequest(_message.Message):
    __slots__ = ("batch_id", "publisher_system")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    publisher_system: str
    def __init__(self, batch_id: _Optional[str] = ..., publisher_system: _Optional[str] = ...) -> None: ...

class TraceBatchResponse(_message.Message):
    __slots__ = ("stored", "deliveries", "refusals")
    STORED_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    stored: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    deliveries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    refusals: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    def __init__(self, stored: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., deliveries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., refusals: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ...) -> None: ...

class SummarizeExchangesRequest(_message.Message):
    __slots__ = ("filter", "time_zone")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    filter: LedgerFilter
    time_zone: str
    def __init__(self, filter: _Optional[_Union[LedgerFilter, _Mapping]] = ..., time_zone: _Optional[str] = ...) -> None: ...

class ExchangeTotal(_message.Message):
    __slots__ = ("day", "provider_department", "receiving_department", "batches", "records", "bytes")
    DAY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVING_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    day: str
    provider_department: str
    receiving_department: str
    batches: int
    records: int
    bytes: int
    def __init__(self, day: _Optional[str] = ..., provider_department: _Optional[str] = ..., receiving_department: _Optional[str] = ..., batches: _Optional[int] = ..., records: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class SummarizeExchangesResponse(_message.Message):
    __slots__ = ("totals",)
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    totals: _containers.RepeatedCompositeFieldContainer[ExchangeTotal]
    def __init__(self, totals: _Optional[_Iterable[_Union[ExchangeTotal, _Mapping]]] = ...) -> None: ...

class ExportLedgerRequest(_message.Message):
    __slots__ = ("filter", "format")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    filter: LedgerFilter
    format: ExportFormat
    def __init__(self, filter: _Optional[_Union[LedgerFilter, _Mapping]] = ..., format: _Optional[_Union[ExportFormat, str]] = ...) -> None: ...

class ExportLedgerResponse(_message.Message):
    __slots__ = ("chunk", "entries")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    entries: int
    def __init__(self, chunk: _Optional[bytes] = ..., entries: _Optional[int] = ...) -> None: ...

class VerifyLedgerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyLedgerResponse(_message.Message):
    __slots__ = ("ok", "entries", "checkpoints", "first_sequence", "last_sequence", "verified_through", "problem", "broken_sequence", "message", "last_checkpoint", "trusted_key_ids")
    OK_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    BROKEN_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    entries: int
    checkpoints: int
    first_sequence: int
    last_sequence: int
    verified_through: int
    problem: str
    broken_sequence: int
    message: str
    last_checkpoint: int
    trusted_key_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ok: _Optional[bool] = ..., entries: _Optional[int] = ..., checkpoints: _Optional[int] = ..., first_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ..., verified_through: _Optional[int] = ..., problem: _Optional[str] = ..., broken_sequence: _Optional[int] = ..., message: _Optional[str] = ..., last_checkpoint: _Optional[int] = ..., trusted_key_ids: _Optional[_Iterable[str]] = ...) -> None: ...
