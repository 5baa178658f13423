"""Errors a department's side sees, with the gateway's ErrorInfo reason."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)


def error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """Returns the ErrorInfo reason and metadata of a failed call ("" when none)."""
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        return "", {}
    if status is None:
        return "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return "", {}


def retry_delay(error: grpc.RpcError) -> float | None:
    """Seconds the gateway asks to wait before trying again (``google.rpc.RetryInfo``),
    or None when the refusal carries no such hint."""
    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
        return None
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        return None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            return float(retry.retry_delay.ToNanoseconds()) / 1e9
    return None


class GatewayRefusal(Exception):
    """The gateway refused a request, or could not be reached within the retry budget.

    ``reason`` is empty and ``code`` retryable (e.g. UNAVAILABLE) in the second case;
    otherwise sending the same request again will not help.

    Attributes:
        code: gRPC status code.
        reason: ErrorInfo reason, e.g. "BAD_SIGNATURE".
        metadata: ErrorInfo metadata, e.g. {"record_index": "3"}.
        message: What the gateway said to fix.
    """

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.code = error.code()
        self.reason, self.metadata = error_info(error)
        self.message = error.details() or ""
        super().__init__(f"{self.code.name} {self.reason}: {self.message}")


class VerificationError(Exception):
    """A delivered batch failed verification; it is not acknowledged."""
