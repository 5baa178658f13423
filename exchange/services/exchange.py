"""gRPC ``ExchangeService``: Publish, Subscribe and the gateway's public key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from catalog.credentials import Identity
from catalog.models import Role
from envelope.signing import Signer
from exchange.delivery import DeliveryPath
from exchange.gate.rpc import Authenticator, streaming, unary
from exchange.publish.path import PublishPath
from exchange.v1 import exchange_pb2, exchange_pb2_grpc

RECHECK_SECONDS = 2.0


class ExchangeServicer(exchange_pb2_grpc.ExchangeServiceServicer):
    """Binds the publish and delivery paths to the wire."""

    def __init__(
        self, auth: Authenticator, publish: PublishPath, delivery: DeliveryPath, signer: Signer
    ) -> None:
        self.auth = auth
        self.publish = publish
        self.delivery = delivery
        self.signer = signer

    @streaming(Role.SYSTEM)
    async def Publish(
        self,
        requests: AsyncIterator[exchange_pb2.PublishRequest],
        identity: Identity,
        context: Any,
    ) -> AsyncIterator[exchange_pb2.PublishResponse]:
        async for response in self.publish.serve(identity, requests, self._recheck(context)):
            yield response

    @streaming(Role.SYSTEM)
    async def Subscribe(
        self,
        requests: AsyncIterator[exchange_pb2.SubscribeRequest],
        identity: Identity,
        context: Any,
    ) -> AsyncIterator[exchange_pb2.SubscribeResponse]:
        async for response in self.delivery.serve(
            identity, requests, context, self._recheck(context)
        ):
            yield response

    def _recheck(self, context: Any) -> Callable[[], None]:
        """Re-authenticates a long stream's caller, at most every RECHECK_SECONDS: a
        certificate or token revoked while the stream is open ends it within seconds."""
        last = [time.monotonic()]

        def recheck() -> None:
            now = time.monotonic()
            if now - last[0] >= RECHECK_SECONDS:
                last[0] = now
                self.auth.identify(context)

        return recheck

    @unary()
    async def GetGatewayKey(
        self, request: exchange_pb2.GetGatewayKeyRequest, identity: Identity, context: Any
    ) -> exchange_pb2.GetGatewayKeyResponse:
        return exchange_pb2.GetGatewayKeyResponse(
            key_id=self.signer.key_id, public_key=self.signer.public_key
        )
