"""The envelope layer: what the gateway and every adapter must agree on, byte by byte.

Batch and delivery digests (:mod:`envelope.digest`), the :class:`~envelope.signing.Signer`
protocol and the one signature check (:mod:`envelope.signing`), schema parsing, canonical
form and fingerprints (:mod:`envelope.schemas`), the exact Avro codec
(:mod:`envelope.avro`) and the refusal reasons (:mod:`envelope.errors`).

A leaf: it imports neither ``grpc`` nor any gateway, catalog or adapter module, only the
generated protobuf messages (``exchange.v1.exchange_pb2``); ``tests/test_layers.py``
keeps it so.
"""
