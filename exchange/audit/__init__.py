"""The audit plane's tasks in the gateway: the one ledger writer, reconciliation of
the ledger with the record log, checkpoints, verification and retention on timers.
"""
