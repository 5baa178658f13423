"""The audit ledger (审计账本): an append-only, hash-chained record of what happened.

Every catalog change, request and decision, grant change, accepted batch, delivery and
denial is one entry, chained to the entry before by a hash; the gateway signs
checkpoints of the chain head with its key at an interval, and :func:`verify` reports
the first broken link. One module per concept:

- :mod:`~catalog.ledger.models`: the tables (entries, the one-row head, checkpoints).
- :mod:`~catalog.ledger.chain`: canonical content, the one content digest, the chain
  hash, and appending under the head's lock.
- :mod:`~catalog.ledger.checkpoints`: signing the chain head.
- :mod:`~catalog.ledger.verification`: walking the chain and its checkpoints.
- :mod:`~catalog.ledger.queries`: what auditors read.
- :mod:`~catalog.ledger.retention`: archiving and pruning old entries under an anchor.
- :mod:`~catalog.ledger.hooks`: who is acting (:data:`ACTOR`) and who is told of
  commits (:data:`COMMIT_HOOKS`).

Callers import from here (``from catalog import ledger``); the names below are the
ledger's public face.
"""

from catalog.ledger.chain import (
    NewEntry,
    append,
    chain_hash,
    digest_of_content,
    ensure_head,
    format_ns,
    format_time,
    hash_at,
)
from catalog.ledger.checkpoints import checkpoint
from catalog.ledger.hooks import ACTOR, COMMIT_HOOKS, committed
from catalog.ledger.models import GENESIS, EntryKind, LedgerEntry
from catalog.ledger.queries import (
    EntryFilter,
    entries,
    head,
    iterate,
    last_checkpoint,
    summary,
    trace,
)
from catalog.ledger.retention import Pruned, prune
from catalog.ledger.verification import Problem, Verification, verify

__all__ = [
    "ACTOR",
    "COMMIT_HOOKS",
    "GENESIS",
    "EntryFilter",
    "EntryKind",
    "LedgerEntry",
    "NewEntry",
    "Problem",
    "Pruned",
    "Verification",
    "append",
    "chain_hash",
    "checkpoint",
    "committed",
    "digest_of_content",
    "ensure_head",
    "entries",
    "format_ns",
    "format_time",
    "hash_at",
    "head",
    "iterate",
    "last_checkpoint",
    "prune",
    "summary",
    "trace",
    "verify",
]
