"""Throughput of the scaled-out shape: gateway replicas over PostgreSQL and NATS JetStream.

Usage::

    python benchmarks/scaleout_throughput.py [--records N] [--batch-sizes 1,100,1000] [--quick]
    python benchmarks/exchange_throughput.py --shape jetstream [same options]

It needs a PostgreSQL server and a NATS server with JetStream (``--postgres-url``,
``--nats-url``; by default ``LIJIAO_POSTGRES_URL`` / ``LIJIAO_NATS_URL`` or the local
ones the tests use). When either is unreachable it says so on stderr and exits with
status 3 without running anything.

For every batch size these cases run over the same deterministic records as the default
shape (``benchmarks/common/records.py``), interleaved when repeated:

bare_jetstream
    The floor: what the same records cost through JetStream with no gateway. A client
    process encodes them (fastavro), hashes and signs every batch like a publisher
    (``envelope.digest.batch_digest`` + Ed25519), serializes the ``RecordBatch`` and
    publishes it with nats-py ``publish_async`` (a ``Nats-Msg-Id`` header, as the gateway
    sets, so JetStream deduplicates the same way) to a fresh file-backed stream laid out
    as the gateway lays out its own, with the same in-flight bound as the publisher,
    released on each PubAck. A consumer process (durable pull consumer, explicit ack,
    ``max_ack_pending`` = the subscriber's delivery window) parses every batch, verifies
    the publisher's signature over the digest, decodes every record and acks. Timed from
    just before the first record is encoded to the later of "every publish acknowledged"
    and "the consumer handled (and acked) the last record".

gateway_1_replica, gateway_2_replicas
    Real gateways (``exchange.server.Gateway.start``), each in a process of its own over a
    data directory of its own, sharing a fresh PostgreSQL schema (catalog and ledger) and
    a fresh JetStream prefix (record log, cursors); the second replica starts with a copy
    of the first one's gateway signing key, so subscribers verify deliveries from either.
    The load is split into *lanes* (``--lanes``, default 2): lane *k* has a resource of
    its own (``PSB-RESIDENT-BENCH``, ``PSB-RESIDENT-BENCH-2``: the same stream, other
    subjects), a publishing system, a receiving system, one publisher process and one
    subscriber process, both connected to replica ``k mod replicas``. The batches are
    split between the lanes in contiguous halves. So the one- and two-replica cases run
    the very same client processes and work, and only the number of gateways differs;
    with two replicas each gateway serves one lane's publish and delivery path. The
    subscribers decode every record (as the bare consumer does) after the SDK verifies
    the gateway's and the publisher's signatures. Timed from the first lane's first
    encode to the last lane's last acknowledgement or handled record. Before the clock
    starts the case waits until the replicas' second start-up reconciliation (a shared
    log's, ``RECONCILE_SETTLE_SECONDS`` + 1 s after start) is behind them; the periodic
    passes after it belong to a running gateway and count when they fall into a run.

CPU: each case reports the CPU seconds of its own processes (``cpu_us_per_record``, as
the default shape does) and, when the services run on this machine and ``/proc`` shows
them, the CPU the NATS server and the PostgreSQL server (postmaster and every backend)
used meanwhile (``cpu_us_per_record_with_services``); those include anyone else's use
of the two servers, which ``machine_busy_fraction`` hints at. ``cpu_ratios`` divide the
floor's CPU per record (with services where known) by the gateway case's.

Everything the run makes in the servers (a schema per gateway case, a prefix per case:
streams and the cursor bucket) is removed when the case ends, and again at the end of
the run, also when a case fails or the run is interrupted.

This file reads the command line; the cases are in ``benchmarks/jetstream_shape/`` and
what both shapes share in ``benchmarks/common/``.

One JSON document goes to stdout; progress goes to stderr. The exit status is 0 whatever
the ratios; 1 when something failed (a process died, a wait timed out, a record was not
delivered or stored), 3 when a service is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    # run as a file: the shared code is imported as the package ``benchmarks``
    ROOT = str(Path(__file__).resolve().parents[1])
    if ROOT not in sys.path:
        sys.path.append(ROOT)

from benchmarks.common.arguments import (
    add_output_arguments,
    add_run_arguments,
    checked_run_arguments,
)
from benchmarks.common.summary import print_document
from benchmarks.jetstream_shape.cases import Config, lane_records
from benchmarks.jetstream_shape.run import largest_batch_bytes, run
from benchmarks.jetstream_shape.services import (
    HEADER_ROOM,
    NATS_URL,
    POSTGRES_URL,
    check_services,
)

DEFAULT_LANES = 2
DEFAULT_CASES = ("bare", "1", "2")
EXIT_UNREACHABLE = 3


def parse_args(argv: list[str] | None = None) -> Config:
    """Reads the command line."""
    parser = argparse.ArgumentParser(
        description="Gateway replicas on PostgreSQL + NATS JetStream versus bare JetStream.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help="comma-separated: bare (bare JetStream) and gateway replica counts (default bare,1,2)",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=DEFAULT_LANES,
        help="publisher+subscriber pairs in the gateway cases, spread over the replicas "
        f"(default {DEFAULT_LANES})",
    )
    parser.add_argument("--nats-url", default=NATS_URL, help=f"NATS server (default {NATS_URL})")
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_URL,
        help="PostgreSQL server, a SQLAlchemy URL (default LIJIAO_POSTGRES_URL or the local "
        "test server)",
    )
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    asked = checked_run_arguments(parser, args)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or any(c != "bare" and not (c.isdigit() and 1 <= int(c) <= 8) for c in cases):
        parser.error("--cases takes bare and replica counts 1..8, e.g. bare,1,2")
    cases = list(dict.fromkeys(cases))
    if args.lanes < 1 or any(c != "bare" and int(c) > args.lanes for c in cases):
        parser.error("--lanes must be at least the largest replica count (each replica a lane)")
    if any(c != "bare" for c in cases):
        for size, count in asked.records.items():
            try:
                lane_records(count, size, args.lanes)
            except ValueError as exc:
                parser.error(f"{exc}: give more --records")
    return Config(
        **vars(asked),
        cases=cases,
        lanes=args.lanes,
        nats_url=args.nats_url,
        postgres_url=args.postgres_url,
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its JSON document."""
    config = parse_args(argv)
    services, reason = check_services(config.nats_url, config.postgres_url)
    if services is None:
        print(f"benchmark skipped: {reason}", file=sys.stderr)
        return EXIT_UNREACHABLE
    limit = int(services["nats_max_payload"]) - HEADER_ROOM
    too_big = [s for s in config.batch_sizes if largest_batch_bytes(s) > limit]
    if too_big:
        print(
            f"benchmark failed: batches of {too_big[0]} records exceed what NATS takes "
            f"(max_payload less headers: {limit} bytes); use smaller --batch-sizes",
            file=sys.stderr,
        )
        return 1
    return print_document(lambda: run(config, services))


if __name__ == "__main__":
    sys.exit(main())
