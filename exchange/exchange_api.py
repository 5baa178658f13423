"""gRPC ``ExchangeService``: Publish, Subscribe and the gateway's public key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from catalog.credentials import Identity
from catalog.models import Role
from exchange.delivery import DeliveryPath
from exchange.publishing import PublishPath
from exchange.rpc import Authenticator, streaming, unary
from exchange.signing import Signer
from exchange.v1 import exchange_pb2, exchange_pb2_grpc


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
        async for response in self.publish.serve(identity, requests):
            yield response

    @streaming(Role.SYSTEM)
    async def Subscribe(
        self,
        requests: AsyncIterator[exchange_pb2.SubscribeRequest],
        identity: Identity,
        context: Any,
    ) -> AsyncIterator[exchange_pb2.SubscribeResponse]:
        async for response in self.delivery.serve(identity, requests, context):
            yield response

    @unary()
    async def GetGatewayKey(
        self, request: exchange_pb2.GetGatewayKeyRequest, identity: Identity, context: Any
    ) -> exchange_pb2.GetGatewayKeyResponse:
        return exchange_pb2.GetGatewayKeyResponse(
            key_id=self.signer.key_id, public_key=self.signer.public_key
        )
