"""The gRPC services: catalog, approval (governance), audit and exchange.

Each servicer is thin: the gate (``exchange.gate``) authenticates and maps refusals,
the catalog decides, and publish and delivery move the records.
"""
