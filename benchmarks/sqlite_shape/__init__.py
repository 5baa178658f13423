"""The default shape of the benchmark: the embedded gateway (SQLite catalog, ledger and
record log) against a floor of bare gRPC and SQLite (``exchange_throughput.py``)."""
