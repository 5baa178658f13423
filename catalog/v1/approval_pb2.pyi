import datetime

from catalog.v1 import catalog_pb2 as _catalog_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_KIND_UNSPECIFIED: _ClassVar[RequestKind]
    REQUEST_KIND_ACCESS: _ClassVar[RequestKind]
    REQUEST_KIND_BACKFLOW: _ClassVar[RequestKind]

class RequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_STATE_UNSPECIFIED: _ClassVar[RequestState]
    REQUEST_STATE_SUBMITTED: _ClassVar[RequestState]
    REQUEST_STATE_UNDER_REVIEW: _ClassVar[RequestState]
    REQUEST_STATE_PENDING_PROVIDER: _ClassVar[RequestState]
    REQUEST_STATE_APPROVED: _ClassVar[RequestState]
    REQUEST_STATE_REJECTED: _ClassVar[RequestState]

class CorrectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CORRECTION_STATE_UNSPECIFIED: _ClassVar[CorrectionState]
    CORRECTION_STATE_OPEN: _ClassVar[CorrectionState]
    CORRECTION_STATE_ANSWERED: _ClassVar[CorrectionState]
REQUEST_KIND_UNSPECIFIED: RequestKind
REQUEST_KIND_ACCESS: RequestKind
REQUEST_KIND_BACKFLOW: RequestKind
REQUEST_STATE_UNSPECIFIED: RequestState
REQUEST_STATE_SUBMITTED: RequestState
REQUEST_STATE_UNDER_REVIEW: RequestState
REQUEST_STATE_PENDING_PROVIDER: RequestState
REQUEST_STATE_APPROVED: RequestState
REQUEST_STATE_REJECTED: RequestState
CORRECTION_STATE_UNSPECIFIED: CorrectionState
CORRECTION_STATE_OPEN: CorrectionState
CORRECTION_STATE_ANSWERED: CorrectionState

class Transition(_message.Message):
    __slots__ = ("from_state", "to_state", "actor", "reason", "time")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    from_state: RequestState
    to_state: RequestState
    actor: str
    reason: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, from_state: _Optional[_Union[RequestState, str]] = ..., to_state: _Optional[_Union[RequestState, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AccessRequest(_message.Message):
    __slots__ = ("id", "kind", "state", "resource", "owner_department", "requesting_department", "requesting_system", "requester", "fields", "purpose", "legal_basis", "duration_days", "row_filter", "due_time", "overdue", "grant_id", "decision_reason", "history", "create_time", "approved_duration_days")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    OWNER_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_REASON_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    APPROVED_DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: RequestKind
    state: RequestState
    resource: str
    owner_department: str
    requesting_department: str
    requesting_system: str
    requester: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    legal_basis: str
    duration_days: int
    row_filter: _catalog_pb2.RowFilter
    due_time: _timestamp_pb2.Timestamp
    overdue: bool
    grant_id: str
    decision_reason: str
    history: _containers.RepeatedCompositeFieldContainer[Transition]
    create_time: _timestamp_pb2.Timestamp
    approved_duration_days: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[RequestKind, str]] = ..., state: _Optional[_Union[RequestState, str]] = ..., resource: _Optional[str] = ..., owner_department: _Optional[str] = ..., requesting_department: _Optional[str] = ..., requesting_system: _Optional[str] = ..., requester: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., duration_days: _Optional[int] = ..., row_filter: _Optional[_Union[_catalog_pb2.RowFilter, _Mapping]] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overdue: _Optional[bool] = ..., grant_id: _Optional[str] = ..., decision_reason: _Optional[str] = ..., history: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approved_duration_days: _Optional[int] = ...) -> None: ...

class SubmitAccessRequestRequest(_message.Message):
    __slots__ = ("resource", "requesting_system", "fields", "purpose", "legal_basis", "duration_days", "row_filter")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    resource: str
    requesting_system: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    legal_basis: str
    duration_days: int
    row_filter: _catalog_pb2.RowFilter
    def __init__(self, resource: _Optional[str] = ..., requesting_system: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., duration_days: _Optional[int] = ..., row_filter: _Optional[_Union[_catalog_pb2.RowFilter, _Mapping]] = ...) -> None: ...

class SubmitAccessRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: AccessRequest
    def __init__(self, request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class SubmitBackflowRequestRequest(_message.Message):
    __slots__ = ("resource", "requesting_system", "fields", "purpose", "legal_basis", "duration_days")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    resource: str
    requesting_system: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    legal_basis: str
    duration_days: int
    def __init__(self, resource: _Optional[str] = ..., requesting_system: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., duration_days: _Optional[int] = ...) -> None: ...

class SubmitBackflowRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: AccessRequest
    def __init__(self, request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class GetAccessRequestRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetAccessRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: AccessRequest
    def __init__(self, request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class ListAccessRequestsRequest(_message.Message):
    __slots__ = ("state", "resource", "requesting_department", "owner_department", "overdue_only", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    OWNER_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: RequestState
    resource: str
    requesting_department: str
    owner_department: str
    overdue_only: bool
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[RequestState, str]] = ..., resource: _Optional[str] = ..., requesting_department: _Optional[str] = ..., owner_department: _Optional[str] = ..., overdue_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccessRequestsResponse(_message.Message):
    __slots__ = ("requests", "next_page_token")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[AccessRequest]
    next_page_token: str
    def __init__(self, requests: _Optional[_Iterable[_Union[AccessRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReviewAccessRequestRequest(_message.Message):
    __slots__ = ("id", "passed", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    passed: bool
    reason: str
    def __init__(self, id: _Optional[str] = ..., passed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ReviewAccessRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: AccessRequest
    def __init__(self, request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class ApproveAccessRequestRequest(_message.Message):
    __slots__ = ("id", "fields", "duration_days", "clear_fields", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_DAYS_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    duration_days: int
    clear_fields: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, id: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., duration_days: _Optional[int] = ..., clear_fields: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveAccessRequestResponse(_message.Message):
    __slots__ = ("request", "grant")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    request: AccessRequest
    grant: _catalog_pb2.Grant
    def __init__(self, request: _Optional[_Union[AccessRequest, _Mapping]] = ..., grant: _Optional[_Union[_catalog_pb2.Grant, _Mapping]] = ...) -> None: ...

class RejectAccessRequestRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectAccessRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: AccessRequest
    def __init__(self, request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeGrantResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: _catalog_pb2.Grant
    def __init__(self, grant: _Optional[_Union[_catalog_pb2.Grant, _Mapping]] = ...) -> None: ...

class SetBackflowEligibilityRequest(_message.Message):
    __slots__ = ("resource", "eligible")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    resource: str
    eligible: bool
    def __init__(self, resource: _Optional[str] = ..., eligible: _Optional[bool] = ...) -> None: ...

class SetBackflowEligibilityResponse(_message.Message):
    __slots__ = ("resource",)
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    resource: _catalog_pb2.Resource
    def __init__(self, resource: _Optional[_Union[_catalog_pb2.Resource, _Mapping]] = ...) -> None: ...

class BackflowEnrolment(_message.Message):
    __slots__ = ("id", "department", "region_code", "enrolled_by", "enroll_time", "reason", "withdrawn_by", "withdraw_time", "withdraw_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_BY_FIELD_NUMBER: _ClassVar[int]
    ENROLL_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_BY_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_TIME_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    department: str
    region_code: str
    enrolled_by: str
    enroll_time: _timestamp_pb2.Timestamp
    reason: str
    withdrawn_by: str
    withdraw_time: _timestamp_pb2.Timestamp
    withdraw_reason: str
    def __init__(self, id: _Optional[str] = ..., department: _Optional[str] = ..., region_code: _Optional[str] = ..., enrolled_by: _Optional[str] = ..., enroll_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., withdrawn_by: _Optional[str] = ..., withdraw_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., withdraw_reason: _Optional[str] = ...) -> None: ...

class EnrolBackflowRequest(_message.Message):
    __slots__ = ("department", "reason")
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    department: str
    reason: str
    def __init__(self, department: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EnrolBackflowResponse(_message.Message):
    __slots__ = ("enrolment",)
    ENROLMENT_FIELD_NUMBER: _ClassVar[int]
    enrolment: BackflowEnrolment
    def __init__(self, enrolment: _Optional[_Union[BackflowEnrolment, _Mapping]] = ...) -> None: ...

class WithdrawBackflowRequest(_message.Message):
    __slots__ = ("department", "reason")
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    department: str
    reason: str
    def __init__(self, department: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawBackflowResponse(_message.Message):
    __slots__ = ("enrolment",)
    ENROLMENT_FIELD_NUMBER: _ClassVar[int]
    enrolment: BackflowEnrolment
    def __init__(self, enrolment: _Optional[_Union[BackflowEnrolment, _Mapping]] = ...) -> None: ...

class ListBackflowEnrolmentsRequest(_message.Message):
    __slots__ = ("include_withdrawn",)
    INCLUDE_WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    include_withdrawn: bool
    def __init__(self, include_withdrawn: _Optional[bool] = ...) -> None: ...

class ListBackflowEnrolmentsResponse(_message.Message):
    __slots__ = ("enrolments",)
    ENROLMENTS_FIELD_NUMBER: _ClassVar[int]
    enrolments: _containers.RepeatedCompositeFieldContainer[BackflowEnrolment]
    def __init__(self, enrolments: _Optional[_Iterable[_Union[BackflowEnrolment, _Mapping]]] = ...) -> None: ...

class Correction(_message.Message):
    __slots__ = ("id", "resource", "batch_id", "record_key", "comment", "flagged_by", "flagging_department", "state", "answer", "answered_by", "create_time", "answer_time")
    class RecordKeyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_KEY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_BY_FIELD_NUMBER: _ClassVar[int]
    FLAGGING_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ANSWER_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    resource: str
    batch_id: str
    record_key: _containers.ScalarMap[str, str]
    comment: str
    flagged_by: str
    flagging_department: str
    state: CorrectionState
    answer: str
    answered_by: str
    create_time: _timestamp_pb2.Timestamp
    answer_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., resource: _Optional[str] = ..., batch_id: _Optional[str] = ..., record_key: _Optional[_Mapping[str, str]] = ..., comment: _Optional[str] = ..., flagged_by: _Optional[str] = ..., flagging_department: _Optional[str] = ..., state: _Optional[_Union[CorrectionState, str]] = ..., answer: _Optional[str] = ..., answered_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., answer_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FlagRecordRequest(_message.Message):
    __slots__ = ("resource", "batch_id", "record_key", "comment")
    class RecordKeyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_KEY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    resource: str
    batch_id: str
    record_key: _containers.ScalarMap[str, str]
    comment: str
    def __init__(self, resource: _Optional[str] = ..., batch_id: _Optional[str] = ..., record_key: _Optional[_Mapping[str, str]] = ..., comment: _Optional[str] = ...) -> None: ...

class FlagRecordResponse(_message.Message):
    __slots__ = ("correction",)
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    correction: Correction
    def __init__(self, correction: _Optional[_Union[Correction, _Mapping]] = ...) -> None: ...

class AnswerCorrectionRequest(_message.Message):
    __slots__ = ("id", "answer")
    ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    id: str
    answer: str
    def __init__(self, id: _Optional[str] = ..., answer: _Optional[str] = ...) -> None: ...

class AnswerCorrectionResponse(_message.Message):
    __slots__ = ("correction",)
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    correction: Correction
    def __init__(self, correction: _Optional[_Union[Correction, _Mapping]] = ...) -> None: ...

class ListCorrectionsRequest(_message.Message):
    __slots__ = ("resource", "state", "page_size", "page_token")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resource: str
    state: CorrectionState
    page_size: int
    page_token: str
    def __init__(self, resource: _Optional[str] = ..., state: _Optional[_Union[CorrectionState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCorrectionsResponse(_message.Message):
    __slots__ = ("corrections", "next_page_token")
    CORRECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    corrections: _containers.RepeatedCompositeFieldContainer[Correction]
    next_page_token: str
    def __init__(self, corrections: _Optional[_Iterable[_Union[Correction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
