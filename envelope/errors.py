"""Domain errors: each carries a status code and a machine-readable reason.

The codes are gRPC's, by name and number, without importing gRPC: the gateway turns an
error into a gRPC status with a ``google.rpc.ErrorInfo`` detail in one place
(``exchange.gate.rpc``), and adapters raise the same errors locally. The reasons below are
the stable, documented vocabulary.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Code(enum.Enum):
    """The status codes refusals use (gRPC's names and numbers)."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


ERROR_DOMAIN = "lijiao.gov"


class LijiaoError(Exception):
    """A refusal with a status code, a reason and a message that says what to fix."""

    code: Code = Code.INVALID_ARGUMENT

    def __init__(
        self,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        code: Code | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after  # seconds; sent as google.rpc.RetryInfo
        if code is not None:
            self.code = code


class InvalidArgument(LijiaoError):
    """The request itself is malformed."""

    code = Code.INVALID_ARGUMENT


class NotFound(LijiaoError):
    """A named thing does not exist."""

    code = Code.NOT_FOUND


class AlreadyExists(LijiaoError):
    """A thing with that identity exists already."""

    code = Code.ALREADY_EXISTS


class FailedPrecondition(LijiaoError):
    """The request is well-formed but the catalog's state does not allow it."""

    code = Code.FAILED_PRECONDITION


class PermissionDenied(LijiaoError):
    """The caller is known but not allowed to do this."""

    code = Code.PERMISSION_DENIED


class Unauthenticated(LijiaoError):
    """The caller presented no valid credential."""

    code = Code.UNAUTHENTICATED


class ResourceExhausted(LijiaoError):
    """A size or rate limit was exceeded."""

    code = Code.RESOURCE_EXHAUSTED


class Reason:
    """Stable ErrorInfo reasons (documented in docs/errors.md)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"
    INVALID_FIELD = "INVALID_FIELD"
    UNKNOWN_DEPARTMENT = "UNKNOWN_DEPARTMENT"
    UNKNOWN_SYSTEM = "UNKNOWN_SYSTEM"
    UNKNOWN_RESOURCE = "UNKNOWN_RESOURCE"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    UNKNOWN_GRANT = "UNKNOWN_GRANT"
    UNKNOWN_SIGNING_KEY = "UNKNOWN_SIGNING_KEY"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INVALID_SCHEMA = "INVALID_SCHEMA"
    SCHEMA_INCOMPATIBLE = "SCHEMA_INCOMPATIBLE"
    SYSTEM_SUSPENDED = "SYSTEM_SUSPENDED"
    NOT_OWNER = "NOT_OWNER"
    NO_GRANT = "NO_GRANT"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    RECORD_DECODE_FAILED = "RECORD_DECODE_FAILED"
    BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
    RECORD_TOO_LARGE = "RECORD_TOO_LARGE"
    BATCH_ID_REUSED = "BATCH_ID_REUSED"
    INVALID_BATCH = "INVALID_BATCH"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    INVALID_ACK = "INVALID_ACK"
    NOT_SHARED = "NOT_SHARED"
    CORE_DATA = "CORE_DATA"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105 (a reason, not a secret)
    OWN_RESOURCE = "OWN_RESOURCE"
    WRONG_STATE = "WRONG_STATE"
    SELF_DECISION = "SELF_DECISION"
    REASON_REQUIRED = "REASON_REQUIRED"
    WIDER_THAN_REQUESTED = "WIDER_THAN_REQUESTED"
    CONCURRENT_DECISION = "CONCURRENT_DECISION"
    NOT_BACKFLOW_ELIGIBLE = "NOT_BACKFLOW_ELIGIBLE"
    UNKNOWN_REQUEST = "UNKNOWN_REQUEST"
    UNKNOWN_CORRECTION = "UNKNOWN_CORRECTION"
    NOT_ENROLLED = "NOT_ENROLLED"
    UNKNOWN_CERTIFICATE = "UNKNOWN_CERTIFICATE"
    CERTIFICATE_REVOKED = "CERTIFICATE_REVOKED"
    CERTIFICATE_REQUIRED = "CERTIFICATE_REQUIRED"
    KEY_REVOKED = "KEY_REVOKED"
    CLOCK_SKEW = "CLOCK_SKEW"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    LOG_UNAVAILABLE = "LOG_UNAVAILABLE"


class Unavailable(LijiaoError):
    """A store the gateway depends on does not answer; the same call can be retried."""

    code = Code.UNAVAILABLE


class Aborted(LijiaoError):
    """A concurrent change won; reload and try again."""

    code = Code.ABORTED
