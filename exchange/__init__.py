"""The lijiao gateway: exchange of signed Avro record batches between departments.

Kept light on purpose: adapters import ``exchange.v1`` (the wire stubs),
``envelope.digest`` and ``envelope.signing`` without pulling in the server.
"""
