"""Throughput benchmarks of the gateway, each run as a file.

``exchange_throughput.py`` and ``scaleout_throughput.py`` are the two mains: each reads
its command line and prints one JSON document. What they run lives in packages:

``common``
    What both shapes share: the record generator, the signed-batch fixtures of the
    floors, the catalog world, the gateway, publisher and subscriber processes, the
    spawn orchestration of child processes, the CPU and machine probes, the options
    every shape takes and the JSON summary.
``sqlite_shape``
    The default shape: the embedded gateway against a bare gRPC + SQLite floor.
``jetstream_shape``
    The scaled-out shape: gateway replicas on PostgreSQL and NATS JetStream against
    bare JetStream.

The shape packages import ``common``; ``common`` imports neither shape.
"""
