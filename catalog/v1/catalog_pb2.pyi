import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdministrativeLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADMINISTRATIVE_LEVEL_UNSPECIFIED: _ClassVar[AdministrativeLevel]
    ADMINISTRATIVE_LEVEL_CITY: _ClassVar[AdministrativeLevel]
    ADMINISTRATIVE_LEVEL_DISTRICT: _ClassVar[AdministrativeLevel]
    ADMINISTRATIVE_LEVEL_TOWN: _ClassVar[AdministrativeLevel]

class SystemStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYSTEM_STATUS_UNSPECIFIED: _ClassVar[SystemStatus]
    SYSTEM_STATUS_ACTIVE: _ClassVar[SystemStatus]
    SYSTEM_STATUS_SUSPENDED: _ClassVar[SystemStatus]

class SharingType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHARING_TYPE_UNSPECIFIED: _ClassVar[SharingType]
    SHARING_TYPE_UNCONDITIONAL: _ClassVar[SharingType]
    SHARING_TYPE_CONDITIONAL: _ClassVar[SharingType]
    SHARING_TYPE_NOT_SHARED: _ClassVar[SharingType]

class Classification(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLASSIFICATION_UNSPECIFIED: _ClassVar[Classification]
    CLASSIFICATION_GENERAL: _ClassVar[Classification]
    CLASSIFICATION_IMPORTANT: _ClassVar[Classification]
    CLASSIFICATION_CORE: _ClassVar[Classification]

class CompatibilityMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPATIBILITY_MODE_UNSPECIFIED: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_BACKWARD: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_BACKWARD_TRANSITIVE: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FORWARD: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FORWARD_TRANSITIVE: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FULL: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FULL_TRANSITIVE: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_NONE: _ClassVar[CompatibilityMode]

class Sensitivity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSITIVITY_UNSPECIFIED: _ClassVar[Sensitivity]
    SENSITIVITY_NONE: _ClassVar[Sensitivity]
    SENSITIVITY_ID_NUMBER: _ClassVar[Sensitivity]
    SENSITIVITY_NAME: _ClassVar[Sensitivity]
    SENSITIVITY_PHONE: _ClassVar[Sensitivity]
    SENSITIVITY_ADDRESS: _ClassVar[Sensitivity]
    SENSITIVITY_PERSONAL: _ClassVar[Sensitivity]

class GrantStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_STATUS_UNSPECIFIED: _ClassVar[GrantStatus]
    GRANT_STATUS_ACTIVE: _ClassVar[GrantStatus]
    GRANT_STATUS_EXPIRED: _ClassVar[GrantStatus]
    GRANT_STATUS_REVOKED: _ClassVar[GrantStatus]

class GrantOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_ORIGIN_UNSPECIFIED: _ClassVar[GrantOrigin]
    GRANT_ORIGIN_ADMINISTRATOR: _ClassVar[GrantOrigin]
    GRANT_ORIGIN_ACCESS_REQUEST: _ClassVar[GrantOrigin]
    GRANT_ORIGIN_BACKFLOW: _ClassVar[GrantOrigin]
ADMINISTRATIVE_LEVEL_UNSPECIFIED: AdministrativeLevel
ADMINISTRATIVE_LEVEL_CITY: AdministrativeLevel
ADMINISTRATIVE_LEVEL_DISTRICT: AdministrativeLevel
ADMINISTRATIVE_LEVEL_TOWN: AdministrativeLevel
SYSTEM_STATUS_UNSPECIFIED: SystemStatus
SYSTEM_STATUS_ACTIVE: SystemStatus
SYSTEM_STATUS_SUSPENDED: SystemStatus
SHARING_TYPE_UNSPECIFIED: SharingType
SHARING_TYPE_UNCONDITIONAL: SharingType
SHARING_TYPE_CONDITIONAL: SharingType
SHARING_TYPE_NOT_SHARED: SharingType
CLASSIFICATION_UNSPECIFIED: Classification
CLASSIFICATION_GENERAL: Classification
CLASSIFICATION_IMPORTANT: Classification
CLASSIFICATION_CORE: Classification
COMPATIBILITY_MODE_UNSPECIFIED: CompatibilityMode
COMPATIBILITY_MODE_BACKWARD: CompatibilityMode
COMPATIBILITY_MODE_BACKWARD_TRANSITIVE: CompatibilityMode
COMPATIBILITY_MODE_FORWARD: CompatibilityMode
COMPATIBILITY_MODE_FORWARD_TRANSITIVE: CompatibilityMode
COMPATIBILITY_MODE_FULL: CompatibilityMode
COMPATIBILITY_MODE_FULL_TRANSITIVE: CompatibilityMode
COMPATIBILITY_MODE_NONE: CompatibilityMode
SENSITIVITY_UNSPECIFIED: Sensitivity
SENSITIVITY_NONE: Sensitivity
SENSITIVITY_ID_NUMBER: Sensitivity
SENSITIVITY_NAME: Sensitivity
SENSITIVITY_PHONE: Sensitivity
SENSITIVITY_ADDRESS: Sensitivity
SENSITIVITY_PERSONAL: Sensitivity
GRANT_STATUS_UNSPECIFIED: GrantStatus
GRANT_STATUS_ACTIVE: GrantStatus
GRANT_STATUS_EXPIRED: GrantStatus
GRANT_STATUS_REVOKED: GrantStatus
GRANT_ORIGIN_UNSPECIFIED: GrantOrigin
GRANT_ORIGIN_ADMINISTRATOR: GrantOrigin
GRANT_ORIGIN_ACCESS_REQUEST: GrantOrigin
GRANT_ORIGIN_BACKFLOW: GrantOrigin

class Department(_message.Message):
    __slots__ = ("code", "name", "level", "region_code", "create_time")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    level: AdministrativeLevel
    region_code: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., level: _Optional[_Union[AdministrativeLevel, str]] = ..., region_code: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SigningKey(_message.Message):
    __slots__ = ("key_id", "public_key", "create_time", "revoke_time", "revoke_reason", "compromised")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPROMISED_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key: bytes
    create_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    revoke_reason: str
    compromised: bool
    def __init__(self, key_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_reason: _Optional[str] = ..., compromised: _Optional[bool] = ...) -> None: ...

class System(_message.Message):
    __slots__ = ("code", "name", "department", "status", "signing_keys", "create_time")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEYS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    department: str
    status: SystemStatus
    signing_keys: _containers.RepeatedCompositeFieldContainer[SigningKey]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., department: _Optional[str] = ..., status: _Optional[_Union[SystemStatus, str]] = ..., signing_keys: _Optional[_Iterable[_Union[SigningKey, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FieldSpec(_message.Message):
    __slots__ = ("name", "description", "sensitivity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    sensitivity: Sensitivity
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., sensitivity: _Optional[_Union[Sensitivity, str]] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("code", "name", "owner_department", "summary", "format", "sharing_type", "sharing_conditions", "classification", "update_cycle", "key_fields", "region_field", "fields", "compatibility", "latest_schema_version", "create_time", "backflow_eligible")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHARING_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHARING_CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CYCLE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELDS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    LATEST_SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    BACKFLOW_ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    owner_department: str
    summary: str
    format: str
    sharing_type: SharingType
    sharing_conditions: str
    classification: Classification
    update_cycle: str
    key_fields: _containers.RepeatedScalarFieldContainer[str]
    region_field: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldSpec]
    compatibility: CompatibilityMode
    latest_schema_version: int
    create_time: _timestamp_pb2.Timestamp
    backflow_eligible: bool
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., owner_department: _Optional[str] = ..., summary: _Optional[str] = ..., format: _Optional[str] = ..., sharing_type: _Optional[_Union[SharingType, str]] = ..., sharing_conditions: _Optional[str] = ..., classification: _Optional[_Union[Classification, str]] = ..., update_cycle: _Optional[str] = ..., key_fields: _Optional[_Iterable[str]] = ..., region_field: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldSpec, _Mapping]]] = ..., compatibility: _Optional[_Union[CompatibilityMode, str]] = ..., latest_schema_version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backflow_eligible: _Optional[bool] = ...) -> None: ...

class Schema(_message.Message):
    __slots__ = ("resource", "version", "definition", "canonical_form", "fingerprint", "create_time")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_FORM_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    resource: str
    version: int
    definition: str
    canonical_form: str
    fingerprint: bytes
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, resource: _Optional[str] = ..., version: _Optional[int] = ..., definition: _Optional[str] = ..., canonical_form: _Optional[str] = ..., fingerprint: _Optional[bytes] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RowFilter(_message.Message):
    __slots__ = ("region_code",)
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    region_code: str
    def __init__(self, region_code: _Optional[str] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("id", "resource", "grantee_system", "fields", "row_filter", "expire_time", "origin", "status", "creator", "create_time", "clear_fields", "request_id", "revoke_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    resource: str
    grantee_system: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    row_filter: RowFilter
    expire_time: _timestamp_pb2.Timestamp
    origin: GrantOrigin
    status: GrantStatus
    creator: str
    create_time: _timestamp_pb2.Timestamp
    clear_fields: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    revoke_reason: str
    def __init__(self, id: _Optional[str] = ..., resource: _Optional[str] = ..., grantee_system: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., row_filter: _Optional[_Union[RowFilter, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., origin: _Optional[_Union[GrantOrigin, str]] = ..., status: _Optional[_Union[GrantStatus, str]] = ..., creator: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clear_fields: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., revoke_reason: _Optional[str] = ...) -> None: ...

class CreateDepartmentRequest(_message.Message):
    __slots__ = ("department",)
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    department: Department
    def __init__(self, department: _Optional[_Union[Department, _Mapping]] = ...) -> None: ...

class CreateDepartmentResponse(_message.Message):
    __slots__ = ("department",)
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    department: Department
    def __init__(self, department: _Optional[_Union[Department, _Mapping]] = ...) -> None: ...

class GetDepartmentRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class GetDepartmentResponse(_message.Message):
    __slots__ = ("department",)
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    department: Department
    def __init__(self, department: _Optional[_Union[Department, _Mapping]] = ...) -> None: ...

class ListDepartmentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDepartmentsResponse(_message.Message):
    __slots__ = ("departments", "next_page_token")
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    departments: _containers.RepeatedCompositeFieldContainer[Department]
    next_page_token: str
    def __init__(self, departments: _Optional[_Iterable[_Union[Department, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateSystemRequest(_message.Message):
    __slots__ = ("system",)
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    system: System
    def __init__(self, system: _Optional[_Union[System, _Mapping]] = ...) -> None: ...

class CreateSystemResponse(_message.Message):
    __slots__ = ("system",)
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    system: System
    def __init__(self, system: _Optional[_Union[System, _Mapping]] = ...) -> None: ...

class GetSystemRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class GetSystemResponse(_message.Message):
    __slots__ = ("system",)
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    system: System
    def __init__(self, system: _Optional[_Union[System, _Mapping]] = ...) -> None: ...

class ListSystemsRequest(_message.Message):
    __slots__ = ("department", "page_size", "page_token")
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    department: str
    page_size: int
    page_token: str
    def __init__(self, department: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSystemsResponse(_message.Message):
    __slots__ = ("systems", "next_page_token")
    SYSTEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    systems: _containers.RepeatedCompositeFieldContainer[System]
    next_page_token: str
    def __init__(self, systems: _Optional[_Iterable[_Union[System, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateResourceRequest(_message.Message):
    __slots__ = ("resource", "schema")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    schema: str
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., schema: _Optional[str] = ...) -> None: ...

class CreateResourceResponse(_message.Message):
    __slots__ = ("resource", "schema")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    schema: Schema
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ..., schema: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class GetResourceRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class GetResourceResponse(_message.Message):
    __slots__ = ("resource",)
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ...) -> None: ...

class ListResourcesRequest(_message.Message):
    __slots__ = ("owner_department", "page_size", "page_token")
    OWNER_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner_department: str
    page_size: int
    page_token: str
    def __init__(self, owner_department: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResourcesResponse(_message.Message):
    __slots__ = ("resources", "next_page_token")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    next_page_token: str
    def __init__(self, resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateSchemaRequest(_message.Message):
    __slots__ = ("resource", "definition", "fields")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    resource: str
    definition: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldSpec]
    def __init__(self, resource: _Optional[str] = ..., definition: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldSpec, _Mapping]]] = ...) -> None: ...

class CreateSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: Schema
    def __init__(self, schema: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ("resource", "version", "fingerprint")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    resource: str
    version: int
    fingerprint: bytes
    def __init__(self, resource: _Optional[str] = ..., version: _Optional[int] = ..., fingerprint: _Optional[bytes] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: Schema
    def __init__(self, schema: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class ListSchemasRequest(_message.Message):
    __slots__ = ("resource", "page_size", "page_token")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resource: str
    page_size: int
    page_token: str
    def __init__(self, resource: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchemasResponse(_message.Message):
    __slots__ = ("schemas", "next_page_token")
    SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schemas: _containers.RepeatedCompositeFieldContainer[Schema]
    next_page_token: str
    def __init__(self, schemas: _Optional[_Iterable[_Union[Schema, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateGrantRequest(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: Grant
    def __init__(self, grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class CreateGrantResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: Grant
    def __init__(self, grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class GetGrantRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetGrantResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: Grant
    def __init__(self, grant: _Optional[_Union[Grant, _Mapping]] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ("resource", "grantee_system", "page_size", "page_token")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resource: str
    grantee_system: str
    page_size: int
    page_token: str
    def __init__(self, resource: _Optional[str] = ..., grantee_system: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants", "next_page_token")
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[Grant]
    next_page_token: str
    def __init__(self, grants: _Optional[_Iterable[_Union[Grant, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AddSigningKeyRequest(_message.Message):
    __slots__ = ("system", "public_key")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    system: str
    public_key: bytes
    def __init__(self, system: _Optional[str] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class AddSigningKeyResponse(_message.Message):
    __slots__ = ("system",)
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    system: System
    def __init__(self, system: _Optional[_Union[System, _Mapping]] = ...) -> None: ...

class RevokeSigningKeyRequest(_message.Message):
    __slots__ = ("system", "key_id", "revoke_time", "reason", "compromised")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMPROMISED_FIELD_NUMBER: _ClassVar[int]
    system: str
    key_id: str
    revoke_time: _timestamp_pb2.Timestamp
    reason: str
    compromised: bool
    def __init__(self, system: _Optional[str] = ..., key_id: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., compromised: _Optional[bool] = ...) -> None: ...

class RevokeSigningKeyResponse(_message.Message):
    __slots__ = ("system",)
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    system: System
    def __init__(self, system: _Optional[_Union[System, _Mapping]] = ...) -> None: ...
