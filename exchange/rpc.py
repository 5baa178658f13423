"""The one place where callers are authenticated and refusals become gRPC statuses.

Servicer methods are wrapped with :func:`unary` or :func:`streaming`: the wrapper
resolves the caller's :class:`~catalog.credentials.Identity`, checks the role, and turns
a :class:`~catalog.errors.LijiaoError` into a status carrying a ``google.rpc.ErrorInfo``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from catalog.credentials import Identity, authenticate_token
from catalog.errors import (
    ERROR_DOMAIN,
    InvalidArgument,
    LijiaoError,
    PermissionDenied,
    Reason,
    Unauthenticated,
)
from catalog.models import Role
from exchange import metrics

log = logging.getLogger("lijiao.rpc")

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

_CACHE_SECONDS = 5.0


class Authenticator:
    """Resolves the bearer token of a call to an identity, with a short cache."""

    def __init__(self, sessions: Any) -> None:
        self._sessions = sessions
        self._cache: dict[bytes, tuple[float, Identity]] = {}

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity:
        """Returns the caller's identity.

        Raises:
            Unauthenticated: No bearer token, or one the catalog does not know.
        """
        token = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer":
                    token = ""
        if not token:
            raise Unauthenticated(
                Reason.UNAUTHENTICATED,
                "no credential: send 'authorization: Bearer <token>' (see lijiao tokens issue)",
            )
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._sessions() as session:
            identity = authenticate_token(session, token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + _CACHE_SECONDS, identity)
        return identity


def status_of(error: LijiaoError) -> grpc.Status:
    """Builds the gRPC status of a refusal, with its ErrorInfo detail."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(
        status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    )


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: LijiaoError) -> None:
    """Counts a refusal and ends the call with its status."""
    metrics.REJECTIONS.labels(error.reason).inc()
    log.info("refused %s: %s", error.reason, error.message)
    status = status_of(error)
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _abort_internal(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    """Ends a call that failed for a reason of the gateway's own, without leaking it."""
    incident = uuid.uuid4().hex[:12]
    log.exception("internal error %s", incident)
    metrics.REJECTIONS.labels("INTERNAL").inc()
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error {incident}; the gateway log has the details"
    )


def _check_role(identity: Identity, roles: tuple[Role, ...]) -> None:
    if roles and identity.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise PermissionDenied(
            Reason.ROLE_NOT_ALLOWED,
            f"{identity.name} has role {identity.role.value}; this call needs {allowed}",
        )


def unary(
    *roles: Role,
) -> Callable[
    [Callable[[S, Req, Identity, Any], Awaitable[Resp]]],
    Callable[[S, Req, Any], Awaitable[Resp]],
]:
    """Wraps a unary servicer method ``(self, request, identity, context)``."""

    def wrap(
        fn: Callable[[S, Req, Identity, Any], Awaitable[Resp]],
    ) -> Callable[[S, Req, Any], Awaitable[Resp]]:
        @functools.wraps(fn)
        async def handler(self: S, request: Req, context: Any) -> Resp:
            try:
                identity = self.auth.identify(context)  # type: ignore[attr-defined]
                _check_role(identity, roles)
                return await fn(self, request, identity, context)
            except LijiaoError as error:
                await abort(context, error)
                raise AssertionError("abort returned") from error
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await _abort_internal(context, error)
                raise AssertionError("abort returned") from error

        return handler

    return wrap


def streaming(
    *roles: Role,
) -> Callable[
    [Callable[[S, Any, Identity, Any], AsyncIterator[Resp]]],
    Callable[[S, Any, Any], AsyncIterator[Resp]],
]:
    """Wraps a response-streaming servicer method ``(self, requests, identity, context)``."""

    def wrap(
        fn: Callable[[S, Any, Identity, Any], AsyncIterator[Resp]],
    ) -> Callable[[S, Any, Any], AsyncIterator[Resp]]:
        @functools.wraps(fn)
        async def handler(self: S, requests: Any, context: Any) -> AsyncIterator[Resp]:
            try:
                identity = self.auth.identify(context)  # type: ignore[attr-defined]
                _check_role(identity, roles)
                async for response in fn(self, requests, identity, context):
                    yield response
            except LijiaoError as error:
                await abort(context, error)
            except grpc.aio.AbortError:
                raise
            except DecodeError:
                await abort(context, _malformed())
            except Exception as error:
                await _abort_internal(context, error)

        return handler

    return wrap


def _malformed() -> InvalidArgument:
    return InvalidArgument(
        Reason.MALFORMED_MESSAGE, "the request is not a valid protobuf message of this call"
    )


_MALFORMED = object()


class MalformedRequests(grpc.aio.ServerInterceptor):
    """Answers a unary request that does not parse with INVALID_ARGUMENT, not UNKNOWN.

    gRPC parses unary requests before the servicer runs; streamed requests are parsed
    inside it, where :func:`streaming` catches the same failure.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        behaviour = handler.unary_unary

        def lenient(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError:
                return _MALFORMED

        async def guarded(request: Any, context: Any) -> Any:
            if request is _MALFORMED:
                await abort(context, _malformed())
            return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=lenient,
            response_serializer=handler.response_serializer,
        )
