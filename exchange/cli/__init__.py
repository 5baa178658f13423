"""The `lijiao` command: one module per command group.

``main`` is the entry point; ``client`` is the gRPC client every group shares.
"""

from exchange.cli.main import main

__all__ = ["main"]
