"""The one place where callers are authenticated and refusals become gRPC statuses.

Servicer methods are wrapped with :func:`unary` or :func:`streaming`: the wrapper
resolves the caller's :class:`~catalog.credentials.Identity`, checks the role, and turns
a :class:`~envelope.errors.LijiaoError` into a status carrying a ``google.rpc.ErrorInfo``.
Every refusal is also a DENIAL entry of the audit ledger, and catalog changes made
during a call are recorded as the caller's (catalog.ledger.ACTOR).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from cryptography import x509
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from catalog.credentials import Identity, authenticate_certificate, authenticate_token
from catalog.ledger import ACTOR, EntryKind, NewEntry
from catalog.models import Role
from envelope.errors import (
    ERROR_DOMAIN,
    InvalidArgument,
    LijiaoError,
    PermissionDenied,
    Reason,
    Unauthenticated,
)
from exchange import metrics
from exchange.audit.tasks import LedgerWriter
from exchange.gate import pki
from exchange.gate.limits import Limits
from exchange.gate.pki import RevocationList

log = logging.getLogger("lijiao.rpc")

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

_CACHE_SECONDS = 5.0
DENIAL_RECORD_SECONDS = 5.0
# Refusals a flood produces; each caller gets at most one ledger entry a second for them.
_FLOOD_REASONS = frozenset(
    {
        Reason.RATE_LIMITED,
        Reason.TOO_MANY_STREAMS,
        Reason.UNAUTHENTICATED,
        Reason.CERTIFICATE_REQUIRED,
        Reason.UNKNOWN_CERTIFICATE,
        Reason.CERTIFICATE_REVOKED,
        Reason.MALFORMED_MESSAGE,
        Reason.ROLE_NOT_ALLOWED,
    }
)


class Authenticator:
    """Resolves the caller of a call to an identity, with a short cache.

    With mutual TLS the caller is the verified client certificate: it must not be on
    the revocation list (re-read when its file changes), and its fingerprint must be a
    credential of a principal. Bearer tokens are accepted only when ``tokens`` is on
    (development mode, ``--insecure``). ``ledger`` (when given) receives an entry for
    every refused call.
    """

    def __init__(
        self,
        sessions: Any,
        ledger: LedgerWriter | None = None,
        *,
        tokens: bool = True,
        revocations: RevocationList | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._sessions = sessions
        self.ledger = ledger
        self.tokens = tokens
        self.revocations = revocations
        self.limits = limits or Limits.none()
        self._cache: dict[bytes, tuple[float, Identity]] = {}
        self._denials: dict[tuple[str, str], list[float]] = {}

    def denial_to_record(self, who: str, reason: str) -> int | None:
        """Throttles ledger entries of floods: at most one entry per second for each
        caller and reason among the reasons a flood produces. Returns how many denials
        the entry stands for (more than 1 after suppressed ones), or None to skip it."""
        if reason not in _FLOOD_REASONS:
            return 1
        now = time.monotonic()
        key = (who, reason)
        window = self._denials.get(key)
        if window is None or now - window[0] >= 1.0:
            if len(self._denials) > 10_000:
                self._denials.clear()
            self._denials[key] = [now, 0.0]
            return 1 + int(window[1]) if window is not None else 1
        window[1] += 1
        return None

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity:
        """Returns the caller's identity.

        Raises:
            Unauthenticated: No valid credential: an unknown or revoked certificate, no
                certificate where one is required, or a bad token.
        """
        pem = (context.auth_context() or {}).get("x509_pem_cert")
        if pem:
            return self._by_certificate(pem[0])
        if not self.tokens:
            raise Unauthenticated(
                Reason.CERTIFICATE_REQUIRED,
                "this gateway knows callers by their TLS client certificate: connect with "
                "--client-cert and --client-key (lijiao pki issue makes them)",
            )
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
        return self._cached(token.encode(), lambda session: authenticate_token(session, token))

    def _by_certificate(self, pem: bytes) -> Identity:
        certificate = x509.load_pem_x509_certificate(pem)
        fingerprint = pki.fingerprint(certificate)
        who = {"certificate": fingerprint[:16], "subject": certificate.subject.rfc4514_string()}
        if self.revocations is not None and self.revocations.is_revoked(certificate):
            raise Unauthenticated(
                Reason.CERTIFICATE_REVOKED,
                f"client certificate {certificate.serial_number:x} is revoked",
                who,
            )
        try:
            return self._cached(
                b"cert:" + pem, lambda session: authenticate_certificate(session, fingerprint)
            )
        except Unauthenticated as refusal:
            refusal.metadata.update(who)  # the denial entry then says whose certificate
            raise

    def _cached(self, secret: bytes, resolve: Callable[[Any], Identity]) -> Identity:
        key = hashlib.sha256(secret).digest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._sessions() as session:
            identity = resolve(session)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + _CACHE_SECONDS, identity)
        return identity


def status_of(error: LijiaoError) -> grpc.Status:
    """Builds the gRPC status of a refusal, with its ErrorInfo detail.

    The message and the ErrorInfo metadata are shortened as denial entries are: they may
    repeat the caller's input, and trailers beyond gRPC's metadata limit (8 KiB soft,
    16 KiB hard) would reach the client as RESOURCE_EXHAUSTED without any ErrorInfo.
    Bounded so, the whole status takes under 5 kB on the wire.
    """
    metadata: dict[str, str] = {}
    room = _STATUS_METADATA_BYTES
    for key, value in list(error.metadata.items())[:_DETAIL_ENTRIES]:
        key = _cut(key, _KEY_LIMIT, _KEY_LIMIT)
        value = _cut(value, _DETAIL_LIMIT, _STATUS_VALUE_BYTES)
        room -= len(key.encode()) + len(value.encode())
        if room < 0:
            break
        metadata[key] = value
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    if error.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(error.retry_after * 1e9))
        hint = any_pb2.Any()
        hint.Pack(retry)
        details.append(hint)
    message = _cut(error.message, _MESSAGE_LIMIT, _STATUS_MESSAGE_BYTES)
    return rpc_status.to_status(
        status_pb2.Status(code=error.code.value, message=message, details=details)
    )


_MESSAGE_LIMIT = 500
_DETAIL_LIMIT = 160
_KEY_LIMIT = 64
_DETAIL_ENTRIES = 16
# UTF-8 bytes of a status: grpc-message sends each non-ASCII byte as three characters.
_STATUS_MESSAGE_BYTES = 600
_STATUS_VALUE_BYTES = 520  # a 128-character batch id of CJK characters (384 bytes) whole
_STATUS_METADATA_BYTES = 2048


def _cut(text: str, limit: int, max_bytes: int | None = None) -> str:
    """``text`` cut to ``limit`` characters (and ``max_bytes`` bytes of UTF-8), saying
    how long it was."""
    if len(text) <= limit and (max_bytes is None or len(text.encode()) <= max_bytes):
        return text
    suffix = f"… ({len(text)} characters)"
    head = text[:limit]
    if max_bytes is not None:
        room = max(max_bytes - len(suffix.encode()), 0)
        head = head.encode()[:room].decode(errors="ignore")
    return head + suffix


def _caller_address(peer: str) -> str:
    """The peer without its port: a flood from new connections is one caller."""
    kind, _, rest = peer.partition(":")
    return f"{kind}:{rest.rsplit(':', 1)[0]}" if kind in ("ipv4", "ipv6") else peer


def denial_entry(
    error: LijiaoError, identity: Identity | None, method: str, peer: str, count: int = 1
) -> NewEntry:
    """The ledger entry of a refused call (``count`` > 1: it stands for that many).

    Texts are cut to a bound: a refusal must not let a caller write megabytes into an
    append-only ledger kept for months.
    """
    details = {
        _cut(k, _KEY_LIMIT): _cut(v, _DETAIL_LIMIT)
        for k, v in list(error.metadata.items())[:_DETAIL_ENTRIES]
    }
    return NewEntry(
        EntryKind.DENIAL,
        "call.refused",
        principal=(
            identity.name
            if identity is not None
            else f"certificate {details['subject']}"[:128]
            if "subject" in details
            else "anonymous"
        ),
        department=(identity.department or "") if identity is not None else "",
        system=(identity.system or "") if identity is not None else "",
        resource=details.get("resource", "")[:64],
        subject=(details.get("batch_id") or details.get("request_id") or "")[:160],
        details={
            "rpc": method,
            "code": error.code.name,
            "reason": error.reason,
            "message": _cut(error.message, _MESSAGE_LIMIT),
            "metadata": details,
            "peer": peer,
            "outcome": "REFUSED",
            "count": count,
        },
    )


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    error: LijiaoError,
    auth: Authenticator | None = None,
    identity: Identity | None = None,
    method: str = "",
) -> None:
    """Counts and records a refusal, then ends the call with its status."""
    metrics.REJECTIONS.labels(error.reason).inc()
    log.info("refused %s: %s", error.reason, _cut(error.message, _MESSAGE_LIMIT))
    peer = context.peer() or ""
    who = identity.name if identity is not None else _caller_address(peer)
    count = auth.denial_to_record(who, error.reason) if auth is not None else None
    if auth is not None and auth.ledger is not None and count is not None:
        entry = denial_entry(error, identity, method, peer, count)
        try:
            await asyncio.wait_for(auth.ledger.record([entry]), DENIAL_RECORD_SECONDS)
        except Exception:
            log.exception("could not record the denial of %s in the ledger", method)
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
            {"allowed_roles": ",".join(r.value for r in roles)},
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
            auth: Authenticator = self.auth  # type: ignore[attr-defined]
            identity: Identity | None = None
            try:
                identity = auth.identify(context)
                auth.limits.calls.take(identity.name)
                _check_role(identity, roles)
                refuse_nul(request)
                with acting_as(identity):
                    return await fn(self, request, identity, context)
            except LijiaoError as error:
                await abort(context, error, auth, identity, _method(self, fn))
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
    """Wraps a response-streaming servicer method ``(self, requests, identity, context)``.

    ``requests`` is the request of a unary-stream call (checked like a unary one) or the
    request iterator of a stream-stream call (whose messages the method checks as it
    reads them; one that does not parse is MALFORMED_MESSAGE).
    """

    def wrap(
        fn: Callable[[S, Any, Identity, Any], AsyncIterator[Resp]],
    ) -> Callable[[S, Any, Any], AsyncIterator[Resp]]:
        @functools.wraps(fn)
        async def handler(self: S, requests: Any, context: Any) -> AsyncIterator[Resp]:
            auth: Authenticator = self.auth  # type: ignore[attr-defined]
            identity: Identity | None = None
            try:
                identity = auth.identify(context)
                auth.limits.calls.take(identity.name)
                _check_role(identity, roles)
                if isinstance(requests, Message):  # a unary-stream call's one request
                    refuse_nul(requests)
                with auth.limits.streams.open(identity.name):
                    async for response in fn(self, requests, identity, context):
                        yield response
            except LijiaoError as error:
                await abort(context, error, auth, identity, _method(self, fn))
            except grpc.aio.AbortError:
                raise
            except DecodeError:
                await abort(context, _malformed(), auth, identity, _method(self, fn))
            except Exception as error:
                await _abort_internal(context, error)

        return handler

    return wrap


def _nul_field(message: Any, prefix: str = "") -> str:
    """The path of the first text field holding a NUL character, or ""."""
    for field, value in message.ListFields():
        path: str = prefix + field.name
        if field.type == field.TYPE_STRING:
            values = value if field.is_repeated else [value]
            if any("\x00" in v for v in values):
                return path
        elif field.type == field.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                if any("\x00" in str(k) or "\x00" in str(v) for k, v in value.items()):
                    return path
                continue
            for item in value if field.is_repeated else [value]:
                found = _nul_field(item, path + ".")
                if found:
                    return found
    return ""


def refuse_nul(message: Any) -> None:
    """Refuses a request with a NUL character in any text: no code, name or filter holds
    one, and databases (PostgreSQL) cannot store it."""
    path = _nul_field(message)
    if path:
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{path} contains a NUL character; no text field may",
            {"field": path},
        )


_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def datetime_of(stamp: Timestamp, field: str) -> datetime:
    """The aware UTC datetime of a timestamp in a request.

    Args:
        stamp: The request's timestamp.
        field: Its path in the request, named in the refusal (e.g. ``filter.start_time``).

    Raises:
        InvalidArgument: INVALID_FIELD: the timestamp is outside years 1-9999, or its
            nanos outside 0-999,999,999.
    """
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos <= 999_999_999):
        raise InvalidArgument(
            Reason.INVALID_FIELD,
            f"{field} must be a valid timestamp (years 1-9999, nanos 0-999,999,999)",
            {"field": field},
        )
    moment: datetime = stamp.ToDatetime(UTC)
    return moment


def _method(servicer: Any, fn: Callable[..., Any]) -> str:
    """The full gRPC method name, e.g. /exchange.v1.ExchangeService/Publish."""
    for base in type(servicer).__mro__:
        if base.__module__.endswith("_pb2_grpc"):
            package = base.__module__.rsplit(".", 1)[0]
            return f"/{package}.{base.__name__.removesuffix('Servicer')}/{fn.__name__}"
    return f"/{type(servicer).__name__}/{fn.__name__}"


@contextlib.contextmanager
def acting_as(identity: Identity) -> Iterator[None]:
    """Catalog changes made inside are recorded in the ledger as ``identity``'s."""
    token = ACTOR.set(identity.name)
    try:
        yield
    finally:
        ACTOR.reset(token)


def _malformed() -> InvalidArgument:
    return InvalidArgument(
        Reason.MALFORMED_MESSAGE, "the request is not a valid protobuf message of this call"
    )


_MALFORMED = object()
# gRPC's own services, which answer without a credential.
_OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class MalformedRequests(grpc.aio.ServerInterceptor):
    """Answers a request that does not parse with INVALID_ARGUMENT MALFORMED_MESSAGE.

    gRPC parses the request of a unary-unary or unary-stream call before the servicer
    runs; this interceptor parses it leniently and, for bytes that do not parse,
    authenticates the caller first (health checking and reflection excepted): a bad
    credential is refused as such, and a known caller's denial entry names it. Streamed
    requests are parsed as the servicer reads them: :func:`streaming` refuses those of
    the gateway's services after authenticating the caller, and this interceptor those
    of gRPC's own (reflection).
    """

    def __init__(self, auth: Authenticator | None = None) -> None:
        self.auth = auth

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        method: str = handler_call_details.method

        def lenient(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError:
                return _MALFORMED

        shapes = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler, lenient),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler, lenient),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler, parse),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler, parse),
        )
        for behaviour, make, deserializer in shapes:
            if behaviour is not None:
                return make(
                    self._guard(behaviour, method),
                    request_deserializer=deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _guard(self, behaviour: Callable[[Any, Any], Any], method: str) -> Any:
        """``behaviour``, refusing a request (or a streamed request) that did not parse."""
        if inspect.isasyncgenfunction(behaviour):

            async def responses(request: Any, context: Any) -> AsyncIterator[Any]:
                if request is _MALFORMED:
                    await self._refuse(context, method)
                try:
                    async for response in behaviour(request, context):
                        yield response
                except DecodeError:
                    await self._refuse(context, method)

            return responses

        async def answer(request: Any, context: Any) -> Any:  # or writes with context.write
            if request is _MALFORMED:
                await self._refuse(context, method)
            try:
                return await behaviour(request, context)
            except DecodeError:
                await self._refuse(context, method)

        return answer

    async def _refuse(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
        """Ends a call whose request did not parse: a refused credential or call rate
        wins over MALFORMED_MESSAGE, and a known caller is named in the denial."""
        auth = self.auth
        identity: Identity | None = None
        error: LijiaoError = _malformed()
        if auth is not None and not method.startswith(_OPEN_SERVICES):
            try:
                identity = auth.identify(context)
                auth.limits.calls.take(identity.name)
            except LijiaoError as refusal:
                error = refusal
            except Exception as failure:
                await _abort_internal(context, failure)
        await abort(context, error, auth, identity, method)
