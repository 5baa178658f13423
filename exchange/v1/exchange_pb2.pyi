import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordBatch(_message.Message):
    __slots__ = ("resource", "schema_fingerprint", "batch_id", "sequence", "create_time", "records", "signing_key_id", "signature")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    resource: str
    schema_fingerprint: bytes
    batch_id: str
    sequence: int
    create_time: _timestamp_pb2.Timestamp
    records: _containers.RepeatedScalarFieldContainer[bytes]
    signing_key_id: str
    signature: bytes
    def __init__(self, resource: _Optional[str] = ..., schema_fingerprint: _Optional[bytes] = ..., batch_id: _Optional[str] = ..., sequence: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., records: _Optional[_Iterable[bytes]] = ..., signing_key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: RecordBatch
    def __init__(self, batch: _Optional[_Union[RecordBatch, _Mapping]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("batch_id", "offset", "duplicate", "durable_time")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DURABLE_TIME_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    offset: int
    duplicate: bool
    durable_time: _timestamp_pb2.Timestamp
    def __init__(self, batch_id: _Optional[str] = ..., offset: _Optional[int] = ..., duplicate: _Optional[bool] = ..., durable_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("open", "ack")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    open: SubscriptionOpen
    ack: DeliveryAck
    def __init__(self, open: _Optional[_Union[SubscriptionOpen, _Mapping]] = ..., ack: _Optional[_Union[DeliveryAck, _Mapping]] = ...) -> None: ...

class SubscriptionOpen(_message.Message):
    __slots__ = ("resource", "subscription", "max_in_flight", "start_after_offset", "start_time")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_OFFSET_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    resource: str
    subscription: str
    max_in_flight: int
    start_after_offset: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, resource: _Optional[str] = ..., subscription: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., start_after_offset: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeliveryAck(_message.Message):
    __slots__ = ("offset", "dead_lettered_records")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    offset: int
    dead_lettered_records: int
    def __init__(self, offset: _Optional[int] = ..., dead_lettered_records: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: DeliveredBatch
    def __init__(self, batch: _Optional[_Union[DeliveredBatch, _Mapping]] = ...) -> None: ...

class DeliveredBatch(_message.Message):
    __slots__ = ("offset", "resource", "batch_id", "publisher_system", "sequence", "create_time", "schema_fingerprint", "schema", "records", "provider_digest", "provider_signature", "provider_key_id", "grant_id", "subscriber_system", "gateway_key_id", "gateway_signature", "delivery_attempt")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    resource: str
    batch_id: str
    publisher_system: str
    sequence: int
    create_time: _timestamp_pb2.Timestamp
    schema_fingerprint: bytes
    schema: str
    records: _containers.RepeatedScalarFieldContainer[bytes]
    provider_digest: bytes
    provider_signature: bytes
    provider_key_id: str
    grant_id: str
    subscriber_system: str
    gateway_key_id: str
    gateway_signature: bytes
    delivery_attempt: int
    def __init__(self, offset: _Optional[int] = ..., resource: _Optional[str] = ..., batch_id: _Optional[str] = ..., publisher_system: _Optional[str] = ..., sequence: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., schema_fingerprint: _Optional[bytes] = ..., schema: _Optional[str] = ..., records: _Optional[_Iterable[bytes]] = ..., provider_digest: _Optional[bytes] = ..., provider_signature: _Optional[bytes] = ..., provider_key_id: _Optional[str] = ..., grant_id: _Optional[str] = ..., subscriber_system: _Optional[str] = ..., gateway_key_id: _Optional[str] = ..., gateway_signature: _Optional[bytes] = ..., delivery_attempt: _Optional[int] = ...) -> None: ...

class GetGatewayKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetGatewayKeyResponse(_message.Message):
    __slots__ = ("key_id", "public_key")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key: bytes
    def __init__(self, key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...
