"""End-to-end throughput of the gateway, compared with a floor measured in the same run.

Usage::

    python benchmarks/exchange_throughput.py [--records N] [--batch-sizes 1,100,1000] [--quick]

For every batch size two cases run over the same deterministic records:

gateway
    A real gateway (``exchange.server.Gateway.start``) in a process of its own, over a
    fresh data directory (plaintext, metrics off). The catalog is set up over gRPC: two
    departments, a publishing system with an Ed25519 key, a receiving system, a resource
    with a realistic schema and a grant. Then a publisher process
    (``adapters.publisher.Publisher``: encode, sign, stream with bounded in-flight) and a
    subscriber process (``adapters.subscriber.Subscriber``: verify the gateway's and the
    publisher's signatures, decode, ack) run concurrently. Timed from just before the
    first record is encoded to the later of "every publish acknowledged" and "the
    subscriber handled (and acked) the last record".

floor
    What the same records cost with no gateway logic at all: a client process that
    encodes (fastavro ``schemaless_writer``), hashes and signs
    (``envelope.digest.batch_digest`` + Ed25519) and streams ``RecordBatch`` messages
    with the same in-flight bound over a bare ``grpc.aio`` bidi stream, to a server
    process whose ``Publish`` verifies the signature, decodes every record against a
    parsed schema, appends the serialized batch to a SQLite WAL database with
    ``synchronous=FULL`` (one transaction per batch, in a writer thread so that decoding
    the next batch overlaps the commit) and acks. Timed from just before the first record
    is encoded to the last ack received.

Both sides encode inside the timed region, use spawned processes for client and server,
and generate the record dicts before the clock starts. The gateway case has one more
process (the subscriber) and the whole delivery path on top of the floor's work: the
ratio says what the gateway costs over the bare minimum of the publish path.

Every run also reports the CPU seconds of each process (``cpu_us_per_record`` summed
over the case's processes) and how busy the whole machine was. ``cpu_ratio`` (floor CPU
per record / gateway-case CPU per record) is what the ratio tends to when both cases
are CPU-bound on the same cores; it is much less sensitive to other load on the machine
than the wall-clock ratio, so compare the two before trusting a single run.

Options worth knowing: ``--repeat R`` (medians of R interleaved runs),
``--with-publish-only`` (also time the gateway with no subscriber: the floor's process
count and end condition, isolating the publish path), ``--only gateway|floor``, and
``--profile-dir DIR`` (one cProfile file per child process). For native-aware sampling::

    py-spy record --subprocesses --format raw -o gateway.txt -- \
        python benchmarks/exchange_throughput.py --only gateway --batch-sizes 1000

``--shape jetstream`` runs the scaled-out shape instead (catalog and ledger on
PostgreSQL, record log on NATS JetStream, one and two gateway replicas, against bare
JetStream): see ``benchmarks/scaleout_throughput.py``.

This file reads the command line; the cases are in ``benchmarks/sqlite_shape/`` and what
both shapes share in ``benchmarks/common/``.

One JSON document goes to stdout; progress goes to stderr. The exit status is 0 whatever
the ratio; it is non-zero only when something failed (a process died, a wait timed out,
a record was not delivered or stored).
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
from benchmarks.sqlite_shape.cases import Config
from benchmarks.sqlite_shape.run import run

SHAPES = ("sqlite", "jetstream")


def parse_args(argv: list[str] | None = None) -> Config:
    """Reads the command line."""
    parser = argparse.ArgumentParser(
        description="Gateway end-to-end throughput versus a bare gRPC+SQLite floor.",
    )
    add_run_arguments(parser)
    parser.add_argument("--only", choices=("gateway", "floor"), help="run one side only")
    parser.add_argument(
        "--with-publish-only",
        action="store_true",
        help="diagnostic: also time the gateway with no subscriber (the floor's process count)",
    )
    parser.add_argument(
        "--subscriber-decodes",
        action="store_true",
        help="the subscriber's handler decodes every record (default: first and last only; "
        "signatures over every record are verified either way)",
    )
    add_output_arguments(parser)
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="sqlite",
        help="sqlite (default): the embedded gateway against the gRPC+SQLite floor; "
        "jetstream: PostgreSQL + NATS JetStream with one and two replicas against bare "
        "JetStream (benchmarks/scaleout_throughput.py; its own options, see its --help)",
    )
    args = parser.parse_args(argv)
    return Config(
        **vars(checked_run_arguments(parser, args)),
        only=args.only,
        publish_only=args.with_publish_only,
        subscriber_decodes=args.subscriber_decodes,
    )


def _shape_of(argv: list[str] | None) -> tuple[str, list[str]]:
    """The ``--shape`` asked for, and the other arguments."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--shape", choices=SHAPES, default="sqlite")
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    return known.shape, rest


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its JSON document."""
    shape, rest = _shape_of(argv)
    if shape == "jetstream":
        from benchmarks import scaleout_throughput

        return scaleout_throughput.main(rest)
    config = parse_args(argv)
    return print_document(lambda: run(config))


if __name__ == "__main__":
    sys.exit(main())
