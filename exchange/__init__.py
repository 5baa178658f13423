"""The lijiao gateway: exchange of signed Avro record batches between departments.

Kept light on purpose: adapters import ``exchange.v1`` (the wire stubs),
``exchange.envelope`` and ``exchange.signing`` without pulling in the server.
"""
