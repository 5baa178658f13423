"""The scaled-out shape of the benchmark: gateway replicas on PostgreSQL and NATS
JetStream against bare JetStream (``scaleout_throughput.py``)."""
