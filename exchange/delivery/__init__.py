"""The delivery path: from the log to a granted subscriber, one acknowledged batch at a time.

A subscription has a durable cursor: the position of the last batch that the
subscriber acknowledged (and everything before it). Delivery starts after the cursor,
keeps at most ``max_in_flight`` batches unacknowledged, and sends them again when the
acknowledgements do not come within the ack timeout or the subscriber reconnects.
Each delivered batch carries only what the grant allows (its fields, its region) and is
countersigned by the gateway. Every acknowledged delivery is a ledger entry, committed
before the cursor moves past it.

The modules, by job:

- :mod:`~exchange.delivery.path`: accepts a Subscribe stream and where it starts.
- :mod:`~exchange.delivery.stream`: one stream's window, acks and redelivery.
- :mod:`~exchange.delivery.projection`: what a grant makes of a batch, countersigned.
- :mod:`~exchange.delivery.entries`: the ledger entries of deliveries and dead letters.
- :mod:`~exchange.delivery.attempts`: the kept delivery count that decides dead-lettering.
"""

from exchange.delivery.attempts import DeliveryCounts, keep_attempts, load_attempts
from exchange.delivery.path import (
    DEFAULT_IN_FLIGHT,
    MAX_IN_FLIGHT,
    MAX_OFFSET,
    MAX_SECONDS,
    OPEN_MARKER,
    DeliveryPath,
)
from exchange.delivery.projection import Countersigner, Projection, Sent
from exchange.delivery.stream import StreamHost, SubscriptionStream

__all__ = [
    "DEFAULT_IN_FLIGHT",
    "MAX_IN_FLIGHT",
    "MAX_OFFSET",
    "MAX_SECONDS",
    "OPEN_MARKER",
    "Countersigner",
    "DeliveryCounts",
    "DeliveryPath",
    "Projection",
    "Sent",
    "StreamHost",
    "SubscriptionStream",
    "keep_attempts",
    "load_attempts",
]
